//! Lock-safe execution on a real PostgreSQL: a migration that needs a lock a long
//! transaction holds times out and retries instead of queueing live queries behind it;
//! an INVALID index left by a failed concurrent build is cleaned up and rebuilt; the
//! statement timeout applies.

mod common;

use std::time::Duration;

use common::TestDb;
use zdm::sqlx::{self, Connection, PgConnection};

async fn history(pool: &sqlx::PgPool, version: i64) -> Vec<(bool, String)> {
    sqlx::query_as("SELECT success, coalesce(error, '') FROM zdm_migration_attempts WHERE version = $1 ORDER BY id")
        .bind(version)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// An open transaction that has read `items`: it holds ACCESS SHARE until it ends.
async fn long_reader(db: &TestDb) -> PgConnection {
    let mut conn = db.conn().await;
    sqlx::raw_sql("SET application_name = 'long_reader'; BEGIN; SELECT count(*) FROM items;")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocked_migration_times_out_and_retries_while_live_queries_go_on() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/lockq").lock_retries(100, Duration::from_millis(50));
    m.clone().up_to(1).run_pre(&pool).await.unwrap();

    let mut reader = long_reader(&db).await;
    let (m2, pool2) = (m.clone(), pool.clone());
    let migration = tokio::spawn(async move { m2.run_pre(&pool2).await });

    // While the migration waits for ACCESS EXCLUSIVE, the app's queries still run: a
    // migration queued in the lock queue would block this probe until the reader ends.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let probe_pool = db.pool(1).await;
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM items WHERE id < 10").fetch_one(&probe_pool),
    )
    .await;
    assert_eq!(probe.expect("the probe was not blocked behind the migration").unwrap(), 9);
    assert!(!migration.is_finished(), "the migration is still waiting for the reader");

    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    let report = migration.await.unwrap().unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2]);

    let attempts = history(&pool, 2).await;
    let (last_ok, _) = attempts.last().unwrap();
    assert!(*last_ok, "{attempts:?}");
    let retried: Vec<&String> = attempts.iter().filter(|(ok, _)| !ok).map(|(_, e)| e).collect();
    assert!(!retried.is_empty(), "at least one attempt timed out");
    assert!(retried[0].contains("attempt 1 of 100 gave up after lock_timeout 100 ms"), "{}", retried[0]);
    assert!(retried[0].contains("55P03"), "{}", retried[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_retries_name_the_lock_and_the_session_holding_it() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/lockq").lock_retries(3, Duration::from_millis(20));
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    let reader = long_reader(&db).await;

    let err = m.run_pre(&pool).await.unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("AccessExclusiveLock on items"), "{err}");
    assert!(err.contains("long_reader") && err.contains("idle in transaction"), "{err}");
    assert_eq!(history(&pool, 2).await.len(), 3, "every attempt is in the history");
    reader.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_concurrent_index_is_cleaned_up_and_the_rerun_builds_it() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/cic");
    let err = m.run_pre(&pool).await.unwrap_err().to_string();
    assert!(err.contains("could not create unique index"), "{err}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = 'items_n_key'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the INVALID index the failed build left was dropped");

    // An interrupted build outside zdm leaves an INVALID index; `IF NOT EXISTS` alone would
    // keep it forever.
    sqlx::query("DELETE FROM items WHERE id > 500").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO items (id, n) VALUES (501, 1)").execute(&pool).await.unwrap();
    let mut conn = db.conn().await;
    assert!(sqlx::raw_sql("CREATE UNIQUE INDEX CONCURRENTLY items_n_key ON items (n)")
        .execute(&mut conn)
        .await
        .is_err());
    let valid: bool = sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_n_key'::regclass")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!valid, "an INVALID leftover, as after a crash");

    sqlx::query("DELETE FROM items WHERE id = 501").execute(&pool).await.unwrap();
    m.run_pre(&pool).await.unwrap();
    let valid: bool = sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_n_key'::regclass")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(valid, "rebuilt, valid");
    // Running again is a no-op.
    assert!(m.run_pre(&pool).await.unwrap().applied.is_empty());
}

#[tokio::test]
async fn the_statement_timeout_applies_and_is_not_retried() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let err = zdm::migrator!("tests/migrations/stmt_timeout").run_pre(&pool).await.unwrap_err().to_string();
    assert!(err.contains("canceling statement due to statement timeout") && err.contains("57014"), "{err}");
    assert_eq!(history(&pool, 1).await.len(), 1, "a statement timeout is not retried");
}
