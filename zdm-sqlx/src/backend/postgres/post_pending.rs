//! Since when each after_deploy migration waits (PostgreSQL): noted by every build that
//! embeds it and registers, read by `status` and the lag warnings.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::simple;
use crate::error::{Doing, Error};
use crate::names::Names;
use crate::records::PostPending;

/// The table, created with the registry's (see `bootstrap`), idempotent.
pub(super) const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS {post_pending} (
    version    BIGINT PRIMARY KEY,
    first_seen TIMESTAMPTZ NOT NULL
);
"#;

const NOTE_PENDING: &str = "INSERT INTO {post_pending} (version, first_seen) \
     SELECT unnest($1::bigint[]), clock_timestamp() ON CONFLICT (version) DO NOTHING";
const PENDING_SINCE: &str =
    "SELECT version, first_seen, extract(epoch FROM clock_timestamp() - first_seen)::float8 FROM {post_pending}";

pub(super) async fn note(pool: &PgPool, names: &Names, versions: &[i64]) -> Result<(), Error> {
    simple::sql(names.sql(NOTE_PENDING))
        .bind(versions)
        .execute(pool)
        .await
        .doing("noting waiting after_deploy migrations")?;
    Ok(())
}

pub(super) async fn since(pool: &PgPool, names: &Names) -> Result<Vec<PostPending>, Error> {
    let rows: Vec<(i64, DateTime<Utc>, f64)> = simple::sql(names.sql(PENDING_SINCE))
        .rows_as(pool)
        .await
        .doing("reading since when after_deploy migrations wait")?;
    Ok(rows
        .into_iter()
        .map(|(version, since, age)| PostPending { version, since, age: zdm_core::time::from_secs_f64(age) })
        .collect())
}
