//! Pools that survive the next build's migrations with sqlx's statement cache on.
//!
//! sqlx caches each query's prepared statement per connection. After another session
//! changes the shape a cached statement returns (`ADD COLUMN` under `SELECT *`, a type
//! change under any column list), PostgreSQL rejects every later execution of it with
//! `cached plan must not change result type`, and sqlx never drops it (sqlx #1250). zdm
//! heals in two layers:
//!
//! 1. **Announce and recycle.** Every migration zdm applies (and every deferred drop) sends
//!    `NOTIFY zdm_schema_changed` when it commits. A pool built by [`connect_with`] listens
//!    on its own connection; from then on, a pooled connection opened before the change is
//!    closed instead of handed out (`before_acquire`), so its stale cache goes with it. A
//!    connection is replaced once per schema change, not per query.
//! 2. **Retry.** The window between the commit and the notice, and a connection that is
//!    checked out while the change commits, can still hit the error. It is raised before
//!    the statement runs, so outside a transaction it is safe to clear the connection's
//!    cache and run the query again: [`retry`] does that.
//!
//! Inside an explicit transaction the error aborts the transaction; retry the whole
//! transaction. DDL that zdm does not run (psql, another tool) is not announced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::migration::BoxFuture;

/// The channel zdm notifies after each schema change it commits.
pub const CHANNEL: &str = crate::names::SCHEMA_CHANGED;

/// When this process last learned of a schema change.
#[derive(Default)]
struct Changed(Mutex<Option<Instant>>);

impl Changed {
    fn mark(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// A connection of this age was opened before the last change.
    fn predates(&self, age: Duration) -> bool {
        let last = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|at| Instant::now().checked_sub(age).is_some_and(|opened| opened < at))
    }
}

/// Adds the recycling hook to `options`; `connect_with` also starts the listener.
fn with_hook(options: PgPoolOptions, changed: Arc<Changed>) -> PgPoolOptions {
    options.before_acquire(move |_conn, meta| {
        let stale = changed.predates(meta.age);
        Box::pin(async move {
            if stale {
                tracing::debug!(age = ?meta.age, "closing a pooled connection opened before the last schema change");
            }
            Ok(!stale)
        })
    })
}

/// Connects a pool that heals after schema changes zdm announces: like
/// `options.connect_with(connect)`, plus one listening connection of its own.
///
/// ```no_run
/// # async fn f() -> Result<(), sqlx::Error> {
/// use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
/// let url: PgConnectOptions = std::env::var("DATABASE_URL").unwrap().parse()?;
/// let pool = zdm_sqlx::statement_cache::connect_with(PgPoolOptions::new().max_connections(8), url).await?;
/// # Ok(()) }
/// ```
pub async fn connect_with(options: PgPoolOptions, connect: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    let changed = Arc::new(Changed::default());
    let pool = with_hook(options, changed.clone()).connect_with(connect.clone()).await?;
    let listen_pool =
        PgPoolOptions::new().max_connections(1).max_lifetime(None).idle_timeout(None).connect_with(connect).await?;
    let mut listener = PgListener::connect_with(&listen_pool).await?;
    listener.listen(CHANNEL).await?;
    tokio::spawn(listen(listener, pool.clone(), changed));
    Ok(pool)
}

/// [`connect_with`] from a URL.
pub async fn connect(options: PgPoolOptions, url: &str) -> Result<PgPool, sqlx::Error> {
    connect_with(options, url.parse()?).await
}

async fn listen(mut listener: PgListener, pool: PgPool, changed: Arc<Changed>) {
    while !pool.is_closed() {
        match tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await {
            Err(_) => continue,
            Ok(Ok(Some(n))) => {
                tracing::debug!(migration = n.payload(), "schema changed; pooled connections will be renewed");
                changed.mark();
            }
            // Reconnected: notices may have been missed meanwhile, so assume a change.
            Ok(Ok(None)) => changed.mark(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lost the schema-change listener; retrying");
                changed.mark();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The error PostgreSQL raises for a cached statement whose result shape changed.
pub fn is_stale_plan(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.code().as_deref() == Some("0A000") && d.message().contains("cached plan must not change result type")
    })
}

/// Runs `query` on a connection of `pool`; when it fails because a cached statement went
/// stale, clears that connection's statement cache and runs it again (twice at most). Only
/// for work outside an explicit transaction: the error is raised before the statement
/// runs, so nothing is applied twice.
///
/// ```no_run
/// # async fn f(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// let titles: Vec<String> = zdm_sqlx::statement_cache::retry(&pool, |conn| {
///     Box::pin(async move { sqlx::query_scalar("SELECT title FROM posts").fetch_all(conn).await })
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn retry<T, F>(pool: &PgPool, mut query: F) -> Result<T, sqlx::Error>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
{
    let mut conn = pool.acquire().await?;
    let mut attempt = 0;
    loop {
        match query(&mut conn).await {
            Err(e) if attempt < 2 && is_stale_plan(&e) => {
                attempt += 1;
                tracing::debug!("a cached statement went stale after a schema change; clearing and retrying");
                conn.clear_cached_statements().await?;
            }
            other => return other,
        }
    }
}
