//! Lock-safe execution on a real PostgreSQL: a migration that needs a lock a long
//! transaction holds waits, outside any transaction, for a lock window (or, with windows
//! off, times out and retries) instead of queueing live queries behind it; an INVALID
//! index left by a failed concurrent build is cleaned up and rebuilt; the statement
//! timeout applies.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestDb;
use zdm::sqlx::{self, Connection, PgConnection};

async fn history(pool: &sqlx::PgPool, version: i64) -> Vec<(bool, String)> {
    sqlx::query_as("SELECT success, coalesce(error, '') FROM zdm_migration_attempts WHERE version = $1 ORDER BY id")
        .bind(version)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// An open transaction that has read `items`: it holds ACCESS SHARE until it ends. It is
/// returned 250 ms old: a transaction younger than the first attempt's lock timeout
/// (100 ms) is taken for one of the app's short ones, so a migration starting then makes
/// one short attempt before it knows better.
async fn long_reader(db: &TestDb) -> PgConnection {
    let mut conn = db.conn().await;
    sqlx::raw_sql("SET application_name = 'long_reader'; BEGIN; SELECT count(*) FROM items;")
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    conn
}

/// Short reads and writes of `items` in a loop (a busy table: some transaction holds a lock
/// on it at almost every instant); returns the stop flag and the slowest request in µs.
fn busy_app(pool: &sqlx::PgPool) -> (Arc<AtomicBool>, Arc<AtomicU64>, tokio::task::JoinHandle<u64>) {
    let (stop, slowest) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let (pool, flag, worst) = (pool.clone(), stop.clone(), slowest.clone());
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            let at = Instant::now();
            sqlx::query("UPDATE items SET n = n + 1 WHERE id = $1")
                .bind(1 + (n % 500) as i64)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM items WHERE id < 5").fetch_one(&pool).await.unwrap();
            worst.fetch_max(at.elapsed().as_micros() as u64, Ordering::Relaxed);
            n += 1;
        }
        n
    });
    (stop, slowest, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocked_migration_waits_for_a_lock_window_and_queues_nobody() {
    let db = TestDb::new().await;
    let pool = db.pool(6).await;
    let m = zdm::migrator!("tests/migrations/lockq");
    m.clone().up_to(1).run_pre(&pool).await.unwrap();

    let mut reader = long_reader(&db).await;
    let (m2, pool2) = (m.clone(), pool.clone());
    let migration = tokio::spawn(async move { m2.run_pre(&pool2).await });
    // The app keeps reading and writing the table throughout: it never waits behind the
    // migration's lock request (none is made while the reader holds the table), and its
    // own short transactions do not keep the window shut.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop, slowest, app) = busy_app(&pool);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!migration.is_finished(), "the migration waits for the reader");
    let during = slowest.swap(0, Ordering::Relaxed);
    assert!(during < 1_000_000, "an app request waited {during} µs behind the migration");

    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    let released = Instant::now();
    let report = migration.await.unwrap().unwrap();
    let after = released.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert!(app.await.unwrap() > 10, "the app ran requests meanwhile");
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2]);
    assert!(after < Duration::from_secs(2), "applied {after:?} after the reader ended");
    let attempts = history(&pool, 2).await;
    assert_eq!(attempts.len(), 1, "no attempt queued and timed out: {attempts:?}");
    assert!(attempts[0].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_no_transaction_statement_waits_for_its_window_too() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/lockq_notx");
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    let mut reader = long_reader(&db).await;
    let (m2, pool2) = (m.clone(), pool.clone());
    let migration = tokio::spawn(async move { m2.run_pre(&pool2).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM items WHERE id < 10").fetch_one(&pool),
    )
    .await;
    assert_eq!(probe.expect("the probe was not blocked behind the migration").unwrap(), 9);
    assert!(!migration.is_finished());
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    migration.await.unwrap().unwrap();
    assert_eq!(history(&pool, 2).await, [(true, String::new())], "no timed-out attempt");
    let valid: bool =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_note_idx'::regclass")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(valid);
}

#[zdm::migration(version = 2)]
async fn add_note_from_rust(conn: &mut zdm::sqlx::PgConnection) -> Result<(), zdm::sqlx::Error> {
    zdm::sqlx::raw_sql("ALTER TABLE items ADD COLUMN note TEXT").execute(conn).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rust_migration_learns_its_table_from_the_first_timeout() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/lockq_rust", rust = [add_note_from_rust])
        .lock_retries(100, Duration::from_millis(50));
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    let mut reader = long_reader(&db).await;
    let (m2, pool2) = (m.clone(), pool.clone());
    let migration = tokio::spawn(async move { m2.run_pre(&pool2).await });
    // With blind retries this would be ~6 attempts (pauses 50, 100, 200 .. ms), each
    // queueing the table's queries for up to its lock timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    migration.await.unwrap().unwrap();
    let attempts = history(&pool, 2).await;
    let failed: Vec<&String> = attempts.iter().filter(|(ok, _)| !ok).map(|(_, e)| e).collect();
    assert!(!failed.is_empty() && failed.len() <= 2, "{attempts:?}");
    assert!(failed[0].contains("retrying once no long transaction holds a conflicting lock"), "{}", failed[0]);
    assert!(failed[0].contains("long_reader"), "{}", failed[0]);
    assert!(attempts.last().unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_windows_a_blocked_migration_times_out_and_retries_while_live_queries_go_on() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/lockq").exec_policy(zdm::ExecPolicy {
        lock_windows: false,
        attempts: 100,
        first_pause: Duration::from_millis(50),
        ..Default::default()
    });
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

    // Windows (the default): the budget is what the three attempts and their pauses would
    // take (100 + 200 + 300 ms lock timeouts, 20 + 40 + 80 ms pauses).
    let started = Instant::now();
    let err = m.clone().run_pre(&pool).await.unwrap_err().to_string();
    let took = started.elapsed();
    eprintln!("{err}");
    assert!(err.contains("gave up after waiting"), "{err}");
    assert!(err.contains("AccessExclusiveLock on items conflicts with AccessShareLock held by pid"), "{err}");
    assert!(err.contains("long_reader") && err.contains("idle in transaction"), "{err}");
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(history(&pool, 2).await.len(), 1, "no attempt was made: only the give-up is recorded");

    // Windows off: every attempt is in the history.
    let blind = m.exec_policy(zdm::ExecPolicy {
        lock_windows: false,
        attempts: 3,
        first_pause: Duration::from_millis(20),
        ..Default::default()
    });
    let err = blind.run_pre(&pool).await.unwrap_err().to_string();
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("AccessExclusiveLock on items"), "{err}");
    assert!(err.contains("long_reader") && err.contains("idle in transaction"), "{err}");
    assert_eq!(history(&pool, 2).await.len(), 4, "every attempt is in the history");
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

/// The app and the migrations under roles of their own, neither a superuser (as on a
/// managed server): `pg_stat_activity` hides when the app's transactions started, so
/// the window ages them by observation. The app's short requests do not keep it shut;
/// its long transaction does, until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn windows_work_for_roles_that_cannot_see_each_others_transactions() {
    let db = TestDb::new().await;
    let admin = db.pool(1).await;
    let (app_role, mig_role) = (format!("{}_app", db.name), format!("{}_mig", db.name));
    for role in [&app_role, &mig_role] {
        sqlx::raw_sql(zdm::sqlx::AssertSqlSafe(format!("CREATE ROLE \"{role}\" LOGIN"))).execute(&admin).await.unwrap();
    }
    sqlx::raw_sql(zdm::sqlx::AssertSqlSafe(format!("GRANT CREATE ON SCHEMA public TO \"{mig_role}\"")))
        .execute(&admin)
        .await
        .unwrap();
    let url = |role: &str| common::db_url(&db).replacen("postgres@", &format!("{role}@"), 1);
    let connect = |role: String, max: u32| async move {
        sqlx::postgres::PgPoolOptions::new().max_connections(max).connect(&url(&role)).await.unwrap()
    };
    let pool = connect(mig_role.clone(), 4).await;
    let m = zdm::migrator!("tests/migrations/lockq");
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::raw_sql(zdm::sqlx::AssertSqlSafe(format!("GRANT SELECT, UPDATE ON items TO \"{app_role}\"")))
        .execute(&pool)
        .await
        .unwrap();
    let app = connect(app_role.clone(), 4).await;
    let mut reader = sqlx::PgConnection::connect(&url(&app_role)).await.unwrap();
    sqlx::raw_sql("SET application_name = 'long_reader'; BEGIN; SELECT count(*) FROM items;")
        .execute(&mut reader)
        .await
        .unwrap();
    // The premise: the migration role cannot read when the app's transaction started.
    let hidden: Vec<bool> = sqlx::query_scalar("SELECT xact_start IS NULL FROM pg_stat_activity WHERE usename = $1")
        .bind(&app_role)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!hidden.is_empty() && hidden.iter().all(|h| *h), "{hidden:?}");
    let (stop, slowest, load) = busy_app(&app);
    let (m2, pool2) = (m.clone(), pool.clone());
    let migration = tokio::spawn(async move { m2.run_pre(&pool2).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!migration.is_finished(), "the migration waits for the app's long transaction");
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    let released = Instant::now();
    migration.await.unwrap().unwrap();
    assert!(released.elapsed() < Duration::from_secs(3), "the window opened under the app's short requests");
    stop.store(true, Ordering::Relaxed);
    assert!(load.await.unwrap() > 10);
    let worst = slowest.load(Ordering::Relaxed);
    assert!(worst < 1_000_000, "an app request waited {worst} µs");
    let failed: Vec<String> = history(&pool, 2).await.into_iter().filter(|(ok, _)| !ok).map(|(_, e)| e).collect();
    assert!(failed.len() <= 1, "at most the one attempt before the holder was seen for long: {failed:?}");
    reader.close().await.unwrap();
    app.close().await;
    pool.close().await;
    admin.close().await;
    drop(db);
    // The database is gone with `db` (and what the roles owned in it); the roles are the server's.
    let mut server = sqlx::PgConnection::connect(&common::server_url()).await.unwrap();
    for role in [&app_role, &mig_role] {
        let drop_role = format!("DROP ROLE IF EXISTS \"{role}\"");
        sqlx::raw_sql(zdm::sqlx::AssertSqlSafe(drop_role)).execute(&mut server).await.unwrap();
    }
}
