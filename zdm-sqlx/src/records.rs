//! The plain values that cross between the runner and the backends: who runs (the
//! [`RunContext`]), what the ledger, the registry and the backfills hold, and what a
//! backend reports back. Nothing here talks to a database; everything above the backend
//! trait and every backend speaks in these types.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use zdm_core::Phase;

/// Who is running migrations: written into every ledger and history row.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub app_name: String,
    pub app_version: String,
    pub zdm_version: &'static str,
    pub hostname: String,
    pub pid: i32,
    /// A direct (or session-mode) connection URL for what needs a session of its own:
    /// `no_transaction` migrations, lease renewal (`Migrator::session_url`).
    pub session_url: Option<String>,
}

impl RunContext {
    pub fn current(app_name: &str, app_version: &str) -> RunContext {
        RunContext {
            app_name: app_name.to_string(),
            app_version: app_version.to_string(),
            zdm_version: env!("CARGO_PKG_VERSION"),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id() as i32,
            session_url: None,
        }
    }
}

/// One row of the ledger as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LedgerRow {
    pub version: i64,
    pub description: String,
    pub phase: Option<Phase>,
    /// SHA-384 of the file as applied (hex in JSON).
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex"))]
    pub checksum: Vec<u8>,
    pub success: bool,
    /// When its (last) attempt started.
    pub started_at: DateTime<Utc>,
    /// How long that attempt took.
    #[cfg_attr(feature = "serde", serde(rename = "duration_ms", serialize_with = "zdm_core::time::serde::millis"))]
    pub duration: Duration,
    pub app_name: Option<String>,
    pub app_version: Option<String>,
    pub hostname: Option<String>,
    pub error: Option<String>,
    pub safety_assured: Vec<String>,
}

/// How applying one migration ended (zdm's own failures are an `Error` instead).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Applied and recorded; it took this long.
    Applied { duration: Duration },
    /// The migration failed; its changes are rolled back (unless `no_transaction`) and the
    /// failure is not yet recorded.
    Failed(Failure),
}

/// How one attempt ended, as the backend records it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    /// Line in the migration file of the failing statement, when known.
    pub line: Option<usize>,
    pub duration: Duration,
    /// A lock timeout or deadlock: another attempt may succeed.
    pub retryable: bool,
}

/// What a ledger write checks in its transaction: the lease row still names `owner`
/// (and it is extended by `ttl` from then). A holder that lost the lease while stalled
/// can never record, or commit, a migration that its successor runs too.
#[derive(Debug, Clone)]
pub struct Fence {
    pub owner: String,
    pub ttl: Duration,
}

/// A name for this process that no other process shares: host, pid and a random part
/// (pids are reused, also across containers with one hostname).
pub(crate) fn unique_id(hostname: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{hostname}:{}:{:08x}", std::process::id(), h.finish() as u32)
}

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

/// The common boot's reads in one round trip (see `Backend::boot`).
#[derive(Debug, Clone)]
pub struct Booted {
    pub found: Found,
    /// What counts as applied, ordered by version; `None` when zdm's objects are not all
    /// there (an older zdm's database): the bootstrap creates them, then the ledger is read.
    pub applied: Option<Vec<zdm_core::plan::Applied>>,
    /// When the registration went with it: the read-only drops this build predates.
    pub predated: Option<Vec<i64>>,
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

/// What one process publishes about itself in the instance registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: String,
    pub app_name: String,
    pub app_version: String,
    pub hostname: String,
    pub pid: i32,
    pub embedded: Vec<i64>,
    /// `Mapped::encode` of every column its structs map.
    pub mapped: Vec<String>,
    /// `table.column` of every column its structs ignore.
    pub ignored: Vec<String>,
}

/// An after_deploy migration seen waiting: since when, and for how long (by the
/// database's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPending {
    pub version: i64,
    pub since: DateTime<Utc>,
    pub age: Duration,
}

/// One backfill as its progress row holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BackfillRow {
    pub name: String,
    pub table: String,
    pub scheduled_by: i64,
    pub rows_done: i64,
    pub batches: i64,
    pub batch_size: i64,
    pub last_key: Option<i64>,
    /// The table's largest key when the row was read (for progress bars).
    pub max_key: Option<i64>,
    /// The longest batch so far.
    #[cfg_attr(feature = "serde", serde(rename = "max_batch_ms", serialize_with = "zdm_core::time::serde::millis"))]
    pub max_batch: Duration,
    pub finished: bool,
    /// When the first batch ran (`None`: not started).
    pub started_at: Option<DateTime<Utc>>,
    /// When the last batch committed.
    pub updated_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl BackfillRow {
    /// The backfill as the gate weighs it.
    pub(crate) fn pending(&self) -> zdm_core::gate::PendingBackfill {
        zdm_core::gate::PendingBackfill {
            name: self.name.clone(),
            table: self.table.clone(),
            scheduled_by: self.scheduled_by,
            rows_done: self.rows_done,
            finished: self.finished,
        }
    }
}

/// What one backfill batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// A batch committed.
    Batch {
        changed: i64,
        last_key: i64,
        /// From the batch statement's start to its commit: how long its row locks were held.
        held: Duration,
        /// How many keys the batch covered at most (its size).
        size: i64,
    },
    /// Nothing left: the backfill is marked finished.
    Done,
    /// Another process holds the progress row (it is running a batch).
    Busy,
    /// The batch failed and was rolled back; the message says why.
    Failed { message: String, retryable: bool },
}

/// Progress of one backfill, for `tracing` and `Migrator::on_backfill_progress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillProgress {
    pub name: String,
    pub table: String,
    pub rows_done: i64,
    pub batches: i64,
    pub batch_size: i64,
    pub last_key: Option<i64>,
    pub max_key: Option<i64>,
    pub last_batch: Duration,
    pub finished: bool,
}

/// The progress callback's type.
pub type ProgressFn = Arc<dyn Fn(&BackfillProgress) + Send + Sync>;

/// Bytes as lowercase hex, as the ledger's checksums are shown everywhere else.
#[cfg(feature = "serde")]
fn hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&zdm_core::checksum::to_hex(bytes))
}
