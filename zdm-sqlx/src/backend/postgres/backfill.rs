//! PostgreSQL's backfill batches, four round trips each: `BEGIN` with the batch's settings,
//! the progress row locked `FOR UPDATE SKIP LOCKED`, one statement that updates a key range
//! and moves the progress row, the commit (asynchronous: see [`begin`]).

use std::time::Instant;

use sqlx::{AssertSqlSafe, PgPool, Row};

use zdm_core::backfill::batch_sql;
use zdm_core::ident::{qualified, quote_ident};
use zdm_core::retry::{is_retryable, ExecPolicy};

use super::simple;
use crate::backend::Backfills;
use crate::error::{Doing, Error};
use crate::names::Names;
use crate::records::{BackfillRow, BatchOutcome};

const LOAD: &str = "SELECT name, schema_name, table_name, key_column, scheduled_by, rows_done, batches, batch_size, \
     last_key, max_batch_ms, finished_at IS NOT NULL, started_at, updated_at, finished_at FROM {obj:backfills} \
     ORDER BY scheduled_by, scheduled_at, name";

const LOCK: &str = "SELECT schema_name, table_name, key_column, set_sql, where_sql, last_key, batch_size, \
     finished_at IS NOT NULL FROM {obj:backfills} WHERE name = $1 FOR UPDATE SKIP LOCKED";

/// The progress row moves in the batch's own statement (see `batch_sql`): `$3` is the
/// backfill's name, `$2` the batch size used. Nothing moves when no key was left.
const PROGRESS: &str = ", zdm_progress AS (UPDATE {obj:backfills} SET last_key = (SELECT hi FROM zdm_bound), \
     rows_done = rows_done + (SELECT count(*) FROM zdm_changed), batches = batches + 1, batch_size = $2, \
     max_batch_ms = greatest(max_batch_ms, (1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()))::bigint), \
     started_at = coalesce(started_at, clock_timestamp()), updated_at = clock_timestamp() \
     WHERE name = $3 AND (SELECT hi FROM zdm_bound) IS NOT NULL RETURNING 1)";

const FINISH: &str = "UPDATE {obj:backfills} SET finished_at = clock_timestamp(), updated_at = clock_timestamp(), \
     started_at = coalesce(started_at, clock_timestamp()) WHERE name = $1";

/// A batch's transaction, opened in one round trip with its settings: never queue long
/// behind another lock (live queries would queue behind the batch), and commit without
/// waiting for the WAL flush. A commit lost in a crash loses the batch and its progress
/// row together (one transaction), so the batch is simply done again: never half-done,
/// never skipped.
fn begin(policy: &ExecPolicy) -> String {
    format!(
        "BEGIN; SELECT set_config('lock_timeout', '{}ms', true), set_config('statement_timeout', '{}ms', true), \
         set_config('synchronous_commit', 'off', true)",
        policy.max_lock_timeout.as_millis(),
        policy.statement_timeout.as_millis()
    )
}

async fn load(pool: &PgPool, names: &Names) -> Result<Vec<BackfillRow>, Error> {
    let rows = simple::sql(names.sql(LOAD)).fetch_all(pool).await.doing("reading the backfills")?;
    let mut out = Vec::new();
    for r in &rows {
        let (schema, table, key): (String, String, String) = (
            r.try_get(1).doing("reading the backfills")?,
            r.try_get(2).doing("reading the backfills")?,
            r.try_get(3).doing("reading the backfills")?,
        );
        let finished: bool = r.try_get(10).doing("reading the backfills")?;
        let max_key: Option<i64> = if finished {
            None
        } else {
            let sql = format!("SELECT max({})::bigint FROM {}", quote_ident(&key), qualified(Some(&schema), &table));
            simple::sql(sql).scalar(pool).await.ok().flatten()
        };
        out.push(BackfillRow {
            name: r.try_get(0).doing("reading the backfills")?,
            table: format!("{schema}.{table}"),
            scheduled_by: r.try_get(4).doing("reading the backfills")?,
            rows_done: r.try_get(5).doing("reading the backfills")?,
            batches: r.try_get(6).doing("reading the backfills")?,
            batch_size: r.try_get(7).doing("reading the backfills")?,
            last_key: r.try_get(8).doing("reading the backfills")?,
            max_key,
            max_batch: zdm_core::time::from_millis(r.try_get(9).doing("reading the backfills")?),
            finished,
            started_at: r.try_get(11).doing("reading the backfills")?,
            updated_at: r.try_get(12).doing("reading the backfills")?,
            finished_at: r.try_get(13).doing("reading the backfills")?,
        });
    }
    Ok(out)
}

async fn batch(
    pool: &PgPool,
    names: &Names,
    name: &str,
    size: Option<i64>,
    policy: &ExecPolicy,
) -> Result<BatchOutcome, Error> {
    let mut tx = pool.begin_with(AssertSqlSafe(begin(policy))).await.doing("starting a backfill batch")?;
    let Some(row) = simple::sql(names.sql(LOCK))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .doing("locking a backfill's progress row")?
    else {
        return Ok(BatchOutcome::Busy);
    };
    let get = |i: usize| -> Result<String, Error> { row.try_get(i).doing("reading a backfill") };
    let (schema, table, key, set) = (get(0)?, get(1)?, get(2)?, get(3)?);
    let filter: Option<String> = row.try_get(4).doing("reading a backfill")?;
    let last_key: Option<i64> = row.try_get(5).doing("reading a backfill")?;
    let stored: i64 = row.try_get(6).doing("reading a backfill")?;
    let finished: bool = row.try_get(7).doing("reading a backfill")?;
    if finished {
        return Ok(BatchOutcome::Done);
    }
    let size = size.unwrap_or(stored).max(1);
    let progress = names.sql(PROGRESS);
    let sql = batch_sql(&qualified(Some(&schema), &table), &key, &set, filter.as_deref(), &progress);
    let started = Instant::now();
    let result: Result<(Option<i64>, i64), sqlx::Error> =
        simple::sql(sql).bind(last_key.unwrap_or(i64::MIN)).bind(size).bind(name).row_as(&mut *tx).await;
    let (upper, changed) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.rollback().await;
            let retryable = e.as_database_error().and_then(|d| d.code()).is_some_and(|c| is_retryable(&c));
            return Ok(BatchOutcome::Failed { message: e.to_string(), retryable });
        }
    };
    let Some(upper) = upper else {
        simple::sql(names.sql(FINISH)).bind(name).execute(&mut *tx).await.doing("finishing a backfill")?;
        tx.commit().await.doing("finishing a backfill")?;
        return Ok(BatchOutcome::Done);
    };
    crate::fault::boundary("backfill batch written, before commit");
    tx.commit().await.doing("committing a backfill batch")?;
    crate::fault::boundary("backfill batch committed");
    Ok(BatchOutcome::Batch { changed, last_key: upper, held: started.elapsed(), size })
}

impl Backfills for PgPool {
    async fn load_backfills(&self, names: &Names) -> Result<Vec<BackfillRow>, Error> {
        load(self, names).await
    }

    async fn backfill_batch(
        &self,
        names: &Names,
        name: &str,
        size: Option<i64>,
        policy: &ExecPolicy,
    ) -> Result<BatchOutcome, Error> {
        batch(self, names, name, size, policy).await
    }
}
