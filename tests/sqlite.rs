//! The embedded default database: the same phases and ledger on SQLite.

mod common;

use common::{versions, TestSqlite};
use zdm::sqlx::{self, SqliteConnection};

#[zdm::migration(version = 5)]
async fn seed(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO posts (id, title) VALUES (1, 'hi')").execute(conn).await.map(drop)
}

#[tokio::test]
async fn phases_ledger_and_rust_migrations_on_sqlite() {
    let db = TestSqlite::new();
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/phases", dialect = "sqlite", rust = [seed]).app("blog", "1.2.3");
    let report = m.run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 3, 5]);
    let status = m.status(&pool).await.unwrap();
    assert_eq!(versions(status.pending_post()), [2, 4]);
    m.run_post(&pool).await.unwrap();
    let cols: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('posts') ORDER BY cid").fetch_all(&pool).await.unwrap();
    assert_eq!(cols, ["id", "title", "body"]);
    let (app, reasons, success): (String, String, bool) = sqlx::query_as(
        "SELECT app_name || ' ' || app_version, safety_assured, success FROM zdm_migrations WHERE version = 3",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(app, "blog 1.2.3");
    assert_eq!(reasons, "nullable column, no default: metadata-only");
    assert!(success);
    let status = m.status(&pool).await.unwrap();
    assert_eq!(status.applied().count(), 5);
    // SQLite keeps the ledger's times as UTC text: read back as the time it ran.
    let ledger = status.rows[0].ledger.as_ref().unwrap();
    let now = zdm::chrono::DateTime::<zdm::chrono::Utc>::from(std::time::SystemTime::now());
    assert!((now - ledger.started_at).num_seconds().abs() < 60, "{}", ledger.started_at);
}

#[tokio::test]
// The fixture fails on purpose; the lint's `sqlite-statement-fails` warning says so.
#[allow(deprecated)]
async fn failure_on_sqlite_rolls_back_and_is_recorded() {
    let db = TestSqlite::new();
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/failing", dialect = "sqlite");
    let err = m.run_pre(&pool).await.unwrap_err();
    assert!(err.to_string().contains("no such table: no_such_table"), "{err}");
    let b: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'b'").fetch_one(&pool).await.unwrap();
    assert_eq!(b, 0, "rolled back");
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_migration_attempts WHERE NOT success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failures, 1);
}

/// The registry and the gate of after_deploy migrations work on SQLite too.
#[tokio::test]
async fn the_gate_holds_after_deploy_work_for_a_live_old_build_on_sqlite() {
    let db = TestSqlite::new();
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/phases", dialect = "sqlite").app("blog", "2.0.0");
    let report = m.run_pre(&pool).await.unwrap();
    let instance = report.instance.expect("run_pre registers on SQLite too");
    let (app, embedded): (String, String) =
        sqlx::query_as("SELECT app_name || ' ' || app_version, embedded FROM zdm_instances")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(app, "blog 2.0.0");
    assert_eq!(embedded, "1\n2\n3\n4");

    // Another process still runs build 1.0.0, which embeds only migration 1.
    sqlx::query(
        "INSERT INTO zdm_instances (id, app_name, app_version, hostname, pid, zdm_version, started_at, heartbeat_at, \
         embedded, mapped, ignored) VALUES ('old:1:x', 'blog', '1.0.0', 'old', 1, '0.1.0', 0, \
         (julianday('now') - 2440587.5) * 86400.0, '1', '', '')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let post = m.run_post(&pool).await.unwrap();
    assert!(post.applied.is_empty(), "{post}");
    // The registry keeps Unix seconds: read as such (sqlx would take a REAL for a Julian day).
    let status = m.status(&pool).await.unwrap();
    let old = status.instances.iter().find(|i| i.id == "old:1:x").unwrap();
    assert_eq!(old.started_at, zdm::chrono::DateTime::UNIX_EPOCH);
    assert!(old.heartbeat_age < std::time::Duration::from_secs(30), "{old}");
    let waiting = status.rows.iter().find(|r| r.version == 2).and_then(|r| r.waiting_since).unwrap();
    let now = zdm::chrono::DateTime::<zdm::chrono::Utc>::from(std::time::SystemTime::now());
    assert!((now - waiting).num_seconds().abs() < 60, "{waiting}");
    assert!(
        post.notices.iter().any(|n| n.contains("after_deploy migration 2 waits for: blog 1.0.0 on old pid 1")),
        "{post}"
    );
    sqlx::query("DELETE FROM zdm_instances WHERE id = 'old:1:x'").execute(&pool).await.unwrap();
    assert_eq!(m.run_post(&pool).await.unwrap().applied.len(), 2);

    instance.stop().await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_instances").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
}
