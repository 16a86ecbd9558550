//! The migration lease: one row that says who migrates and until when.
//!
//! A row, not a session advisory lock, so it works behind PgBouncer in transaction
//! pooling mode and cannot leak on a pooled connection when a migration fails. Waiters
//! poll with short autocommit statements: a waiter parked inside a transaction would make
//! the holder's `CREATE INDEX CONCURRENTLY` wait for it forever. The holder renews the
//! row in the background on a connection of its own (an app that holds every pooled
//! connection cannot starve it); if the holder dies, the row expires by itself.
//!
//! The lease fences its holder: every ledger write checks, in its own transaction, that
//! the row still names this holder (the [`Fence`]), so a holder that lost the lease
//! while stalled can never record, or commit, a migration that its successor runs too.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::backend::{cancels_in_flight, Backend};
use crate::error::Error;
use crate::names::Names;
use crate::records::Fence;

/// A held lease. Call [`Lease::release`]; if the process dies instead, it expires.
pub(crate) struct Lease<B: Backend> {
    backend: B,
    /// The lease's own connection (renewal, confirmation, release).
    side: B,
    names: Names,
    owner: String,
    ttl: Duration,
    renewer: Option<JoinHandle<()>>,
}

impl<B: Backend> Lease<B> {
    /// Waits up to `wait` for the lease, polling.
    pub(crate) async fn acquire(
        backend: &B,
        names: &Names,
        owner: String,
        ttl: Duration,
        wait: Duration,
        session_url: Option<&str>,
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
        let side = backend.side(session_url);
        let renewer = {
            let (side, names, owner) = (side.clone(), names.clone(), owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match side.renew_lease(&names, &owner, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(%owner, "the migration lease was taken over; this process stops migrating");
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "could not renew the migration lease; will retry"),
                    }
                }
            })
        };
        Ok(Lease { backend: backend.clone(), side, names: names.clone(), owner, ttl, renewer: Some(renewer) })
    }

    /// What ledger writes check in their transaction.
    pub(crate) fn fence(&self) -> Fence {
        Fence { owner: self.owner.clone(), ttl: self.ttl }
    }

    /// Confirms the lease is still ours (and extends it) before the next migration.
    pub(crate) async fn confirm(&self) -> Result<(), Error> {
        match self.side.renew_lease(&self.names, &self.owner, self.ttl).await? {
            true => Ok(()),
            false => Err(Error::LeaseLost { holder: self.side.lease_holder(&self.names).await?.unwrap_or_default() }),
        }
    }

    pub(crate) async fn release(mut self) -> Result<(), Error> {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let result = self.side.release_lease(&self.names, &self.owner).await;
        let result = match result {
            Err(_) => self.backend.release_lease(&self.names, &self.owner).await,
            ok => ok,
        };
        self.side.close_side().await;
        result
    }
}

impl<B: Backend> Drop for Lease<B> {
    fn drop(&mut self) {
        // Dropped without `release` (a panic or a cancelled future, e.g. a boot timeout):
        // stop renewing and give the lease back at once, so the next run need not wait for
        // it to expire; if even that cannot run, the row expires by itself.
        let Some(renewer) = self.renewer.take() else { return };
        renewer.abort();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (side, names, owner) = (self.side.clone(), self.names.clone(), self.owner.clone());
            let ttl = self.ttl;
            handle.spawn(async move {
                // A statement of the dropped run may still be being cancelled: wait for that
                // (at most the lease's TTL, after which it would expire anyway).
                let started = Instant::now();
                while cancels_in_flight() > 0 && started.elapsed() < ttl {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if let Err(e) = side.release_lease(&names, &owner).await {
                    tracing::warn!(error = %e, "could not release the migration lease; it expires by itself");
                }
                side.close_side().await;
            });
        }
    }
}
