//! `#[sqlx::test]` with a test database migrated by zdm: sqlx creates one database per
//! test on the server of `DATABASE_URL` (scripts/test exports it; `#[sqlx::test]` also
//! reads a `.env` file, and unlike tests/common it has no default), `migrations = false`
//! keeps sqlx's own migrator away from it, and `zdm::testing::migrate` runs the set
//! through zdm: its ledger, its SQL functions, both phases.

mod common;

use std::time::{Duration, Instant};

use common::columns;
use sqlx::{PgPool, SqlitePool};

zdm::migrations!("tests/migrations/deferred");

#[sqlx::test(migrations = false)]
async fn the_default_set_runs_through_zdm(pool: PgPool) {
    let report = zdm::testing::migrate(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(report.instance.is_none(), "the test process deregistered");

    // zdm ran it, not sqlx: zdm's ledger, no `_sqlx_migrations`, and the deferred drops
    // that `zdm_drop_column_later` / `zdm_drop_table_later` scheduled are carried out.
    let ledger: Vec<i64> = sqlx::query_scalar("SELECT version FROM zdm_migrations WHERE success ORDER BY 1")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ledger, [1, 2, 3]);
    let sqlx_ledger: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&pool).await.unwrap();
    assert!(!sqlx_ledger);
    assert_eq!(columns(&pool, "posts").await, ["id", "title"]);
    let audit: bool = sqlx::query_scalar("SELECT to_regclass('old_audit') IS NOT NULL").fetch_one(&pool).await.unwrap();
    assert!(!audit, "old_audit dropped");

    nothing_of_zdm_stays(&pool).await;
}

/// Nothing of zdm stays registered or connected, so sqlx can drop the database once the
/// test returns: it does so without FORCE, and a heartbeat still connected (measured: a
/// `run_all` kept registered with a 100 ms heartbeat) makes the drop wait 5 s and fail,
/// leaving the `_sqlx_test_*` database behind.
async fn nothing_of_zdm_stays(pool: &PgPool) {
    let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_instances").fetch_one(pool).await.unwrap();
    assert_eq!(registered, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sessions: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                .fetch_one(pool)
                .await
                .unwrap();
        if sessions <= i64::from(pool.size()) {
            break;
        }
        assert!(Instant::now() < deadline, "{sessions} sessions on the test database, the pool holds {}", pool.size());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_migrator_value_runs_the_same_way(pool: PgPool) -> Result<(), Box<dyn std::error::Error>> {
    // A heartbeat fast enough to have connected while migrating.
    let m = zdm::migrator!("tests/migrations/phases").app("blog", "2.0.0").heartbeat(Duration::from_millis(50));
    zdm::testing::migrate_with(&m, &pool).await?;
    nothing_of_zdm_stays(&pool).await;
    let status = m.status(&pool).await?;
    assert_eq!(status.applied().map(|r| r.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(status.rows[0].ledger.as_ref().map(|l| l.app_name.as_deref()), Some(Some("blog")));
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "body"]);
    // Run again (a test that migrates twice): nothing left to apply.
    assert!(zdm::testing::migrate_with(&m, &pool).await?.applied.is_empty());
    Ok(())
}

#[sqlx::test(migrations = false)]
async fn sqlite_test_databases_too(pool: SqlitePool) {
    let m = zdm::migrator!("tests/migrations/sqlite_blog", dialect = "sqlite");
    let report = zdm::testing::migrate_with(&m, &pool).await.unwrap();
    assert_eq!(report.applied.len(), m.migrations().count());
    let ledger: i64 =
        sqlx::query_scalar("SELECT count(*) FROM zdm_migrations WHERE success").fetch_one(&pool).await.unwrap();
    assert_eq!(ledger as usize, report.applied.len());
    let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_instances").fetch_one(&pool).await.unwrap();
    assert_eq!(registered, 0);
}
