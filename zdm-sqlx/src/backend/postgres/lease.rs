//! The migration lease on PostgreSQL: one row taken, renewed and released with short
//! autocommit statements, and the fence that a ledger write checks in its own transaction.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use super::simple;
use crate::error::{Doing, Error};
use crate::names::Names;
use crate::records::Fence;

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

pub(super) async fn try_lease(
    pool: &PgPool,
    names: &Names,
    owner: &str,
    ttl: Duration,
) -> Result<Option<String>, Error> {
    let taken: Option<String> = simple::sql(names.sql(TAKE_LEASE))
        .bind(owner)
        .bind(ttl.as_secs_f64())
        .scalar_optional(pool)
        .await
        .doing("taking the migration lease")?;
    match taken {
        Some(_) => Ok(None),
        // Between the two statements the holder may release: then retry soon.
        None => Ok(Some(lease_holder(pool, names).await?.unwrap_or_else(|| "(just released)".to_string()))),
    }
}

pub(super) async fn renew_lease(pool: &PgPool, names: &Names, owner: &str, ttl: Duration) -> Result<bool, Error> {
    let done = simple::sql(names.sql(RENEW_LEASE))
        .bind(owner)
        .bind(ttl.as_secs_f64())
        .execute(pool)
        .await
        .doing("renewing the migration lease")?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn lease_holder(pool: &PgPool, names: &Names) -> Result<Option<String>, Error> {
    simple::sql(names.sql(LEASE_HOLDER)).scalar_optional(pool).await.doing("reading the migration lease")
}

pub(super) async fn release_lease(pool: &PgPool, names: &Names, owner: &str) -> Result<(), Error> {
    simple::sql(names.sql(RELEASE_LEASE)).bind(owner).execute(pool).await.doing("releasing the migration lease")?;
    Ok(())
}
