//! The migration lease: one row that says who migrates and until when.
//!
//! A row, not a session advisory lock, so it works behind PgBouncer in transaction
//! pooling mode and cannot leak on a pooled connection when a migration fails. Waiters
//! poll with short autocommit statements: a waiter parked inside a transaction would make
//! the holder's `CREATE INDEX CONCURRENTLY` wait for it forever. The holder renews the
//! row in the background; if the holder dies, the row expires by itself.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::error::Error;
use crate::ledger::Names;

/// A held lease. Call [`Lease::release`]; if the process dies instead, it expires.
pub(crate) struct Lease<B: Backend> {
    backend: B,
    names: Names,
    owner: String,
    renewer: JoinHandle<()>,
}

/// A name for this holder that no other process shares.
pub(crate) fn owner_id(hostname: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{hostname}:{}:{:08x}", std::process::id(), h.finish() as u32)
}

impl<B: Backend> Lease<B> {
    /// Waits up to `wait` for the lease, polling.
    pub(crate) async fn acquire(
        backend: &B,
        names: &Names,
        owner: String,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease<B>, Error> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match backend.try_lease(names, &owner, ttl).await? {
                None => break,
                Some(holder) => {
                    if started.elapsed() >= wait {
                        return Err(Error::LockTimeout { holder, waited: started.elapsed() });
                    }
                    tracing::debug!(%holder, "waiting for the migration lease");
                    tokio::time::sleep(pause.min(wait.saturating_sub(started.elapsed()))).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
        let renewer = {
            let (backend, names, owner) = (backend.clone(), names.clone(), owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    if let Err(e) = backend.renew_lease(&names, &owner, ttl).await {
                        tracing::warn!(error = %e, "could not renew the migration lease; will retry");
                    }
                }
            })
        };
        Ok(Lease { backend: backend.clone(), names: names.clone(), owner, renewer })
    }

    /// Confirms the lease is still ours (and extends it) before the next migration.
    pub(crate) async fn confirm(&self, ttl: Duration) -> Result<(), Error> {
        match self.backend.renew_lease(&self.names, &self.owner, ttl).await? {
            true => Ok(()),
            false => {
                Err(Error::LeaseLost { holder: self.backend.lease_holder(&self.names).await?.unwrap_or_default() })
            }
        }
    }

    pub(crate) async fn release(self) -> Result<(), Error> {
        self.renewer.abort();
        self.backend.release_lease(&self.names, &self.owner).await
    }
}

impl<B: Backend> Drop for Lease<B> {
    fn drop(&mut self) {
        // Dropped without `release` (a panic or a cancelled future): stop renewing so the
        // row expires and another process can take over.
        self.renewer.abort();
    }
}
