//! The process-wide default migration set that `zdm::run_pre(&pool)` uses.
//!
//! `zdm::migrations!` emits a named static [`EmbeddedSet`] and registers it with
//! `inventory`; `#[zdm::migration]` registers Rust-coded migrations the same way. Exactly
//! one set must be registered: none or several is an error that names the fix.

use crate::migration::{Body, RustMigration, Step};
use crate::{Error, Migrator};

/// What `migrations!` / `migrator!` embed: the SQL files and who embedded them.
pub struct EmbeddedSet {
    pub sql: &'static [(zdm_core::Migration, &'static str)],
    /// The database the set was linted for (`dialect = "sqlite"`; PostgreSQL by default):
    /// the set runs only on a pool of that database.
    pub dialect: zdm_core::Dialect,
    /// The embedding crate's `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`, for the ledger.
    pub app_name: &'static str,
    pub app_version: &'static str,
    /// The PostgreSQL major version the compile-time lint assumed.
    pub lint_postgres: u32,
    /// sqlx's ledger table when `sqlx.toml` names another than `_sqlx_migrations`.
    pub sqlx_table: Option<&'static str>,
    /// `zdm.toml`'s `lock_timeout` and `statement_timeout`, in milliseconds.
    pub lock_timeout_ms: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
}

impl EmbeddedSet {
    /// No migrations: what a `migrator!` with compile errors stands for.
    pub const EMPTY: EmbeddedSet = EmbeddedSet {
        sql: &[],
        dialect: zdm_core::Dialect::Postgres,
        app_name: "",
        app_version: "",
        lint_postgres: 15,
        sqlx_table: None,
        lock_timeout_ms: None,
        statement_timeout_ms: None,
    };

    /// A migrator over the SQL files and the given Rust-coded migrations.
    pub fn migrator(&'static self, rust: impl IntoIterator<Item = RustMigration>) -> Migrator {
        let steps = self
            .sql
            .iter()
            .map(|&(meta, sql)| Step { meta, body: Body::Sql(sql) })
            .chain(rust.into_iter().map(|r| Step { meta: r.meta, body: Body::Rust(r.run) }));
        let mut m = Migrator::new(steps, self.app_name, self.app_version)
            .lint_postgres(self.lint_postgres)
            .dialect(self.dialect);
        if let Some(table) = self.sqlx_table {
            m = m.sqlx_table(table);
        }
        if let Some(ms) = self.lock_timeout_ms {
            m = m.lock_timeout(std::time::Duration::from_millis(ms));
        }
        if let Some(ms) = self.statement_timeout_ms {
            m = m.statement_timeout(std::time::Duration::from_millis(ms));
        }
        m
    }
}

/// The registration `migrations!` submits.
pub struct DefaultSet(pub &'static EmbeddedSet);
inventory::collect!(DefaultSet);

/// The registration `#[zdm::migration]` submits; such migrations join the default set.
pub struct RegisteredRustMigration(pub fn() -> RustMigration);
inventory::collect!(RegisteredRustMigration);

/// The migrator of the one registered default set, with every registered Rust migration.
pub fn default_migrator() -> Result<Migrator, Error> {
    let sets: Vec<&DefaultSet> = inventory::iter::<DefaultSet>.into_iter().collect();
    match sets.as_slice() {
        [set] => Ok(set.0.migrator(inventory::iter::<RegisteredRustMigration>.into_iter().map(|r| (r.0)()))),
        [] => Err(Error::DefaultSet(
            "no migration set is registered: add `zdm::migrations!(\"migrations\");` at item level in your crate \
             (if it sits in a library crate, reference its `ZDM_MIGRATIONS` static from the binary so the linker keeps it)"
                .to_string(),
        )),
        several => Err(Error::DefaultSet(format!(
            "{} migration sets are registered by `zdm::migrations!` (apps: {}); keep one, or call `run_pre` on a \
             `zdm::migrator!(\"dir\")` value for each database",
            several.len(),
            several.iter().map(|s| s.0.app_name).collect::<Vec<_>>().join(", ")
        ))),
    }
}
