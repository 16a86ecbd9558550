//! Batched backfills, the pure half: the SQL of one batch and how the batch size follows
//! the time each batch holds its row locks. The executor (`zdm-sqlx`) runs the batches,
//! each in its own short transaction together with its progress row, so a crash or a
//! redeploy resumes exactly after the last committed batch.

use std::time::Duration;

use crate::ident::quote_ident;

/// The target is every batch under 50 ms: a batch's row locks hold back writers of those
/// rows that long. Measured on 1,000,000 rows (`bench_backfill`, three runs each, with the
/// range batches and asynchronous commit): a 30 ms target put 4–6 of ~400 batches at
/// 50–64 ms (a new WAL segment, autovacuum of the table being filled), 25 ms kept the
/// median run's batches under 50 ms at the same rate (87–89% of one `UPDATE`'s). The
/// earlier 40 ms and 30 ms measurements were made with a synchronous commit per batch.
pub const TARGET_BATCH: Duration = Duration::from_millis(25);
pub const MIN_BATCH: i64 = 10;
pub const MAX_BATCH: i64 = 100_000;
pub const FIRST_BATCH: i64 = 1_000;

/// The next batch size: scaled toward `target` by the last batch's time. It grows by at
/// most a quarter a step (a fast batch on warm cache must not make the next one overshoot
/// the lock-time budget) and shrinks by at most half (one slow batch — a checkpoint, a lock
/// wait — must not collapse it).
pub fn next_batch_size(current: i64, took: Duration, target: Duration) -> i64 {
    let took = took.as_secs_f64().max(0.000_1);
    let scaled = (current as f64 * target.as_secs_f64() / took).round() as i64;
    scaled.clamp(current / 2, current + current / 4).clamp(MIN_BATCH, MAX_BATCH)
}

/// One batch over `table` (quoted, possibly schema-qualified) by its integer key `key`:
/// the batch's upper key is found first on the key's index (the `$2`-th key after `$1`,
/// or the largest when fewer are left), then one range `UPDATE` applies `SET {set}` to
/// the rows in `($1, upper]` that match `filter` — a single index range scan, cheaper than
/// joining a list of keys back to the table. `progress`, when given, is one more
/// data-modifying CTE written by the executor (`, zdm_progress AS (UPDATE ..)`) that can
/// read `zdm_bound.hi` and `zdm_changed`, so the progress row moves in the same statement.
/// Returns the batch's upper key (NULL when no key is left after `$1`) and how many rows
/// changed. `set` and `filter` are SQL written by the migration's author, like the rest of
/// a migration.
pub fn batch_sql(table: &str, key: &str, set: &str, filter: Option<&str>, progress: &str) -> String {
    let key = quote_ident(key);
    let filter = filter.map(|f| format!(" AND ({f})")).unwrap_or_default();
    format!(
        "WITH zdm_bound AS (SELECT coalesce(\
             (SELECT {key} FROM {table} WHERE {key} > $1 ORDER BY {key} OFFSET $2 - 1 LIMIT 1), \
             (SELECT max({key}) FROM {table} WHERE {key} > $1))::bigint AS hi), \
         zdm_changed AS (UPDATE {table} SET {set} WHERE {key} > $1 AND {key} <= (SELECT hi FROM zdm_bound){filter} \
             RETURNING 1){progress} \
         SELECT (SELECT hi FROM zdm_bound), (SELECT count(*) FROM zdm_changed)::bigint"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_follows_the_target_time() {
        assert_eq!(next_batch_size(1000, Duration::from_millis(25), TARGET_BATCH), 1000);
        assert_eq!(next_batch_size(1000, Duration::from_millis(10), TARGET_BATCH), 1250, "grows by a quarter at most");
        assert_eq!(next_batch_size(1000, Duration::from_millis(50), TARGET_BATCH), 500);
        assert_eq!(next_batch_size(1000, Duration::from_secs(5), TARGET_BATCH), 500, "at most halves");
        assert_eq!(next_batch_size(12, Duration::from_secs(5), TARGET_BATCH), MIN_BATCH);
        assert_eq!(next_batch_size(MAX_BATCH, Duration::from_millis(1), TARGET_BATCH), MAX_BATCH);
    }

    #[test]
    fn the_batch_statement_quotes_the_key_and_keeps_the_filter() {
        let sql = batch_sql(
            "\"public\".\"posts\"",
            "id",
            "headline = title",
            Some("headline IS DISTINCT FROM title"),
            ", zdm_progress AS (SELECT 1)",
        );
        assert!(sql.contains("SELECT \"id\" FROM \"public\".\"posts\" WHERE \"id\" > $1 ORDER BY \"id\" OFFSET $2 - 1"));
        assert!(sql.contains("UPDATE \"public\".\"posts\" SET headline = title WHERE \"id\" > $1 AND \"id\" <= "));
        assert!(sql.contains("AND (headline IS DISTINCT FROM title)"));
        assert!(sql.contains("RETURNING 1), zdm_progress AS (SELECT 1) SELECT"));
        assert!(!batch_sql("t", "id", "a = b", None, "").contains("AND ("));
    }
}
