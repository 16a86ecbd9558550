//! Batched backfills, the pure half: the SQL of one batch and how the batch size follows
//! the time each batch holds its row locks. The executor (`zdm-sqlx`) runs the batches,
//! each in its own short transaction together with its progress row, so a crash or a
//! redeploy resumes exactly after the last committed batch.

use std::time::Duration;

use crate::ident::quote_ident;

/// The target is every batch under 50 ms: a batch's row locks hold back writers of those
/// rows that long. Measured on 1,000,000 rows (`bench_backfill`): a 40 ms target gave
/// batches up to 63–80 ms (commit and WAL flush times vary), 30 ms kept every batch under
/// 50 ms and was also the faster overall.
pub const TARGET_BATCH: Duration = Duration::from_millis(30);
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
/// takes the next `$2` keys after `$1` in key order, applies `SET {set}` to those that
/// match `filter`, and returns the batch's last key (NULL when none is left), how many
/// keys it covered and how many rows it changed. `set` and `filter` are SQL written by
/// the migration's author, like the rest of a migration.
pub fn batch_sql(table: &str, key: &str, set: &str, filter: Option<&str>) -> String {
    let key = quote_ident(key);
    let filter = filter.map(|f| format!(" AND ({f})")).unwrap_or_default();
    format!(
        "WITH zdm_batch AS (SELECT {key} AS zdm_key FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT $2), \
         zdm_changed AS (UPDATE {table} SET {set} FROM zdm_batch WHERE {table}.{key} = zdm_batch.zdm_key{filter} RETURNING 1) \
         SELECT max(zdm_key)::bigint, count(*)::bigint, (SELECT count(*) FROM zdm_changed)::bigint FROM zdm_batch"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_follows_the_target_time() {
        assert_eq!(next_batch_size(1000, Duration::from_millis(30), TARGET_BATCH), 1000);
        assert_eq!(next_batch_size(1000, Duration::from_millis(10), TARGET_BATCH), 1250, "grows by a quarter at most");
        assert_eq!(next_batch_size(1000, Duration::from_millis(50), TARGET_BATCH), 600);
        assert_eq!(next_batch_size(1000, Duration::from_secs(5), TARGET_BATCH), 500, "at most halves");
        assert_eq!(next_batch_size(12, Duration::from_secs(5), TARGET_BATCH), MIN_BATCH);
        assert_eq!(next_batch_size(MAX_BATCH, Duration::from_millis(1), TARGET_BATCH), MAX_BATCH);
    }

    #[test]
    fn the_batch_statement_quotes_the_key_and_keeps_the_filter() {
        let sql = batch_sql("\"public\".\"posts\"", "id", "headline = title", Some("headline IS DISTINCT FROM title"));
        assert!(sql
            .contains("SELECT \"id\" AS zdm_key FROM \"public\".\"posts\" WHERE \"id\" > $1 ORDER BY \"id\" LIMIT $2"));
        assert!(sql.contains("SET headline = title FROM zdm_batch"));
        assert!(sql.contains("AND (headline IS DISTINCT FROM title)"));
        assert!(!batch_sql("t", "id", "a = b", None).contains("AND ("));
    }
}
