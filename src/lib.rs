//! # zdm: zero-downtime schema migrations for sqlx
//!
//! zdm runs an app's migrations in two phases around a rolling deploy: **pre-deploy**
//! migrations (the default) must be safe for the build that is still serving and run at
//! boot with [`run_pre`]; **after_deploy** migrations (`-- zdm:after_deploy`) are the
//! destructive half and run with [`run_post`] once the new build is out. Every run is
//! recorded in a ledger richer than `_sqlx_migrations`, and only one process migrates at
//! a time (a lease row that works behind PgBouncer in transaction mode).
//!
//! ```no_run
//! zdm::migrations!("examples/quickstart/migrations"); // embeds the folder at compile time
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = zdm::sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
//!     zdm::run_pre(&pool).await?;  // expand: safe for the old code
//!     // ... serve traffic; once every instance runs this build:
//!     zdm::run_post(&pool).await?; // contract: after_deploy work
//!     Ok(())
//! }
//! ```
//!
//! Beyond the two phases: every process registers itself (app, version, the migrations
//! its build embeds, the columns its model structs map), so post-deploy work and deferred
//! drops ([`drop_column_later`], `SELECT zdm_drop_column_later(..)`) wait until no live
//! build still needs what they remove; [`ignored_columns`] / [`model`] structs carry
//! explicit column lists; [`healing`] pools survive the next build's migrations with
//! sqlx's statement cache on; [`recipes`] spread renames and type changes over both
//! phases with batched, resumable backfills; [`testing::check_old_queries`] checks the
//! deployed build's queries before a deploy; [`baseline`] adopts an existing history.
//!
//! This crate only re-exports: the logic lives in `zdm-core` (pure, no I/O), the
//! executor in `zdm-sqlx` and the macros in `zdm-macros`.

// The build-script example shows `fn main` on purpose: it is what `build.rs` contains.
#![allow(clippy::needless_doctest_main)]

/// The sqlx zdm was built with. Use it (or the same version) so pools and connections
/// you pass to zdm are the same types.
pub use sqlx;

/// The chrono zdm's times are in: ledger rows, status rows, instances and backfills carry
/// `chrono::DateTime<chrono::Utc>`.
pub use zdm_core::time::chrono;

pub use zdm_core::gate::{Blocker, DropStatus, PendingDrop};
pub use zdm_core::model::ModelInfo;
pub use zdm_core::{Dialect, Phase};
pub use zdm_macros::{after_deploy, ignored_columns, migration, migrations, migrator, model, Model};
pub use zdm_sqlx::migrator::ExecPolicy;
pub use zdm_sqlx::status::{State, StatusRow};
pub use zdm_sqlx::{
    drop_column_later, drop_column_later_with_delay, drop_table_later, drop_table_later_with_delay, register, run_all,
    run_post, run_post_when_safe, run_pre, status, Error, Instance, MigratePool, Migrator, Report, RustMigration,
    Status,
};
pub use zdm_sqlx::{AppliedStep, BackfillProgress, BackfillRow, LedgerRow, Plan, Trace, TraceOptions};

pub mod plan {
    //! What a run would do, before it runs: [`Migrator::plan`](crate::Migrator::plan)
    //! predicts per statement the lock, the table, a rewrite and a scan from the lint's
    //! model of the SQL.
    pub use zdm_core::lint::{Disagreement, LockMode, Observed, StatementPlan, TableLock};
    pub use zdm_sqlx::plan::*;
    pub use zdm_sqlx::trace::*;
}

/// Lints a migration set without a database, as `migrations!` does at compile time.
pub use zdm_core::lint::lint;

pub mod lint {
    //! The safety analyzer, for tools and tests: the same rules `migrations!` applies at
    //! compile time, over a folder or over migrations you assemble yourself.
    //!
    //! ```no_run
    //! let findings = zdm::lint::lint_dir("migrations", &zdm::lint::LintConfig::default()).unwrap();
    //! for f in findings.iter().filter(|f| f.blocks()) {
    //!     eprintln!("{f}");
    //! }
    //! ```

    pub use zdm_core::lint::model::{Stmt, StmtKind};
    pub use zdm_core::lint::parse::parse as parse_statements;
    /// Each rule's module, documented as clippy documents its lints (what it does, why it
    /// is bad, an example, what to use instead); the guide's rule pages are generated from
    /// these docs, and every finding links its page ([`Finding::url`]).
    pub use zdm_core::lint::rules;
    pub use zdm_core::lint::rules::{Kind, Rule, SqliteRule, RULES, SQLITE_RULES};
    pub use zdm_core::lint::{lint, Finding, LintConfig, LintInput, PgVersion, Severity};
    pub use zdm_core::source::{ParsedMigration, SourceError};

    /// Reads a migrations folder (sqlx's or diesel's layout) and lints it. Every problem
    /// with the files themselves is returned at once, as the macros report them.
    pub fn lint_dir(dir: impl AsRef<std::path::Path>, config: &LintConfig) -> Result<Vec<Finding>, Vec<SourceError>> {
        let set = read_set(dir.as_ref())?;
        let inputs: Vec<LintInput<'_>> = set.iter().map(LintInput::from_parsed).collect();
        let mut config = config.clone();
        if config.baseline.is_none() {
            config.baseline = crate::baseline::read(dir.as_ref())?;
        }
        Ok(lint(&inputs, &config))
    }

    /// Reads and checks a migrations folder (sqlx's or diesel's layout).
    pub fn read_set(dir: &std::path::Path) -> Result<Vec<ParsedMigration>, Vec<SourceError>> {
        let shown = dir.display().to_string();
        let files = zdm_core::source::read_dir(dir, &shown)
            .map_err(|message| vec![SourceError { path: shown.clone(), line: None, message }])?;
        zdm_core::source::parse_files(files)
    }
}

pub mod healing {
    //! Pools that survive the next build's migrations with sqlx's statement cache on: see
    //! [`connect`] and [`retry`].
    pub use zdm_sqlx::statement_cache::*;
}

pub mod baseline {
    //! Adopting zdm with a migration history: the baseline manifest `zdm-baseline.txt`
    //! lists (version, checksum) of the migrations already applied; `migrations!` embeds
    //! and runs them on a fresh database but does not lint them. A file edited since, or a
    //! version missing from the list (a branch merged late), is linted.
    //!
    //! ```no_run
    //! # async fn f(pool: zdm::sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    //! let newest = zdm::baseline::newest_applied(&pool).await?.expect("nothing applied yet");
    //! let path = zdm::baseline::write("migrations", newest)?;
    //! println!("baselined up to {newest} in {}", path.display());
    //! # Ok(()) }
    //! ```
    //! `cargo run --example baseline -- migrations $DATABASE_URL` does the same from a
    //! checkout of zdm.

    use std::path::{Path, PathBuf};

    use zdm_core::baseline::{Manifest, FILE_NAME};
    use zdm_core::source::SourceError;

    /// The newest version applied in the database, by zdm, sqlx (`_sqlx_migrations`) or
    /// diesel (`__diesel_schema_migrations`): the version to baseline at. Reads only;
    /// creates nothing. The backend knows the other tools' ledgers (the same names
    /// `run_pre` looks for, from one place); zdm's own ledger is looked for under the
    /// default settings (`Migrator::newest_applied` for a schema or table prefix).
    pub async fn newest_applied<P: crate::MigratePool>(pool: &P) -> Result<Option<i64>, crate::Error> {
        zdm_sqlx::newest_applied(pool).await
    }

    /// Writes `<dir>/zdm-baseline.txt` listing exactly the migrations of the folder whose
    /// versions are in `applied` (what the database ran: a file merged late, below the
    /// newest applied one, is not history and stays linted); returns the file's path.
    pub fn write_applied(dir: impl AsRef<Path>, applied: &[i64]) -> std::io::Result<PathBuf> {
        let dir = dir.as_ref();
        let set = crate::lint::read_set(dir).map_err(|errs| {
            std::io::Error::other(errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })?;
        let text = Manifest::render(
            set.iter().filter(|m| applied.contains(&m.version)).map(|m| (m.version, m.sql.as_bytes())),
        );
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Writes `<dir>/zdm-baseline.txt` listing every migration of the folder at or below
    /// `up_to` with its checksum; returns the file's path. Prefer [`write_applied`] with the
    /// versions the database reports: a file merged late below `up_to` is listed here too.
    /// An unreadable folder or bad migration file is an `io::Error` listing every problem.
    pub fn write(dir: impl AsRef<Path>, up_to: i64) -> std::io::Result<PathBuf> {
        let dir = dir.as_ref();
        let set = crate::lint::read_set(dir).map_err(|errs| {
            std::io::Error::other(errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })?;
        let text = Manifest::render(set.iter().filter(|m| m.version <= up_to).map(|m| (m.version, m.sql.as_bytes())));
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The folder's manifest, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Manifest>, Vec<SourceError>> {
        let path = dir.join(FILE_NAME);
        if !path.is_file() {
            return Ok(None);
        }
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| vec![SourceError { path: shown.clone(), line: None, message: e.to_string() }])?;
        Manifest::parse(&text)
            .map(Some)
            .map_err(|(line, message)| vec![SourceError { path: shown, line: Some(line), message }])
    }
}

pub mod recipes {
    //! Expand/contract recipes: rename a column or a table, change a column's type, add
    //! NOT NULL, a foreign key or a unique constraint without blocking traffic, and batched
    //! backfills ([`backfill`]). See `zdm_sqlx::recipes` for what each does.
    pub use zdm_sqlx::recipes::*;
}

pub mod testing {
    //! For a test suite or a deploy tool: a test database migrated by zdm, e.g. under
    //! `#[sqlx::test(migrations = false)]` ([`migrate`], [`migrate_with`]; see
    //! `zdm_sqlx::test_db` for why not `migrator = ".."`), and the deployed build's queries
    //! checked against the next build's pre-deploy migrations ([`check_old_queries`]).
    //!
    //! ```no_run
    //! zdm::migrations!("examples/quickstart/migrations");
    //!
    //! // `migrations = false`: otherwise `#[sqlx::test]` finds ./migrations and runs the
    //! // files through sqlx's own migrator before the test.
    //! #[sqlx::test(migrations = false)]
    //! async fn reads_posts(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    //!     zdm::testing::migrate(&pool).await?;
    //!     let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM posts").fetch_all(&pool).await?;
    //!     assert!(titles.is_empty());
    //!     Ok(())
    //! }
    //! # fn main() {}
    //! ```
    pub use zdm_sqlx::old_queries::*;
    pub use zdm_sqlx::test_db::*;
}

pub mod build {
    //! Build-script helpers.
    //!
    //! `migrations!` embeds each file with `include_str!`, so editing a file rebuilds the
    //! crate. Stable Rust cannot watch a folder, so adding or removing a file needs one
    //! line in `build.rs`, as with `sqlx::migrate!`:
    //!
    //! ```no_run
    //! // build.rs
    //! fn main() {
    //!     zdm::build::track("migrations");
    //! }
    //! ```
    //! (with `zdm` also under `[build-dependencies]`), or without the dependency:
    //! `println!("cargo:rerun-if-changed=migrations");`.

    /// Tells cargo to rebuild when a file is added to or removed from `dir` (relative to
    /// the crate's Cargo.toml).
    pub fn track(dir: &str) {
        println!("cargo:rerun-if-changed={dir}");
    }
}

#[doc(hidden)]
pub mod __private {
    //! What the macros expand to. Not a public API.
    pub use inventory;
    pub use zdm_core::{Dialect, Migration, Phase};
    pub use zdm_sqlx::{
        BoxError, BoxFuture, DefaultSet, EmbeddedSet, RegisteredModel, RegisteredRustMigration, RustRun,
    };
}
