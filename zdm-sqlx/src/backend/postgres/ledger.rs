//! zdm's ledger on PostgreSQL: one row per migration (its latest attempt) plus an
//! append-only history of every attempt, written in one round trip; and the other tools'
//! ledgers (sqlx's, diesel's) whose rows count as applied when adopting.

use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row};
use zdm_core::plan::{Applied, AppliedBy};
use zdm_core::Phase;

use super::simple;
use crate::error::{Doing, Error};
use crate::migration::Step;
use crate::names::Names;
use crate::records::{Foreign, LedgerRow, RunContext};

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
       started_at, duration_ms,
       app_name, app_version, hostname, error, safety_assured
FROM {ledger} ORDER BY version";

const LOAD_APPLIED: &str = "SELECT true, version, description, checksum FROM {ledger} WHERE success";
/// zdm's rows and sqlx's in one round trip (an adopted database's boot); zdm's row wins.
const LOAD_APPLIED_AND_SQLX: &str = "\
SELECT true, version, description, checksum FROM {ledger} WHERE success
UNION ALL
SELECT false, s.version, s.description, s.checksum FROM {sqlx_ledger} s WHERE s.success";
/// zdm's rows and, when its ledger exists, sqlx's: the boot reads what counts as applied in
/// the same round trip as its look-up, before it knows whether sqlx's ledger is there.
/// Merged by [`merge`] (zdm's row wins).
pub(super) const CREATE_APPLIED_FN: &str = r#"
CREATE OR REPLACE FUNCTION {obj:applied}(p_sqlx text)
RETURNS TABLE (o_zdm boolean, o_version bigint, o_description text, o_checksum bytea)
LANGUAGE plpgsql STABLE AS $zdm$
BEGIN
    RETURN QUERY SELECT true, l.version::bigint, l.description::text, l.checksum::bytea FROM {ledger} l WHERE l.success;
    IF to_regclass(p_sqlx) IS NOT NULL THEN
        RETURN QUERY EXECUTE format(
            'SELECT false, s.version::bigint, s.description::text, s.checksum::bytea FROM %s s WHERE s.success',
            to_regclass(p_sqlx));
    END IF;
END
$zdm$;
"#;
/// Calls [`CREATE_APPLIED_FN`].
pub(super) const LOAD_APPLIED_FN: &str =
    "SELECT o_zdm, o_version, o_description, o_checksum FROM {obj:applied}({sqlx_ledger_text})";

const LOAD_DIESEL: &str = "SELECT version::text FROM __diesel_schema_migrations ORDER BY version";

pub(super) async fn load_ledger(pool: &PgPool, names: &Names) -> Result<Vec<LedgerRow>, Error> {
    let rows = simple::sql(names.sql(LOAD_LEDGER)).fetch_all(pool).await.doing("reading the ledger")?;
    rows.iter()
        .map(|r| {
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
                safety_assured: r.try_get(11)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .doing("reading the ledger")
}

/// What counts as applied (see `Backend::load_applied`), ordered by version.
pub(super) async fn load_applied(pool: &PgPool, names: &Names, foreign: Foreign) -> Result<Vec<Applied>, Error> {
    let query = if foreign.sqlx { LOAD_APPLIED_AND_SQLX } else { LOAD_APPLIED };
    let rows: Vec<(bool, i64, String, Vec<u8>)> =
        simple::sql(names.sql(query)).rows_as(pool).await.doing("reading the ledger")?;
    let mut out = merge(rows);
    if foreign.diesel {
        add_diesel(pool, &mut out).await?;
    }
    Ok(out)
}

/// Adds diesel's rows to `out` (zdm's and sqlx's win), ordered by version.
pub(super) async fn add_diesel(pool: &PgPool, out: &mut Vec<Applied>) -> Result<(), Error> {
    for row in diesel_applied(pool).await? {
        if !out.iter().any(|a| a.version == row.version) {
            out.push(row);
        }
    }
    out.sort_by_key(|a| a.version);
    Ok(())
}

/// zdm's and sqlx's rows, as `(by zdm, version, description, checksum)`, into what counts
/// as applied: zdm's row wins where both ledgers have a version.
pub(super) fn merge(rows: Vec<(bool, i64, String, Vec<u8>)>) -> Vec<Applied> {
    let ours: std::collections::HashSet<i64> = rows.iter().filter(|r| r.0).map(|r| r.1).collect();
    let mut out: Vec<Applied> = rows
        .into_iter()
        .filter(|(zdm, version, ..)| *zdm || !ours.contains(version))
        .map(|(zdm, version, description, checksum)| Applied {
            version,
            description,
            checksum,
            by: if zdm { AppliedBy::Zdm } else { AppliedBy::Sqlx },
        })
        .collect();
    out.sort_by_key(|a| a.version);
    out
}

/// diesel's rows: it keeps the folder's version as written (`2024-01-01-000000`); zdm
/// reads its digits (a version without any is skipped, as it was never zdm's to run).
async fn diesel_applied(pool: &PgPool) -> Result<Vec<Applied>, Error> {
    let rows: Vec<String> =
        simple::sql(LOAD_DIESEL).scalars(pool).await.doing("reading diesel's __diesel_schema_migrations")?;
    Ok(rows
        .into_iter()
        .filter_map(|v| {
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            let version = digits.parse().ok()?;
            Some(Applied { version, description: String::new(), checksum: Vec::new(), by: AppliedBy::Diesel })
        })
        .collect())
}

/// Whether sqlx's and diesel's ledgers exist: the one place that knows their names, used
/// by the bootstrap (in its single look-up) and by [`newest_applied`].
macro_rules! foreign_ledgers {
    () => {
        "to_regclass({sqlx_ledger_text}) IS NOT NULL, to_regclass('__diesel_schema_migrations') IS NOT NULL"
    };
}
pub(super) use foreign_ledgers;

/// Which ledgers exist, read without creating anything.
const LEDGERS: &str = concat!("SELECT to_regclass($1) IS NOT NULL, ", foreign_ledgers!());
const NEWEST_ZDM: &str = "SELECT max(version) FROM {ledger} WHERE success";
const NEWEST_SQLX: &str = "SELECT max(version) FROM {sqlx_ledger} WHERE success";

pub(super) async fn newest_applied(pool: &PgPool, names: &Names) -> Result<Option<i64>, Error> {
    let doing = "reading the newest applied migration";
    let (zdm, sqlx, diesel): (bool, bool, bool) =
        simple::sql(names.sql(LEDGERS)).bind(&names.ledger).row_as(pool).await.doing(doing)?;
    let mut newest: Option<i64> = None;
    if zdm {
        newest = newest.max(simple::sql(names.sql(NEWEST_ZDM)).scalar(pool).await.doing(doing)?);
    }
    if sqlx {
        newest = newest.max(simple::sql(names.sql(NEWEST_SQLX)).scalar(pool).await.doing(doing)?);
    }
    if diesel {
        newest = newest.max(diesel_applied(pool).await?.iter().map(|a| a.version).max());
    }
    Ok(newest)
}

pub(super) async fn record(
    conn: &mut PgConnection,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    duration: Duration,
    error: Option<&str>,
) -> Result<(), Error> {
    let reasons: Vec<&str> = step.meta.safety_assured.to_vec();
    simple::sql(names.sql(RECORD_ATTEMPT))
        .bind(step.meta.version)
        .bind(step.meta.description)
        .bind(step.meta.phase.as_str())
        .bind(step.meta.checksum)
        .bind(step.meta.no_transaction)
        .bind(zdm_core::time::millis(duration))
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
