//! zdm-sqlx: zdm's executor on sqlx.
//!
//! It owns everything that talks to a database. Decisions about *what* to run (the plan,
//! the gate's verdicts, which step a deferred drop is ready for) are made by `zdm-core`;
//! this crate carries them out. Its modules import one way, top to bottom:
//!
//! | layer | modules |
//! |---|---|
//! | entry points | [`migrator`] (`Migrator`), this file's `run_pre` & co, `default_set` |
//! | phases | `runner` (plan, lease, apply, gate), [`mod@status`], [`plan`] (what a run would do, predicted), [`trace`] (and what it really locks, in a scratch database), [`report`], `job` (what they share) |
//! | workers | `lease`, [`registry`], `local` (this process as the gate sees it), `deferred` (due drop steps), `backfill` |
//! | the database | [`backend`]: the traits, and one folder per database ([`backend::postgres`], [`backend::sqlite`]) |
//! | plain types | `settings`, [`records`], [`names`], [`migration`], [`error`] |
//!
//! Beside them, the tools an app or a migration calls directly: [`drop_later`] and
//! [`recipes`] (inside Rust-coded migrations), [`statement_cache`] (pools that survive the
//! next build's migrations), [`old_queries`] (the deployed build's queries against the
//! next build's migrations).

pub mod backend;
mod backfill;
mod default_set;
mod deferred;
pub mod drop_later;
pub mod error;
mod fault;
mod job;
mod lease;
mod local;
pub mod migration;
pub mod migrator;
pub mod names;
pub mod old_queries;
pub mod plan;
mod recipe_exec;
pub mod recipes;
pub mod records;
pub mod registry;
pub mod report;
mod runner;
mod settings;
pub mod statement_cache;
pub mod status;
pub mod test_db;
pub mod trace;

pub use backend::MigratePool;
pub use default_set::{default_migrator, DefaultSet, EmbeddedSet, RegisteredRustMigration};
pub use drop_later::{drop_column_later, drop_column_later_with_delay, drop_table_later, drop_table_later_with_delay};
pub use error::Error;
pub use migration::{BoxError, BoxFuture, RustMigration, RustRun};
pub use migrator::Migrator;
pub use plan::Plan;
pub use records::{BackfillProgress, BackfillRow, LedgerRow};
pub use registry::{Instance, RegisteredModel};
pub use report::{AppliedStep, Report};
pub use status::Status;
pub use trace::{Trace, TraceOptions};

/// Runs the pending pre-deploy migrations of the set registered by `zdm::migrations!`.
///
/// Safe for the build that is still serving: after_deploy migrations are left for
/// [`run_post`]. Call it at boot (or as a deploy step for long migrations).
pub async fn run_pre<P: MigratePool>(pool: &P) -> Result<Report, Error> {
    default_migrator()?.run_pre(pool).await
}

/// Runs the pending after_deploy migrations of the default set, each only once every
/// pre-deploy migration below it has run.
pub async fn run_post<P: MigratePool>(pool: &P) -> Result<Report, Error> {
    default_migrator()?.run_post(pool).await
}

/// Runs every pending migration of the default set in version order (development, tests).
pub async fn run_all<P: MigratePool>(pool: &P) -> Result<Report, Error> {
    default_migrator()?.run_all(pool).await
}

/// Applied, pending pre-deploy and pending post-deploy migrations of the default set.
pub async fn status<P: MigratePool>(pool: &P) -> Result<Status, Error> {
    default_migrator()?.status(pool).await
}

/// Registers this process without migrating (workers, jobs): see [`Migrator::register`].
pub async fn register<P: MigratePool>(pool: &P) -> Result<Instance, Error> {
    default_migrator()?.register(pool).await
}

/// Runs `run_post` of the default set as soon as the gate opens, until no post-deploy work
/// is left: see [`Migrator::run_post_when_safe`].
pub async fn run_post_when_safe<P: MigratePool>(pool: &P) -> Result<Report, Error> {
    default_migrator()?.run_post_when_safe(pool).await
}

/// The newest migration version applied in the database by zdm, sqlx
/// (`_sqlx_migrations`) or diesel (`__diesel_schema_migrations`): the version to
/// baseline at when adopting zdm. Reads only; creates nothing. Looks for zdm's ledger
/// under the default settings (see [`Migrator::newest_applied`] for others).
pub async fn newest_applied<P: MigratePool>(pool: &P) -> Result<Option<i64>, Error> {
    pool.newest_applied(&settings::Settings::new("", "").names()).await
}
