//! A test database migrated by zdm, for `#[sqlx::test]` and any other harness that hands a
//! test a fresh pool: [`migrate`] (the set of `zdm::migrations!`) and [`migrate_with`] (a
//! `zdm::migrator!` value).
//!
//! Why a call inside the test and not `#[sqlx::test(migrator = "..")]`: sqlx 0.9 takes a
//! `&'static sqlx::migrate::Migrator` there and runs it itself (`run_direct` on a raw
//! connection, before the test body, recording in `_sqlx_migrations`); no code of zdm runs.
//! A bridge of that type would apply the files without zdm: no ledger, no `zdm_*` SQL
//! functions (`zdm_drop_column_later`, `zdm_backfill` fail outside a zdm run), no
//! Rust-coded migrations, and zdm would later count those rows as applied by sqlx. So the
//! test turns sqlx's migrations off and calls zdm first (the facade's `zdm::testing` docs
//! compile this example):
//!
//! ```ignore
//! zdm::migrations!("migrations");
//!
//! // `migrations = false`: otherwise `#[sqlx::test]` finds ./migrations and runs the files
//! // through sqlx's own migrator before the test.
//! #[sqlx::test(migrations = false)]
//! async fn reads_posts(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//!     zdm::testing::migrate(&pool).await?;
//!     let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM posts").fetch_all(&pool).await?;
//!     assert!(titles.is_empty());
//!     Ok(())
//! }
//! ```
//!
//! `#[sqlx::test]` needs `sqlx` as a dev-dependency of its own with the `macros` and
//! `migrate` features (cargo unifies it with `zdm::sqlx`), and reads `DATABASE_URL` (or a
//! `.env` file) for the server on which it creates one database per test.

use crate::backend::MigratePool;
use crate::default_set::default_migrator;
use crate::error::Error;
use crate::migrator::Migrator;
use crate::report::Report;

/// Applies every migration of the default set (the one `zdm::migrations!` registered) to
/// a test database: see [`migrate_with`].
pub async fn migrate<P: MigratePool>(pool: &P) -> Result<Report, Error> {
    migrate_with(&default_migrator()?, pool).await
}

/// Applies every migration of `migrator` to a fresh test database, pre-deploy and
/// after_deploy in version order (as `run_all`, with zdm's ledger, SQL functions and
/// Rust-coded migrations), without registering the test process: no heartbeat keeps a
/// connection to the database when the harness drops it (`#[sqlx::test]` drops it without
/// `FORCE`: with a heartbeat still connected the drop waits 5 s, fails, and leaves the
/// database behind). The report's `instance` is therefore `None`.
pub async fn migrate_with<P: MigratePool>(migrator: &Migrator, pool: &P) -> Result<Report, Error> {
    migrator.clone().without_registration().run_all(pool).await
}
