//! zdm through a real PgBouncer in transaction pooling mode (issue 12, decisions 3 and 19).
//!
//! scripts/test starts a throwaway PgBouncer 1.18-style (`pool_mode = transaction`, no
//! prepared-statement tracking, 4 server connections per database so that clients share
//! backends, LIFO reuse of idle ones) and sets `ZDM_PGBOUNCER_URL`; see scripts/pgbouncer.sh.
//! sqlx is configured as users configure it there: `statement_cache_capacity(0)`. Without
//! a PgBouncer these tests skip with a message, except under CI, where they fail.
//!
//! The first two tests check the harness itself with plain sqlx, so a green run cannot
//! come from a pooler that is not one. The others run zdm through it: phases and status,
//! 8 concurrent migrators with a `CREATE INDEX CONCURRENTLY` file (given a direct
//! `session_url`), the clear error without one, the registry and a deferred drop.
//!
//! Statements the tests send themselves through PgBouncer use the simple protocol
//! (`raw_sql`): sqlx's extended protocol splits a query into two round trips that a
//! transaction pooler may send to two backends. Checks read through a direct pool.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{columns, direct_url, pgbouncer_options, pgbouncer_pool, TestDb};
use zdm::sqlx::{self, ConnectOptions, Connection, PgConnection, PgPool, Row};

/// This binary's model of `t` (tests/migrations/pgb_deferred): it no longer maps `t.c`.
#[derive(sqlx::FromRow, Debug)]
#[zdm::ignored_columns(table = "t", columns(c))]
#[allow(dead_code)]
struct T {
    id: i64,
}

/// The backend serving this statement and the session setting `zdm.probe` there.
async fn probe(conn: &mut PgConnection) -> (i32, Option<String>) {
    let row = sqlx::raw_sql("SELECT pg_backend_pid(), current_setting('zdm.probe', true)")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_harness_pools_by_transaction_so_clients_share_backends() {
    let db = TestDb::new().await;
    let Some(options) = pgbouncer_options(&db) else { return };
    let mut a = options.connect().await.unwrap();
    let mut b = options.connect().await.unwrap();

    // Client A sets a session setting outside a transaction: it lands on backend X, which
    // goes back to the pool when the statement ends.
    let row = sqlx::raw_sql("SELECT pg_backend_pid(), set_config('zdm.probe', 'set by A', false)")
        .fetch_one(&mut a)
        .await
        .unwrap();
    let x: i32 = row.get(0);

    // Client B begins a transaction: it gets the idle backend X (PgBouncer reuses the most
    // recently released one) and sees A's session state. One backend, two clients.
    sqlx::raw_sql("BEGIN").execute(&mut b).await.unwrap();
    let (pid, setting) = probe(&mut b).await;
    assert_eq!(pid, x, "client B's transaction runs on the backend client A just used");
    assert_eq!(setting.as_deref(), Some("set by A"), "client B sees client A's session setting");

    // While B's transaction holds X, A's next statement runs on another backend, where A's
    // own session setting is not: session state does not follow a client.
    let (pid, setting) = probe(&mut a).await;
    assert_ne!(pid, x, "client A is served by another backend while B holds X");
    assert_ne!(setting.as_deref(), Some("set by A"), "client A's session setting stayed on X");

    // Inside a transaction the backend stays put.
    assert_eq!(probe(&mut b).await.0, x);
    sqlx::raw_sql("COMMIT").execute(&mut b).await.unwrap();

    // A direct connection, for contrast, keeps its session.
    let mut direct = db.conn().await;
    sqlx::raw_sql("SELECT set_config('zdm.probe', 'direct', false)").execute(&mut direct).await.unwrap();
    let first = probe(&mut direct).await;
    assert_eq!(first.1.as_deref(), Some("direct"));
    assert_eq!(probe(&mut direct).await, first);
    for conn in [a, b, direct] {
        conn.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_harness_has_no_prepared_statement_support() {
    // The failure of issue 12: with the statement cache off, sqlx still names its
    // statements (sqlx_s_1, ...) per client connection and never closes them, so a second
    // client on the same backend collides with the first one's.
    let db = TestDb::new().await;
    let Some(options) = pgbouncer_options(&db) else { return };
    let mut a = options.connect().await.unwrap();
    let mut b = options.connect().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut a).await.unwrap();
    let err = sqlx::query("SELECT 1").execute(&mut b).await.unwrap_err().to_string();
    assert!(err.contains("prepared statement \"sqlx_s_1\" already exists"), "{err}");
}

/// Counts in `applied_log` by version (read directly).
async fn applied_log(pool: &PgPool) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT version, count(*) FROM applied_log GROUP BY version ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Ledger rows by version and success (read directly).
async fn ledger(pool: &PgPool) -> Vec<(i64, bool)> {
    sqlx::query_as("SELECT version, success FROM zdm_migrations ORDER BY version").fetch_all(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn phases_and_status_through_pgbouncer() {
    let db = TestDb::new().await;
    let Some(pool) = pgbouncer_pool(&db, 4).await else { return };
    let direct = db.pool(1).await;
    let m = zdm::migrator!("tests/migrations/pgb_phases");

    // The first run_pre on a fresh database bootstraps zdm's tables and reads the ledger:
    // where `prepared statement "sqlx_s_2" already exists` used to come from.
    let pre = m.run_pre(&pool).await.unwrap();
    assert_eq!(pre.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2], "{pre}");
    assert_eq!(columns(&direct, "notes").await, ["id", "title"]);
    let status = m.status(&pool).await.unwrap();
    assert_eq!(common::versions(status.applied()), [1, 2]);

    let post = m.run_post(&pool).await.unwrap();
    assert_eq!(post.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3], "{post}");
    assert_eq!(columns(&direct, "notes").await, ["id", "title", "body"]);
    let status = m.status(&pool).await.unwrap();
    assert_eq!(common::versions(status.applied()), [1, 2, 3]);
    assert_eq!(ledger(&direct).await, [(1, true), (2, true), (3, true)]);
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM notes").fetch_one(&direct).await.unwrap();
    assert_eq!(notes, 10);

    // Again, through other clients: nothing to do, nothing fails.
    let again = m.run_all(&pool).await.unwrap();
    assert!(again.applied.is_empty(), "{again}");
    if let Some(instance) = pre.instance {
        instance.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_migrators_through_pgbouncer_with_a_session_url_apply_each_migration_once() {
    let db = TestDb::new().await;
    let direct = direct_url(&db);
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        // A pool per "process"; 8 × 2 clients share PgBouncer's 4 backends.
        let Some(pool) = pgbouncer_pool(&db, 2).await else { return };
        let (barrier, direct) = (barrier.clone(), direct.clone());
        tasks.push(tokio::spawn(async move {
            let m = zdm::migrator!("tests/migrations/pgb_cic")
                .app("app", format!("instance-{i}"))
                .lock_wait(Duration::from_secs(120))
                .session_url(direct.as_str());
            barrier.wait().await;
            m.run_pre(&pool).await
        }));
    }
    let mut applied_by_runs = Vec::new();
    for t in tasks {
        let report = t.await.unwrap().unwrap_or_else(|e| panic!("every migrator succeeds: {e}"));
        applied_by_runs.extend(report.applied.iter().map(|a| a.version));
    }
    applied_by_runs.sort();
    assert_eq!(applied_by_runs, [1, 2, 3, 4], "each migration applied by exactly one migrator");

    let pool = db.pool(1).await;
    assert_eq!(applied_log(&pool).await, [(1, 1), (2, 1), (3, 1), (4, 1)], "each side effect once");
    assert_eq!(ledger(&pool).await, [(1, true), (2, true), (3, true), (4, true)]);
    let valid: bool = sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_n_idx'::regclass")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(valid, "the concurrent index is valid");
    let lease: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_lease").fetch_one(&pool).await.unwrap();
    assert_eq!(lease, 0, "the lease was released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_transaction_migration_through_pgbouncer_without_session_url_names_the_setting() {
    let db = TestDb::new().await;
    let Some(pool) = pgbouncer_pool(&db, 2).await else { return };
    let direct = db.pool(1).await;
    let m = zdm::migrator!("tests/migrations/pgb_cic").lock_wait(Duration::from_secs(60));

    let err = m.run_pre(&pool).await.expect_err("CONCURRENTLY through a transaction pooler needs a session");
    let msg = err.to_string();
    assert!(msg.contains("session_url"), "the error names the setting: {msg}");
    // Nothing of migration 3 happened, and no INVALID index is left behind.
    let log = applied_log(&direct).await;
    assert!(log.iter().all(|&(v, n)| v < 3 && n == 1), "{log:?}");
    let rows = ledger(&direct).await;
    assert!(!rows.iter().any(|&(v, ok)| v >= 3 && ok), "no success row for 3 or later: {rows:?}");
    let indexes: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = 'items_n_idx'")
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(indexes, 0);
    let lease: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_lease").fetch_one(&direct).await.unwrap();
    assert_eq!(lease, 0, "the lease was released");

    // Given one, the same migrator finishes the set.
    let report = m.session_url(direct_url(&db).as_str()).run_pre(&pool).await.unwrap();
    assert!(report.applied.iter().any(|a| a.version == 3), "{report}");
    assert_eq!(applied_log(&direct).await, [(1, 1), (2, 1), (3, 1), (4, 1)]);
    let valid: bool = sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_n_idx'::regclass")
        .fetch_one(&direct)
        .await
        .unwrap();
    assert!(valid);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_and_a_deferred_drop_through_pgbouncer() {
    let db = TestDb::new().await;
    let Some(pool) = pgbouncer_pool(&db, 4).await else { return };
    let direct = db.pool(1).await;
    let m = zdm::migrator!("tests/migrations/pgb_deferred").heartbeat(Duration::from_millis(200));

    let pre = m.run_pre(&pool).await.unwrap();
    assert_eq!(pre.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2], "{pre}");
    let instance = pre.instance.clone().expect("run_pre registers");
    let (id, mapped): (String, Vec<String>) =
        sqlx::query_as("SELECT id, mapped FROM zdm_instances").fetch_one(&direct).await.unwrap();
    assert_eq!(id, instance.id());
    assert!(mapped.iter().any(|m| m.starts_with("t\tid\t")), "{mapped:?}");
    // Scheduled, not yet dropped: the column is still there.
    assert_eq!(columns(&direct, "t").await, ["id", "c"]);

    // Heartbeats go through PgBouncer too: the registration stays fresh.
    let before = heartbeat_at(&direct).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(heartbeat_at(&direct).await > before, "the heartbeat beats through PgBouncer");

    let post = m.run_post(&pool).await.unwrap();
    assert_eq!(post.dropped.len(), 1, "{post}");
    assert_eq!(columns(&direct, "t").await, ["id"]);
    let status = m.status(&pool).await.unwrap();
    assert!(status.deferred.iter().all(|d| d.dropped && d.blockers.is_empty()));
    assert!(m.run_post(&pool).await.unwrap().dropped.is_empty(), "a drop runs once");

    instance.stop().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_instances").fetch_one(&direct).await.unwrap();
    assert_eq!(rows, 0, "stop() deregisters through PgBouncer");
}

/// The registration's last heartbeat, in microseconds since the epoch.
async fn heartbeat_at(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT (extract(epoch FROM heartbeat_at) * 1000000)::bigint FROM zdm_instances")
        .fetch_one(pool)
        .await
        .unwrap()
}
