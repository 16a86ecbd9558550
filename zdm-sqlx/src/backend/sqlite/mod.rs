//! The SQLite backend: the embedded default database.
//!
//! SQLite has no schemas, no advisory locks and no data-modifying CTEs, so the ledger and
//! history rows are two statements in the migration's transaction, and times are stored
//! as UTC text (`YYYY-MM-DD HH:MM:SS.SSS`) and lease deadlines as Unix seconds.

use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};
use zdm_core::plan::{Applied, AppliedBy};
use zdm_core::retry::ExecPolicy;
use zdm_core::Phase;

mod registry;

use super::{Backend, Backfills, Drops, StepGuard};
use crate::error::{Doing, Error};
use crate::migration::{Body, RustRun, Step};
use crate::names::Names;
use crate::records::{Failure, Fence, Foreign, Found, LedgerRow, Outcome, RunContext};

/// Whether sqlx's ledger exists: the one place that knows its name.
macro_rules! sqlx_ledger {
    () => {
        "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = {raw_sqlx_ledger_text})"
    };
}

/// One round trip at every boot: zdm's tables, sqlx's ledger, the database file.
const TABLES_EXIST: &str = concat!(
    "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?1, ?2, ?3, ?4, ?5)) = 5 ",
    "AND EXISTS (SELECT 1 FROM pragma_table_info(?4) WHERE name = 'ttl_s'), ",
    sqlx_ledger!(),
    ", (SELECT file FROM pragma_database_list WHERE name = 'main')"
);

const CREATE_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS {ledger} (
    version        INTEGER PRIMARY KEY,
    description    TEXT NOT NULL,
    phase          TEXT NOT NULL,
    checksum       BLOB NOT NULL,
    no_transaction BOOLEAN NOT NULL DEFAULT FALSE,
    started_at     TEXT NOT NULL,
    finished_at    TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL,
    success        BOOLEAN NOT NULL,
    error          TEXT,
    app_name       TEXT,
    app_version    TEXT,
    zdm_version    TEXT NOT NULL,
    hostname       TEXT,
    pid            INTEGER,
    db_user        TEXT,
    safety_assured TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS {history} (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    version        INTEGER NOT NULL,
    description    TEXT NOT NULL,
    phase          TEXT NOT NULL,
    checksum       BLOB NOT NULL,
    started_at     TEXT NOT NULL,
    finished_at    TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL,
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
    acquired_at REAL NOT NULL,
    expires_at  REAL NOT NULL
);
"#;

/// Current Unix time in seconds, fractional; `unixepoch('subsec')` needs SQLite 3.42.
const NOW: &str = "((julianday('now') - 2440587.5) * 86400.0)";

const INSERT_HISTORY: &str = "\
INSERT INTO {history} (version, description, phase, checksum, started_at, finished_at, duration_ms, success, error,
                       app_name, app_version, zdm_version, hostname, pid)
VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?6 / 1000.0)),
        strftime('%Y-%m-%d %H:%M:%f', 'now'), ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const UPSERT_LEDGER: &str = "\
INSERT INTO {ledger} (version, description, phase, checksum, no_transaction, started_at, finished_at, duration_ms,
                      success, error, app_name, app_version, zdm_version, hostname, pid, safety_assured)
VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', ?6 / 1000.0)),
        strftime('%Y-%m-%d %H:%M:%f', 'now'), ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
ON CONFLICT (version) DO UPDATE SET
    description = excluded.description, phase = excluded.phase, checksum = excluded.checksum,
    no_transaction = excluded.no_transaction, started_at = excluded.started_at,
    finished_at = excluded.finished_at, duration_ms = excluded.duration_ms, success = excluded.success,
    error = excluded.error, app_name = excluded.app_name, app_version = excluded.app_version,
    zdm_version = excluded.zdm_version, hostname = excluded.hostname, pid = excluded.pid,
    safety_assured = excluded.safety_assured
WHERE NOT {ledger}.success";

const LOAD_LEDGER: &str = "\
SELECT version, description, phase, checksum, success, started_at, duration_ms,
       app_name, app_version, hostname, error, safety_assured
FROM {ledger} ORDER BY version";

const LOAD_APPLIED: &str = "SELECT 1, version, description, checksum FROM {ledger} WHERE success ORDER BY version";
/// zdm's rows and sqlx's in one query (an adopted database's boot); zdm's row wins.
const LOAD_APPLIED_AND_SQLX: &str = "\
SELECT 1, version, description, checksum FROM {ledger} WHERE success
UNION ALL
SELECT 0, s.version, s.description, s.checksum FROM {sqlx_ledger} s
WHERE s.success AND NOT EXISTS (SELECT 1 FROM {ledger} z WHERE z.version = s.version AND z.success)
ORDER BY 2";
const NEWEST_SQLX: &str = "SELECT max(version) FROM {sqlx_ledger} WHERE success";

/// Which ledgers exist, read without creating anything.
const LEDGERS: &str =
    concat!("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1), ", sqlx_ledger!());
const NEWEST_ZDM: &str = "SELECT max(version) FROM {ledger} WHERE success";

const TAKE_LEASE: &str = "\
INSERT INTO {lease} (id, owner, acquired_at, expires_at) VALUES (1, ?1, {now}, {now} + ?2)
ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, acquired_at = excluded.acquired_at,
                               expires_at = excluded.expires_at
WHERE expires_at < {now} OR owner = excluded.owner
RETURNING owner";
const RENEW_LEASE: &str = "UPDATE {lease} SET expires_at = {now} + ?2 WHERE id = 1 AND owner = ?1";
const LEASE_HOLDER: &str = "SELECT owner FROM {lease} WHERE id = 1 AND expires_at >= {now}";
const RELEASE_LEASE: &str = "DELETE FROM {lease} WHERE id = 1 AND owner = ?1";

pub(super) fn sql(names: &Names, template: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(names.sql(template).replace("{now}", NOW))
}

impl super::private::Sealed for SqlitePool {}

impl Backend for SqlitePool {
    const NAME: &'static str = "SQLite";
    const DIALECT: zdm_core::Dialect = zdm_core::Dialect::Sqlite;

    /// SQLite serialises writers on the file anyway: a second connection would wait for
    /// the migration's write transaction like the pool does, so the pool is shared.
    fn side(&self, _session_url: Option<&str>) -> Self {
        self.clone()
    }

    async fn close_side(&self) {}

    async fn bootstrap(&self, names: &Names) -> Result<Found, Error> {
        let (ours, sqlx_ledger, file): (bool, bool, Option<String>) = sqlx::query_as(sql(names, TABLES_EXIST))
            .bind(&names.raw_ledger)
            .bind(&names.raw_history)
            .bind(&names.raw_lease)
            .bind(format!("{}instances", names.prefix))
            .bind(format!("{}post_pending", names.prefix))
            .fetch_one(self)
            .await
            .doing("looking for zdm's tables")?;
        if !ours {
            sqlx::raw_sql(sql(names, CREATE_TABLES)).execute(self).await.doing("creating zdm's tables")?;
            sqlx::raw_sql(sql(names, registry::CREATE)).execute(self).await.doing("creating zdm's registry")?;
            // A registry made by an older zdm lacks the per-row TTL.
            let has_ttl: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = 'ttl_s')")
                    .bind(format!("{}instances", names.prefix))
                    .fetch_one(self)
                    .await
                    .doing("upgrading zdm's registry")?;
            if !has_ttl {
                sqlx::raw_sql(sql(names, "ALTER TABLE {instances} ADD COLUMN ttl_s REAL"))
                    .execute(self)
                    .await
                    .doing("upgrading zdm's registry")?;
            }
        }
        let foreign = Foreign { sqlx: sqlx_ledger, diesel: false };
        Ok(Found { foreign, server_version: None, db_key: file.unwrap_or_default() })
    }

    async fn load_ledger(&self, names: &Names) -> Result<Vec<LedgerRow>, Error> {
        let rows = sqlx::query(sql(names, LOAD_LEDGER)).fetch_all(self).await.doing("reading the ledger")?;
        rows.iter()
            .map(|r| {
                let reasons: String = r.try_get(11)?;
                Ok(LedgerRow {
                    version: r.try_get(0)?,
                    description: r.try_get(1)?,
                    phase: Phase::from_ledger(r.try_get::<&str, _>(2)?),
                    checksum: r.try_get(3)?,
                    success: r.try_get(4)?,
                    started_at: r.try_get(5)?,
                    duration: zdm_core::time::from_millis(r.try_get(6)?),
                    app_name: r.try_get(7)?,
                    app_version: r.try_get(8)?,
                    hostname: r.try_get(9)?,
                    error: r.try_get(10)?,
                    safety_assured: reasons.lines().map(str::to_string).collect(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .doing("reading the ledger")
    }

    async fn load_applied(&self, names: &Names, foreign: Foreign) -> Result<Vec<Applied>, Error> {
        let query = if foreign.sqlx { LOAD_APPLIED_AND_SQLX } else { LOAD_APPLIED };
        let rows: Vec<(bool, i64, String, Vec<u8>)> =
            sqlx::query_as(sql(names, query)).fetch_all(self).await.doing("reading the ledger")?;
        Ok(rows
            .into_iter()
            .map(|(zdm, version, description, checksum)| Applied {
                version,
                description,
                checksum,
                by: if zdm { AppliedBy::Zdm } else { AppliedBy::Sqlx },
            })
            .collect())
    }

    async fn newest_applied(&self, names: &Names) -> Result<Option<i64>, Error> {
        let doing = "reading the newest applied migration";
        let (zdm, sqlx_ledger): (bool, bool) =
            sqlx::query_as(sql(names, LEDGERS)).bind(&names.raw_ledger).fetch_one(self).await.doing(doing)?;
        let mut newest: Option<i64> = None;
        if zdm {
            newest = newest.max(sqlx::query_scalar(sql(names, NEWEST_ZDM)).fetch_one(self).await.doing(doing)?);
        }
        if sqlx_ledger {
            newest = newest.max(sqlx::query_scalar(sql(names, NEWEST_SQLX)).fetch_one(self).await.doing(doing)?);
        }
        Ok(newest)
    }

    async fn try_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<Option<String>, Error> {
        let taken: Option<String> = sqlx::query_scalar(sql(names, TAKE_LEASE))
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .fetch_optional(self)
            .await
            .doing("taking the migration lease")?;
        match taken {
            Some(_) => Ok(None),
            None => Ok(Some(self.lease_holder(names).await?.unwrap_or_else(|| "(just released)".to_string()))),
        }
    }

    async fn renew_lease(&self, names: &Names, owner: &str, ttl: Duration) -> Result<bool, Error> {
        let done = sqlx::query(sql(names, RENEW_LEASE))
            .bind(owner)
            .bind(ttl.as_secs_f64())
            .execute(self)
            .await
            .doing("renewing the migration lease")?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease_holder(&self, names: &Names) -> Result<Option<String>, Error> {
        sqlx::query_scalar(sql(names, LEASE_HOLDER)).fetch_optional(self).await.doing("reading the migration lease")
    }

    async fn release_lease(&self, names: &Names, owner: &str) -> Result<(), Error> {
        sqlx::query(sql(names, RELEASE_LEASE))
            .bind(owner)
            .execute(self)
            .await
            .doing("releasing the migration lease")?;
        Ok(())
    }

    async fn apply(
        &self,
        names: &Names,
        step: &Step,
        ctx: &RunContext,
        _policy: &ExecPolicy,
        fence: &Fence,
        _gate: Option<&StepGuard<'_>>,
    ) -> Result<Outcome, Error> {
        let started = Instant::now();
        if step.meta.no_transaction {
            let mut conn = self.acquire().await.doing("acquiring a connection for a no_transaction migration")?;
            check_fence(&mut conn, names, fence).await?;
            if let Err((message, line)) = run_body(&mut conn, step, false).await {
                return Ok(Outcome::Failed(Failure { message, line, duration: started.elapsed(), retryable: false }));
            }
            let mut tx = sqlx::Connection::begin(&mut *conn).await.doing("writing the ledger")?;
            check_fence(&mut tx, names, fence).await?;
            let took = started.elapsed();
            record(&mut tx, names, step, ctx, took, None).await?;
            tx.commit().await.doing("writing the ledger")?;
            return Ok(Outcome::Applied { duration: took });
        }
        let mut tx = self.begin().await.doing("starting a migration transaction")?;
        match run_body(&mut tx, step, true).await {
            Ok(()) => {
                let took = started.elapsed();
                check_fence(&mut tx, names, fence).await?;
                record(&mut tx, names, step, ctx, took, None).await?;
                tx.commit().await.doing("committing a migration")?;
                Ok(Outcome::Applied { duration: took })
            }
            Err((message, line)) => {
                let _ = tx.rollback().await;
                Ok(Outcome::Failed(Failure { message, line, duration: started.elapsed(), retryable: false }))
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
        let mut tx = self.begin().await.doing("recording a failed migration")?;
        record(&mut tx, names, step, ctx, failure.duration, Some(&failure.message)).await?;
        tx.commit().await.doing("recording a failed migration")
    }
}

/// SQLite has no deferred drops (they need PostgreSQL's triggers and functions) and no
/// batched backfills: none can be scheduled, so none is ever due.
impl Drops for SqlitePool {}
impl Backfills for SqlitePool {}

/// The lease still names this process (checked in the ledger write's transaction).
async fn check_fence(conn: &mut SqliteConnection, names: &Names, fence: &Fence) -> Result<(), Error> {
    let done = sqlx::query(sql(names, RENEW_LEASE))
        .bind(&fence.owner)
        .bind(fence.ttl.as_secs_f64())
        .execute(&mut *conn)
        .await
        .doing("checking the migration lease")?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    let holder: Option<String> =
        sqlx::query_scalar(sql(names, LEASE_HOLDER)).fetch_optional(&mut *conn).await.doing("reading the lease")?;
    Err(Error::LeaseLost { holder: holder.unwrap_or_else(|| "(nobody)".to_string()) })
}

async fn run_body(conn: &mut SqliteConnection, step: &Step, whole: bool) -> Result<(), (String, Option<usize>)> {
    match step.body {
        Body::Sql(sql) if whole => {
            sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop).map_err(|e| (e.to_string(), None))
        }
        Body::Sql(sql) => {
            for stmt in zdm_core::split::statements(sql) {
                sqlx::raw_sql(stmt.text).execute(&mut *conn).await.map_err(|e| (e.to_string(), Some(stmt.line)))?;
            }
            Ok(())
        }
        Body::Rust(RustRun::Sqlite(f)) => f(conn).await.map_err(|e| (e.to_string(), None)),
        Body::Rust(other) => Err((
            format!("this Rust migration takes a {} connection but runs on a SQLite pool", other.backend_name()),
            None,
        )),
    }
}

async fn record(
    conn: &mut SqliteConnection,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    duration: Duration,
    error: Option<&str>,
) -> Result<(), Error> {
    let m = &step.meta;
    sqlx::query(sql(names, INSERT_HISTORY))
        .bind(m.version)
        .bind(m.description)
        .bind(m.phase.as_str())
        .bind(m.checksum)
        .bind(m.no_transaction)
        .bind(zdm_core::time::millis(duration))
        .bind(error.is_none())
        .bind(error)
        .bind(&ctx.app_name)
        .bind(&ctx.app_version)
        .bind(ctx.zdm_version)
        .bind(&ctx.hostname)
        .bind(ctx.pid)
        .execute(&mut *conn)
        .await
        .doing("writing the ledger history")?;
    sqlx::query(sql(names, UPSERT_LEDGER))
        .bind(m.version)
        .bind(m.description)
        .bind(m.phase.as_str())
        .bind(m.checksum)
        .bind(m.no_transaction)
        .bind(zdm_core::time::millis(duration))
        .bind(error.is_none())
        .bind(error)
        .bind(&ctx.app_name)
        .bind(&ctx.app_version)
        .bind(ctx.zdm_version)
        .bind(&ctx.hostname)
        .bind(ctx.pid)
        .bind(m.safety_assured.join("\n"))
        .execute(&mut *conn)
        .await
        .doing("writing the ledger")?;
    Ok(())
}
