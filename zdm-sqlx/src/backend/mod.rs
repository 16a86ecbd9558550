//! The traits that hide dialect differences, and their implementations.
//!
//! The runner, the lease, the registry and the status report are written once against
//! these traits; each database implements them in a folder of its own, next to the SQL it
//! sends ([`postgres`], [`sqlite`]). Like sqlx's `Migrate`, the required core is small
//! ([`Backend`]: the ledger, the lease and applying a migration); what a database may lack
//! is a capability trait whose methods default to `not supported on <dialect>`
//! ([`Drops`], [`Backfills`]). A new database is a new folder that implements `Backend`
//! and [`Registry`] and opts into the rest, plus one `mod` line here.
//!
//! The traits are sealed: users pass a `PgPool` or a `SqlitePool` and never implement
//! them. This module imports only plain types ([`crate::records`], [`crate::names`],
//! [`crate::migration`], [`crate::error`]); nothing that drives it.

pub mod postgres;
pub mod sqlite;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use zdm_core::gate::DropStep;
use zdm_core::gate::{self, Blocker, DropRecord, PendingDrop};
use zdm_core::model::ModelInfo;
use zdm_core::plan::Applied;
use zdm_core::retry::ExecPolicy;

use crate::error::Error;
use crate::migration::Step;
use crate::names::Names;
use crate::records::{
    BackfillRow, BatchOutcome, Booted, Failure, Fence, Foreign, Found, InstanceRecord, LedgerRow, Outcome, PostPending,
    RunContext,
};

mod private {
    pub trait Sealed {}
}

/// A pool zdm can migrate: `sqlx::PgPool` or `sqlx::SqlitePool`.
pub trait MigratePool: Backend + Registry + Drops + Backfills {}
impl<B: Backend + Registry + Drops + Backfills> MigratePool for B {}

/// How one step of a deferred drop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Done,
    /// The gate, checked again inside the step's transaction, closed in between.
    Held(Vec<Blocker>),
    /// The database refused it (after the lock-timeout retries); nothing was applied.
    Failed(String),
}

/// What a gated write (a step of a deferred drop, an after_deploy migration that removes
/// something) checks inside its own transaction, after taking the registry's lock.
pub struct StepGuard<'a> {
    /// The lease this run holds, when the step must check it.
    pub fence: Option<&'a Fence>,
    /// Which registrations count as live.
    pub instance_ttl: Duration,
    /// The gate's verdict, computed again from the live instances read there.
    pub recheck: &'a (dyn Fn(&[gate::Instance]) -> Vec<Blocker> + Send + Sync),
}

/// The required core every database implements: zdm's tables, the ledger, the lease and
/// applying one migration. Every future is `Send`, so `run_pre` and friends can be
/// `tokio::spawn`ed.
pub trait Backend: private::Sealed + Clone + Send + Sync + 'static {
    /// The database's name in messages.
    const NAME: &'static str;
    /// The dialect a migration set must be linted for to run here.
    const DIALECT: zdm_core::Dialect;

    /// A pool of one connection of its own to the same database (to `session_url` when
    /// given: a direct or session-mode connection), for the lease renewal and the
    /// heartbeat: they must not wait behind an app that holds every pooled connection, nor
    /// behind a saturated pooler. Connects lazily.
    fn side(&self, session_url: Option<&str>) -> Self;

    /// Closes a pool that [`Backend::side`] returned (a no-op where `side` shares the pool).
    fn close_side(&self) -> impl Future<Output = ()> + Send;

    /// Creates zdm's tables when missing (safe when many processes start at once) and
    /// says which other tools' ledgers exist.
    fn bootstrap(&self, names: &Names) -> impl Future<Output = Result<Found, Error>> + Send;

    /// The common boot (nothing of zdm's to create) in one round trip where the database
    /// allows: [`Backend::bootstrap`]'s look-up, [`Backend::load_applied`] and, given, the
    /// registration of a build without model structs (`record`, registered for `ttl`).
    /// `None` (the default): take those steps one by one.
    fn boot(
        &self,
        names: &Names,
        register: Option<(&InstanceRecord, Duration)>,
    ) -> impl Future<Output = Result<Option<Booted>, Error>> + Send {
        let _ = (names, register);
        async { Ok(None) }
    }

    /// The newest version applied by zdm, sqlx or (PostgreSQL) diesel: the version to
    /// baseline at when adopting. Reads only; creates nothing.
    fn newest_applied(&self, names: &Names) -> impl Future<Output = Result<Option<i64>, Error>> + Send;

    /// Every row of zdm's ledger, ordered by version.
    fn load_ledger(&self, names: &Names) -> impl Future<Output = Result<Vec<LedgerRow>, Error>> + Send;

    /// What counts as applied, only what planning needs (the boot path): the successful
    /// rows of zdm's ledger and of the other tools' ledgers that `foreign` says exist
    /// (sqlx's under `names.sqlx_ledger`), in one round trip where the database allows;
    /// zdm's row wins where both have a version.
    fn load_applied(&self, names: &Names, foreign: Foreign)
        -> impl Future<Output = Result<Vec<Applied>, Error>> + Send;

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
    /// lease (`Error::LeaseLost` otherwise, with the migration rolled back). An `Error` is
    /// zdm's own; the migration's own failure is [`Outcome::Failed`] (already rolled
    /// back, not yet recorded). With `gate` (an after_deploy migration that removes a
    /// column or table), the registry's lock is taken first and the gate asked again
    /// inside the transaction: `Error::GateClosed` when a build that needs it registered
    /// meanwhile.
    fn apply(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        policy: &ExecPolicy,
        fence: &Fence,
        gate: Option<&StepGuard<'_>>,
    ) -> impl Future<Output = Result<Outcome, Error>> + Send;

    /// Records a failed attempt in the ledger and its history, outside any transaction
    /// the failure rolled back.
    fn record_failure(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        failure: &Failure,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The instance registry: which builds are live, and since when after_deploy work waits.
pub trait Registry: Backend {
    /// Inserts or refreshes this process's registry row (registered for `ttl`). Serialised with the steps of deferred drops: a build whose
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
    /// With `prune`, also removes the rows whose TTL (at least `prune`) ran out.
    fn beat(
        &self,
        names: &Names,
        id: &str,
        prune: Option<Duration>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    fn deregister(&self, names: &Names, id: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Instances whose heartbeat is younger than `ttl`.
    fn live_instances(
        &self,
        names: &Names,
        ttl: Duration,
    ) -> impl Future<Output = Result<Vec<gate::Instance>, Error>> + Send;

    /// Remembers when each of these after_deploy migrations was first seen waiting.
    fn note_post_pending(&self, names: &Names, versions: &[i64]) -> impl Future<Output = Result<(), Error>> + Send;

    /// The after_deploy migrations seen waiting, with since when.
    fn post_pending_since(&self, names: &Names) -> impl Future<Output = Result<Vec<PostPending>, Error>> + Send;
}

/// Deferred drops: scheduled by migrations, carried out step by step once the gate opens.
/// A database without them has nothing scheduled and refuses a step.
pub trait Drops: Backend {
    /// Every scheduled drop and whether it was carried out.
    fn load_drops(&self, names: &Names) -> impl Future<Output = Result<Vec<DropRecord>, Error>> + Send {
        let _ = names;
        async { Ok(Vec::new()) }
    }

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
    ) -> impl Future<Output = Result<StepOutcome, Error>> + Send {
        let _ = (names, drop, step, policy, guard);
        async { Err(Error::Unsupported { what: "deferred drops", dialect: Self::NAME }) }
    }
}

/// Batched, resumable backfills. A database without them has none scheduled and refuses
/// a batch.
pub trait Backfills: Backend {
    /// Every scheduled backfill.
    fn load_backfills(&self, names: &Names) -> impl Future<Output = Result<Vec<BackfillRow>, Error>> + Send {
        let _ = names;
        async { Ok(Vec::new()) }
    }

    /// Runs the next batch of backfill `name`, of `size` keys (`None`: the size its progress
    /// row stores, as a resumed backfill starts), in its own transaction with its progress
    /// row; the caller sizes the next batch from the time this one held its locks.
    fn backfill_batch(
        &self,
        names: &Names,
        name: &str,
        size: Option<i64>,
        policy: &ExecPolicy,
    ) -> impl Future<Output = Result<BatchOutcome, Error>> + Send {
        let _ = (names, name, size, policy);
        async { Err(Error::Unsupported { what: "backfills", dialect: Self::NAME }) }
    }
}

/// Cancellations of dropped runs still under way (a backend cancels the statement of a
/// migration whose future was dropped): a dropped lease waits for them before it is given
/// back, so no successor starts while the old statement still runs.
static CANCELS: AtomicUsize = AtomicUsize::new(0);

/// One cancellation under way (see [`cancels_in_flight`]).
pub(crate) struct CancelInFlight(());

impl CancelInFlight {
    pub(crate) fn start() -> CancelInFlight {
        CANCELS.fetch_add(1, Ordering::SeqCst);
        CancelInFlight(())
    }
}

impl Drop for CancelInFlight {
    fn drop(&mut self) {
        CANCELS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many cancellations of dropped runs are still under way.
pub(crate) fn cancels_in_flight() -> usize {
    CANCELS.load(Ordering::SeqCst)
}

/// The 1-based line of `char_pos` (1-based characters, as PostgreSQL reports) in `sql`,
/// offset to the file's line of the statement that was sent.
pub(crate) fn line_of_char_position(sql: &str, char_pos: usize, first_line: usize) -> usize {
    let byte = sql.char_indices().nth(char_pos.saturating_sub(1)).map_or(sql.len(), |(b, _)| b);
    zdm_core::split::line_of(sql, byte) + first_line - 1
}
