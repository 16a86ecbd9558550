//! Phases on a real PostgreSQL: run_pre, run_post, run_all, the ledger and its history,
//! failures, old builds after new migrations, changed checksums, Rust-coded migrations.

mod common;

use common::{columns, versions, TestDb};
use zdm::sqlx::{self, PgConnection, Row};
use zdm::{Phase, State};

async fn tables(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn run_pre_skips_after_deploy_and_run_post_waits_for_lower_pre() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;

    // An older build knows 1 and 2 only: its run_pre applies 1; 2 is after_deploy.
    let old = zdm::migrator!("tests/migrations/phases").up_to(2);
    let report = old.run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1]);
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "legacy_slug"]);

    let new = zdm::migrator!("tests/migrations/phases");
    let status = new.status(&pool).await.unwrap();
    assert_eq!(versions(status.pending_pre()), [3]);
    assert_eq!(versions(status.pending_post()), [2, 4]);
    // 4 waits for pre-deploy 3; 2 does not.
    assert_eq!(status.rows[1].state, State::PendingPost { waits_for: None });
    assert_eq!(status.rows[3].state, State::PendingPost { waits_for: Some(3) });

    // run_post before run_pre: only 2 may run, 4 waits for 3.
    let report = new.run_post(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2]);
    assert!(report.notices.iter().any(|n| n.contains("waits until pre-deploy migration 3")), "{report}");
    assert!(!tables(&pool).await.contains(&"cleanup_log".to_string()));

    let report = new.run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| (a.version, a.phase)).collect::<Vec<_>>(), [(3, Phase::PreDeploy)]);
    let report = new.run_post(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [4]);
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "body"]);

    // Nothing left: every call is a no-op.
    assert!(new.run_all(&pool).await.unwrap().applied.is_empty());
    let status = new.status(&pool).await.unwrap();
    assert_eq!(versions(status.applied()), [1, 2, 3, 4]);
    let table = status.to_string();
    assert!(table.contains("drop_legacy_slug") && table.contains("applied"), "{table}");
}

#[tokio::test]
async fn run_all_applies_everything_in_version_order() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let report = zdm::migrator!("tests/migrations/phases").run_all(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "body"]);
}

#[tokio::test]
async fn ledger_records_who_ran_what_and_the_safety_reasons() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/phases").app("blog", "2.0.0");
    m.run_all(&pool).await.unwrap();
    let row = sqlx::query(
        "SELECT version, description, phase, octet_length(checksum) AS len, started_at <= finished_at AS ordered, \
         duration_ms, success, error, app_name, app_version, zdm_version, hostname, pid, db_user, safety_assured \
         FROM zdm_migrations WHERE version = 3",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("description"), "add_body");
    assert_eq!(row.get::<String, _>("phase"), "pre");
    assert_eq!(row.get::<i32, _>("len"), 48, "SHA-384");
    assert!(row.get::<bool, _>("ordered"));
    assert!(row.get::<i64, _>("duration_ms") >= 0);
    assert!(row.get::<bool, _>("success"));
    assert_eq!(row.get::<Option<String>, _>("error"), None);
    assert_eq!(row.get::<String, _>("app_name"), "blog");
    assert_eq!(row.get::<String, _>("app_version"), "2.0.0");
    assert_eq!(row.get::<String, _>("zdm_version"), env!("CARGO_PKG_VERSION"));
    assert!(!row.get::<String, _>("hostname").is_empty());
    assert_eq!(row.get::<i32, _>("pid"), std::process::id() as i32);
    assert_eq!(row.get::<String, _>("db_user"), "postgres");
    assert_eq!(row.get::<Vec<String>, _>("safety_assured"), ["nullable column, no default: metadata-only"]);
    let phases: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, phase FROM zdm_migrations ORDER BY version").fetch_all(&pool).await.unwrap();
    assert_eq!(phases, [(1, "pre".into()), (2, "post".into()), (3, "pre".into()), (4, "post".into())]);
    let attempts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM zdm_migration_attempts WHERE success").fetch_one(&pool).await.unwrap();
    assert_eq!(attempts, 4);

    // The status API hands out the ledger's own time and duration, typed; its table shows
    // them to the second and the millisecond, as it always did.
    let (at, ms): (zdm::chrono::DateTime<zdm::chrono::Utc>, i64) =
        sqlx::query_as("SELECT started_at, duration_ms FROM zdm_migrations WHERE version = 3")
            .fetch_one(&pool)
            .await
            .unwrap();
    let status = m.status(&pool).await.unwrap();
    let ledger = status.rows[2].ledger.as_ref().unwrap();
    assert_eq!((ledger.started_at, ledger.duration), (at, std::time::Duration::from_millis(ms as u64)));
    let now = zdm::chrono::DateTime::<zdm::chrono::Utc>::from(std::time::SystemTime::now());
    assert!((now - at).num_seconds().abs() < 60, "{at} is the time it ran, not a time zone away");
    let table = status.to_string();
    let line = table.lines().find(|l| l.starts_with("3 ")).unwrap();
    let cells: Vec<&str> = line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells[4..6], [at.format("%Y-%m-%d %H:%M:%S").to_string(), ms.to_string()], "{table}");
}

#[tokio::test]
async fn a_failed_migration_rolls_back_but_its_record_stays() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/failing").lock_wait(std::time::Duration::from_secs(2));
    let err = m.run_pre(&pool).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("migration 2 (tests/migrations/failing/0002_half_done.sql:3) failed"), "{msg}");
    assert!(msg.contains("no_such_table") && msg.contains("42P01") && msg.contains("rolled back"), "{msg}");

    // Migration 1 stays applied; 2's table and its insert were rolled back.
    assert_eq!(
        tables(&pool).await,
        [
            "a",
            "zdm_app_models",
            "zdm_backfills",
            "zdm_deferred_drops",
            "zdm_instances",
            "zdm_lease",
            "zdm_migration_attempts",
            "zdm_migrations",
            "zdm_post_pending"
        ]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM a").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0);
    let (success, error): (bool, String) =
        sqlx::query_as("SELECT success, error FROM zdm_migrations WHERE version = 2").fetch_one(&pool).await.unwrap();
    assert!(!success && error.contains("no_such_table"));

    // The lease did not leak: a second run starts at once, fails the same way, and the
    // history keeps both attempts.
    assert!(m.run_pre(&pool).await.unwrap_err().to_string().contains("no_such_table"));
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM zdm_migration_attempts WHERE version = 2 AND NOT success")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(failures, 2);
    let lease: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_lease").fetch_one(&pool).await.unwrap();
    assert_eq!(lease, 0);
    let status = m.status(&pool).await.unwrap();
    assert_eq!(versions(status.failed()), [2]);
    assert!(status.to_string().contains("last attempt failed"), "{status}");
}

#[tokio::test]
async fn no_transaction_failure_names_the_statement_line() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let err = zdm::migrator!("tests/migrations/notx_fail").run_pre(&pool).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("0002_index_then_fail.sql:4) failed") && msg.contains("no_such_column"), "{msg}");
    assert!(msg.contains("stay applied"), "{msg}");
    // The concurrent index ran outside a transaction, so it exists.
    let idx: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'a_n_idx'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(idx, 1);
}

#[tokio::test]
async fn an_old_build_boots_after_a_newer_one_migrated() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    zdm::migrator!("tests/migrations/phases").run_all(&pool).await.unwrap();
    let old = zdm::migrator!("tests/migrations/phases").up_to(1);
    let report = old.run_pre(&pool).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.notices.len(), 3, "{report}");
    assert!(report.notices[0].contains("migration 2 (drop_legacy_slug) is applied but not embedded"), "{report}");
    let status = old.status(&pool).await.unwrap();
    assert_eq!(status.rows.iter().filter(|r| r.state == State::NotEmbedded).count(), 3);
}

#[tokio::test]
async fn a_changed_applied_migration_is_fatal_and_names_both_checksums() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    zdm::migrator!("tests/migrations/phases").up_to(1).run_pre(&pool).await.unwrap();
    let err = zdm::migrator!("tests/migrations/changed").run_pre(&pool).await.unwrap_err();
    let msg = err.to_string();
    let applied = zdm::migrator!("tests/migrations/phases").migrations().next().unwrap().checksum;
    let now = zdm::migrator!("tests/migrations/changed").migrations().next().unwrap().checksum;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert!(msg.contains("tests/migrations/changed/0001_create_posts.sql"), "{msg}");
    assert!(msg.contains(&hex(applied)) && msg.contains(&hex(now)), "{msg}");
    assert!(msg.contains("put the change in a new migration"), "{msg}");
}

#[zdm::migration(version = 5, description = "seed first post")]
async fn seed_first_post(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO posts (id, title) VALUES (1, 'hello')").execute(conn).await?;
    Ok(())
}

#[zdm::after_deploy]
#[zdm::migration(version = 6)]
async fn forget_cleanup_log(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("DROP TABLE cleanup_log").execute(conn).await?;
    Ok(())
}

#[tokio::test]
async fn rust_migrations_mix_with_sql_files_in_version_order() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/phases", rust = [seed_first_post, forget_cleanup_log]);
    let report = m.run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 3, 5]);
    let report = m.run_post(&pool).await.unwrap();
    assert_eq!(
        report.applied.iter().map(|a| (a.version, a.phase)).collect::<Vec<_>>(),
        [(2, Phase::PostDeploy), (4, Phase::PostDeploy), (6, Phase::PostDeploy)]
    );
    let title: String = sqlx::query_scalar("SELECT title FROM posts WHERE id = 1").fetch_one(&pool).await.unwrap();
    assert_eq!(title, "hello");
    assert!(!tables(&pool).await.contains(&"cleanup_log".to_string()));
    let description: String =
        sqlx::query_scalar("SELECT description FROM zdm_migrations WHERE version = 5").fetch_one(&pool).await.unwrap();
    assert_eq!(description, "seed first post");
}

#[tokio::test]
async fn ledger_lives_in_a_configured_schema() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    zdm::migrator!("tests/migrations/phases").schema("ops").table_prefix("mig_").run_pre(&pool).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.mig_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 2);
    assert!(!tables(&pool).await.contains(&"zdm_migrations".to_string()));
}

#[tokio::test]
async fn a_server_older_than_the_lint_target_is_warned_about() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let report = zdm::migrator!("tests/migrations/phases").lint_postgres(99).run_pre(&pool).await.unwrap();
    assert!(report.notices.iter().any(|n| n.contains("linted for PostgreSQL 99")), "{report}");
    // The default target (15) is not newer than this machine's server: no such notice.
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let report = zdm::migrator!("tests/migrations/phases").run_pre(&pool).await.unwrap();
    assert!(!report.notices.iter().any(|n| n.contains("linted for")), "{report}");
}
