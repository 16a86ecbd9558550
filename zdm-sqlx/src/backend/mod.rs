//! The one trait that hides dialect differences, and its implementations.
//!
//! The runner, the lease and the status report are written once against [`Backend`];
//! each database implements it next to the SQL it sends ([`postgres`], [`sqlite`]).
//! A MySQL backend is one more file here. The trait is sealed: users pass a `PgPool` or a
//! `SqlitePool` and never implement it themselves.

mod pg_backfill;
mod pg_recipes;
mod pg_registry;
pub(crate) mod pg_simple;
pub mod postgres;
pub mod sqlite;
mod sqlite_registry;

use std::future::Future;
use std::time::Duration;

use zdm_core::gate::{self, Blocker, PendingDrop};
use zdm_core::model::ModelInfo;
use zdm_core::plan::Applied;
use zdm_core::retry::ExecPolicy;

use crate::backfill::{BackfillRow, BatchOutcome};
use crate::error::Error;
use crate::lease::Fence;
use crate::ledger::{Failure, LedgerRow, Names, RunContext};
use crate::migration::Step;
use crate::registry::InstanceRecord;

mod private {
    pub trait Sealed {}
}

/// A pool zdm can migrate: `sqlx::PgPool` or `sqlx::SqlitePool`.
pub trait MigratePool: Backend {}
impl<B: Backend> MigratePool for B {}

/// What the bootstrap found besides zdm's own tables.
#[derive(Debug, Clone)]
pub struct Found {
    /// The migration tables of other tools whose (successful) rows count as applied.
    pub foreign: Foreign,
    /// PostgreSQL's `server_version_num` (e.g. 150004); `None` on other databases.
    pub server_version: Option<i32>,
    /// Which database this is (server, port, name), so one process keeps one heartbeat per
    /// database it registered with.
    pub db_key: String,
}

/// Which other tools' migration tables exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Foreign {
    /// sqlx's `_sqlx_migrations`.
    pub sqlx: bool,
    /// diesel's `__diesel_schema_migrations` (read on PostgreSQL).
    pub diesel: bool,
}

impl Foreign {
    pub fn any(self) -> bool {
        self.sqlx || self.diesel
    }
}

/// The steps of a deferred drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropStep {
    /// Trigger that rejects writes (and, for a column, its default dropped).
    ReadOnly,
    /// The `DROP` itself.
    Drop,
    /// Lifts the read-only trigger again: a build that still writes came back (a rollback).
    Writable,
}

impl DropStep {
    /// Whether the step may run while these blockers hold the drop back: the drop with
    /// none, the read-only trigger while only a delay waits, the lift while a live build
    /// (this one or another) predates the scheduling migration.
    pub fn allowed(self, blockers: &[Blocker]) -> bool {
        match self {
            DropStep::Drop => gate::step_allowed(blockers, false),
            DropStep::ReadOnly => gate::step_allowed(blockers, true),
            DropStep::Writable => {
                blockers.iter().any(|b| matches!(b, Blocker::OldBuild { .. } | Blocker::ThisBuild { .. }))
            }
        }
    }
}

/// How one step of a deferred drop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Done,
    /// The gate, checked again inside the step's transaction, closed in between.
    Held(Vec<Blocker>),
    /// The database refused it (after the lock-timeout retries); nothing was applied.
    Failed(String),
}

/// What a step of a deferred drop checks inside its own transaction.
pub struct StepGuard<'a> {
    /// The lease this run holds, when it holds one.
    pub fence: Option<&'a Fence>,
    /// Which registrations count as live.
    pub instance_ttl: Duration,
    /// The gate's verdict for the drop, computed again from the live instances read there.
    pub recheck: &'a (dyn Fn(&[gate::Instance]) -> Vec<Blocker> + Send + Sync),
}

/// The database-specific half of zdm. Every future is `Send`, so `run_pre` and friends can
/// be `tokio::spawn`ed.
pub trait Backend: private::Sealed + Clone + Send + Sync + 'static {
    /// The database's name in messages.
    const NAME: &'static str;

    /// A pool of one connection of its own to the same database (to `session_url` when
    /// given: a direct or session-mode connection), for the lease renewal and the
    /// heartbeat: they must not wait behind an app that holds every pooled connection, nor
    /// behind a saturated pooler. Connects lazily.
    fn side(&self, session_url: Option<&str>) -> Self;

    /// Closes a pool that [`Backend::side`] returned (a no-op where `side` shares the pool).
    fn close_side(&self) -> impl Future<Output = ()> + Send;

    /// Creates zdm's tables when missing (safe when many processes start at once).
    fn bootstrap(&self, names: &Names) -> impl Future<Output = Result<Found, Error>> + Send;

    /// Every row of zdm's ledger, ordered by version.
    fn load_ledger(&self, names: &Names) -> impl Future<Output = Result<Vec<LedgerRow>, Error>> + Send;

    /// The successful rows of zdm's ledger, only what planning needs (the boot path).
    fn load_zdm_applied(&self, names: &Names) -> impl Future<Output = Result<Vec<Applied>, Error>> + Send;

    /// The successful rows of sqlx's `_sqlx_migrations` (and, on PostgreSQL, the rows of
    /// diesel's `__diesel_schema_migrations`).
    fn load_sqlx_applied(&self, foreign: Foreign) -> impl Future<Output = Result<Vec<Applied>, Error>> + Send;

    /// Takes the lease when it is free, expired or already ours: `None` when taken,
    /// otherwise the current holder.
    fn try_lease(
        &self,
        names: &Names,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Extends our lease; `false` when it is no longer ours.
    fn renew_lease(
        &self,
        names: &Names,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Who holds the lease now, if anyone.
    fn lease_holder(&self, names: &Names) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    fn release_lease(&self, names: &Names, owner: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Runs one migration and, in the same transaction unless `no_transaction`, writes its
    /// ledger and history rows, checking in that transaction that `fence` still holds the
    /// lease (`Error::LeaseLost` otherwise, with the migration rolled back). The outer
    /// error is zdm's own; the inner one is the migration's failure (already rolled back,
    /// not yet recorded). With `gate` (an after_deploy migration that removes a column or
    /// table), the registry's lock is taken first and the gate asked again inside the
    /// transaction: `Error::GateClosed` when a build that needs it registered meanwhile.
    fn apply(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        policy: &ExecPolicy,
        fence: &Fence,
        gate: Option<&StepGuard<'_>>,
    ) -> impl Future<Output = Result<Result<i64, Failure>, Error>> + Send;

    /// Records a failed attempt in the ledger and its history, outside any transaction
    /// the failure rolled back.
    fn record_failure(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Inserts or refreshes this process's registry row; prunes rows whose heartbeat is
    /// older than `ttl`. Serialised with the steps of deferred drops: a build whose
    /// `models` map something already dropped is refused (`Error::MapsDropped`) and not
    /// registered. Returns the ids of read-only drops scheduled by migrations this build
    /// lacks (it may still write them: the caller lifts them).
    fn upsert_instance(
        &self,
        names: &Names,
        record: &InstanceRecord,
        ttl: Duration,
        models: &[ModelInfo],
    ) -> impl Future<Output = Result<Vec<i64>, Error>> + Send;

    /// Whether any build of `app` ever registered model structs (a build with none then
    /// probably lost them to the linker).
    fn app_had_models(&self, names: &Names, app: &str) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Refreshes the heartbeat; `false` when the row is gone (pruned) and must be re-added.
    fn beat(&self, names: &Names, id: &str) -> impl Future<Output = Result<bool, Error>> + Send;

    fn deregister(&self, names: &Names, id: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Instances whose heartbeat is younger than `ttl`.
    fn live_instances(
        &self,
        names: &Names,
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<gate::Instance>, Error>> + Send;

    /// Every scheduled drop and whether it was carried out (none on SQLite).
    fn load_drops(&self, names: &Names) -> impl Future<Output = Result<Vec<(PendingDrop, bool)>, Error>> + Send;

    /// Runs one step of a deferred drop in a transaction, under the lock-timeout schedule.
    /// In that transaction it takes the registry's lock (new registrations wait), checks
    /// the lease and asks the gate again with the live instances read there.
    fn drop_step(
        &self,
        names: &Names,
        drop: &PendingDrop,
        step: DropStep,
        policy: &ExecPolicy,
        guard: &StepGuard<'_>,
    ) -> impl Future<Output = Result<StepOutcome, Error>> + Send;

    /// Remembers when each of these after_deploy migrations was first seen waiting.
    fn note_post_pending(&self, names: &Names, versions: &[i64]) -> impl Future<Output = Result<(), Error>> + Send;

    /// (version, first seen UTC, age in seconds) of after_deploy migrations seen waiting.
    fn post_pending_since(&self, names: &Names) -> impl Future<Output = Result<Vec<(i64, String, i64)>, Error>> + Send;

    /// Every scheduled backfill (none on SQLite).
    fn load_backfills(&self, names: &Names) -> impl Future<Output = Result<Vec<BackfillRow>, Error>> + Send;

    /// Runs the next batch of backfill `name` in its own transaction with its progress row.
    fn backfill_batch(
        &self,
        names: &Names,
        name: &str,
        target: Duration,
        policy: &ExecPolicy,
    ) -> impl Future<Output = Result<BatchOutcome, Error>> + Send;
}

/// The 1-based line of `char_pos` (1-based characters, as PostgreSQL reports) in `sql`,
/// offset to the file's line of the statement that was sent.
pub(crate) fn line_of_char_position(sql: &str, char_pos: usize, first_line: usize) -> usize {
    let byte = sql.char_indices().nth(char_pos.saturating_sub(1)).map_or(sql.len(), |(b, _)| b);
    zdm_core::split::line_of(sql, byte) + first_line - 1
}

/// Milliseconds since `t`, for the ledger.
pub(crate) fn elapsed_ms(t: std::time::Instant) -> i64 {
    t.elapsed().as_millis().min(i64::MAX as u128) as i64
}
