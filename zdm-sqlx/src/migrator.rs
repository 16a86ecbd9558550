//! [`Migrator`]: an embedded migration set plus its `Settings`, with the async methods
//! an app calls (`run_pre`, `run_post`, `run_all`, `status`). It is the entry point only:
//! the builder methods fill the settings, the methods hand the set and the settings to
//! the runner.

use std::fmt;
use std::time::Duration;

use zdm_core::plan::Target;
pub use zdm_core::retry::ExecPolicy;
use zdm_core::Migration;

use crate::backend::MigratePool;
use crate::error::Error;
use crate::job::Job;
use crate::migration::Step;
use crate::plan::{self, Plan};
use crate::records::{BackfillProgress, BackfillRow};
use crate::registry::Instance;
use crate::report::Report;
use crate::runner;
use crate::settings::Settings;
use crate::status::{self, Status};
use crate::trace::{self, Trace, TraceOptions};

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
    steps: Vec<Step>,
    settings: Settings,
}

impl Migrator {
    /// A migrator over `steps` (any order; sorted here). Normally built by the macros.
    pub fn new(steps: impl IntoIterator<Item = Step>, app_name: &str, app_version: &str) -> Migrator {
        let mut steps: Vec<Step> = steps.into_iter().collect();
        steps.sort_by_key(|s| s.meta.version);
        Migrator { steps, settings: Settings::new(app_name, app_version) }
    }

    /// A migrator over migration files read at run time (`zdm::lint::read_set`), for tools
    /// such as the `zdm` command line that run a folder instead of an embedded set. The
    /// set's text lives for the rest of the process (it is leaked: meant for one-shot
    /// tools, not for building migrators in a loop).
    pub fn from_parsed(set: Vec<zdm_core::source::ParsedMigration>, app_name: &str, app_version: &str) -> Migrator {
        fn leak(s: String) -> &'static str {
            Box::leak(s.into_boxed_str())
        }
        let steps = set.into_iter().map(|m| {
            let reasons: Vec<&'static str> = m.directives.safety_assured.into_iter().map(|a| leak(a.reason)).collect();
            let meta = Migration {
                version: m.version,
                description: leak(m.description),
                source: leak(m.path),
                checksum: Box::leak(m.checksum.into_boxed_slice()),
                phase: if m.directives.after_deploy { zdm_core::Phase::PostDeploy } else { zdm_core::Phase::PreDeploy },
                no_transaction: m.directives.no_transaction,
                safety_assured: Box::leak(reasons.into_boxed_slice()),
                lock_timeout_ms: m.directives.lock_timeout_ms,
                statement_timeout_ms: m.directives.statement_timeout_ms,
            };
            Step { meta, body: crate::migration::Body::Sql(leak(m.sql)) }
        });
        Migrator::new(steps, app_name, app_version)
    }

    /// Puts zdm's tables in `schema` (PostgreSQL; created when missing). Default: the
    /// connection's search path.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.settings.schema = Some(schema.into());
        self
    }

    /// The prefix of zdm's table names (default `zdm_`: `zdm_migrations`,
    /// `zdm_migration_attempts`, `zdm_lease`).
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.table_prefix = prefix.into();
        self
    }

    /// sqlx's ledger table when the app moved it (`sqlx.toml`'s `[migrate] table-name`, e.g.
    /// `"app._sqlx_migrations"`): its successful rows count as applied. Default
    /// `_sqlx_migrations`; the macros read `sqlx.toml` and set it for you.
    pub fn sqlx_table(mut self, table: impl Into<String>) -> Self {
        self.settings.sqlx_table = Some(table.into());
        self
    }

    /// A connection URL that reaches the database directly (or through a pooler in
    /// *session* mode), for what needs a session of its own: `no_transaction` migrations
    /// (`CREATE INDEX CONCURRENTLY`, session settings), the lease renewal and the
    /// heartbeat. Needed when the pool goes through PgBouncer in transaction mode; zdm
    /// detects that and names this setting. Default: the `ZDM_SESSION_URL` environment
    /// variable, else the pool's own connect options.
    pub fn session_url(mut self, url: impl Into<String>) -> Self {
        self.settings.session_url = Some(url.into());
        self
    }

    /// How long a process waits for another one's migration run before giving up
    /// (default 5 minutes).
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.settings.lock_wait = wait;
        self
    }

    /// How long the migration lease lives without renewal (default 30 s). A crashed
    /// migrator blocks others at most this long; the holder renews it every third of it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.settings.lease_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The app name and version written to the ledger (default: the embedding crate's
    /// `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`).
    pub fn app(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.settings.app_name = name.into();
        self.settings.app_version = version.into();
        self
    }

    /// The longest lock wait of a migration statement (default 500 ms): the longest live
    /// queries can queue behind it. Attempts start at a fifth of it and grow; a timed-out
    /// attempt is rolled back and retried after a pause. See [`ExecPolicy`] for the rest.
    pub fn lock_timeout(mut self, max: Duration) -> Self {
        self.settings.policy.max_lock_timeout = max.max(Duration::from_millis(1));
        self
    }

    /// How many times a migration that times out waiting for a lock is tried (default 30),
    /// with pauses doubling from `first_pause` (default 200 ms) up to 10 s.
    pub fn lock_retries(mut self, attempts: u32, first_pause: Duration) -> Self {
        self.settings.policy.attempts = attempts.max(1);
        self.settings.policy.first_pause = first_pause;
        self
    }

    /// The statement timeout of ordinary statements (default 60 s; `-- zdm:statement_timeout`
    /// overrides it per migration). `CONCURRENTLY` and `VALIDATE` run without one.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.settings.policy.statement_timeout = timeout;
        self
    }

    /// All timeout and retry settings at once.
    pub fn exec_policy(mut self, policy: ExecPolicy) -> Self {
        self.settings.policy = policy;
        self
    }

    /// The database the set was written (and linted) for: `run_pre` and friends refuse a
    /// pool of another database. `migrations!` / `migrator!` set it from `dialect = ".."`.
    pub fn dialect(mut self, dialect: zdm_core::Dialect) -> Self {
        self.settings.dialect = Some(dialect);
        self
    }

    /// The PostgreSQL major version the compile-time lint assumed; a run against an older
    /// server warns that the lint's judgements may not hold there.
    pub fn lint_postgres(mut self, major: u32) -> Self {
        self.settings.lint_postgres = Some(major);
        self
    }

    /// How often a registered instance refreshes its heartbeat (default 10 s); also how
    /// often [`Migrator::run_post_when_safe`] checks the gate.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.settings.heartbeat = every.max(Duration::from_millis(50));
        self
    }

    /// How old a heartbeat may be before its instance counts as gone (default 60 s). A
    /// crashed process holds back post-deploy work at most this long.
    pub fn instance_ttl(mut self, ttl: Duration) -> Self {
        self.settings.instance_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// How long post-deploy work may wait before `status` and every run warn about it
    /// (default 24 h): work run months late meets data written in between.
    pub fn lag_warning(mut self, age: Duration) -> Self {
        self.settings.lag_warning = age;
        self
    }

    /// The time one backfill batch should hold its row locks (default 25 ms, which kept
    /// the batches under 50 ms in `bench_backfill`): batch sizes follow it.
    pub fn backfill_target(mut self, target: Duration) -> Self {
        self.settings.backfill_target = target.max(Duration::from_millis(1));
        self
    }

    /// A pause between backfill batches (default none), to leave the database room.
    pub fn backfill_pause(mut self, pause: Duration) -> Self {
        self.settings.backfill_pause = pause;
        self
    }

    /// Whether `run_pre` starts pending backfills in a background task (default) or leaves
    /// them to [`Migrator::run_backfills`] (a deploy step, a worker).
    pub fn backfill_in_background(mut self, yes: bool) -> Self {
        self.settings.backfill_in_background = yes;
        self
    }

    /// Called after every backfill batch and when a backfill finishes (progress bars).
    pub fn on_backfill_progress(mut self, f: impl Fn(&BackfillProgress) + Send + Sync + 'static) -> Self {
        self.settings.on_backfill = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs every unfinished backfill to its end in this task; returns their final rows.
    pub async fn run_backfills<P: MigratePool>(&self, pool: &P) -> Result<Vec<BackfillRow>, Error> {
        let names = self.settings.names();
        pool.bootstrap(&names).await?;
        crate::backfill::run_all(&self.settings, pool, &names).await
    }

    /// Runs without registering this process in the instance registry (tools and checks
    /// that migrate a scratch database; an app should register).
    pub fn without_registration(mut self) -> Self {
        self.settings.registers = false;
        self
    }

    /// Keeps only the migrations up to `version`: the set an older build embeds. For tests
    /// and demos of rolling deploys.
    pub fn up_to(mut self, version: i64) -> Self {
        self.steps.retain(|s| s.meta.version <= version);
        self
    }

    /// The embedded migrations, in version order.
    pub fn migrations(&self) -> impl Iterator<Item = &Migration> {
        self.steps.iter().map(|s| &s.meta)
    }

    /// Applies pending pre-deploy migrations in version order; never an after_deploy one.
    pub async fn run_pre<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run(self.job(), pool, Target::Pre).await
    }

    /// Applies pending after_deploy migrations, each only once every pre-deploy migration
    /// with a lower version has run.
    pub async fn run_post<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run(self.job(), pool, Target::Post).await
    }

    /// Applies every pending migration in version order, like `sqlx migrate run`
    /// (development and tests).
    pub async fn run_all<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run(self.job(), pool, Target::All).await
    }

    /// Registers this process in the instance registry without migrating (workers and
    /// jobs that use the database but do not run migrations), and starts its heartbeat.
    pub async fn register<P: MigratePool>(&self, pool: &P) -> Result<Instance, Error> {
        runner::register_only(self.job(), pool).await
    }

    /// Keeps checking the gate and runs `run_post` as soon as post-deploy work is due,
    /// until none is left: a rolling deploy needs no separate contract step. Spawn it
    /// after `run_pre` (`tokio::spawn(async move { m.run_post_when_safe(&pool).await })`).
    pub async fn run_post_when_safe<P: MigratePool>(&self, pool: &P) -> Result<Report, Error> {
        runner::run_post_when_safe(self.job(), pool).await
    }

    /// The newest migration version applied by zdm (under this migrator's schema and
    /// table prefix), sqlx or diesel: the version to baseline at. Reads only.
    pub async fn newest_applied<P: MigratePool>(&self, pool: &P) -> Result<Option<i64>, Error> {
        pool.newest_applied(&self.settings.names()).await
    }

    /// Applied, pending pre-deploy and pending post-deploy migrations, with ledger details.
    pub async fn status<P: MigratePool>(&self, pool: &P) -> Result<Status, Error> {
        status::load(self.job(), pool).await
    }

    /// The pending work in the order `run_pre` then `run_post` would run it: each
    /// migration's phase, directives and the gate's verdict now, and per statement the
    /// lint's prediction (lock mode and table, rewrite, scan). Runs nothing; `Display`
    /// prints a table per migration.
    pub async fn plan<P: MigratePool>(&self, pool: &P) -> Result<Plan, Error> {
        plan::load(self.job(), pool).await
    }

    /// Runs the pending migrations in a scratch database on the server of `admin` (which
    /// must be allowed to `CREATE DATABASE`) after replaying the history `admin`'s database
    /// has applied, and records per statement the locks it took, the tables it rewrote and
    /// scanned, rows and time, held against the lint's prediction ([`Trace::disagreements`]).
    /// Nothing runs against `admin`'s own database but reading its ledger; the scratch
    /// database is always dropped. PostgreSQL only: a SQLite set is `Error::Unsupported`.
    pub async fn trace(&self, admin: &sqlx::PgPool, options: TraceOptions) -> Result<Trace, Error> {
        trace::run(self.job(), admin, options).await
    }

    /// The set and its settings, as the runner takes them.
    fn job(&self) -> Job<'_> {
        Job { steps: &self.steps, settings: &self.settings }
    }
}

impl fmt::Debug for Migrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migrator")
            .field("migrations", &self.steps.iter().map(|s| s.meta.version).collect::<Vec<_>>())
            .field("app_name", &self.settings.app_name)
            .field("app_version", &self.settings.app_version)
            .field("schema", &self.settings.schema)
            .finish_non_exhaustive()
    }
}
