//! [`Settings`]: how a migration set runs (names, timeouts, the registry's clock, the
//! backfills' pace). `Migrator`'s builder methods fill it; every worker reads the part it
//! needs from it and nothing else, so a worker can be called (and tested) without a
//! migration set.

use std::time::Duration;

use zdm_core::retry::ExecPolicy;

use crate::error::Error;
use crate::names::Names;
use crate::records::ProgressFn;

/// Everything configurable about a run, with zdm's defaults.
#[derive(Clone)]
pub(crate) struct Settings {
    /// Written to the ledger and the registry (default: the embedding crate's name and
    /// version).
    pub(crate) app_name: String,
    pub(crate) app_version: String,
    /// zdm's tables live in this schema (PostgreSQL); default the search path.
    pub(crate) schema: Option<String>,
    /// The prefix of zdm's table, function and trigger names (default `zdm_`).
    pub(crate) table_prefix: String,
    /// How long a process waits for another one's migration run (default 5 minutes).
    pub(crate) lock_wait: Duration,
    /// How long the lease lives without renewal (default 30 s).
    pub(crate) lease_ttl: Duration,
    /// The PostgreSQL major version the compile-time lint assumed.
    pub(crate) lint_postgres: Option<u32>,
    /// The database the compile-time lint judged the set for; a pool of another database
    /// is refused. `None` (a migrator built by hand) runs anywhere.
    pub(crate) dialect: Option<zdm_core::Dialect>,
    /// Lock and statement timeouts, and retries.
    pub(crate) policy: ExecPolicy,
    /// How often a registered instance beats (default 10 s).
    pub(crate) heartbeat: Duration,
    /// How old a heartbeat may be before its instance counts as gone (default 60 s).
    pub(crate) instance_ttl: Duration,
    /// How long post-deploy work may wait before warnings (default 24 h).
    pub(crate) lag_warning: Duration,
    /// Whether runs register this process (tools that migrate scratch databases do not).
    pub(crate) registers: bool,
    /// The time one backfill batch should hold its row locks (default 25 ms).
    pub(crate) backfill_target: Duration,
    /// A pause between backfill batches (default none).
    pub(crate) backfill_pause: Duration,
    /// Whether `run_pre` starts pending backfills in a background task.
    pub(crate) backfill_in_background: bool,
    /// Called after every backfill batch.
    pub(crate) on_backfill: Option<ProgressFn>,
    /// A direct (or session-mode) URL for what needs a session of its own.
    pub(crate) session_url: Option<String>,
    /// sqlx's ledger table, when not `_sqlx_migrations` (`sqlx.toml`'s `table-name`).
    pub(crate) sqlx_table: Option<String>,
}

impl Settings {
    /// zdm's defaults for an app.
    pub(crate) fn new(app_name: &str, app_version: &str) -> Settings {
        Settings {
            app_name: app_name.to_string(),
            app_version: app_version.to_string(),
            schema: None,
            table_prefix: "zdm_".to_string(),
            lock_wait: Duration::from_secs(300),
            lease_ttl: Duration::from_secs(30),
            lint_postgres: None,
            dialect: None,
            policy: ExecPolicy::default(),
            heartbeat: Duration::from_secs(10),
            instance_ttl: Duration::from_secs(60),
            lag_warning: Duration::from_secs(24 * 3600),
            registers: true,
            backfill_target: zdm_core::backfill::TARGET_BATCH,
            backfill_pause: Duration::ZERO,
            backfill_in_background: true,
            on_backfill: None,
            session_url: None,
            sqlx_table: None,
        }
    }

    /// The names of zdm's objects under these settings.
    pub(crate) fn names(&self) -> Names {
        let names = Names::new(self.schema.as_deref(), &self.table_prefix);
        match &self.sqlx_table {
            Some(table) => names.with_sqlx_ledger(table),
            None => names,
        }
    }

    /// The session URL in force: the setting, else `ZDM_SESSION_URL`.
    pub(crate) fn session_url_in_force(&self) -> Option<String> {
        self.session_url.clone().or_else(|| std::env::var("ZDM_SESSION_URL").ok().filter(|u| !u.is_empty()))
    }

    /// The names are usable: zdm builds table, function and trigger names from the
    /// prefix and splices both into SQL templates (always quoted).
    pub(crate) fn check(&self) -> Result<(), Error> {
        let p = &self.table_prefix;
        let valid = p.len() <= 32
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(Error::Config(format!(
                "table_prefix {p:?} is not usable: zdm builds table, function and trigger names from it, so use \
                 up to 32 ASCII letters, digits and underscores, not starting with a digit (e.g. \"zdm_\")"
            )));
        }
        if self.sqlx_table.as_deref().is_some_and(|t| t.is_empty() || t.contains(['\0', '{', '}'])) {
            return Err(Error::Config(
                "sqlx_table (sqlx.toml's table-name) must be a non-empty name without NUL characters or braces".into(),
            ));
        }
        if self.schema.as_deref().is_some_and(|s| s.is_empty() || s.contains(['\0', '{', '}'])) {
            return Err(Error::Config(
                "schema must be a non-empty name without NUL characters or braces (zdm's SQL templates use them)"
                    .into(),
            ));
        }
        Ok(())
    }
}
