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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool, Row};
use zdm_core::ident::qualified;
use zdm_core::lint::LockMode;
use zdm_core::retry::{Attempt, ExecPolicy, WantedLock};

use super::simple;
use crate::error::{Doing, Error};

/// Every transaction holding a lock that conflicts with a wanted one, oldest first: its
/// virtual transaction id, how old it is in ms (NULL when this role may not see it: the
/// session of another role, without `pg_read_all_stats`), whether it is a prepared
/// transaction (no backend), and a description as the lock-timeout reports describe
/// blockers. `$1`, `$2`, `$3`: parallel arrays of (table as `to_regclass` reads it, the
/// mode zdm wants, a mode that conflicts with it).
const HELD: &str = "\
WITH wanted AS (
    SELECT to_regclass(w.rel) AS rel, w.mode, w.held
    FROM unnest($1::text[], $2::text[], $3::text[]) AS w(rel, mode, held)
)
SELECT l.virtualtransaction,
       (1000 * extract(epoch FROM clock_timestamp() - a.xact_start))::bigint,
       l.pid IS NULL,
       format('%s on %s conflicts with %s held by %s (%s, %s, transaction open %s): %s',
              w.mode, l.relation::regclass::text, l.mode,
              coalesce('pid ' || l.pid, 'a prepared transaction (see pg_prepared_xacts)'),
              coalesce(nullif(a.application_name, ''), nullif(a.backend_type, 'client backend'), 'no application_name'),
              coalesce(a.state, CASE WHEN l.pid IS NULL THEN 'prepared' ELSE 'state not visible to this role' END),
              coalesce(extract(epoch FROM clock_timestamp() - a.xact_start)::int || ' s', 'for how long not visible to this role'),
              left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120))
FROM wanted w
JOIN pg_locks l ON l.locktype = 'relation' AND l.granted AND l.relation = w.rel AND l.mode = w.held
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.pid IS DISTINCT FROM pg_backend_pid()
ORDER BY a.xact_start NULLS FIRST";

/// The locks a migration (or one statement of it) will ask for, as (table, mode) pairs.
#[derive(Debug, Default, Clone)]
struct Wanted {
    locks: Vec<(String, LockMode)>,
    /// When each holder whose age this role may not read was first seen (by virtual
    /// transaction id), across the waits of one statement.
    first_seen: HashMap<String, Instant>,
}

impl Wanted {
    /// From the lint's prediction: each table with the schema its statement named, or as
    /// written (found on the search_path of the session that polls).
    fn predicted<'a>(locks: impl IntoIterator<Item = &'a WantedLock>) -> Wanted {
        let mut w = Wanted::default();
        for l in locks {
            w.add(qualified(l.schema.as_deref(), &l.table), l.mode);
        }
        w
    }

    /// A lock a failed attempt waited for: `rel` as `regclass::text` prints it.
    fn learn(&mut self, rel: String, mode: LockMode) {
        self.add(rel, mode);
    }

    fn add(&mut self, rel: String, mode: LockMode) {
        match self.locks.iter_mut().find(|(r, _)| *r == rel) {
            Some((_, m)) => *m = (*m).max(mode),
            None => self.locks.push((rel, mode)),
        }
    }

    fn is_empty(&self) -> bool {
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

/// The attempts of one lock-taking unit (a transactional migration, or one statement of a
/// `no_transaction` one) on the retry schedule, with or without lock windows: which
/// timeout each attempt uses, the wait before it, and the pause after a failure.
pub(super) struct Tries<'s> {
    schedule: &'s [Attempt],
    windows: bool,
    wanted: Wanted,
    since: Instant,
    /// Attempts that failed although their window was open (a holder younger than the
    /// short timeout that then held on): each raises the next attempt's timeout along the
    /// schedule, so a table whose transactions all last a little longer still gets its turn.
    unlucky: usize,
}

impl<'s> Tries<'s> {
    /// `predicted`: the locks the unit's statements will ask for (used with windows on).
    pub(super) fn new<'a>(
        schedule: &'s [Attempt],
        windows: bool,
        predicted: impl IntoIterator<Item = &'a WantedLock>,
    ) -> Tries<'s> {
        let wanted = if windows { Wanted::predicted(predicted) } else { Wanted::default() };
        Tries { schedule, windows, wanted, since: Instant::now(), unlucky: 0 }
    }

    /// When the unit's first attempt was due (its budget counts from there).
    pub(super) fn since(&self) -> Instant {
        self.since
    }

    /// The attempt to make in the schedule's slot `scheduled`: with windows, the short
    /// timeout (raised by the unlucky attempts so far).
    pub(super) fn attempt(&self, scheduled: &Attempt) -> Attempt {
        if self.windows {
            Attempt { lock_timeout: self.schedule[self.unlucky].lock_timeout, ..*scheduled }
        } else {
            *scheduled
        }
    }

    /// With windows, waits for one before the next attempt: `Ok(Some(blocker))` when the
    /// budget (the schedule's length) ran out first.
    pub(super) async fn wait(&mut self, on: Poll<'_>, version: i64) -> Result<Option<String>, Error> {
        if !self.windows {
            return Ok(None);
        }
        let deadline = self.since + ExecPolicy::budget(self.schedule);
        wait(on, &mut self.wanted, self.schedule[0].lock_timeout, deadline, version).await
    }

    /// After a failed attempt that waited for `learned` (a table as `regclass::text` prints
    /// it, and the mode asked for), if the sampler saw it: the pause before the next. With
    /// windows, none (the next wait is the pause) when the table lock is now known; anything
    /// else (a row lock, a deadlock, a wait the sampler missed) gets the schedule's pause,
    /// as a window cannot tell when it is over.
    pub(super) fn failed(&mut self, learned: Option<(String, LockMode)>, scheduled: &Attempt) -> Duration {
        match learned {
            Some((rel, mode)) if self.windows => {
                self.wanted.learn(rel, mode);
                self.unlucky += 1;
                Duration::ZERO
            }
            _ => scheduled.pause_after,
        }
    }
}

/// Where the polls run: the pool (a transactional migration holds no connection while it
/// waits) or the `no_transaction` migration's own session, outside any transaction.
pub(super) enum Poll<'a> {
    Pool(&'a PgPool),
    Conn(&'a mut PgConnection),
}

/// Waits until no transaction older than `young` holds a lock conflicting with `wanted`,
/// polling every `young` (50 to 250 ms: reading `pg_locks` briefly takes the lock
/// manager's partition locks, so not too often). A holder this role may not see the age
/// of (another role's session) is aged by observation: it counts once it has been seen
/// holding the lock for longer than `young`. `Ok(None)`: the window is open, try now with a
/// `lock_timeout` of `young`. `Ok(Some(blocker))`: still held at `deadline`.
async fn wait(
    mut on: Poll<'_>,
    wanted: &mut Wanted,
    young: Duration,
    deadline: Instant,
    version: i64,
) -> Result<Option<String>, Error> {
    if wanted.is_empty() {
        return Ok(None);
    }
    let (rels, modes, held) = wanted.arrays();
    let every = young.clamp(Duration::from_millis(50), Duration::from_millis(250));
    let since = Instant::now();
    let mut told = None::<Instant>;
    loop {
        let q = simple::sql(HELD).bind(&rels).bind(&modes).bind(&held);
        let rows = match &mut on {
            Poll::Pool(pool) => q.fetch_all(*pool).await,
            Poll::Conn(conn) => q.fetch_all(&mut **conn).await,
        }
        .doing("looking for long transactions holding the migration's tables")?;
        let now = Instant::now();
        let mut blocker = None;
        let mut holding = Vec::new();
        for row in &rows {
            let vxid: Option<String> = row.try_get(0).doing("reading a lock holder")?;
            let age_ms: Option<i64> = row.try_get(1).doing("reading a lock holder")?;
            let prepared: bool = row.try_get(2).doing("reading a lock holder")?;
            let vxid = vxid.unwrap_or_default();
            let seen = *wanted.first_seen.entry(vxid.clone()).or_insert(now);
            holding.push(vxid);
            let old = match age_ms {
                Some(ms) => ms > young.as_millis() as i64,
                None => prepared || now.duration_since(seen) > young,
            };
            if old && blocker.is_none() {
                blocker = Some(row.try_get::<String, _>(3).doing("reading a lock holder")?);
            }
        }
        wanted.first_seen.retain(|vxid, _| holding.contains(vxid));
        let Some(blocker) = blocker else {
            if told.is_some() {
                tracing::info!(version, waited_ms = since.elapsed().as_millis() as u64, "lock window open; trying now");
            }
            return Ok(None);
        };
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
