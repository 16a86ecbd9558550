//! Lock windows: a migration asks for a table lock only when it can be granted at once.
//!
//! A lock request that waits sits in the table's lock queue, and every later query of the
//! table queues behind it, even one whose own lock does not conflict with the holder's.
//! Retrying with a growing `lock_timeout` therefore stalls the app for each attempt's full
//! timeout while a long transaction holds the table. Instead, zdm polls `pg_locks` outside
//! any transaction and waits while a transaction *older than the short timeout* holds a
//! conflicting lock (on a busy table short requests hold ACCESS SHARE or ROW EXCLUSIVE at
//! every instant; they end within the timeout and are not blockers), then tries with the
//! short timeout. The tables come from the lint's lock prediction
//! ([`zdm_core::retry::app_blocking_locks`]) and from the blocker a failed attempt
//! waited for (a Rust-coded migration, a table in another schema).

use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool, Row};
use zdm_core::ident::quote_ident;
use zdm_core::lint::{LockMode, TableLock};

use super::simple;
use crate::error::{Doing, Error};

/// The oldest transaction holding a lock that conflicts with a wanted one, described as the
/// lock-timeout reports describe blockers. `$1`, `$2`, `$3`: parallel arrays of (table as
/// `to_regclass` reads it, the mode zdm wants, a mode that conflicts with it); `$4`: how
/// old a transaction must be to count. A prepared transaction (no backend) always counts.
const HELD: &str = "\
WITH wanted AS (
    SELECT to_regclass(w.rel) AS rel, w.mode, w.held
    FROM unnest($1::text[], $2::text[], $3::text[]) AS w(rel, mode, held)
)
SELECT format('%s on %s conflicts with %s held by %s (%s, %s, transaction open %s s): %s',
              w.mode, l.relation::regclass::text, l.mode,
              coalesce('pid ' || l.pid, 'a prepared transaction'),
              coalesce(nullif(a.application_name, ''), 'no application_name'), coalesce(a.state, 'prepared'),
              coalesce(extract(epoch FROM clock_timestamp() - a.xact_start)::int, 0),
              left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120))
FROM wanted w
JOIN pg_locks l ON l.locktype = 'relation' AND l.granted AND l.relation = w.rel AND l.mode = w.held
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.pid IS DISTINCT FROM pg_backend_pid()
  AND (a.xact_start IS NULL OR a.xact_start < clock_timestamp() - $4::interval)
ORDER BY a.xact_start NULLS FIRST
LIMIT 1";

/// The locks a migration (or one statement of it) will ask for, as (table, mode) pairs.
#[derive(Debug, Default, Clone)]
pub(super) struct Wanted {
    locks: Vec<(String, LockMode)>,
}

impl Wanted {
    /// From the lint's prediction (tables named unqualified, as the lint names them).
    pub(super) fn predicted<'a>(locks: impl IntoIterator<Item = &'a TableLock>) -> Wanted {
        let mut w = Wanted::default();
        for l in locks {
            w.add(quote_ident(&l.table), l.mode);
        }
        w
    }

    /// A lock a failed attempt waited for: `rel` as `regclass::text` prints it.
    pub(super) fn learn(&mut self, rel: String, mode: LockMode) {
        self.add(rel, mode);
    }

    fn add(&mut self, rel: String, mode: LockMode) {
        match self.locks.iter_mut().find(|(r, _)| *r == rel) {
            Some((_, m)) => *m = (*m).max(mode),
            None => self.locks.push((rel, mode)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    /// The three parallel arrays of [`HELD`]: every (table, wanted mode, conflicting mode).
    fn arrays(&self) -> (Vec<String>, Vec<String>, Vec<String>) {
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for (rel, mode) in &self.locks {
            for held in LockMode::ALL.into_iter().filter(|h| mode.conflicts_with(*h)) {
                out.0.push(rel.clone());
                out.1.push(mode.as_str().to_string());
                out.2.push(held.as_str().to_string());
            }
        }
        out
    }
}

/// Where the polls run: the pool (a transactional migration holds no connection while it
/// waits) or the `no_transaction` migration's own session, outside any transaction.
pub(super) enum Poll<'a> {
    Pool(&'a PgPool),
    Conn(&'a mut PgConnection),
}

/// Waits until no transaction older than `young` holds a lock conflicting with `wanted`,
/// polling every `young / 4` (10 to 100 ms). `Ok(None)`: the window is open, try now with
/// a `lock_timeout` of `young`. `Ok(Some(blocker))`: still held at `deadline`.
pub(super) async fn wait(
    mut on: Poll<'_>,
    wanted: &Wanted,
    young: Duration,
    deadline: Instant,
    version: i64,
) -> Result<Option<String>, Error> {
    if wanted.is_empty() {
        return Ok(None);
    }
    let (rels, modes, held) = wanted.arrays();
    let every = (young / 4).clamp(Duration::from_millis(10), Duration::from_millis(100));
    let since = Instant::now();
    let mut told = None::<Instant>;
    loop {
        let q = simple::sql(HELD).bind(&rels).bind(&modes).bind(&held).bind(format!("{} ms", young.as_millis()));
        let row = match &mut on {
            Poll::Pool(pool) => q.fetch_optional(*pool).await,
            Poll::Conn(conn) => q.fetch_optional(&mut **conn).await,
        }
        .doing("looking for long transactions holding the migration's tables")?;
        let Some(row) = row else {
            if told.is_some() {
                tracing::info!(version, waited_ms = since.elapsed().as_millis() as u64, "lock window open; trying now");
            }
            return Ok(None);
        };
        let blocker: String = row.try_get(0).doing("reading a lock holder")?;
        if Instant::now() >= deadline {
            return Ok(Some(blocker));
        }
        if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            told = Some(Instant::now());
            tracing::warn!(version, waited_s = since.elapsed().as_secs(), blocker = %blocker,
                "waiting, outside any transaction, for a long transaction to release the table before asking for its lock");
        }
        tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
