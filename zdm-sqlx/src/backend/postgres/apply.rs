//! Applying one migration on PostgreSQL. A transactional migration runs in one
//! transaction with its ledger row (the lease checked there, what it removes recorded
//! there). A `no_transaction` migration runs one statement per query on a connection of
//! its own (a multi-statement query string is an implicit transaction, which
//! `CONCURRENTLY` refuses), each statement with its own timeouts and retries. A lock
//! timeout is retried on the schedule of [`ExecPolicy`], and the error names who held
//! the lock.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use zdm_core::exec::{self, ExecClass};
use zdm_core::lint::LockMode;
use zdm_core::retry::{app_blocking_locks, is_retryable, Attempt, ExecPolicy};

use super::window::{Poll, Tries};
use super::{instances, lease, ledger, removed, session, simple};
use crate::backend::{line_of_char_position, StepGuard};
use crate::error::{Doing, Error};
use crate::migration::{Body, RustRun, Step};
use crate::names::Names;
use crate::records::{Failure, Fence, Outcome, RunContext};

/// What `zdm_drop_column_later` and the Rust helpers read: the running migration and the
/// names of zdm's functions (their schema and prefix are the migrator's settings).
const SET_CONTEXT: &str = "SELECT set_config('zdm.migration_version', $1, $4), \
     set_config('zdm.fn_drop_column', $2, $4), set_config('zdm.fn_drop_table', $3, $4), \
     set_config('zdm.schema', $5, $4), set_config('zdm.prefix', $6, $4)";

const INDEX_VALIDITY: &str = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
     WHERE c.relname = $1 AND pg_table_is_visible(c.oid)";

/// Who blocks session `$1`'s lock request: the lock, the holder and what it is doing; the
/// table (as `regclass::text` prints it) and the mode asked for.
const BLOCKERS: &str = "\
SELECT format('%s on %s, held by pid %s (%s, %s, transaction open %s s): %s',
              w.mode, coalesce(w.relation::regclass::text, w.locktype), b.pid,
              coalesce(nullif(b.application_name, ''), 'no application_name'), b.state,
              coalesce(extract(epoch FROM clock_timestamp() - b.xact_start)::int, 0),
              left(regexp_replace(coalesce(b.query, ''), '\\s+', ' ', 'g'), 120)),
       w.relation::regclass::text, w.mode
FROM pg_locks w
JOIN LATERAL unnest(pg_blocking_pids($1)) AS blocking(pid) ON true
JOIN pg_stat_activity b ON b.pid = blocking.pid
WHERE w.pid = $1 AND NOT w.granted
LIMIT 1";

/// Runs one migration with its ledger row (see `Backend::apply`).
pub(super) async fn apply(
    pool: &PgPool,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    policy: &ExecPolicy,
    fence: &Fence,
    gate: Option<&StepGuard<'_>>,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    if step.meta.no_transaction {
        return apply_outside_transaction(pool, names, step, ctx, policy, fence, started).await;
    }
    let schedule = policy.schedule(&step.meta);
    let windows = policy.windows_for(&step.meta);
    let predicted = match (windows, step.body) {
        (true, Body::Sql(sql)) => app_blocking_locks(sql),
        _ => Vec::new(),
    };
    let mut tries = Tries::new(&schedule, windows, predicted.iter().flatten());
    for (n, scheduled) in schedule.iter().enumerate() {
        let attempt = &tries.attempt(scheduled);
        if let Some(blocker) = tries.wait(Poll::Pool(pool), step.meta.version).await? {
            return Ok(Outcome::Failed(no_window(blocker, n, tries.since(), started)));
        }
        let mut tx = pool.begin().await.doing("starting a migration transaction")?;
        let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, ExecClass::Normal, attempt);
        let pid: i32 = simple::sql(session::SET_TIMEOUTS)
            .bind(format!("{lock_ms}ms"))
            .bind(format!("{statement_ms}ms"))
            .bind(true)
            .scalar(&mut *tx)
            .await
            .doing("setting the migration's timeouts")?;
        set_context(&mut tx, names, step, true).await?;
        let removed = removed::resolve_removed(&mut tx, step).await?;
        if let (Some(gate), false) = (gate, removed.is_empty()) {
            // Serialised with registrations: a build that boots now either is seen here
            // or, once this commits, sees what was removed and refuses to start.
            match instances::lock_registry(&mut tx, names).await {
                Ok(()) => {
                    let live = instances::live(&mut *tx, names, gate.instance_ttl.as_secs_f64()).await?;
                    let blockers = (gate.recheck)(&live);
                    if !blockers.is_empty() {
                        let _ = tx.rollback().await;
                        return Err(Error::GateClosed {
                            version: step.meta.version,
                            blockers: zdm_core::gate::one_line(&blockers),
                        });
                    }
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    let tried = Tried {
                        n,
                        of: schedule.len(),
                        lock_timeout: attempt.lock_timeout,
                        pause: scheduled.pause_after,
                    };
                    match after_failure(pool, names, step, ctx, describe(&e, "", 1), None, tried, started).await? {
                        Next::GiveUp(failure) => return Ok(Outcome::Failed(failure)),
                        Next::Retry => continue,
                    }
                }
            }
        }
        let watch = BlockerWatch::start(pool, pid, attempt.lock_timeout);
        let result = run_in_transaction(&mut tx, step, policy, attempt).await;
        let blocker = watch.finish().await;
        let e = match result {
            Ok(()) => {
                let took = started.elapsed();
                // Fenced: a process that lost the lease rolls its migration back here.
                lease::check_fence(&mut tx, names, fence).await?;
                removed::record_removed(&mut tx, names, step.meta.version, &removed).await?;
                ledger::record(&mut tx, names, step, ctx, took, None).await?;
                announce(&mut tx, step.meta.version).await?;
                crate::fault::boundary("migration body and ledger row written, before commit");
                tx.commit().await.doing("committing a migration")?;
                crate::fault::boundary("migration committed");
                return Ok(Outcome::Applied { duration: took });
            }
            Err(e) => e,
        };
        // Roll back before recording, so the record survives and the connection is clean.
        let _ = tx.rollback().await;
        let (report, learned) = Blocker::split(blocker);
        let pause = tries.failed(learned, scheduled);
        let tried = Tried { n, of: schedule.len(), lock_timeout: attempt.lock_timeout, pause };
        match after_failure(pool, names, step, ctx, e, report, tried, started).await? {
            Next::GiveUp(failure) => return Ok(Outcome::Failed(failure)),
            Next::Retry => continue,
        }
    }
    unreachable!("the schedule has at least one attempt")
}

pub(super) async fn record_failure(
    pool: &PgPool,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    failure: &Failure,
) -> Result<(), Error> {
    let mut conn = pool.acquire().await.doing("recording a failed migration")?;
    ledger::record(&mut conn, names, step, ctx, failure.duration, Some(&failure.message)).await
}

/// A statement's failure: the server's message, the file line and the SQLSTATE.
struct StmtError {
    message: String,
    line: Option<usize>,
    sqlstate: Option<String>,
}

impl StmtError {
    fn retryable(&self) -> bool {
        self.sqlstate.as_deref().is_some_and(is_retryable)
    }

    fn other(message: String) -> StmtError {
        StmtError { message, line: None, sqlstate: None }
    }
}

/// Runs a transactional migration's body. A file of ordinary statements goes to the server
/// whole, exactly as sqlx would send it; one with `VALIDATE CONSTRAINT` (or CONCURRENTLY) is
/// sent statement by statement so each gets its own timeouts.
async fn run_in_transaction(
    conn: &mut PgConnection,
    step: &Step,
    policy: &ExecPolicy,
    attempt: &Attempt,
) -> Result<(), StmtError> {
    let sql = match step.body {
        Body::Sql(sql) => sql,
        Body::Rust(run) => return run_rust(conn, run).await,
    };
    let statements = exec::statements(sql);
    if statements.iter().all(|s| s.class == ExecClass::Normal) {
        return sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop).map_err(|e| describe(&e, sql, 1));
    }
    let mut current = ExecClass::Normal;
    for stmt in statements {
        if stmt.class != current {
            let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, stmt.class, attempt);
            set_timeouts(conn, lock_ms, statement_ms, true).await?;
            current = stmt.class;
        }
        sqlx::raw_sql(stmt.text).execute(&mut *conn).await.map_err(|e| describe(&e, stmt.text, stmt.line))?;
    }
    Ok(())
}

async fn run_rust(conn: &mut PgConnection, run: RustRun) -> Result<(), StmtError> {
    match run {
        RustRun::Postgres(f) => f(conn).await.map_err(|e| match e.downcast_ref::<sqlx::Error>() {
            Some(sqlx_error) => describe(sqlx_error, "", 1),
            None => StmtError::other(e.to_string()),
        }),
        other => Err(StmtError::other(format!(
            "this Rust migration takes a {} connection but runs on a PostgreSQL pool",
            other.backend_name()
        ))),
    }
}

async fn set_timeouts(conn: &mut PgConnection, lock_ms: u64, statement_ms: u64, local: bool) -> Result<(), StmtError> {
    simple::sql(session::SET_TIMEOUTS)
        .bind(format!("{lock_ms}ms"))
        .bind(format!("{statement_ms}ms"))
        .bind(local)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(|e| describe(&e, "", 1))
}

/// The failure of a migration whose lock window never opened within its budget (waited
/// for since `since`; the migration started at `started`).
fn no_window(blocker: String, attempts: usize, since: Instant, started: Instant) -> Failure {
    let waited = since.elapsed().as_secs_f64();
    Failure {
        message: format!(
            "gave up after waiting {waited:.1} s for its tables' locks ({attempts} attempt(s) made; the budget is \
             the lock retries' schedule): {blocker}; end that transaction or run the migration when it is done"
        ),
        line: None,
        duration: started.elapsed(),
        retryable: true,
    }
}

/// One failed attempt: its number, of how many, its lock timeout, the pause before the next.
#[derive(Clone, Copy)]
struct Tried {
    n: usize,
    of: usize,
    lock_timeout: Duration,
    pause: Duration,
}

/// What to do after a failed attempt.
enum Next {
    /// The attempt was recorded and the pause waited out: try again.
    Retry,
    /// No attempt left (or the error is not a lock wait): the migration's failure.
    GiveUp(Failure),
}

/// After a failed attempt: record it and wait before the next one, or give up.
#[allow(clippy::too_many_arguments)]
async fn after_failure(
    pool: &PgPool,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    e: StmtError,
    blocker: Option<String>,
    tried: Tried,
    started: Instant,
) -> Result<Next, Error> {
    let waited = match &blocker {
        Some(b) => format!("; it waited for {b}"),
        None => String::new(),
    };
    let retryable = e.retryable();
    let mut failure =
        Failure { message: format!("{}{waited}", e.message), line: e.line, duration: started.elapsed(), retryable };
    if retryable && tried.n + 1 < tried.of {
        let next = if tried.pause.is_zero() {
            "retrying once no long transaction holds a conflicting lock".to_string()
        } else {
            format!("retrying in {} ms", tried.pause.as_millis())
        };
        failure.message = format!(
            "attempt {} of {} gave up after lock_timeout {} ms: {}; {next}",
            tried.n + 1,
            tried.of,
            tried.lock_timeout.as_millis(),
            failure.message,
        );
        tracing::warn!(version = step.meta.version, "{}", failure.message);
        record_failure(pool, names, step, ctx, &failure).await?;
        tokio::time::sleep(tried.pause).await;
        return Ok(Next::Retry);
    }
    if retryable {
        failure.message = format!("gave up after {} attempts: {}", tried.of, failure.message);
    }
    Ok(Next::GiveUp(failure))
}

/// A `no_transaction` migration: a connection of its own (never a pooled one, so no
/// session setting can leak into the app's queries, even when the future is dropped
/// half-way), statement by statement, each with its own timeouts and retries, the lease
/// checked before each; INVALID indexes left by a failed concurrent build are dropped
/// before the next try. The ledger row is written in a fenced transaction at the end.
async fn apply_outside_transaction(
    pool: &PgPool,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    policy: &ExecPolicy,
    fence: &Fence,
    started: Instant,
) -> Result<Outcome, Error> {
    let options = session::session_options(pool, ctx.session_url.as_deref())?;
    if ctx.session_url.is_none() && session::behind_transaction_pooler(&options).await? {
        return Err(Error::NeedsSession { version: step.meta.version, source_path: step.meta.source });
    }
    let mut conn =
        PgConnection::connect_with(&options).await.doing("opening a connection for a no_transaction migration")?;
    let pid: i32 = simple::sql("SELECT pg_backend_pid()").scalar(&mut conn).await.doing("reading the backend pid")?;
    // Dropped before it finishes (a cancelled boot): cancel the statement it runs.
    let guard = session::CancelOnDrop { pool: pool.clone(), pid, armed: true };
    set_context(&mut conn, names, step, false).await?;
    // Marks this session: a statement that finds the mark gone ran on another server
    // connection (a transaction pooler the probe missed), and the migration stops.
    simple::sql("SELECT set_config('zdm.session_token', $1, false)")
        .bind(format!("{}:{pid}", fence.owner))
        .execute(&mut conn)
        .await
        .doing("marking the migration's session")?;
    let removed = removed::resolve_removed(&mut conn, step).await?;
    let result = run_outside(pool, &mut conn, pid, names, step, ctx, policy, fence, started).await;
    let outcome = match result {
        Ok(Ran::Completed) => {
            let took = started.elapsed();
            let mut tx = conn.begin().await.doing("writing the ledger")?;
            lease::check_fence(&mut tx, names, fence).await?;
            removed::record_removed(&mut tx, names, step.meta.version, &removed).await?;
            ledger::record(&mut tx, names, step, ctx, took, None).await?;
            announce(&mut tx, step.meta.version).await?;
            crate::fault::boundary("no_transaction ledger row written, before commit");
            tx.commit().await.doing("writing the ledger")?;
            crate::fault::boundary("no_transaction migration recorded");
            Ok(Outcome::Applied { duration: took })
        }
        Ok(Ran::Failed(failure)) => Ok(Outcome::Failed(failure)),
        Err(e) => Err(e),
    };
    guard.disarm();
    let _ = conn.close().await;
    outcome
}

/// How a `no_transaction` migration's statements went (the ledger row is written after).
enum Ran {
    Completed,
    Failed(Failure),
}

/// Runs a `no_transaction` migration's statements, each with its own timeouts and retries.
#[allow(clippy::too_many_arguments)]
async fn run_outside(
    pool: &PgPool,
    conn: &mut PgConnection,
    pid: i32,
    names: &Names,
    step: &Step,
    ctx: &RunContext,
    policy: &ExecPolicy,
    fence: &Fence,
    started: Instant,
) -> Result<Ran, Error> {
    let schedule = policy.schedule(&step.meta);
    let sql = match step.body {
        Body::Sql(sql) => sql,
        Body::Rust(run) => {
            lease::check_fence(conn, names, fence).await?;
            let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, ExecClass::Normal, &schedule[0]);
            let result = match set_timeouts(conn, lock_ms, statement_ms, false).await {
                Ok(()) => run_rust(conn, run).await,
                Err(e) => Err(e),
            };
            return Ok(match result {
                Ok(()) => Ran::Completed,
                Err(e) => Ran::Failed(Failure {
                    message: e.message,
                    line: None,
                    duration: started.elapsed(),
                    retryable: false,
                }),
            });
        }
    };
    let windows = policy.windows_for(&step.meta);
    let predicted = if windows { app_blocking_locks(sql) } else { Vec::new() };
    'statements: for (i, stmt) in exec::statements(sql).into_iter().enumerate() {
        // CONCURRENTLY and VALIDATE take no lock the app's queries wait for.
        let windows = windows && stmt.class == ExecClass::Normal;
        let mut tries = Tries::new(&schedule, windows, predicted.get(i).into_iter().flatten());
        for (n, scheduled) in schedule.iter().enumerate() {
            let attempt = &tries.attempt(scheduled);
            if let Some(blocker) = tries.wait(Poll::Conn(conn), step.meta.version).await? {
                let failure = no_window(blocker, n, tries.since(), started);
                return Ok(Ran::Failed(Failure { line: Some(stmt.line), ..failure }));
            }
            // Fenced per statement, after any wait: a process that lost the lease stops
            // before the statement.
            lease::check_fence(conn, names, fence).await?;
            session::same_session(conn, step, &format!("{}:{pid}", fence.owner)).await?;
            let (lock_ms, statement_ms) = policy.timeouts_ms(&step.meta, stmt.class, attempt);
            if let Err(e) = set_timeouts(conn, lock_ms, statement_ms, false).await {
                return Ok(Ran::Failed(Failure {
                    message: e.message,
                    line: Some(stmt.line),
                    duration: started.elapsed(),
                    retryable: false,
                }));
            }
            if let Some(index) = &stmt.creates_index {
                match index_validity(conn, index).await? {
                    Some(true) => {
                        tracing::info!(index = %index, "index already built and valid; skipping its CREATE INDEX CONCURRENTLY");
                        continue 'statements;
                    }
                    Some(false) => drop_invalid_index(conn, index).await?,
                    None => {}
                }
            }
            let watch = BlockerWatch::start(pool, pid, Duration::from_millis(lock_ms));
            crate::fault::boundary("before a no_transaction statement");
            let result = sqlx::raw_sql(stmt.text).execute(&mut *conn).await;
            crate::fault::boundary("after a no_transaction statement");
            let blocker = watch.finish().await;
            let Err(e) = result else { continue 'statements };
            if let Some(index) = &stmt.creates_index {
                if index_validity(conn, index).await? == Some(false) {
                    drop_invalid_index(conn, index).await?;
                }
            }
            let mut e = describe(&e, stmt.text, stmt.line);
            e.line = e.line.or(Some(stmt.line));
            let (report, learned) = Blocker::split(blocker);
            let pause = tries.failed(learned, scheduled);
            let tried = Tried { n, of: schedule.len(), lock_timeout: attempt.lock_timeout, pause };
            match after_failure(pool, names, step, ctx, e, report, tried, started).await? {
                Next::GiveUp(failure) => return Ok(Ran::Failed(failure)),
                Next::Retry => continue,
            }
        }
    }
    Ok(Ran::Completed)
}

/// Tells healing pools (`zdm::healing`) that the schema changed; delivered at commit.
async fn announce(conn: &mut PgConnection, version: i64) -> Result<(), Error> {
    simple::sql("SELECT pg_notify($1, $2)")
        .bind(crate::names::SCHEMA_CHANGED)
        .bind(version.to_string())
        .execute(&mut *conn)
        .await
        .doing("announcing the schema change")?;
    Ok(())
}

async fn set_context(conn: &mut PgConnection, names: &Names, step: &Step, local: bool) -> Result<(), Error> {
    simple::sql(SET_CONTEXT)
        .bind(step.meta.version.to_string())
        .bind(&names.fn_drop_column)
        .bind(&names.fn_drop_table)
        .bind(local)
        .bind(names.schema.as_deref().unwrap_or(""))
        .bind(&names.prefix)
        .execute(&mut *conn)
        .await
        .doing("setting the migration's context")?;
    Ok(())
}

/// `Some(valid)` when an index of that name exists.
async fn index_validity(conn: &mut PgConnection, index: &str) -> Result<Option<bool>, Error> {
    simple::sql(INDEX_VALIDITY).bind(index).scalar_optional(&mut *conn).await.doing("checking an index's validity")
}

/// A failed or interrupted `CREATE INDEX CONCURRENTLY` leaves an INVALID index that an
/// `IF NOT EXISTS` retry would silently keep: drop it (concurrently) first.
async fn drop_invalid_index(conn: &mut PgConnection, index: &str) -> Result<(), Error> {
    tracing::warn!(index = %index, "dropping the INVALID index a failed concurrent build left behind");
    let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", zdm_core::ident::quote_ident(index));
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await.doing("dropping an INVALID index")?;
    Ok(())
}

/// Who a lock request waited for: the report, and the table and mode it asked for (to
/// wait for a window before the next attempt).
struct Blocker {
    report: String,
    rel: Option<String>,
    mode: Option<LockMode>,
}

impl Blocker {
    /// The report, and the table lock waited for when both are known.
    fn split(blocker: Option<Blocker>) -> (Option<String>, Option<(String, LockMode)>) {
        match blocker {
            Some(Blocker { report, rel: Some(rel), mode: Some(mode) }) => (Some(report), Some((rel, mode))),
            Some(b) => (Some(b.report), None),
            None => (None, None),
        }
    }
}

/// Samples, on a connection of its own, which session blocks the migration's lock request,
/// so that a lock timeout can say who held the lock.
struct BlockerWatch {
    task: Option<tokio::task::JoinHandle<()>>,
    seen: std::sync::Arc<std::sync::Mutex<Option<Blocker>>>,
}

impl BlockerWatch {
    fn start(pool: &PgPool, pid: i32, lock_timeout: Duration) -> BlockerWatch {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let every = (lock_timeout * 3 / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let (pool, out) = (pool.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // Never wait for a connection: with none idle, go without the report.
                let Some(mut conn) = pool.try_acquire() else { continue };
                let row: Result<Option<(String, Option<String>, String)>, _> =
                    simple::sql(BLOCKERS).bind(pid).row_as_optional(&mut *conn).await;
                if let Ok(Some((report, rel, mode))) = row {
                    let mode = LockMode::parse(&mode);
                    *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(Blocker { report, rel, mode });
                }
            }
        });
        BlockerWatch { task: Some(task), seen }
    }

    async fn finish(mut self) -> Option<Blocker> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Drop for BlockerWatch {
    fn drop(&mut self) {
        // Dropped without `finish` (a cancelled run): the sampler must not outlive it.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The server's error with code, detail and hint, and the file line it points at.
fn describe(e: &sqlx::Error, sql: &str, first_line: usize) -> StmtError {
    let Some(pg) = e.as_database_error().and_then(|d| d.try_downcast_ref::<PgDatabaseError>()) else {
        return StmtError::other(e.to_string());
    };
    let mut message = format!("{} (SQLSTATE {})", pg.message(), pg.code());
    if let Some(detail) = pg.detail() {
        message.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = pg.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    let line = match pg.position() {
        Some(PgErrorPosition::Original(pos)) if !sql.is_empty() => Some(line_of_char_position(sql, pos, first_line)),
        _ => None,
    };
    StmtError { message, line, sqlstate: Some(pg.code().to_string()) }
}
