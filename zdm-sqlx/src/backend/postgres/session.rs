//! Sessions of their own on PostgreSQL: the 1-connection side pool of the lease and the
//! heartbeat, the connection a `no_transaction` migration runs on (checked for a
//! transaction-mode pooler first, since session settings and `CONCURRENTLY` need a real
//! session), and cancelling its statement when the migration's future is dropped.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::simple;
use crate::backend::CancelInFlight;
use crate::error::{Doing, Error};
use crate::migration::Step;

/// `SET [LOCAL]` of both timeouts in one round trip; also returns the backend pid.
pub(super) const SET_TIMEOUTS: &str =
    "SELECT pg_backend_pid(), set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)";

/// A 1-connection pool of its own (see `Backend::side`), connecting lazily.
pub(super) fn side(pool: &PgPool, session_url: Option<&str>) -> PgPool {
    let options = match session_options(pool, session_url) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "using the pool's own connect options for the lease and heartbeat");
            (*pool.connect_options()).clone()
        }
    };
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options)
}

/// The migration's statements still run in the session it marked.
pub(super) async fn same_session(conn: &mut PgConnection, step: &Step, token: &str) -> Result<(), Error> {
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
pub(super) fn session_options(pool: &PgPool, session_url: Option<&str>) -> Result<PgConnectOptions, Error> {
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
pub(super) async fn behind_transaction_pooler(options: &PgConnectOptions) -> Result<bool, Error> {
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
    let token = crate::records::unique_id("probe");
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
pub(super) struct CancelOnDrop {
    pub(super) pool: PgPool,
    pub(super) pid: i32,
    pub(super) armed: bool,
}

impl CancelOnDrop {
    pub(super) fn disarm(mut self) {
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
            // The lease is given back only once the statement has stopped, so no other
            // process re-runs it while it still runs.
            let guard = CancelInFlight::start();
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
