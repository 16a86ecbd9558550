//! [`Migrator`]: an embedded migration set plus its settings, with the async methods an
//! app calls (`run_pre`, `run_post`, `run_all`, `status`).

use std::fmt;
use std::time::Duration;

use zdm_core::plan::Target;
pub use zdm_core::retry::ExecPolicy;
use zdm_core::Phase;

use crate::backend::MigratePool;
use crate::error::Error;
use crate::ledger::Names;
use crate::migration::{Meta, Step};
use crate::status::Status;
use crate::{runner, status};

/// A set of migrations, built at compile time by `zdm::migrator!("dir")` (or the default
/// set of `zdm::migrations!`), and how to run it.
///
/// ```text
/// let m: zdm::Migrator = zdm::migrator!("migrations");
/// m.run_pre(&pool).await?;   // safe for the build still serving
/// m.run_post(&pool).await?;  // after_deploy work, once the new build is out
/// println!("{}", m.status(&pool).await?);
/// ```
#[derive(Clone)]
pub struct Migrator {
    pub(crate) steps: Vec<Step>,
    pub(crate) app_name: String,
    pub(crate) app_version: String,
    pub(crate) schema: Option<String>,
    pub(crate) table_prefix: String,
    pub(crate) lock_wait: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) lint_postgres: Option<u32>,
    pub(crate) policy: ExecPolicy,
    pub(crate) heartbeat: Duration,
    pub(crate) instance_ttl: Duration,
    pub(crate) lag_warning: Duration,
    pub(crate) registers: bool,
    pub(crate) backfill_target: Duration,
    pub(crate) backfill_pause: Duration,
    pub(crate) backfill_in_background: bool,
    pub(crate) on_backfill: Option<crate::backfill::ProgressFn>,
    pub(crate) session_url: Option<String>,
}

impl Migrator {
    /// A migrator over `steps` (any order; sorted here). Normally built by the macros.
    pub fn new(steps: impl IntoIterator<Item = Step>, app_name: &str, app_version: &str) -> Migrator {
        let mut steps: Vec<Step> = steps.into_iter().collect();
        steps.sort_by_key(|s| s.meta.version);
        Migrator {
            steps,
            app_name: app_name.to_string(),
            app_version: app_version.to_string(),
            schema: None,
            table_prefix: "zdm_".to_string(),
            lock_wait: Duration::from_secs(300),
            lease_ttl: Duration::from_secs(30),
            lint_postgres: None,
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
        }
    }

    /// Puts zdm's tables in `schema` (PostgreSQL; created when missing). Default: the
    /// connection's search path.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The prefix of zdm's table names (default `zdm_`: `zdm_migrations`,
    /// `zdm_migration_attempts`, `zdm_lease`).
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// A connection URL that reaches the database directly (or through a pooler in
    /// *session* mode), for what needs a session of its own: `no_transaction` migrations
    /// (`CREATE INDEX CONCURRENTLY`, session settings), the lease renewal and the
    /// heartbeat. Needed when the pool goes through PgBouncer in transaction mode; zdm
    /// detects that and names this setting. Default: the `ZDM_SESSION_URL` environment
    /// variable, else the pool's own connect options.
    pub fn session_url(mut self, url: impl Into<String>) -> Self {
        self.session_url = Some(url.into());
        self
    }

    /// The session URL in force: the setting, else `ZDM_SESSION_URL`.
    pub(crate) fn session_url_in_force(&self) -> Option<String> {
        self.session_url.clone().or_else(|| std::env::var("ZDM_SESSION_URL").ok().filter(|u| !u.is_empty()))
    }

    /// How long a process waits for another one's migration run before giving up
    /// (default 5 minutes).
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// How long the migration lease lives without renewal (default 30 s). A crashed
    /// migrator blocks others at most this long; the holder renews it every third of it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The app name and version written to the ledger (default: the embedding crate's
    /// `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`).
    pub fn app(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.app_name = name.into();
        self.app_version = version.into();
        self
    }

    /// The longest lock wait of a migration statement (default 500 ms): the longest live
    /// queries can queue behind it. Attempts start at a fifth of it and grow; a timed-out
    /// attempt is rolled back and retried after a pause. See [`ExecPolicy`] for the rest.
    pub fn lock_timeout(mut self, max: Duration) -> Self {
        self.policy.max_lock_timeout = max.max(Duration::from_millis(1));
        self
    }

    /// How many times a migration that times out waiting for a lock is tried (default 30),
    /// with pauses doubling from `first_pause` (default 200 ms) up to 10 s.
    pub fn lock_retries(mut self, attempts: u32, first_pause: Duration) -> Self {
        self.policy.attempts = attempts.max(1);
        self.policy.first_pause = first_pause;
        self
    }

    /// The statement timeout of ordinary statements (default 60 s; `-- zdm:statement_timeout`
    /// overrides it per migration). `CONCURRENTLY` and `VALIDATE` run without one.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.policy.statement_timeout = timeout;
        self
    }

    /// All timeout and retry settings at once.
    pub fn exec_policy(mut self, policy: ExecPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The PostgreSQL major version the compile-time lint assumed; a run against an older
    /// server warns that the lint's judgements may not hold there.
    pub fn lint_postgres(mut self, major: u32) -> Self {
        self.lint_postgres = Some(major);
        self
    }

    /// How often a registered instance refreshes its heartbeat (default 10 s); also how
    /// often [`Migrator::run_post_when_safe`] checks the gate.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(50));
        self
    }

    /// How old a heartbeat may be before its instance counts as gone (default 60 s). A
    /// crashed process holds back post-deploy work at most this long.
    pub fn instance_ttl(mut self, ttl: Duration) -> Self {
        self.instance_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// How long post-deploy work may wait before `status` and every run warn about it
    /// (default 24 h): work run months late meets data written in between.
    pub fn lag_warning(mut self, age: Duration) -> Self {
        self.lag_warning = age;
        self
    }

    /// The time one backfill batch should hold its row locks (default 30 ms, which kept
    /// every batch under 50 ms in `bench_backfill`): batch sizes follow it.
    pub fn backfill_target(mut self, target: Duration) -> Self {
        self.backfill_target = target.max(Duration::from_millis(1));
        self
    }

    /// A pause between backfill batches (default none), to leave the database room.
    pub fn backfill_pause(mut self, pause: Duration) -> Self {
        self.backfill_pause = pause;
        self
    }

    /// Whether `run_pre` starts pending backfills in a background task (default) or leaves
    /// them to [`Migrator::run_backfills`] (a deploy step, a worker).
    pub fn backfill_in_background(mut self, yes: bool) -> Self {
        self.backfill_in_background = yes;
        self
    }

    /// Called after every backfill batch and when a backfill finishes (progress bars).
    pub fn on_backfill_progress(mut self, f: impl Fn(&crate::BackfillProgress) + Send + Sync + 'static) -> Self {
        self.on_backfill = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs every unfinished backfill to its end in this task; returns their final rows.
    pub async fn run_backfills<P: MigratePool>(&self, pool: &P) -> Result<Vec<crate::BackfillRow>, Error> {
        let names = self.names();
        pool.bootstrap(&names).await?;
        crate::backfill::run_all(self, pool, &names).await
    }

    /// Runs without registering this process in the instance registry (tools and checks
    /// that migrate a scratch database; an app should register).
    pub fn without_registration(mut self) -> Self {
        self.registers = false;
        self
    }

    /// Keeps only the migrations up to `version`: the set an older build embeds. For tests
    /// and demos of rolling deploys.
    pub fn up_to(mut self, version: i64) -> Self {
        self.steps.retain(|s| s.meta.version <= version);
        self
    }

    /// The embedded migrations, in version order.
    pub fn migrations(&self) -> impl Iterator<Item = &Meta> {
        self.steps.iter().map(|s| &s.meta)
    }

    /// Applies pending pre-deploy migrations in version order; never an after_deploy one.
    pub async fn run_pre<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run(self, pool, Target::Pre).await
    }

    /// Applies pending after_deploy migrations, each only once every pre-deploy migration
    /// with a lower version has run.
    pub async fn run_post<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run(self, pool, Target::Post).await
    }

    /// Applies every pending migration in version order, like `sqlx migrate run`
    /// (development and tests).
    pub async fn run_all<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run(self, pool, Target::All).await
    }

    /// Registers this process in the instance registry without migrating (workers and
    /// jobs that use the database but do not run migrations), and starts its heartbeat.
    pub async fn register<P: MigratePool>(&self, pool: &P) -> Result<crate::Instance, Error> {
        runner::register_only(self, pool).await
    }

    /// Keeps checking the gate and runs `run_post` as soon as post-deploy work is due,
    /// until none is left: a rolling deploy needs no separate contract step. Spawn it
    /// after `run_pre` (`tokio::spawn(async move { m.run_post_when_safe(&pool).await })`).
    pub async fn run_post_when_safe<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run_post_when_safe(self, pool).await
    }

    /// Applied, pending pre-deploy and pending post-deploy migrations, with ledger details.
    pub async fn status<P: MigratePool>(&self, pool: &P) -> Result<Status, Error> {
        status::load(self, pool).await
    }

    pub(crate) fn names(&self) -> Names {
        Names::new(self.schema.as_deref(), &self.table_prefix)
    }

    pub(crate) fn metas(&self) -> Vec<Meta> {
        self.steps.iter().map(|s| s.meta).collect()
    }

    /// The settings make sense: a valid table prefix, one migration per version.
    pub(crate) fn check_config(&self) -> Result<(), Error> {
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
        if self.schema.as_deref().is_some_and(|s| s.is_empty() || s.contains(['\0', '{', '}'])) {
            return Err(Error::Config(
                "schema must be a non-empty name without NUL characters or braces (zdm's SQL templates use them)"
                    .into(),
            ));
        }
        self.check_unique()
    }

    /// Two migrations with one version (a Rust one colliding with a file).
    fn check_unique(&self) -> Result<(), Error> {
        let dups: Vec<String> = self
            .steps
            .windows(2)
            .filter(|w| w[0].meta.version == w[1].meta.version)
            .map(|w| {
                format!("version {} is used by both {} and {}", w[0].meta.version, w[0].meta.source, w[1].meta.source)
            })
            .collect();
        if dups.is_empty() {
            Ok(())
        } else {
            Err(Error::Mismatch(dups))
        }
    }
}

impl fmt::Debug for Migrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migrator")
            .field("migrations", &self.steps.iter().map(|s| s.meta.version).collect::<Vec<_>>())
            .field("app_name", &self.app_name)
            .field("app_version", &self.app_version)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// One migration a run applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedStep {
    pub version: i64,
    pub description: &'static str,
    pub phase: Phase,
    pub duration_ms: i64,
}

/// What a run did: the migrations it applied and what it noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub applied: Vec<AppliedStep>,
    /// Deferred drops carried out (or made read-only while their delay runs).
    pub dropped: Vec<String>,
    /// This process's registration (run_pre and run_all register; run_post does not).
    /// Dropping it leaves the heartbeat running; `stop()` it on shutdown.
    pub instance: Option<crate::Instance>,
    /// Things an operator should know (newer ledger rows, late-merged migrations,
    /// after_deploy work that waits); also logged through `tracing`.
    pub notices: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() && self.dropped.is_empty() {
            writeln!(f, "nothing to apply")?;
        }
        for a in &self.applied {
            writeln!(f, "applied {} {} ({}, {} ms)", a.version, a.description, a.phase, a.duration_ms)?;
        }
        for d in &self.dropped {
            writeln!(f, "{d}")?;
        }
        for n in &self.notices {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}
