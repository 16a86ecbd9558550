//! The PostgreSQL backend: the SQL zdm sends to PostgreSQL, and how it sends it.
//!
//! One file per noun: `bootstrap` (zdm's tables), `ledger`, `lease`, `apply` (one
//! migration, in a transaction or statement by statement), `session` (connections of
//! their own), `registry`, `instances` (the live instances and the registry's lock, which
//! every gated write reads), `post_pending`, `drops` (deferred drops), `removed` (what
//! plain migrations removed), `backfill`, `recipes` (the SQL functions migrations call)
//! and `simple` (how every query of zdm's own is sent: the simple protocol, so it works
//! through any pooler). The core trait is implemented here; each capability trait next
//! to its SQL.

mod apply;
mod backfill;
mod bootstrap;
mod drops;
mod instances;
mod lease;
mod ledger;
mod post_pending;
pub(crate) mod recipes;
mod registry;
mod removed;
mod session;
pub(crate) mod simple;
mod window;

use std::time::Duration;

use sqlx::PgPool;
use zdm_core::plan::Applied;
use zdm_core::retry::ExecPolicy;

use super::{Backend, StepGuard};
use crate::error::Error;
use crate::migration::Step;
use crate::names::Names;
use crate::records::{Booted, Failure, Fence, Foreign, Found, InstanceRecord, LedgerRow, Outcome, RunContext};

impl super::private::Sealed for PgPool {}

impl Backend for PgPool {
    const NAME: &'static str = "PostgreSQL";
    const DIALECT: zdm_core::Dialect = zdm_core::Dialect::Postgres;

    fn side(&self, session_url: Option<&str>) -> Self {
        session::side(self, session_url)
    }

    async fn close_side(&self) {
        self.close().await;
    }

    async fn boot(
        &self,
        names: &Names,
        register: Option<(&InstanceRecord, Duration)>,
    ) -> Result<Option<Booted>, Error> {
        let register = register.map(|(r, ttl)| registry::register_sql(names, r, ttl.as_secs_f64()));
        bootstrap::boot(self, names, register).await
    }

    async fn bootstrap(&self, names: &Names) -> Result<Found, Error> {
        bootstrap::bootstrap(self, names).await
    }

    async fn newest_applied(&self, names: &Names) -> Result<Option<i64>, Error> {
        ledger::newest_applied(self, names).await
    }

    async fn load_ledger(&self, names: &Names) -> Result<Vec<LedgerRow>, Error> {
        ledger::load_ledger(self, names).await
    }

    async fn load_applied(&self, names: &Names, foreign: Foreign) -> Result<Vec<Applied>, Error> {
        ledger::load_applied(self, names, foreign).await
    }

    async fn try_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<Option<String>, Error> {
        lease::try_lease(self, names, owner, ttl).await
    }

    async fn renew_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<bool, Error> {
        lease::renew_lease(self, names, owner, ttl).await
    }

    async fn lease_holder(&self, names: &Names) -> Result<Option<String>, Error> {
        lease::lease_holder(self, names).await
    }

    async fn release_lease(&self, names: &Names, owner: &str) -> Result<(), Error> {
        lease::release_lease(self, names, owner).await
    }

    async fn apply(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        policy: &ExecPolicy,
        fence: &Fence,
        gate: Option<&StepGuard<'_>>,
    ) -> Result<Outcome, Error> {
        apply::apply(self, names, step, ctx, policy, fence, gate).await
    }

    async fn record_failure(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        failure: &Failure,
    ) -> Result<(), Error> {
        apply::record_failure(self, names, step, ctx, failure).await
    }
}
