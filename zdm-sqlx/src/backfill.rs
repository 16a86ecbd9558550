//! Running batched backfills: each batch is one short transaction that also moves the
//! backfill's progress row, so a crash, a kill or a redeploy resumes exactly after the last
//! committed batch, never re-applying or skipping a key range. Several processes may run
//! the same backfill: a batch locks the progress row (`FOR UPDATE SKIP LOCKED`), so they
//! take turns. Batch sizes follow a target batch time (default 30 ms).
//!
//! Backfills are scheduled by migrations (`zdm_backfill(..)` in SQL, [`backfill`] in
//! Rust, and the rename / type-change recipes). `run_pre` starts the pending ones in a
//! background task (boot is not held up); [`crate::Migrator::run_backfills`] runs them to
//! the end (a deploy step, tests). After_deploy migrations and deferred drops scheduled
//! later wait until they finish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgConnection;

use crate::backend::Backend;
use crate::error::Error;
use crate::ledger::Names;
use crate::migrator::Migrator;

/// Schedules a backfill from a Rust-coded migration: `UPDATE table SET {set}` over every
/// row matching `filter`, in batches by the table's integer primary key. `set` and
/// `filter` are SQL, as in a migration file. Idempotent per `name`.
pub async fn backfill(
    conn: &mut PgConnection,
    name: &str,
    table: &str,
    set: &str,
    filter: Option<&str>,
) -> Result<(), sqlx::Error> {
    crate::recipes::call(conn, "backfill", &[name, table, set], filter).await
}

/// One backfill as its progress row holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRow {
    pub name: String,
    pub table: String,
    pub scheduled_by: i64,
    pub rows_done: i64,
    pub batches: i64,
    pub batch_size: i64,
    pub last_key: Option<i64>,
    /// The table's largest key when the row was read (for progress bars).
    pub max_key: Option<i64>,
    /// The longest batch so far, in milliseconds.
    pub max_batch_ms: i64,
    pub finished: bool,
}

impl BackfillRow {
    pub(crate) fn pending(&self) -> zdm_core::gate::PendingBackfill {
        zdm_core::gate::PendingBackfill {
            name: self.name.clone(),
            table: self.table.clone(),
            scheduled_by: self.scheduled_by,
            rows_done: self.rows_done,
            finished: self.finished,
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// A batch committed.
    Batch {
        keys: i64,
        changed: i64,
        last_key: i64,
        /// From the batch statement's start to its commit: how long its row locks were held.
        held: Duration,
        next_size: i64,
    },
    /// Nothing left: the backfill is marked finished.
    Done,
    /// Another process holds the progress row (it is running a batch).
    Busy,
    /// The batch failed and was rolled back; the message says why.
    Failed { message: String, retryable: bool },
}

/// Progress of one backfill, for `tracing` and [`crate::Migrator::on_backfill_progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillProgress {
    pub name: String,
    pub table: String,
    pub rows_done: i64,
    pub batches: i64,
    pub batch_size: i64,
    pub last_key: Option<i64>,
    pub max_key: Option<i64>,
    pub last_batch: Duration,
    pub finished: bool,
}

/// The progress callback's type.
pub type ProgressFn = Arc<dyn Fn(&BackfillProgress) + Send + Sync>;

/// Runs every unfinished backfill to its end, in scheduling order.
pub(crate) async fn run_all<B: Backend>(m: &Migrator, backend: &B, names: &Names) -> Result<Vec<BackfillRow>, Error> {
    let mut done = Vec::new();
    for row in backend.load_backfills(names).await?.into_iter().filter(|b| !b.finished) {
        done.push(run_one(m, backend, names, row).await?);
    }
    Ok(done)
}

async fn run_one<B: Backend>(m: &Migrator, backend: &B, names: &Names, row: BackfillRow) -> Result<BackfillRow, Error> {
    tracing::info!(backfill = %row.name, table = %row.table, rows_done = row.rows_done, "running backfill");
    let mut progress = BackfillProgress {
        name: row.name.clone(),
        table: row.table.clone(),
        rows_done: row.rows_done,
        batches: row.batches,
        batch_size: row.batch_size,
        last_key: row.last_key,
        max_key: row.max_key,
        last_batch: Duration::ZERO,
        finished: false,
    };
    let mut failures = 0u32;
    let mut logged = Instant::now();
    loop {
        match backend.backfill_batch(names, &row.name, m.backfill_target, &m.policy).await? {
            BatchOutcome::Batch { changed, last_key, held, next_size, .. } => {
                failures = 0;
                progress.rows_done += changed;
                progress.batches += 1;
                progress.batch_size = next_size;
                progress.last_key = Some(last_key);
                progress.last_batch = held;
                if let Some(f) = &m.on_backfill {
                    f(&progress);
                }
                if logged.elapsed() >= Duration::from_secs(5) {
                    logged = Instant::now();
                    tracing::info!(backfill = %row.name, rows_done = progress.rows_done, last_key, max_key = ?progress.max_key, batch_size = next_size, "backfill progress");
                }
                if !m.backfill_pause.is_zero() {
                    tokio::time::sleep(m.backfill_pause).await;
                }
            }
            BatchOutcome::Busy => tokio::time::sleep(Duration::from_millis(50)).await,
            BatchOutcome::Done => break,
            BatchOutcome::Failed { message, retryable } if retryable && failures < m.policy.attempts => {
                failures += 1;
                tracing::warn!(backfill = %row.name, error = %message, "backfill batch waited too long for a lock; retrying");
                tokio::time::sleep(m.policy.first_pause * failures.min(50)).await;
            }
            BatchOutcome::Failed { message, .. } => {
                return Err(Error::BackfillFailed { name: row.name.clone(), message });
            }
        }
    }
    progress.finished = true;
    if let Some(f) = &m.on_backfill {
        f(&progress);
    }
    tracing::info!(backfill = %row.name, rows_done = progress.rows_done, batches = progress.batches, "backfill finished");
    let rows = backend.load_backfills(names).await?;
    Ok(rows.into_iter().find(|r| r.name == row.name).unwrap_or(row))
}

/// Starts the pending backfills in a background task (run_pre: boot is not held up).
pub(crate) fn spawn<B: Backend>(m: &Migrator, backend: &B, names: &Names) {
    let (m, backend, names) = (m.clone(), backend.clone(), names.clone());
    tokio::spawn(async move {
        if let Err(e) = run_all(&m, &backend, &names).await {
            tracing::error!(error = %e, "backfill stopped; the next boot or run_backfills resumes it");
        }
    });
}
