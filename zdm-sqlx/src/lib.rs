//! zdm-sqlx: zdm's executor on sqlx.
//!
//! It owns everything that talks to a database: the ledger ([`ledger`]), the migration
//! lease ([`lease`]), the runner of the pre- and post-deploy phases ([`runner`]) and the
//! status report ([`status`]). Dialect differences live behind one small trait in
//! [`backend`], implemented for PostgreSQL and SQLite pools. Decisions about *what* to run
//! are made by `zdm-core`; this crate only carries them out.

pub mod backend;
pub mod backfill;
mod default_set;
pub mod deferred;
pub mod error;
mod fault;
pub mod healing;
mod lease;
pub mod ledger;
pub mod migration;
pub mod migrator;
mod recipe_exec;
pub mod recipes;
pub mod registry;
mod runner;
pub mod status;
pub mod testing;

pub use backend::MigratePool;
pub use backfill::{backfill, BackfillProgress, BackfillRow};
pub use default_set::{default_migrator, DefaultSet, EmbeddedSet, RegisteredRustMigration};
pub use deferred::{drop_column_later, drop_column_later_with_delay, drop_table_later, drop_table_later_with_delay};
pub use error::Error;
pub use migration::{BoxError, BoxFuture, RustMigration, RustRun};
pub use migrator::{Migrator, Report};
pub use registry::{Instance, RegisteredModel};
pub use status::Status;

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
