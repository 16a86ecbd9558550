//! PostgreSQL's half of the instance registry: which processes are live, with the
//! builds they run and the columns their structs map; since when after_deploy work waits;
//! and the lock that serialises a registration with the steps that remove things.

use std::time::Duration;

use sqlx::PgPool;
use zdm_core::gate;
use zdm_core::model::ModelInfo;

use super::{drops, instances, post_pending, simple};
use crate::backend::Registry;
use crate::error::{Doing, Error};
use crate::names::Names;
use crate::records::{InstanceRecord, PostPending};

/// The registry's tables, created with the ledger (see `bootstrap`), idempotent.
pub(super) const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS {instances} (
    id           TEXT PRIMARY KEY,
    app_name     TEXT NOT NULL,
    app_version  TEXT NOT NULL,
    hostname     TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    zdm_version  TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    embedded     BIGINT[] NOT NULL,
    mapped       TEXT[] NOT NULL,
    ignored      TEXT[] NOT NULL,
    ttl_s        DOUBLE PRECISION
);
-- Each row counts as live for its own build's TTL too (older zdm versions lack it).
ALTER TABLE {instances} ADD COLUMN IF NOT EXISTS ttl_s DOUBLE PRECISION;
-- Which apps ever registered model structs: a build of one that registers none probably
-- lost them to the linker, and the gate fails closed for it.
CREATE TABLE IF NOT EXISTS {obj:app_models} (
    app_name TEXT PRIMARY KEY,
    models   INTEGER NOT NULL,
    seen_at  TIMESTAMPTZ NOT NULL
);
"#;

/// A registration is not worth a disk flush at boot: losing it in a crash of the server
/// only means the next heartbeat writes it again, hence `synchronous_commit` off.
const REGISTER: &str = "\
WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)),
registered AS (
    INSERT INTO {instances} (id, app_name, app_version, hostname, pid, zdm_version, started_at, heartbeat_at,
                             embedded, mapped, ignored, ttl_s)
    SELECT $1, $2, $3, $4, $5, $6, clock_timestamp(), clock_timestamp(), $7::bigint[], $8::text[], $9::text[], $10
    FROM relaxed
    ON CONFLICT (id) DO UPDATE SET app_name = EXCLUDED.app_name, app_version = EXCLUDED.app_version,
        heartbeat_at = EXCLUDED.heartbeat_at, embedded = EXCLUDED.embedded, mapped = EXCLUDED.mapped,
        ignored = EXCLUDED.ignored, ttl_s = EXCLUDED.ttl_s
)
-- Read-only drops scheduled by a migration the registering build lacks.
SELECT id FROM {drops} WHERE state = 'pending' AND read_only_at IS NOT NULL
    AND NOT (scheduled_by = ANY($7::bigint[])) ORDER BY id";

const NOTE_MODELS: &str =
    "INSERT INTO {obj:app_models} (app_name, models, seen_at) VALUES ($1, $2, clock_timestamp()) \
     ON CONFLICT (app_name) DO UPDATE SET models = EXCLUDED.models, seen_at = EXCLUDED.seen_at";
const HAD_MODELS: &str = "SELECT EXISTS (SELECT 1 FROM {obj:app_models} WHERE app_name = $1 AND models > 0)";
/// A heartbeat that is asked to (`$3`) also prunes the rows whose TTL ran out (every reader
/// filters them anyway): housekeeping off the boot's path, where a scan of the table would
/// cost each boot, and at most once per TTL.
const BEAT: &str = "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)), \
     pruned AS (DELETE FROM {instances} WHERE id IN (SELECT id FROM {instances} WHERE heartbeat_at < clock_timestamp() \
         - make_interval(secs => greatest($2, coalesce(ttl_s, 0))) AND id <> $1 AND $3 FOR UPDATE SKIP LOCKED)) \
     UPDATE {instances} SET heartbeat_at = clock_timestamp() FROM relaxed WHERE id = $1";
const DEREGISTER: &str = "DELETE FROM {instances} WHERE id = $1";
/// One statement: prune, upsert, and list the read-only drops this build predates (the
/// registration of a build without model structs, also sent with the boot's reads).
pub(super) fn register_sql(names: &Names, r: &InstanceRecord, ttl_s: f64) -> simple::Sql {
    simple::sql(names.sql(REGISTER))
        .bind(&r.id)
        .bind(&r.app_name)
        .bind(&r.app_version)
        .bind(&r.hostname)
        .bind(r.pid)
        .bind(env!("CARGO_PKG_VERSION"))
        .bind(&r.embedded)
        .bind(&r.mapped)
        .bind(&r.ignored)
        .bind(ttl_s)
}

/// Registers in one transaction with the registry lock: upsert, note that the app has
/// models, refuse a build that maps something already dropped, and list the read-only
/// drops this build predates.
async fn upsert_instance(
    pool: &PgPool,
    names: &Names,
    r: &InstanceRecord,
    ttl_s: f64,
    models: &[ModelInfo],
) -> Result<Vec<i64>, Error> {
    let register = register_sql(names, r, ttl_s);
    if models.is_empty() {
        // Nothing of this build can be refused for what was dropped, so the registry lock
        // would change no outcome: the statement alone (the common boot of a build without
        // model structs). A drop that commits meanwhile either sees this row or does not;
        // either way this build could not have told.
        return register.scalars(pool).await.doing("registering this instance");
    }
    let mut tx = pool.begin().await.doing("registering this instance")?;
    instances::lock_registry(&mut tx, names).await.doing("registering this instance")?;
    let predated: Vec<i64> = register.scalars(&mut *tx).await.doing("registering this instance")?;
    simple::sql(names.sql(NOTE_MODELS))
        .bind(&r.app_name)
        .bind(models.len() as i32)
        .execute(&mut *tx)
        .await
        .doing("registering this instance's models")?;
    // Serialised with the drops: a build that maps a dropped column would fail on its first
    // query, so it must not start; a drop that committed while this build booted is seen
    // here (a statement after the lock), and the registration is rolled back.
    let drops = drops::load_drops(&mut *tx, names).await?;
    crate::error::refuse_boot(&drops, models)?;
    tx.commit().await.doing("registering this instance")?;
    Ok(predated)
}

async fn app_had_models(pool: &PgPool, names: &Names, app: &str) -> Result<bool, Error> {
    simple::sql(names.sql(HAD_MODELS)).bind(app).scalar(pool).await.doing("reading which apps registered models")
}

async fn beat(pool: &PgPool, names: &Names, id: &str, prune: Option<Duration>) -> Result<bool, Error> {
    let done = simple::sql(names.sql(BEAT))
        .bind(id)
        .bind(prune.unwrap_or_default().as_secs_f64())
        .bind(prune.is_some())
        .execute(pool)
        .await
        .doing("sending a heartbeat")?;
    Ok(done.rows_affected() == 1)
}

async fn deregister(pool: &PgPool, names: &Names, id: &str) -> Result<(), Error> {
    simple::sql(names.sql(DEREGISTER)).bind(id).execute(pool).await.doing("deregistering")?;
    Ok(())
}

impl Registry for PgPool {
    async fn upsert_instance(
        &self,
        names: &Names,
        record: &InstanceRecord,
        ttl: Duration,
        models: &[ModelInfo],
    ) -> Result<Vec<i64>, Error> {
        upsert_instance(self, names, record, ttl.as_secs_f64(), models).await
    }

    async fn app_had_models(&self, names: &Names, app: &str) -> Result<bool, Error> {
        app_had_models(self, names, app).await
    }

    async fn beat(&self, names: &Names, id: &str, prune: Option<Duration>) -> Result<bool, Error> {
        beat(self, names, id, prune).await
    }

    async fn deregister(&self, names: &Names, id: &str) -> Result<(), Error> {
        deregister(self, names, id).await
    }

    async fn live_instances(&self, names: &Names, ttl: Duration) -> Result<Vec<gate::Instance>, Error> {
        instances::live(self, names, ttl.as_secs_f64()).await
    }

    async fn note_post_pending(&self, names: &Names, versions: &[i64]) -> Result<(), Error> {
        post_pending::note(self, names, versions).await
    }

    async fn post_pending_since(&self, names: &Names) -> Result<Vec<PostPending>, Error> {
        post_pending::since(self, names).await
    }
}
