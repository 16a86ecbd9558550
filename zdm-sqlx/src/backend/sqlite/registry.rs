//! SQLite's half of the instance registry. SQLite apps are usually one process, but the
//! gate works the same way; deferred drops need PostgreSQL's triggers and functions, so
//! SQLite has no drops table and none can be scheduled.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Row, SqlitePool};
use zdm_core::gate;
use zdm_core::model::ModelInfo;

use crate::backend::Registry;
use crate::error::{Doing, Error};
use crate::names::Names;
use crate::records::{InstanceRecord, PostPending};

pub(super) const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS {instances} (
    id           TEXT PRIMARY KEY,
    app_name     TEXT NOT NULL,
    app_version  TEXT NOT NULL,
    hostname     TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    zdm_version  TEXT NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    embedded     TEXT NOT NULL,
    mapped       TEXT NOT NULL,
    ignored      TEXT NOT NULL,
    ttl_s        REAL
);
CREATE TABLE IF NOT EXISTS {post_pending} (
    version    INTEGER PRIMARY KEY,
    first_seen REAL NOT NULL
);
"#;

const PRUNE: &str = "DELETE FROM {instances} WHERE heartbeat_at < {now} - max(?2, coalesce(ttl_s, 0)) AND id <> ?1";
const UPSERT: &str = "\
INSERT INTO {instances} (id, app_name, app_version, hostname, pid, zdm_version, started_at, heartbeat_at,
                         embedded, mapped, ignored, ttl_s)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, {now}, {now}, ?7, ?8, ?9, ?10)
ON CONFLICT (id) DO UPDATE SET app_name = excluded.app_name, app_version = excluded.app_version,
    heartbeat_at = excluded.heartbeat_at, embedded = excluded.embedded, mapped = excluded.mapped,
    ignored = excluded.ignored, ttl_s = excluded.ttl_s";
const BEAT: &str = "UPDATE {instances} SET heartbeat_at = {now} WHERE id = ?1";
const DEREGISTER: &str = "DELETE FROM {instances} WHERE id = ?1";
// Times are stored as Unix seconds (REAL, fractional); sqlx decodes a REAL `DateTime` as
// a Julian day number (SQLite's own convention), so they are read through `julianday()`.
const LIVE: &str = "\
SELECT id, app_name, app_version, hostname, pid, julianday(started_at, 'unixepoch'), {now} - heartbeat_at,
       embedded, mapped, ignored
FROM {instances} WHERE heartbeat_at >= {now} - max(?1, coalesce(ttl_s, 0)) ORDER BY started_at";
const NOTE_PENDING: &str = "INSERT INTO {post_pending} (version, first_seen) VALUES (?1, {now}) ON CONFLICT DO NOTHING";
const PENDING_SINCE: &str =
    "SELECT version, julianday(first_seen, 'unixepoch'), {now} - first_seen FROM {post_pending}";

/// Lists are stored one item per line (SQLite has no arrays).
fn lines(items: &[String]) -> String {
    items.join("\n")
}

fn unlines(text: &str) -> Vec<String> {
    text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

async fn upsert_instance(pool: &SqlitePool, names: &Names, r: &InstanceRecord, ttl_s: f64) -> Result<Vec<i64>, Error> {
    let sql = |t: &str| super::sql(names, t);
    let mut tx = pool.begin().await.doing("registering this instance")?;
    sqlx::query(sql(PRUNE)).bind(&r.id).bind(ttl_s).execute(&mut *tx).await.doing("pruning gone instances")?;
    let embedded: Vec<String> = r.embedded.iter().map(ToString::to_string).collect();
    sqlx::query(sql(UPSERT))
        .bind(&r.id)
        .bind(&r.app_name)
        .bind(&r.app_version)
        .bind(&r.hostname)
        .bind(r.pid)
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(lines(&embedded))
        .bind(lines(&r.mapped))
        .bind(lines(&r.ignored))
        .bind(ttl_s)
        .execute(&mut *tx)
        .await
        .doing("registering this instance")?;
    tx.commit().await.doing("registering this instance")?;
    // SQLite has no deferred drops: nothing read-only to lift.
    Ok(Vec::new())
}

async fn beat(pool: &SqlitePool, names: &Names, id: &str) -> Result<bool, Error> {
    let done = sqlx::query(super::sql(names, BEAT)).bind(id).execute(pool).await.doing("sending a heartbeat")?;
    Ok(done.rows_affected() == 1)
}

async fn deregister(pool: &SqlitePool, names: &Names, id: &str) -> Result<(), Error> {
    sqlx::query(super::sql(names, DEREGISTER)).bind(id).execute(pool).await.doing("deregistering")?;
    Ok(())
}

async fn live(pool: &SqlitePool, names: &Names, ttl_s: f64) -> Result<Vec<gate::Instance>, Error> {
    let rows = sqlx::query(super::sql(names, LIVE))
        .bind(ttl_s)
        .fetch_all(pool)
        .await
        .doing("reading the instance registry")?;
    rows.iter()
        .map(|r| {
            let embedded: String = r.try_get(7)?;
            let mapped: String = r.try_get(8)?;
            let ignored: String = r.try_get(9)?;
            Ok(gate::Instance {
                id: r.try_get(0)?,
                app_name: r.try_get(1)?,
                app_version: r.try_get(2)?,
                hostname: r.try_get(3)?,
                pid: r.try_get(4)?,
                started_at: r.try_get(5)?,
                heartbeat_age: zdm_core::time::from_secs_f64(r.try_get(6)?),
                embedded: unlines(&embedded).iter().filter_map(|v| v.parse().ok()).collect(),
                mapped: unlines(&mapped).iter().filter_map(|m| gate::Mapped::decode(m)).collect(),
                ignored: unlines(&ignored),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .doing("reading the instance registry")
}

async fn note_pending(pool: &SqlitePool, names: &Names, versions: &[i64]) -> Result<(), Error> {
    for v in versions {
        sqlx::query(super::sql(names, NOTE_PENDING))
            .bind(v)
            .execute(pool)
            .await
            .doing("noting waiting after_deploy migrations")?;
    }
    Ok(())
}

async fn pending_since(pool: &SqlitePool, names: &Names) -> Result<Vec<PostPending>, Error> {
    let rows: Vec<(i64, DateTime<Utc>, f64)> = sqlx::query_as(super::sql(names, PENDING_SINCE))
        .fetch_all(pool)
        .await
        .doing("reading since when after_deploy migrations wait")?;
    Ok(rows
        .into_iter()
        .map(|(version, since, age)| PostPending { version, since, age: zdm_core::time::from_secs_f64(age) })
        .collect())
}

impl Registry for SqlitePool {
    async fn upsert_instance(
        &self,
        names: &Names,
        record: &InstanceRecord,
        ttl: Duration,
        _models: &[ModelInfo],
    ) -> Result<Vec<i64>, Error> {
        upsert_instance(self, names, record, ttl.as_secs_f64()).await
    }

    async fn app_had_models(&self, _names: &Names, _app: &str) -> Result<bool, Error> {
        // No deferred drops on SQLite: nothing a lost model registry could let through.
        Ok(false)
    }

    async fn beat(&self, names: &Names, id: &str, _prune: Option<Duration>) -> Result<bool, Error> {
        beat(self, names, id).await
    }

    async fn deregister(&self, names: &Names, id: &str) -> Result<(), Error> {
        deregister(self, names, id).await
    }

    async fn live_instances(&self, names: &Names, ttl: Duration) -> Result<Vec<gate::Instance>, Error> {
        live(self, names, ttl.as_secs_f64()).await
    }

    async fn note_post_pending(&self, names: &Names, versions: &[i64]) -> Result<(), Error> {
        note_pending(self, names, versions).await
    }

    async fn post_pending_since(&self, names: &Names) -> Result<Vec<PostPending>, Error> {
        pending_since(self, names).await
    }
}
