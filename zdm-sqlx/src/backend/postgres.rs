//! The PostgreSQL backend: the SQL zdm sends to PostgreSQL, and how it sends it.
//!
//! Transactional migrations run in one transaction with their ledger row. `no_transaction`
//! migrations run one statement per query on one dedicated connection (a multi-statement
//! query string is an implicit transaction, which `CONCURRENTLY` refuses).

use std::time::{Duration, Instant};

use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};
use zdm_core::plan::{Applied, AppliedBy};
use zdm_core::Phase;

use super::{elapsed_ms, line_of_char_position, Backend, Found};
use crate::error::{Doing, Error};
use crate::ledger::{Failure, LedgerRow, Names, RunContext};
use crate::migration::{Body, RustRun, Step};

const TABLES_EXIST: &str = "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL \
     AND to_regclass($3) IS NOT NULL, to_regclass('_sqlx_migrations') IS NOT NULL, \
     current_setting('server_version_num')::int";

/// Serialises concurrent first boots: `CREATE TABLE IF NOT EXISTS` races on the catalog.
const BOOTSTRAP_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('zdm bootstrap'))";

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
INSERT INTO {ledger} (version, description, phase, checksum, no_transaction, started_at, finished_at, duration_ms,
                      success, error, app_name, app_version, zdm_version, hostname, pid, db_user, safety_assured)
SELECT $1, $2, $3, $4, $5, started_at, finished_at, $6, $7, $8, $9, $10, $11, $12, $13, current_user, $14 FROM attempt
ON CONFLICT (version) DO UPDATE SET
    description = EXCLUDED.description, phase = EXCLUDED.phase, checksum = EXCLUDED.checksum,
    no_transaction = EXCLUDED.no_transaction, started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms, success = EXCLUDED.success,
    error = EXCLUDED.error, app_name = EXCLUDED.app_name, app_version = EXCLUDED.app_version,
    zdm_version = EXCLUDED.zdm_version, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
    db_user = EXCLUDED.db_user, safety_assured = EXCLUDED.safety_assured";

const LOAD_LEDGER: &str = "\
SELECT version, description, phase, checksum, success,
       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), duration_ms,
       app_name, app_version, hostname, error, safety_assured
FROM {ledger} ORDER BY version";

const LOAD_SQLX: &str = "SELECT version, description, checksum FROM _sqlx_migrations WHERE success ORDER BY version";

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

impl super::private::Sealed for PgPool {}

impl Backend for PgPool {
    const NAME: &'static str = "PostgreSQL";

    async fn bootstrap(&self, names: &Names) -> Result<Found, Error> {
        let (ours, sqlx_ledger, server_version): (bool, bool, i32) = sqlx::query_as(TABLES_EXIST)
            .bind(&names.ledger)
            .bind(&names.history)
            .bind(&names.lease)
            .fetch_one(self)
            .await
            .doing("looking for zdm's tables")?;
        if !ours {
            let mut tx = self.begin().await.doing("creating zdm's tables")?;
            sqlx::query(BOOTSTRAP_LOCK).execute(&mut *tx).await.doing("creating zdm's tables")?;
            if let Some(schema) = &names.schema {
                let create = format!("CREATE SCHEMA IF NOT EXISTS {}", zdm_core::ident::quote_ident(schema));
                sqlx::raw_sql(AssertSqlSafe(create)).execute(&mut *tx).await.doing("creating zdm's schema")?;
            }
            sqlx::raw_sql(AssertSqlSafe(names.sql(CREATE_TABLES)))
                .execute(&mut *tx)
                .await
                .doing("creating zdm's tables")?;
            tx.commit().await.doing("creating zdm's tables")?;
        }
        Ok(Found { sqlx_ledger, server_version: Some(server_version) })
    }

    async fn load_ledger(&self, names: &Names) -> Result<Vec<LedgerRow>, Error> {
        let rows =
            sqlx::query(AssertSqlSafe(names.sql(LOAD_LEDGER))).fetch_all(self).await.doing("reading the ledger")?;
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

    async fn load_sqlx_applied(&self) -> Result<Vec<Applied>, Error> {
        let rows: Vec<(i64, String, Vec<u8>)> =
            sqlx::query_as(LOAD_SQLX).fetch_all(self).await.doing("reading sqlx's _sqlx_migrations")?;
        Ok(rows
            .into_iter()
            .map(|(version, description, checksum)| Applied { version, description, checksum, by: AppliedBy::Sqlx })
            .collect())
    }

    async fn try_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<Option<String>, Error> {
        let taken: Option<String> = sqlx::query_scalar(AssertSqlSafe(names.sql(TAKE_LEASE)))
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .fetch_optional(self)
            .await
            .doing("taking the migration lease")?;
        match taken {
            Some(_) => Ok(None),
            // Between the two statements the holder may release: then retry soon.
            None => Ok(Some(self.lease_holder(names).await?.unwrap_or_else(|| "(just released)".to_string()))),
        }
    }

    async fn renew_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<bool, Error> {
        let done = sqlx::query(AssertSqlSafe(names.sql(RENEW_LEASE)))
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .execute(self)
            .await
            .doing("renewing the migration lease")?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease_holder(&self, names: &Names) -> Result<Option<String>, Error> {
        sqlx::query_scalar(AssertSqlSafe(names.sql(LEASE_HOLDER)))
            .fetch_optional(self)
            .await
            .doing("reading the migration lease")
    }

    async fn release_lease(&self, names: &Names, owner: &str) -> Result<(), Error> {
        sqlx::query(AssertSqlSafe(names.sql(RELEASE_LEASE)))
            .bind(owner)
            .execute(self)
            .await
            .doing("releasing the migration lease")?;
        Ok(())
    }

    async fn apply(&self, names: &Names, step: &Step, ctx: &RunContext) -> Result<Result<i64, Failure>, Error> {
        let started = Instant::now();
        if step.meta.no_transaction {
            let mut conn = self.acquire().await.doing("acquiring a connection for a no_transaction migration")?;
            if let Err((message, line)) = run_body(&mut conn, step, false).await {
                return Ok(Err(Failure { message, line, duration_ms: elapsed_ms(started) }));
            }
            record(&mut conn, names, step, ctx, elapsed_ms(started), None).await?;
            return Ok(Ok(elapsed_ms(started)));
        }
        let mut tx = self.begin().await.doing("starting a migration transaction")?;
        match run_body(&mut tx, step, true).await {
            Ok(()) => {
                let ms = elapsed_ms(started);
                record(&mut tx, names, step, ctx, ms, None).await?;
                tx.commit().await.doing("committing a migration")?;
                Ok(Ok(ms))
            }
            Err((message, line)) => {
                // Dropping the transaction would roll back too; doing it here keeps the
                // connection clean before the failure is recorded.
                let _ = tx.rollback().await;
                Ok(Err(Failure { message, line, duration_ms: elapsed_ms(started) }))
            }
        }
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
}

/// Runs a migration's body; on failure, the server's message and the file line.
async fn run_body(conn: &mut PgConnection, step: &Step, whole: bool) -> Result<(), (String, Option<usize>)> {
    match step.body {
        Body::Sql(sql) if whole => {
            sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop).map_err(|e| describe(&e, sql, 1))
        }
        Body::Sql(sql) => {
            for stmt in zdm_core::split::statements(sql) {
                sqlx::raw_sql(stmt.text).execute(&mut *conn).await.map_err(|e| {
                    let (message, line) = describe(&e, stmt.text, stmt.line);
                    (message, line.or(Some(stmt.line)))
                })?;
            }
            Ok(())
        }
        Body::Rust(RustRun::Postgres(f)) => f(conn).await.map_err(|e| (e.to_string(), None)),
        Body::Rust(other) => Err((
            format!("this Rust migration takes a {} connection but runs on a PostgreSQL pool", other.backend_name()),
            None,
        )),
    }
}

/// The server's error with code, detail and hint, and the file line it points at.
fn describe(e: &sqlx::Error, sql: &str, first_line: usize) -> (String, Option<usize>) {
    let Some(pg) = e.as_database_error().and_then(|d| d.try_downcast_ref::<PgDatabaseError>()) else {
        return (e.to_string(), None);
    };
    let mut message = format!("{} (SQLSTATE {})", pg.message(), pg.code());
    if let Some(detail) = pg.detail() {
        message.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = pg.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    let line = match pg.position() {
        Some(PgErrorPosition::Original(pos)) => Some(line_of_char_position(sql, pos, first_line)),
        _ => None,
    };
    (message, line)
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
    sqlx::query(AssertSqlSafe(names.sql(RECORD_ATTEMPT)))
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
