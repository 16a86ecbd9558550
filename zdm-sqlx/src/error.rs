//! The errors of zdm's executor. Each says what happened and what to do next.

use std::time::Duration;

/// Everything `run_pre`, `run_post`, `run_all` and `status` can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query of zdm's own (ledger, lease) failed.
    #[error("database error while {doing}: {source}")]
    Database {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// A migration failed; its own changes were rolled back (unless it is `no_transaction`,
    /// see `statement`), and the failure is recorded in the ledger history.
    #[error("migration {version} ({source_path}{}) failed: {message}{}", line.map(|l| format!(":{l}")).unwrap_or_default(), hint(*no_transaction))]
    MigrationFailed {
        version: i64,
        source_path: &'static str,
        /// Line in the file of the failing statement, when the server told us.
        line: Option<usize>,
        message: String,
        no_transaction: bool,
    },

    /// The embedded migrations contradict the database (a changed checksum).
    #[error("the embedded migrations do not match the database:\n{}", .0.join("\n"))]
    Mismatch(Vec<String>),

    /// Another process held the migration lease for longer than the configured wait.
    #[error(
        "waited {waited:?} for the migration lease held by `{holder}` without getting it; \
         if that process is gone its lease expires by itself, otherwise raise `Migrator::lock_wait`"
    )]
    LockTimeout { holder: String, waited: Duration },

    /// The lease expired while this process was migrating (it was stalled longer than the
    /// lease's time to live); it stopped before the next migration.
    #[error(
        "lost the migration lease to `{holder}` while migrating; nothing more was applied by this process, run again"
    )]
    LeaseLost { holder: String },

    /// A `no_transaction` migration needs a session of its own, but the pool goes through
    /// a transaction-mode pooler and no session URL was given.
    #[error(
        "migration {version} ({source_path}) is no_transaction and needs a session of its own (CREATE INDEX \
         CONCURRENTLY, session settings), but the pool's connections go through a transaction-mode pooler \
         (PgBouncer): nothing of it ran. Give zdm a direct or session-mode connection with \
         `Migrator::session_url(\"postgres://…direct…\")` or the ZDM_SESSION_URL environment variable"
    )]
    NeedsSession { version: i64, source_path: &'static str },

    /// An after_deploy migration that removes a column or table was held back at the last
    /// moment (a build that still needs it registered while it ran): nothing of it was
    /// applied. `run_post` reports this as a notice and tries again at its next run.
    #[error(
        "after_deploy migration {version} was held back at the last moment: {blockers}; nothing of it was applied"
    )]
    GateClosed { version: i64, blockers: String },

    /// A `Migrator` setting that zdm cannot use (says which and what to use instead).
    #[error("invalid zdm setting: {0}")]
    Config(String),

    /// `zdm::run_pre(&pool)` found no `zdm::migrations!` set, or several.
    #[error("{0}")]
    DefaultSet(String),

    /// `run_post` would drop a column or table that a model struct of this build maps.
    #[error(
        "refusing to {drop}: struct `{by}` of this build still maps it; remove the field and list the column in \
         `#[zdm::ignored_columns(..)]` (or stop reading the table), then deploy that build before run_post"
    )]
    DropStillMapped { drop: String, by: String },

    /// A deferred drop failed (after its lock-timeout retries); nothing of it was applied.
    #[error("deferred {drop} failed: {message}; it stays pending and run_post tries again")]
    DropFailed { drop: String, message: String },

    /// This build maps a column or table that an earlier run_post already dropped (an old
    /// build redeployed after the contract step): it would fail on its first query.
    #[error(
        "this build's struct `{by}` maps what run_post already removed ({drop}, scheduled by migration {version}); \
         deploy a build that no longer maps it"
    )]
    MapsDropped { drop: String, by: String, version: i64 },

    /// A backfill batch failed (and was rolled back); the backfill resumes from its last
    /// committed batch on the next run.
    #[error(
        "backfill `{name}` failed: {message}; fix the cause and run again: it resumes after its last committed batch"
    )]
    BackfillFailed { name: String, message: String },

    /// The old-query check could not read its input or set up its scratch database.
    #[error("old-query check: {0}")]
    OldQueries(String),

    /// A Rust-coded migration written for another database than the pool's.
    #[error("{source_path}: Rust migration {version} takes a {expected} connection but runs on a {actual} pool")]
    WrongBackend { version: i64, source_path: &'static str, expected: &'static str, actual: &'static str },

    /// The migration set was linted for another database than the pool's: its statements
    /// were never judged (or even parsed) as this database would run them.
    #[error(
        "these migrations were embedded with `dialect = \"{set}\"` ({set_name}) but run on a {pool_name} pool: \
         embed a folder written for {pool_name} with `zdm::migrations!(\"..\", dialect = \"{pool}\")`, \
         or pass a {set_name} pool"
    )]
    WrongDialect { set: &'static str, set_name: &'static str, pool: &'static str, pool_name: &'static str },

    /// A capability this database does not have (deferred drops and backfills need
    /// PostgreSQL's triggers and functions).
    #[error("{what} are not supported on {dialect}; they need PostgreSQL")]
    Unsupported { what: &'static str, dialect: &'static str },

    /// The lock trace could not run a migration in its scratch database.
    #[error("lock trace: {0}")]
    Trace(String),
}

/// Refuses a build whose structs map what a migration or a deferred drop already removed
/// (and nothing re-added since): an old build redeployed after the contract step would
/// fail on its first query, so it must not start.
pub(crate) fn refuse_boot(
    drops: &[zdm_core::gate::DropRecord],
    models: &[zdm_core::model::ModelInfo],
) -> Result<(), Error> {
    match zdm_core::gate::boot_conflict(drops, models) {
        Some(c) => Err(Error::MapsDropped {
            drop: c.drop.to_string(),
            by: c.model.name.to_string(),
            version: c.drop.scheduled_by,
        }),
        None => Ok(()),
    }
}

fn hint(no_transaction: bool) -> &'static str {
    if no_transaction {
        "\n(no_transaction migration: statements before the failing one stay applied; make them idempotent, e.g. IF NOT EXISTS, and run again)"
    } else {
        "\n(its changes were rolled back; fix the migration or the data and run again)"
    }
}

pub(crate) trait Doing<T> {
    /// Labels a sqlx error with what zdm was doing.
    fn doing(self, doing: &'static str) -> Result<T, Error>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, doing: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Database { doing, source })
    }
}
