//! The PostgreSQL backend: the SQL zdm sends to PostgreSQL, and how it sends it.
//!
//! Transactional migrations run in one transaction with their ledger row. `no_transaction`
//! migrations run one statement per query on one dedicated connection (a multi-statement
//! query string is an implicit transaction, which `CONCURRENTLY` refuses).

use std::time::{Duration, Instant};

use sqlx::postgres::{PgDatabaseError, PgErrorPosition, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row};
use zdm_core::plan::{Applied, AppliedBy};
use zdm_core::Phase;

use super::pg_simple as simple;
use super::{
    elapsed_ms, line_of_char_position, pg_backfill, pg_recipes, pg_registry, Backend, DropStep, Foreign, Found,
    StepGuard, StepOutcome,
};
use crate::backfill::{BackfillRow, BatchOutcome};
use crate::error::{Doing, Error};
use crate::lease::Fence;
use crate::ledger::{Failure, LedgerRow, Names, RunContext};
use crate::migration::{Body, RustRun, Step};
use crate::registry::InstanceRecord;
use zdm_core::exec::{self, ExecClass};
use zdm_core::gate::{self, PendingDrop};
use zdm_core::retry::{is_retryable, Attempt, ExecPolicy};

const TABLES_EXIST: &str = "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL \
     AND to_regclass($3) IS NOT NULL AND to_regclass($4) IS NOT NULL AND to_regclass($5) IS NOT NULL \
     AND to_regclass($6) IS NOT NULL AND to_regprocedure($7) IS NOT NULL AND to_regprocedure($8) IS NOT NULL \
     AND to_regprocedure($9) IS NOT NULL AND to_regclass($10) IS NOT NULL AND to_regprocedure($11) IS NOT NULL AND to_regclass($12) IS NOT NULL, \
     to_regclass('_sqlx_migrations') IS NOT NULL, to_regclass('__diesel_schema_migrations') IS NOT NULL, \
     current_setting('server_version_num')::int, \
     concat_ws(':', inet_server_addr(), inet_server_port(), current_database())";

/// Serialises concurrent first boots: `CREATE TABLE IF NOT EXISTS` races on the catalog.
const BOOTSTRAP_LOCK: &str = "SELECT pg_try_advisory_xact_lock(hashtext('zdm bootstrap'))";

/// Whether zdm's objects are all there (this zdm version's), and what else the database has.
async fn tables_exist(pool: &PgPool, names: &Names) -> Result<(bool, bool, bool, i32, String), Error> {
    let [fn1, fn2, fn3] = pg_registry::function_signatures(names);
    let recipes = pg_recipes::marker(names);
    simple::sql(TABLES_EXIST)
        .bind(&names.ledger)
        .bind(&names.history)
        .bind(&names.lease)
        .bind(&names.instances)
        .bind(&names.drops)
        .bind(&names.post_pending)
        .bind(fn1)
        .bind(fn2)
        .bind(fn3)
        .bind(recipes.0)
        .bind(recipes.1)
        .bind(names.func("app_models"))
        .row_as(pool)
        .await
        .doing("looking for zdm's tables")
}

/// Creates (or, for an older zdm's database, replaces) zdm's schema, tables and functions.
async fn create_objects(tx: &mut PgConnection, names: &Names) -> Result<(), Error> {
    if let Some(schema) = &names.schema {
        let create = format!("CREATE SCHEMA IF NOT EXISTS {}", zdm_core::ident::quote_ident(schema));
        sqlx::raw_sql(AssertSqlSafe(create)).execute(&mut *tx).await.doing("creating zdm's schema")?;
    }
    sqlx::raw_sql(AssertSqlSafe(names.sql(CREATE_TABLES))).execute(&mut *tx).await.doing("creating zdm's tables")?;
    sqlx::raw_sql(AssertSqlSafe(pg_registry::create_sql(names)))
        .execute(&mut *tx)
        .await
        .doing("creating zdm's registry tables and functions")?;
    sqlx::raw_sql(AssertSqlSafe(pg_recipes::create_sql(names)))
        .execute(&mut *tx)
        .await
        .doing("creating zdm's recipe functions")?;
    Ok(())
}

const CREATE_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS {ledger} (
    version        BIGINT PRIMARY KEY,
    description    TEXT NOT NULL,
    phase          TEXT NOT NULL,
    checksum       BYTEA NOT NULL,
    no_transaction BOOLEAN NOT NULL DEFAULT FALSE,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL,
    duration_ms    BIGINT NOT NULL,
    success        BOOLEAN NOT NULL,
    error          TEXT,
    app_name       TEXT,
    app_version    TEXT,
    zdm_version    TEXT NOT NULL,
    hostname       TEXT,
    pid            INTEGER,
    db_user        TEXT,
    safety_assured TEXT[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS {history} (
    id             BIGSERIAL PRIMARY KEY,
    version        BIGINT NOT NULL,
    description    TEXT NOT NULL,
    phase          TEXT NOT NULL,
    checksum       BYTEA NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL,
    duration_ms    BIGINT NOT NULL,
    success        BOOLEAN NOT NULL,
    error          TEXT,
    app_name       TEXT,
    app_version    TEXT,
    zdm_version    TEXT NOT NULL,
    hostname       TEXT,
    pid            INTEGER,
    db_user        TEXT
);
CREATE TABLE IF NOT EXISTS {lease} (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    owner       TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
"#;

/// One attempt: a history row, and the ledger row upserted from it, in one round trip.
const RECORD_ATTEMPT: &str = "\
WITH attempt AS (
    INSERT INTO {history} (version, description, phase, checksum, started_at, finished_at, duration_ms,
                           success, error, app_name, app_version, zdm_version, hostname, pid, db_user)
    VALUES ($1, $2, $3, $4, clock_timestamp() - make_interval(secs => $6::float8 / 1000), clock_timestamp(), $6,
            $7, $8, $9, $10, $11, $12, $13, current_user)
    RETURNING started_at, finished_at
)
INSERT INTO {ledger} AS l (version, description, phase, checksum, no_transaction, started_at, finished_at, duration_ms,
                      success, error, app_name, app_version, zdm_version, hostname, pid, db_user, safety_assured)
SELECT $1, $2, $3, $4, $5, started_at, finished_at, $6, $7, $8, $9, $10, $11, $12, $13, current_user, $14 FROM attempt
ON CONFLICT (version) DO UPDATE SET
    description = EXCLUDED.description, phase = EXCLUDED.phase, checksum = EXCLUDED.checksum,
    no_transaction = EXCLUDED.no_transaction, started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, success = EXCLUDED.success,
    error = EXCLUDED.error, app_name = EXCLUDED.app_name, app_version = EXCLUDED.app_version,
    zdm_version = EXCLUDED.zdm_version, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
    db_user = EXCLUDED.db_user, safety_assured = EXCLUDED.safety_assured
WHERE NOT l.success";

const LOAD_LEDGER: &str = "\
SELECT version, description, phase, checksum, success,
       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), duration_ms,
       app_name, app_version, hostname, error, safety_assured
FROM {ledger} ORDER BY version";

/// `SET [LOCAL]` of both timeouts in one round trip; also returns the backend pid.
pub(super) const SET_TIMEOUTS: &str =
    "SELECT pg_backend_pid(), set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)";

/// What `zdm_drop_column_later` and the Rust helpers read: the running migration and the
/// names of zdm's functions (their schema and prefix are the migrator's settings).
const SET_CONTEXT: &str = "SELECT set_config('zdm.migration_version', $1, $4), \
     set_config('zdm.fn_drop_column', $2, $4), set_config('zdm.fn_drop_table', $3, $4), \
     set_config('zdm.schema', $5, $4), set_config('zdm.prefix', $6, $4)";

const INDEX_VALIDITY: &str = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
     WHERE c.relname = $1 AND pg_table_is_visible(c.oid)";

/// Who blocks session `$1`'s lock request: the lock, the holder and what it is doing.
const BLOCKERS: &str = "\
SELECT format('%s on %s, held by pid %s (%s, %s, transaction open %s s): %s',
              w.mode, coalesce(w.relation::regclass::text, w.locktype), b.pid,
              coalesce(nullif(b.application_name, ''), 'no application_name'), b.state,
              coalesce(extract(epoch FROM clock_timestamp() - b.xact_start)::int, 0),
              left(regexp_replace(coalesce(b.query, ''), '\\s+', ' ', 'g'), 120))
FROM pg_locks w
JOIN LATERAL unnest(pg_blocking_pids($1)) AS blocking(pid) ON true
JOIN pg_stat_activity b ON b.pid = blocking.pid
WHERE w.pid = $1 AND NOT w.granted
LIMIT 1";

const LOAD_APPLIED: &str = "SELECT version, description, checksum FROM {ledger} WHERE success ORDER BY version";
const LOAD_SQLX: &str = "SELECT version, description, checksum FROM _sqlx_migrations WHERE success ORDER BY version";
const LOAD_DIESEL: &str = "SELECT version::text FROM __diesel_schema_migrations ORDER BY version";

const TAKE_LEASE: &str = "\
INSERT INTO {lease} AS l (id, owner, acquired_at, expires_at)
VALUES (1, $1, clock_timestamp(), clock_timestamp() + make_interval(secs => $2))
ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner, acquired_at = EXCLUDED.acquired_at,
                               expires_at = EXCLUDED.expires_at
WHERE l.expires_at < clock_timestamp() OR l.owner = EXCLUDED.owner
RETURNING owner";
const RENEW_LEASE: &str =
    "UPDATE {lease} SET expires_at = clock_timestamp() + make_interval(secs => $2) WHERE id = 1 AND owner = $1";
const LEASE_HOLDER: &str = "SELECT owner FROM {lease} WHERE id = 1 AND expires_at >= clock_timestamp()";
const RELEASE_LEASE: &str = "DELETE FROM {lease} WHERE id = 1 AND owner = $1";

/// Checks, inside the transaction that records a migration, that this process still holds
/// the lease; the row lock it takes makes a take-over wait for the commit.
pub(super) async fn check_fence(conn: &mut PgConnection, names: &Names, fence: &Fence) -> Result<(), Error> {
    let done = simple::sql(names.sql(RENEW_LEASE))
        .bind(&fence.owner)
        .bind(fence.ttl.as_secs_f64())
        .execute(&mut *conn)
        .await
        .doing("checking the migration lease")?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    let holder: Option<String> =
        simple::sql(names.sql(LEASE_HOLDER)).scalar_optional(&mut *conn).await.doing("reading the migration lease")?;
    Err(Error::LeaseLost { holder: holder.unwrap_or_else(|| "(nobody)".to_string()) })
}

/// Where the removed columns and tables of a migration live, read before it runs.
const RESOLVE_RELATION: &str = "SELECT n.nspname::text, c.relname::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)";
/// Whether a column or table is gone.
const GONE: &str = "SELECT CASE WHEN $3::text IS NULL THEN to_regclass(format('%I.%I', $1, $2)) IS NULL \
     ELSE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(format('%I.%I', $1, $2)) \
     AND attname = $3 AND attnum > 0 AND NOT attisdropped) END";
const RECORD_REMOVED: &str = "\
INSERT INTO {drops} AS d (schema_name, table_name, column_name, scheduled_by, scheduled_at, dropped_at, state)
VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp(), 'dropped')
ON CONFLICT (schema_name, table_name, (coalesce(column_name, ''))) DO UPDATE
    SET state = 'dropped', dropped_at = clock_timestamp(), scheduled_by = EXCLUDED.scheduled_by";

/// The (schema, table, column) of each object the migration's SQL removes that exists now.
async fn resolve_removed(conn: &mut PgConnection, step: &Step) -> Result<Vec<(String, String, Option<String>)>, Error> {
    let Body::Sql(sql) = step.body else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for r in zdm_core::removed::removed(sql) {
        let found: Option<(String, String)> = simple::sql(RESOLVE_RELATION)
            .bind(zdm_core::ident::quote_ident(&r.table))
            .row_as_optional(&mut *conn)
            .await
            .doing("reading what a migration removes")?;
        if let Some((schema, table)) = found {
            out.push((schema, table, r.column));
        }
    }
    Ok(out)
}

/// Records what the migration removed (decision 15: an older build that maps it then
/// refuses to boot, whichever way it went).
async fn record_removed(
    conn: &mut PgConnection,
    names: &Names,
    version: i64,
    removed: &[(String, String, Option<String>)],
) -> Result<(), Error> {
    for (schema, table, column) in removed {
        let gone: bool = simple::sql(GONE)
            .bind(schema)
            .bind(table)
            .bind(column)
            .scalar(&mut *conn)
            .await
            .doing("checking what a migration removed")?;
        if gone {
            // A pending deferred drop of the same column: its read-only trigger goes too, or
            // a column re-added under that name later would be read-only.
            let pending: Option<i64> = simple::sql(names.sql(
                "SELECT id FROM {drops} WHERE schema_name = $1 AND table_name = $2 AND column_name = $3 \
                 AND state = 'pending'",
            ))
            .bind(schema)
            .bind(table)
            .bind(column)
            .scalar_optional(&mut *conn)
            .await
            .doing("recording what a migration removed")?;
            if let (Some(id), Some(_)) = (pending, column) {
                let trigger = zdm_core::ident::quote_ident(&format!("{}read_only_{id}", names.prefix));
                let table = zdm_core::ident::qualified(Some(schema), table);
                sqlx::raw_sql(AssertSqlSafe(format!("DROP TRIGGER IF EXISTS {trigger} ON {table}")))
                    .execute(&mut *conn)
                    .await
                    .doing("recording what a migration removed")?;
            }
            simple::sql(names.sql(RECORD_REMOVED))
                .bind(schema)
                .bind(table)
                .bind(column)
                .bind(version)
                .execute(&mut *conn)
                .await
                .doing("recording what a migration removed")?;
        }
    }
    Ok(())
}

impl super::private::Sealed for PgPool {}

impl Backend for PgPool {
    const NAME: &'static str = "PostgreSQL";

    fn side(&self, session_url: Option<&str>) -> Self {
        let options = match session_options(self, session_url) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "using the pool's own connect options for the lease and heartbeat");
                (*self.connect_options()).clone()
            }
        };
        PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options)
    }

    async fn close_side(&self) {
        self.close().await;
    }

    async fn bootstrap(&self, names: &Names) -> Result<Found, Error> {
        let (mut ours, sqlx, diesel, server_version, db_key) = tables_exist(self, names).await?;
        let started = Instant::now();
        while !ours {
            let mut tx = self.begin().await.doing("creating zdm's tables")?;
            let creator: bool = simple::sql(BOOTSTRAP_LOCK).scalar(&mut *tx).await.doing("creating zdm's tables")?;
            if creator {
                create_objects(&mut tx, names).await?;
                tx.commit().await.doing("creating zdm's tables")?;
                break;
            }
            // Another process is creating them: wait outside any transaction (a waiter
            // parked in one would make a concurrent index build wait for it), look again.
            let _ = tx.rollback().await;
            if started.elapsed() > Duration::from_secs(120) {
                return Err(Error::Config(
                    "zdm's tables are being created by another process for over 2 minutes; \
                     look for a session holding the advisory lock 'zdm bootstrap'"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            ours = tables_exist(self, names).await?.0;
        }
        Ok(Found { foreign: Foreign { sqlx, diesel }, server_version: Some(server_version), db_key })
    }

    async fn load_ledger(&self, names: &Names) -> Result<Vec<LedgerRow>, Error> {
        let rows = simple::sql(names.sql(LOAD_LEDGER)).fetch_all(self).await.doing("reading the ledger")?;
        rows.iter()
            .map(|r| {
                Ok(LedgerRow {
                    version: r.try_get(0)?,
                    description: r.try_get(1)?,
                    phase: Phase::from_ledger(r.try_get::<&str, _>(2)?),
                    checksum: r.try_get(3)?,
                    success: r.try_get(4)?,
                    started_at: r.try_get(5)?,
                    duration_ms: r.try_get(6)?,
                    app_name: r.try_get(7)?,
                    app_version: r.try_get(8)?,
                    hostname: r.try_get(9)?,
                    error: r.try_get(10)?,
                    safety_assured: r.try_get(11)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .doing("reading the ledger")
    }

    async fn load_zdm_applied(&self, names: &Names) -> Result<Vec<Applied>, Error> {
        let rows: Vec<(i64, String, Vec<u8>)> =
            simple::sql(names.sql(LOAD_APPLIED)).rows_as(self).await.doing("reading the ledger")?;
        Ok(rows
            .into_iter()
            .map(|(version, description, checksum)| Applied { version, description, checksum, by: AppliedBy::Zdm })
            .collect())
    }

    async fn load_sqlx_applied(&self, foreign: Foreign) -> Result<Vec<Applied>, Error> {
        let mut out = Vec::new();
        if foreign.sqlx {
            let rows: Vec<(i64, String, Vec<u8>)> =
                simple::sql(LOAD_SQLX).rows_as(self).await.doing("reading sqlx's _sqlx_migrations")?;
            out.extend(rows.into_iter().map(|(version, description, checksum)| Applied {
                version,
                description,
                checksum,
                by: AppliedBy::Sqlx,
            }));
        }
        if foreign.diesel {
            let rows: Vec<String> =
                simple::sql(LOAD_DIESEL).scalars(self).await.doing("reading diesel's __diesel_schema_migrations")?;
            // diesel keeps the folder's version as written (`2024-01-01-000000`); zdm reads its digits.
            out.extend(rows.into_iter().filter_map(|v| {
                let digits: String = v.chars().filter(char::is_ascii_digit).collect();
                let version = digits.parse().ok()?;
                Some(Applied { version, description: String::new(), checksum: Vec::new(), by: AppliedBy::Diesel })
            }));
        }
        Ok(out)
    }

    async fn try_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<Option<String>, Error> {
        let taken: Option<String> = simple::sql(names.sql(TAKE_LEASE))
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .scalar_optional(self)
            .await
            .doing("taking the migration lease")?;
        match taken {
            Some(_) => Ok(None),
            // Between the two statements the holder may release: then retry soon.
            None => Ok(Some(self.lease_holder(names).await?.unwrap_or_else(|| "(just released)".to_string()))),
        }
    }

    async fn renew_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<bool, Error> {
        let done = simple::sql(names.sql(RENEW_LEASE))
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .execute(self)
            .await
            .doing("renewing the migration lease")?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease_holder(&self, names: &Names) -> Result<Option<String>, Error> {
        simple::sql(names.sql(LEASE_HOLDER)).scalar_optional(self).await.doing("reading the migration lease")
    }

    async fn release_lease(&self, names: &Names, owner: &str) -> Result<(), Error> {
        simple::sql(names.sql(RELEASE_LEASE)).bind(owner).execute(self).await.doing("releasing the migration lease")?;
        Ok(())
    }

    async fn apply(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        policy: &ExecPolicy,
        fence: &Fence,
        gate: Option<&StepGuard<'_>>,
    ) -> Result<Result<i64, Failure>, Error> {
        let started = Instant::now();
        if step.meta.no_transaction {
            return apply_outside_transaction(self, names, step, ctx, policy, fence, started).await;
        }
        let schedule = policy.schedule(&step.meta);
        for (n, attempt) in schedule.iter().enumerate() {
            let mut tx = self.begin().await.doing("starting a migration transaction")?;
            let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, ExecClass::Normal, attempt);
            let pid: i32 = simple::sql(SET_TIMEOUTS)
                .bind(format!("{lock_ms}ms"))
                .bind(format!("{statement_ms}ms"))
                .bind(true)
                .scalar(&mut *tx)
                .await
                .doing("setting the migration's timeouts")?;
            set_context(&mut tx, names, step, true).await?;
            let removed = resolve_removed(&mut tx, step).await?;
            if let (Some(gate), false) = (gate, removed.is_empty()) {
                // Serialised with registrations: a build that boots now either is seen here
                // or, once this commits, sees what was removed and refuses to start.
                match pg_registry::lock_registry(&mut tx, names).await {
                    Ok(()) => {
                        let live = pg_registry::live(&mut *tx, names, gate.instance_ttl.as_secs_f64()).await?;
                        let blockers = (gate.recheck)(&live);
                        if !blockers.is_empty() {
                            let _ = tx.rollback().await;
                            return Err(Error::GateClosed {
                                version: step.meta.version,
                                blockers: blockers.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                            });
                        }
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        match after_failure(self, names, step, ctx, describe(&e, "", 1), None, n, &schedule, started)
                            .await?
                        {
                            Some(failure) => return Ok(Err(failure)),
                            None => continue,
                        }
                    }
                }
            }
            let watch = BlockerWatch::start(self, pid, attempt.lock_timeout);
            let result = run_in_transaction(&mut tx, step, policy, attempt).await;
            let blocker = watch.finish().await;
            let e = match result {
                Ok(()) => {
                    let ms = elapsed_ms(started);
                    // Fenced: a process that lost the lease rolls its migration back here.
                    check_fence(&mut tx, names, fence).await?;
                    record_removed(&mut tx, names, step.meta.version, &removed).await?;
                    record(&mut tx, names, step, ctx, ms, None).await?;
                    announce(&mut tx, step.meta.version).await?;
                    crate::fault::boundary("migration body and ledger row written, before commit");
                    tx.commit().await.doing("committing a migration")?;
                    crate::fault::boundary("migration committed");
                    return Ok(Ok(ms));
                }
                Err(e) => e,
            };
            // Roll back before recording, so the record survives and the connection is clean.
            let _ = tx.rollback().await;
            match after_failure(self, names, step, ctx, e, blocker, n, &schedule, started).await? {
                Some(failure) => return Ok(Err(failure)),
                None => continue,
            }
        }
        unreachable!("the schedule has at least one attempt")
    }

    async fn record_failure(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        failure: &Failure,
    ) -> Result<(), Error> {
        let mut conn = self.acquire().await.doing("recording a failed migration")?;
        record(&mut conn, names, step, ctx, failure.duration_ms, Some(&failure.message)).await
    }

    async fn upsert_instance(
        &self,
        names: &Names,
        record: &InstanceRecord,
        ttl: Duration,
        models: &[zdm_core::model::ModelInfo],
    ) -> Result<Vec<i64>, Error> {
        pg_registry::upsert_instance(self, names, record, ttl.as_secs_f64(), models).await
    }

    async fn app_had_models(&self, names: &Names, app: &str) -> Result<bool, Error> {
        pg_registry::app_had_models(self, names, app).await
    }

    async fn beat(&self, names: &Names, id: &str) -> Result<bool, Error> {
        pg_registry::beat(self, names, id).await
    }

    async fn deregister(&self, names: &Names, id: &str) -> Result<(), Error> {
        pg_registry::deregister(self, names, id).await
    }

    async fn live_instances(&self, names: &Names, ttl: Duration) -> Result<Vec<gate::Instance>, Error> {
        pg_registry::live(self, names, ttl.as_secs_f64()).await
    }

    async fn load_drops(&self, names: &Names) -> Result<Vec<(PendingDrop, bool)>, Error> {
        pg_registry::load_drops(self, names).await
    }

    async fn drop_step(
        &self,
        names: &Names,
        drop: &PendingDrop,
        step: DropStep,
        policy: &ExecPolicy,
        guard: &StepGuard<'_>,
    ) -> Result<StepOutcome, Error> {
        pg_registry::run_step(self, names, drop, step, policy, guard).await
    }

    async fn note_post_pending(&self, names: &Names, versions: &[i64]) -> Result<(), Error> {
        pg_registry::note_pending(self, names, versions).await
    }

    async fn post_pending_since(&self, names: &Names) -> Result<Vec<(i64, String, i64)>, Error> {
        pg_registry::pending_since(self, names).await
    }

    async fn load_backfills(&self, names: &Names) -> Result<Vec<BackfillRow>, Error> {
        pg_backfill::load(self, names).await
    }

    async fn backfill_batch(
        &self,
        names: &Names,
        name: &str,
        target: Duration,
        policy: &ExecPolicy,
    ) -> Result<BatchOutcome, Error> {
        pg_backfill::batch(self, names, name, target, policy).await
    }
}

/// A statement's failure: the server's message, the file line and the SQLSTATE.
struct StmtError {
    message: String,
    line: Option<usize>,
    sqlstate: Option<String>,
}

impl StmtError {
    fn retryable(&self) -> bool {
        self.sqlstate.as_deref().is_some_and(is_retryable)
    }

    fn other(message: String) -> StmtError {
        StmtError { message, line: None, sqlstate: None }
    }
}

/// Runs a transactional migration's body. A file of ordinary statements goes to the server
/// whole, exactly as sqlx would send it; one with `VALIDATE CONSTRAINT` (or CONCURRENTLY) is
/// sent statement by statement so each gets its own timeouts.
async fn run_in_transaction(
    conn: &mut PgConnection,
    step: &Step,
    policy: &ExecPolicy,
    attempt: &Attempt,
) -> Result<(), StmtError> {
    let sql = match step.body {
        Body::Sql(sql) => sql,
        Body::Rust(run) => return run_rust(conn, run).await,
    };
    let statements = exec::statements(sql);
    if statements.iter().all(|s| s.class == ExecClass::Normal) {
        return sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop).map_err(|e| describe(&e, sql, 1));
    }
    let mut current = ExecClass::Normal;
    for stmt in statements {
        if stmt.class != current {
            let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, stmt.class, attempt);
            set_timeouts(conn, lock_ms, statement_ms, true).await?;
            current = stmt.class;
        }
        sqlx::raw_sql(stmt.text).execute(&mut *conn).await.map_err(|e| describe(&e, stmt.text, stmt.line))?;
    }
    Ok(())
}

async fn run_rust(conn: &mut PgConnection, run: RustRun) -> Result<(), StmtError> {
    match run {
        RustRun::Postgres(f) => f(conn).await.map_err(|e| match e.downcast_ref::<sqlx::Error>() {
            Some(sqlx_error) => describe(sqlx_error, "", 1),
            None => StmtError::other(e.to_string()),
        }),
        other => Err(StmtError::other(format!(
            "this Rust migration takes a {} connection but runs on a PostgreSQL pool",
            other.backend_name()
        ))),
    }
}

async fn set_timeouts(conn: &mut PgConnection, lock_ms: u64, statement_ms: u64, local: bool) -> Result<(), StmtError> {
    simple::sql(SET_TIMEOUTS)
        .bind(format!("{lock_ms}ms"))
        .bind(format!("{statement_ms}ms"))
        .bind(local)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(|e| describe(&e, "", 1))
}

/// After a failed attempt: record it and return `None` to try again, or the final
/// failure.
#[allow(clippy::too_many_arguments)]
async fn after_failure(
    pool: &PgPool,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    e: StmtError,
    blocker: Option<String>,
    n: usize,
    schedule: &[Attempt],
    started: Instant,
) -> Result<Option<Failure>, Error> {
    let waited = match &blocker {
        Some(b) => format!("; it waited for {b}"),
        None => String::new(),
    };
    let retryable = e.retryable();
    let mut failure = Failure {
        message: format!("{}{waited}", e.message),
        line: e.line,
        duration_ms: elapsed_ms(started),
        retryable,
    };
    if retryable && n + 1 < schedule.len() {
        let attempt = schedule[n];
        failure.message = format!(
            "attempt {} of {} gave up after lock_timeout {} ms: {}; retrying in {} ms",
            n + 1,
            schedule.len(),
            attempt.lock_timeout.as_millis(),
            failure.message,
            attempt.pause_after.as_millis()
        );
        tracing::warn!(version = step.meta.version, "{}", failure.message);
        pool.record_failure(names, step, ctx, &failure).await?;
        tokio::time::sleep(attempt.pause_after).await;
        return Ok(None);
    }
    if retryable {
        failure.message = format!("gave up after {} attempts: {}", schedule.len(), failure.message);
    }
    Ok(Some(failure))
}

/// A `no_transaction` migration: a connection of its own (never a pooled one, so no
/// session setting can leak into the app's queries, even when the future is dropped
/// half-way), statement by statement, each with its own timeouts and retries, the lease
/// checked before each; INVALID indexes left by a failed concurrent build are dropped
/// before the next try. The ledger row is written in a fenced transaction at the end.
async fn apply_outside_transaction(
    pool: &PgPool,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    policy: &ExecPolicy,
    fence: &Fence,
    started: Instant,
) -> Result<Result<i64, Failure>, Error> {
    let options = session_options(pool, ctx.session_url.as_deref())?;
    if ctx.session_url.is_none() && behind_transaction_pooler(&options).await? {
        return Err(Error::NeedsSession { version: step.meta.version, source_path: step.meta.source });
    }
    let mut conn =
        PgConnection::connect_with(&options).await.doing("opening a connection for a no_transaction migration")?;
    let pid: i32 = simple::sql("SELECT pg_backend_pid()").scalar(&mut conn).await.doing("reading the backend pid")?;
    // Dropped before it finishes (a cancelled boot): cancel the statement it runs.
    let guard = CancelOnDrop { pool: pool.clone(), pid, armed: true };
    set_context(&mut conn, names, step, false).await?;
    // Marks this session: a statement that finds the mark gone ran on another server
    // connection (a transaction pooler the probe missed), and the migration stops.
    simple::sql("SELECT set_config('zdm.session_token', $1, false)")
        .bind(format!("{}:{pid}", fence.owner))
        .execute(&mut conn)
        .await
        .doing("marking the migration's session")?;
    let removed = resolve_removed(&mut conn, step).await?;
    let result = run_outside(pool, &mut conn, pid, names, step, ctx, policy, fence, started).await;
    let outcome = match result {
        Ok(Ok(())) => {
            let ms = elapsed_ms(started);
            let mut tx = conn.begin().await.doing("writing the ledger")?;
            check_fence(&mut tx, names, fence).await?;
            record_removed(&mut tx, names, step.meta.version, &removed).await?;
            record(&mut tx, names, step, ctx, ms, None).await?;
            announce(&mut tx, step.meta.version).await?;
            crate::fault::boundary("no_transaction ledger row written, before commit");
            tx.commit().await.doing("writing the ledger")?;
            crate::fault::boundary("no_transaction migration recorded");
            Ok(Ok(ms))
        }
        other => other.map(|r| r.map(|()| 0)),
    };
    guard.disarm();
    let _ = conn.close().await;
    outcome
}

/// The migration's statements still run in the session it marked.
async fn same_session(conn: &mut PgConnection, step: &Step, token: &str) -> Result<(), Error> {
    let seen: String = simple::sql("SELECT coalesce(current_setting('zdm.session_token', true), '')")
        .scalar(&mut *conn)
        .await
        .doing("checking the migration's session")?;
    if seen == token {
        Ok(())
    } else {
        tracing::error!("a no_transaction migration's session changed between statements: a transaction pooler");
        Err(Error::NeedsSession { version: step.meta.version, source_path: step.meta.source })
    }
}

/// The connect options of the session URL, or the pool's own.
fn session_options(pool: &PgPool, session_url: Option<&str>) -> Result<sqlx::postgres::PgConnectOptions, Error> {
    match session_url {
        None => Ok((*pool.connect_options()).clone()),
        Some(url) => url.parse().map_err(|e| {
            Error::Config(format!("session_url (or ZDM_SESSION_URL) is not a PostgreSQL URL zdm can use: {e}"))
        }),
    }
}

/// Whether connections made with `options` go through a transaction-mode pooler: a session
/// setting made on one connection shows up in another client's transaction, or is gone on
/// the next statement of the first. Asked once per server address and database.
async fn behind_transaction_pooler(options: &sqlx::postgres::PgConnectOptions) -> Result<bool, Error> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let key = format!(
        "{}:{}/{}@{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default(),
        options.get_username()
    );
    let seen = SEEN.get_or_init(Default::default);
    if let Some(&known) = seen.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(known);
    }
    let doing = "checking for a transaction-mode pooler";
    let token = crate::lease::owner_id("probe");
    let mut first = PgConnection::connect_with(options).await.doing(doing)?;
    simple::sql("SELECT set_config('zdm.session_probe', $1, false)")
        .bind(&token)
        .execute(&mut first)
        .await
        .doing(doing)?;
    let mut second = PgConnection::connect_with(options).await.doing(doing)?;
    let mut tx = second.begin().await.doing(doing)?;
    let read = "SELECT coalesce(current_setting('zdm.session_probe', true), '')";
    let other: String = simple::sql(read).scalar(&mut *tx).await.doing(doing)?;
    let own: String = simple::sql(read).scalar(&mut first).await.doing(doing)?;
    let _ = tx.rollback().await;
    let _ = second.close().await;
    let _ = first.close().await;
    let pooled = other == token || own != token;
    if pooled {
        tracing::warn!(server = %key, "these connections go through a transaction-mode pooler");
    }
    seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key, pooled);
    Ok(pooled)
}

/// Cancels the backend's running statement when a migration's future is dropped before it
/// finished (a boot timeout), so a dropped `run_pre` leaves nothing running.
struct CancelOnDrop {
    pool: PgPool,
    pid: i32,
    armed: bool,
}

impl CancelOnDrop {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pool, pid) = (self.pool.clone(), self.pid);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            // The lease is given back only once the statement has stopped (see
            // `crate::lease`), so no other process re-runs it while it still runs.
            let guard = crate::lease::CancelInFlight::start();
            handle.spawn(async move {
                tracing::warn!(pid, "a no_transaction migration was dropped half-way; cancelling its statement");
                let _ = simple::sql("SELECT pg_cancel_backend($1)").bind(pid).execute(&pool).await;
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(10) {
                    let busy: Result<bool, _> = simple::sql(
                        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active')",
                    )
                    .bind(pid)
                    .scalar(&pool)
                    .await;
                    if !matches!(busy, Ok(true)) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                drop(guard);
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_outside(
    pool: &PgPool,
    conn: &mut PgConnection,
    pid: i32,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    policy: &ExecPolicy,
    fence: &Fence,
    started: Instant,
) -> Result<Result<(), Failure>, Error> {
    let schedule = policy.schedule(&step.meta);
    let sql = match step.body {
        Body::Sql(sql) => sql,
        Body::Rust(run) => {
            check_fence(conn, names, fence).await?;
            let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, ExecClass::Normal, &schedule[0]);
            let result = match set_timeouts(conn, lock_ms, statement_ms, false).await {
                Ok(()) => run_rust(conn, run).await,
                Err(e) => Err(e),
            };
            return Ok(result.map_err(|e| Failure {
                message: e.message,
                line: None,
                duration_ms: elapsed_ms(started),
                retryable: false,
            }));
        }
    };
    'statements: for stmt in exec::statements(sql) {
        for (n, attempt) in schedule.iter().enumerate() {
            // Fenced per statement: a process that lost the lease stops before the next one.
            check_fence(conn, names, fence).await?;
            same_session(conn, step, &format!("{}:{pid}", fence.owner)).await?;
            let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, stmt.class, attempt);
            if let Err(e) = set_timeouts(conn, lock_ms, statement_ms, false).await {
                return Ok(Err(Failure {
                    message: e.message,
                    line: Some(stmt.line),
                    duration_ms: elapsed_ms(started),
                    retryable: false,
                }));
            }
            if let Some(index) = &stmt.creates_index {
                match index_validity(conn, index).await? {
                    Some(true) => {
                        tracing::info!(index = %index, "index already built and valid; skipping its CREATE INDEX CONCURRENTLY");
                        continue 'statements;
                    }
                    Some(false) => drop_invalid_index(conn, index).await?,
                    None => {}
                }
            }
            let watch = BlockerWatch::start(pool, pid, Duration::from_millis(lock_ms));
            crate::fault::boundary("before a no_transaction statement");
            let result = sqlx::raw_sql(stmt.text).execute(&mut *conn).await;
            crate::fault::boundary("after a no_transaction statement");
            let blocker = watch.finish().await;
            let Err(e) = result else { continue 'statements };
            if let Some(index) = &stmt.creates_index {
                if index_validity(conn, index).await? == Some(false) {
                    drop_invalid_index(conn, index).await?;
                }
            }
            let mut e = describe(&e, stmt.text, stmt.line);
            e.line = e.line.or(Some(stmt.line));
            match after_failure(pool, names, step, ctx, e, blocker, n, &schedule, started).await? {
                Some(failure) => return Ok(Err(failure)),
                None => continue,
            }
        }
    }
    Ok(Ok(()))
}

/// Tells healing pools (`zdm::healing`) that the schema changed; delivered at commit.
async fn announce(conn: &mut PgConnection, version: i64) -> Result<(), Error> {
    simple::sql("SELECT pg_notify($1, $2)")
        .bind(crate::healing::CHANNEL)
        .bind(version.to_string())
        .execute(&mut *conn)
        .await
        .doing("announcing the schema change")?;
    Ok(())
}

async fn set_context(conn: &mut PgConnection, names: &Names, step: &Step, local: bool) -> Result<(), Error> {
    simple::sql(SET_CONTEXT)
        .bind(step.meta.version.to_string())
        .bind(&names.fn_drop_column)
        .bind(&names.fn_drop_table)
        .bind(local)
        .bind(names.schema.as_deref().unwrap_or(""))
        .bind(&names.prefix)
        .execute(&mut *conn)
        .await
        .doing("setting the migration's context")?;
    Ok(())
}

/// `Some(valid)` when an index of that name exists.
async fn index_validity(conn: &mut PgConnection, index: &str) -> Result<Option<bool>, Error> {
    simple::sql(INDEX_VALIDITY).bind(index).scalar_optional(&mut *conn).await.doing("checking an index's validity")
}

/// A failed or interrupted `CREATE INDEX CONCURRENTLY` leaves an INVALID index that an
/// `IF NOT EXISTS` retry would silently keep: drop it (concurrently) first.
async fn drop_invalid_index(conn: &mut PgConnection, index: &str) -> Result<(), Error> {
    tracing::warn!(index = %index, "dropping the INVALID index a failed concurrent build left behind");
    let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", zdm_core::ident::quote_ident(index));
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await.doing("dropping an INVALID index")?;
    Ok(())
}

/// Samples, on a connection of its own, which session blocks the migration's lock request,
/// so that a lock timeout can say who held the lock.
struct BlockerWatch {
    task: Option<tokio::task::JoinHandle<()>>,
    seen: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl BlockerWatch {
    fn start(pool: &PgPool, pid: i32, lock_timeout: Duration) -> BlockerWatch {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let every = (lock_timeout * 3 / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let (pool, out) = (pool.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // Never wait for a connection: with none idle, go without the report.
                let Some(mut conn) = pool.try_acquire() else { continue };
                if let Ok(Some(report)) = simple::sql(BLOCKERS).bind(pid).scalar_optional(&mut *conn).await {
                    *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
                }
            }
        });
        BlockerWatch { task: Some(task), seen }
    }

    async fn finish(mut self) -> Option<String> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Drop for BlockerWatch {
    fn drop(&mut self) {
        // Dropped without `finish` (a cancelled run): the sampler must not outlive it.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The server's error with code, detail and hint, and the file line it points at.
fn describe(e: &sqlx::Error, sql: &str, first_line: usize) -> StmtError {
    let Some(pg) = e.as_database_error().and_then(|d| d.try_downcast_ref::<PgDatabaseError>()) else {
        return StmtError::other(e.to_string());
    };
    let mut message = format!("{} (SQLSTATE {})", pg.message(), pg.code());
    if let Some(detail) = pg.detail() {
        message.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = pg.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    let line = match pg.position() {
        Some(PgErrorPosition::Original(pos)) if !sql.is_empty() => Some(line_of_char_position(sql, pos, first_line)),
        _ => None,
    };
    StmtError { message, line, sqlstate: Some(pg.code().to_string()) }
}

async fn record(
    conn: &mut PgConnection,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    duration_ms: i64,
    error: Option<&str>,
) -> Result<(), Error> {
    let reasons: Vec<&str> = step.meta.safety_assured.to_vec();
    simple::sql(names.sql(RECORD_ATTEMPT))
        .bind(step.meta.version)
        .bind(step.meta.description)
        .bind(step.meta.phase.as_str())
        .bind(step.meta.checksum)
        .bind(step.meta.no_transaction)
        .bind(duration_ms)
        .bind(error.is_none())
        .bind(error)
        .bind(&ctx.app_name)
        .bind(&ctx.app_version)
        .bind(ctx.zdm_version)
        .bind(&ctx.hostname)
        .bind(ctx.pid)
        .bind(reasons)
        .execute(conn)
        .await
        .doing("writing the ledger")?;
    Ok(())
}
