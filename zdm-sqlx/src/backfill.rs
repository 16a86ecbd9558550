//! Running batched backfills: each batch is one short transaction that also moves the
//! backfill's progress row, so a crash, a kill or a redeploy resumes exactly after the last
//! committed batch, never re-applying or skipping a key range. Several processes may run
//! the same backfill: a batch locks the progress row (`FOR UPDATE SKIP LOCKED`), so they
//! take turns. Batch sizes follow a target batch time (default 25 ms).
//!
//! Backfills are scheduled by migrations (`zdm_backfill(..)` in SQL,
//! [`crate::recipes::backfill`] in Rust, and the rename / type-change recipes). `run_pre`
//! starts the pending ones in a background task (boot is not held up);
//! [`crate::Migrator::run_backfills`] runs them to the end (a deploy step, tests). After_deploy migrations and deferred drops scheduled
//! later wait until they finish.

use std::time::{Duration, Instant};

use zdm_core::backfill::next_batch_size;

use crate::backend::Backfills;
use crate::error::Error;
use crate::names::Names;
use crate::records::{BackfillProgress, BackfillRow, BatchOutcome};
use crate::settings::Settings;

/// Runs every unfinished backfill to its end, in scheduling order.
pub(crate) async fn run_all<B: Backfills>(s: &Settings, backend: &B, names: &Names) -> Result<Vec<BackfillRow>, Error> {
    let mut done = Vec::new();
    for row in backend.load_backfills(names).await?.into_iter().filter(|b| !b.finished) {
        done.push(run_one(s, backend, names, row).await?);
    }
    Ok(done)
}

async fn run_one<B: Backfills>(
    s: &Settings,
    backend: &B,
    names: &Names,
    row: BackfillRow,
) -> Result<BackfillRow, Error> {
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
    // The size controller lives here (the progress row stores the last size, for a resume).
    let mut size = None;
    loop {
        match backend.backfill_batch(names, &row.name, size, &s.policy).await? {
            BatchOutcome::Batch { changed, last_key, held, size: used } => {
                let next_size = next_batch_size(used, held, s.backfill_target);
                size = Some(next_size);
                failures = 0;
                progress.rows_done += changed;
                progress.batches += 1;
                progress.batch_size = next_size;
                progress.last_key = Some(last_key);
                progress.last_batch = held;
                if let Some(f) = &s.on_backfill {
                    f(&progress);
                }
                if logged.elapsed() >= Duration::from_secs(5) {
                    logged = Instant::now();
                    tracing::info!(backfill = %row.name, rows_done = progress.rows_done, last_key, max_key = ?progress.max_key, batch_size = next_size, "backfill progress");
                }
                if !s.backfill_pause.is_zero() {
                    tokio::time::sleep(s.backfill_pause).await;
                }
            }
            BatchOutcome::Busy => tokio::time::sleep(Duration::from_millis(50)).await,
            BatchOutcome::Done => break,
            BatchOutcome::Failed { message, retryable } if retryable && failures < s.policy.attempts => {
                failures += 1;
                tracing::warn!(backfill = %row.name, error = %message, "backfill batch waited too long for a lock; retrying");
                tokio::time::sleep(s.policy.first_pause * failures.min(50)).await;
            }
            BatchOutcome::Failed { message, .. } => {
                return Err(Error::BackfillFailed { name: row.name.clone(), message });
            }
        }
    }
    progress.finished = true;
    if let Some(f) = &s.on_backfill {
        f(&progress);
    }
    tracing::info!(backfill = %row.name, rows_done = progress.rows_done, batches = progress.batches, "backfill finished");
    let rows = backend.load_backfills(names).await?;
    Ok(rows.into_iter().find(|r| r.name == row.name).unwrap_or(row))
}

/// Starts the pending backfills in a background task (run_pre: boot is not held up).
pub(crate) fn spawn<B: Backfills>(s: &Settings, backend: &B, names: &Names) {
    let (s, backend, names) = (s.clone(), backend.clone(), names.clone());
    tokio::spawn(async move {
        if let Err(e) = run_all(&s, &backend, &names).await {
            tracing::error!(error = %e, "backfill stopped; the next boot or run_backfills resumes it");
        }
    });
}
