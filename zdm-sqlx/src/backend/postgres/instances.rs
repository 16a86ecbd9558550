//! The part of PostgreSQL's registry that every gated write reads: the live instances
//! and the registry's transaction lock. Registration (`registry`), the steps of deferred
//! drops (`drops`) and after_deploy migrations that remove something (`apply`) all take
//! the lock first, so a build that boots meanwhile is either seen or sees the change.

use sqlx::{PgConnection, Row};
use zdm_core::gate;

use super::simple;
use crate::error::{Doing, Error};
use crate::names::Names;

/// Registration and the steps of deferred drops take this transaction lock, so a build
/// that boots while a drop runs is either seen by the drop's re-check or sees the drop.
const REGISTRY_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext($1))";

/// Takes the registry's transaction lock (under the transaction's lock timeout).
pub(super) async fn lock_registry(tx: &mut PgConnection, names: &Names) -> Result<(), sqlx::Error> {
    simple::sql(REGISTRY_LOCK).bind(registry_lock_key(names)).execute(&mut *tx).await.map(drop)
}

fn registry_lock_key(names: &Names) -> String {
    format!("zdm registry {}", names.instances)
}

const LIVE: &str = "\
SELECT id, app_name, app_version, hostname, pid, started_at,
       extract(epoch FROM clock_timestamp() - heartbeat_at)::float8, embedded, mapped, ignored
FROM {instances}
WHERE heartbeat_at >= clock_timestamp() - make_interval(secs => greatest($1, coalesce(ttl_s, 0)))
ORDER BY started_at";

pub(super) async fn live<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    names: &Names,
    ttl_s: f64,
) -> Result<Vec<gate::Instance>, Error> {
    let rows =
        simple::sql(names.sql(LIVE)).bind(ttl_s).fetch_all(executor).await.doing("reading the instance registry")?;
    rows.iter()
        .map(|r| {
            let mapped: Vec<String> = r.try_get(8)?;
            Ok(gate::Instance {
                id: r.try_get(0)?,
                app_name: r.try_get(1)?,
                app_version: r.try_get(2)?,
                hostname: r.try_get(3)?,
                pid: r.try_get(4)?,
                started_at: r.try_get(5)?,
                heartbeat_age: zdm_core::time::from_secs_f64(r.try_get(6)?),
                embedded: r.try_get(7)?,
                mapped: mapped.iter().filter_map(|m| gate::Mapped::decode(m)).collect(),
                ignored: r.try_get(9)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .doing("reading the instance registry")
}
