//! The lock-timeout and retry schedule every migration runs under, in the spirit of
//! GitLab's `with_lock_retries`: short lock timeouts first, growing pauses between
//! attempts, a bounded number of attempts. A lock request that waits longer than its
//! timeout gives up, so live queries never queue behind it for long; the next attempt
//! comes after a pause, when the blocking transaction has likely finished.

use std::time::Duration;

use crate::exec::ExecClass;
use crate::lint::{predict, LintConfig, LintInput, LockMode};
use crate::migration::Migration;

/// One try: how long to wait for locks, and how long to pause if it times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub lock_timeout: Duration,
    pub pause_after: Duration,
}

/// How migrations run: timeouts and retries. Defaults and why:
/// * `max_lock_timeout` 500 ms: the longest any live query can queue behind a migration's
///   lock request. Attempts start at a fifth of it and grow.
/// * `attempts` 30, pauses doubling from 200 ms up to 10 s: about four minutes of trying
///   before giving up, enough to outlast ordinary long transactions.
/// * `statement_timeout` 60 s: a safe migration's statements take milliseconds; one still
///   running after a minute scans or rewrites under a lock nobody planned for.
///   `-- zdm:statement_timeout` raises it for a known long data migration.
/// * `concurrent_lock_timeout` 30 min, no statement timeout, for `CONCURRENTLY` and
///   `VALIDATE CONSTRAINT`: their locks do not block traffic, and a short lock timeout
///   makes a concurrent index build fail on older transactions and leave an INVALID index.
/// * `lock_windows` on: a statement whose tables are known asks for its lock only when no
///   transaction older than the first attempt's timeout holds a conflicting one (waiting
///   outside any transaction meanwhile), and every attempt uses that short timeout; the
///   attempts and pauses above then bound how long it waits ([`ExecPolicy::budget`]).
///   Off: the growing timeouts and pauses alone, as GitLab's `with_lock_retries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPolicy {
    pub max_lock_timeout: Duration,
    pub attempts: u32,
    pub first_pause: Duration,
    pub max_pause: Duration,
    pub statement_timeout: Duration,
    pub concurrent_lock_timeout: Duration,
    pub lock_windows: bool,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy {
            max_lock_timeout: Duration::from_millis(500),
            attempts: 30,
            first_pause: Duration::from_millis(200),
            max_pause: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(60),
            concurrent_lock_timeout: Duration::from_secs(30 * 60),
            lock_windows: true,
        }
    }
}

impl ExecPolicy {
    /// The attempts for `m`. A `-- zdm:lock_timeout` directive fixes every attempt's lock
    /// timeout to its value; `-- zdm:lock_timeout 0` means what it means to PostgreSQL, no
    /// lock timeout at all (wait as long as it takes; [`Attempt::lock_timeout`] is zero).
    pub fn schedule(&self, m: &Migration) -> Vec<Attempt> {
        let attempts = self.attempts.max(1);
        (0..attempts)
            .map(|i| {
                let lock_timeout = match m.lock_timeout_ms {
                    Some(0) => Duration::ZERO,
                    Some(ms) => Duration::from_millis(ms),
                    // 1/5, 2/5, .. 5/5 of the maximum, then the maximum; never below 1 ms,
                    // which PostgreSQL would read as "no timeout".
                    None => (self.max_lock_timeout * (i + 1).min(5) / 5).max(Duration::from_millis(1)),
                };
                let pause_after = (self.first_pause * 2u32.saturating_pow(i.min(16))).min(self.max_pause);
                Attempt { lock_timeout, pause_after }
            })
            .collect()
    }

    /// How long a migration may wait for its locks in all: what its whole schedule of
    /// attempts and pauses would take. With lock windows, the wait for a window and the
    /// attempts share it; once it is spent, the migration gives up naming the blocker.
    pub fn budget(schedule: &[Attempt]) -> Duration {
        schedule.iter().map(|a| a.lock_timeout + a.pause_after).sum()
    }

    /// Whether `m`'s attempts wait for lock windows: on, unless turned off or the
    /// migration lifts the lock timeout (`-- zdm:lock_timeout 0` waits in the queue as it
    /// asked). With windows every attempt uses the first attempt's (short) timeout.
    pub fn windows_for(&self, m: &Migration) -> bool {
        self.lock_windows && m.lock_timeout_ms != Some(0)
    }

    /// `(lock_timeout, statement_timeout)` in milliseconds for one statement of class
    /// `class` during `attempt` (0 = no limit, as in PostgreSQL). `-- zdm:lock_timeout 0`
    /// lifts the lock timeout of every statement, the long one of `CONCURRENTLY` and
    /// `VALIDATE` included.
    pub fn timeouts_ms(&self, m: &Migration, class: ExecClass, attempt: &Attempt) -> (u64, u64) {
        match class {
            ExecClass::Concurrent | ExecClass::Validate => {
                let lock =
                    if m.lock_timeout_ms == Some(0) { 0 } else { self.concurrent_lock_timeout.as_millis() as u64 };
                (lock, m.statement_timeout_ms.unwrap_or(0))
            }
            ExecClass::Normal => (
                attempt.lock_timeout.as_millis() as u64,
                m.statement_timeout_ms.unwrap_or(self.statement_timeout.as_millis() as u64),
            ),
        }
    }
}

/// A table lock a statement will request, with the schema it named (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedLock {
    pub schema: Option<String>,
    pub table: String,
    pub mode: LockMode,
}

/// The table locks each statement of `sql` will request that would queue the app's
/// ordinary reads or writes (SHARE and stronger), one list per statement as
/// [`crate::exec::statements`] splits it (predicted by the lint, `lint::predict`). The
/// executor waits, outside any transaction, while a long transaction holds a lock that
/// conflicts with one of them, and only then asks for it with a short `lock_timeout`: a
/// lock request queues every later query of its table behind it, so it should be made
/// only when it can be granted at once. A table the statement creates is listed too and
/// simply not found; one written unqualified is looked up on the search_path.
pub fn app_blocking_locks(sql: &str) -> Vec<Vec<WantedLock>> {
    let input = LintInput {
        version: 0,
        path: "",
        sql,
        phase: crate::Phase::PreDeploy,
        no_transaction: false,
        safety_assured: &[],
    };
    predict(&[input], &LintConfig::default())
        .into_iter()
        .map(|p| {
            p.locks
                .iter()
                .filter(|l| l.mode.blocks_writes())
                .map(|l| WantedLock {
                    schema: p.schemas.iter().find(|(t, _)| *t == l.table).map(|(_, s)| s.clone()),
                    table: l.table.clone(),
                    mode: l.mode,
                })
                .collect()
        })
        .collect()
}

/// PostgreSQL error codes after which a new attempt may succeed: `lock_not_available`
/// (lock_timeout), `deadlock_detected`, `serialization_failure`.
pub fn is_retryable(sqlstate: &str) -> bool {
    matches!(sqlstate, "55P03" | "40P01" | "40001")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Phase;

    const M: Migration = Migration {
        version: 1,
        description: "d",
        source: "m.sql",
        checksum: &[],
        phase: Phase::PreDeploy,
        no_transaction: false,
        safety_assured: &[],
        lock_timeout_ms: None,
        statement_timeout_ms: None,
    };

    #[test]
    fn app_blocking_locks_per_statement() {
        let locks = app_blocking_locks(
            "ALTER TABLE items ADD COLUMN extra int;\nSELECT 1;\nCREATE INDEX CONCURRENTLY i ON items (n);\n\
             CREATE INDEX j ON \"Posts\" (n);\nUPDATE items SET n = 1 WHERE id = 1;\n\
             ALTER TABLE audit.events ADD COLUMN x int;",
        );
        let wanted = |schema: Option<&str>, table: &str, mode| WantedLock {
            schema: schema.map(Into::into),
            table: table.into(),
            mode,
        };
        assert_eq!(locks.len(), 6, "{locks:?}");
        assert_eq!(locks[0], [wanted(None, "items", LockMode::AccessExclusiveLock)]);
        assert!(locks[1].is_empty() && locks[2].is_empty() && locks[4].is_empty(), "{locks:?}");
        assert_eq!(locks[3], [wanted(None, "Posts", LockMode::ShareLock)]);
        assert_eq!(locks[5], [wanted(Some("audit"), "events", LockMode::AccessExclusiveLock)], "the schema it named");
    }

    #[test]
    fn lock_timeouts_grow_to_the_maximum_and_pauses_double_to_the_cap() {
        let s = ExecPolicy::default().schedule(&M);
        assert_eq!(s.len(), 30);
        let ms: Vec<u128> = s.iter().take(6).map(|a| a.lock_timeout.as_millis()).collect();
        assert_eq!(ms, [100, 200, 300, 400, 500, 500]);
        assert_eq!(s[0].pause_after, Duration::from_millis(200));
        assert_eq!(s[1].pause_after, Duration::from_millis(400));
        assert_eq!(s[29].pause_after, Duration::from_secs(10));
    }

    #[test]
    fn directive_fixes_the_lock_timeout() {
        let m = Migration { lock_timeout_ms: Some(2_000), ..M };
        assert!(ExecPolicy::default().schedule(&m).iter().all(|a| a.lock_timeout == Duration::from_secs(2)));
    }

    #[test]
    fn lock_timeout_zero_means_none_as_in_postgres() {
        let m = Migration { lock_timeout_ms: Some(0), ..M };
        let p = ExecPolicy::default();
        let s = p.schedule(&m);
        assert!(s.iter().all(|a| a.lock_timeout == Duration::ZERO), "not clamped to 1 ms");
        // `SET lock_timeout = '0ms'` disables the timeout, for every class of statement.
        assert_eq!(p.timeouts_ms(&m, ExecClass::Normal, &s[0]), (0, 60_000));
        assert_eq!(p.timeouts_ms(&m, ExecClass::Concurrent, &s[0]), (0, 0));
        assert_eq!(p.timeouts_ms(&m, ExecClass::Validate, &s[0]).0, 0);
        // A computed timeout never rounds down to 0 (which would mean "none").
        let tiny = ExecPolicy { max_lock_timeout: Duration::from_micros(100), ..ExecPolicy::default() };
        assert!(tiny.schedule(&M).iter().all(|a| a.lock_timeout == Duration::from_millis(1)));
        assert_eq!(tiny.timeouts_ms(&M, ExecClass::Normal, &tiny.schedule(&M)[0]).0, 1);
    }

    #[test]
    fn concurrent_statements_get_long_lock_and_no_statement_timeout() {
        let p = ExecPolicy::default();
        let a = p.schedule(&M)[0];
        assert_eq!(p.timeouts_ms(&M, ExecClass::Concurrent, &a), (1_800_000, 0));
        assert_eq!(p.timeouts_ms(&M, ExecClass::Normal, &a), (100, 60_000));
        let long = Migration { statement_timeout_ms: Some(600_000), ..M };
        assert_eq!(p.timeouts_ms(&long, ExecClass::Normal, &a).1, 600_000);
    }

    #[test]
    fn only_lock_and_serialization_errors_are_retried() {
        assert!(is_retryable("55P03") && is_retryable("40P01"));
        assert!(!is_retryable("57014") && !is_retryable("42P01"));
    }
}
