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
//! This crate only re-exports: the logic lives in `zdm-core` (pure, no I/O), the
//! executor in `zdm-sqlx` and the macros in `zdm-macros`.

/// The sqlx zdm was built with. Use it (or the same version) so pools and connections
/// you pass to zdm are the same types.
pub use sqlx;

pub use zdm_core::Phase;
pub use zdm_macros::{after_deploy, migration, migrations, migrator};
pub use zdm_sqlx::ledger::LedgerRow;
pub use zdm_sqlx::migrator::AppliedStep;
pub use zdm_sqlx::status::{State, StatusRow};
pub use zdm_sqlx::{
    run_all, run_post, run_pre, status, Error, MigratePool, Migrator, Report, RustMigration, Status,
};

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
    pub use zdm_core::{Migration, Phase};
    pub use zdm_sqlx::{
        BoxError, BoxFuture, DefaultSet, EmbeddedSet, RegisteredRustMigration, RustRun,
    };
}
