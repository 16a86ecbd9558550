//! Many processes booting at once: one migrates, the others wait and find the work done.
//! The set includes a `CREATE INDEX CONCURRENTLY`, which would wait forever for a waiter
//! parked inside a transaction; zdm's waiters poll outside any transaction.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use zdm::sqlx;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_migrators_apply_each_migration_exactly_once() {
    let db = TestDb::new().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        // A pool per "process", so no two migrators share a connection.
        let pool = db.pool(2).await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let m = zdm::migrator!("tests/migrations/concurrent")
                .app("app", format!("instance-{i}"))
                .lock_wait(Duration::from_secs(60));
            barrier.wait().await;
            m.run_pre(&pool).await
        }));
    }
    let mut applied_by_runs = Vec::new();
    for t in tasks {
        let report = t.await.unwrap().expect("every migrator succeeds");
        applied_by_runs.extend(report.applied.iter().map(|a| a.version));
    }
    applied_by_runs.sort();
    assert_eq!(applied_by_runs, [1, 2, 3, 4, 5], "each migration applied by exactly one process");

    let pool = db.pool(1).await;
    let counts: Vec<(i64, i64)> =
        sqlx::query_as("SELECT version, count(*) FROM applied_log GROUP BY version ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(counts, [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
    let valid: bool = sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_n_idx'::regclass")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(valid, "the concurrent index is valid");
    let lease: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_lease").fetch_one(&pool).await.unwrap();
    assert_eq!(lease, 0, "the lease was released");
}

#[tokio::test]
async fn a_waiter_gives_up_after_lock_wait_naming_the_holder() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/concurrent").lock_wait(Duration::from_millis(300));
    // Bootstrap zdm's tables, then pretend a live process holds the lease.
    m.status(&pool).await.unwrap();
    sqlx::query("INSERT INTO zdm_lease (id, owner, acquired_at, expires_at) VALUES (1, 'other-host:42', now(), now() + interval '1 minute')")
        .execute(&pool)
        .await
        .unwrap();
    let err = m.run_pre(&pool).await.unwrap_err();
    assert!(matches!(err, zdm::Error::LockTimeout { ref holder, .. } if holder == "other-host:42"), "{err}");
    assert!(err.to_string().contains("other-host:42"));

    // An expired lease (its holder died) is taken over.
    sqlx::query("UPDATE zdm_lease SET expires_at = now() - interval '1 second'").execute(&pool).await.unwrap();
    assert_eq!(m.run_pre(&pool).await.unwrap().applied.len(), 5);
}

#[tokio::test]
async fn run_futures_are_send_and_can_be_spawned() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/phases");
    let (m2, pool2) = (m.clone(), pool.clone());
    let report = tokio::spawn(async move { m2.run_pre(&pool2).await }).await.unwrap().unwrap();
    assert_eq!(report.applied.len(), 2);
    let (m2, pool2) = (m.clone(), pool.clone());
    tokio::spawn(async move { m2.run_post(&pool2).await }).await.unwrap().unwrap();
    let (m2, pool2) = (m.clone(), pool.clone());
    tokio::spawn(async move { m2.run_all(&pool2).await }).await.unwrap().unwrap();
    let status = tokio::spawn(async move { m.status(&pool).await }).await.unwrap().unwrap();
    assert_eq!(status.applied().count(), 4);
}
