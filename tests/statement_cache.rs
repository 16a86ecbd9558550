//! sqlx's statement cache against the next build's migrations, on PostgreSQL.
//!
//! First the failure, with plain sqlx: a pooled connection that cached `SELECT *` fails on
//! every later use after `ADD COLUMN` (sqlx #1250). Then zdm's answers: a healing pool
//! (connections opened before an announced change are renewed) and a retry of the stale
//! statement after clearing the cache.

mod common;

use std::time::Duration;

use common::TestDb;
use zdm::sqlx::{self, postgres::PgPoolOptions, PgPool};

#[derive(sqlx::FromRow, Debug, PartialEq)]
struct Post {
    id: i64,
    title: String,
    summary: Option<String>,
}

fn migrator() -> zdm::Migrator {
    zdm::migrator!("tests/migrations/stmt_cache")
}

/// Runs the old build's cached `SELECT *` `n` times; returns how many failed.
async fn star_reads(pool: &PgPool, n: usize) -> (usize, Option<String>) {
    let mut failed = (0, None);
    for _ in 0..n {
        if let Err(e) = sqlx::query_as::<_, Post>("SELECT * FROM posts WHERE id = 1").fetch_one(pool).await {
            failed.0 += 1;
            failed.1 = Some(e.to_string());
        }
    }
    failed
}

#[tokio::test]
async fn plain_sqlx_fails_on_every_use_after_add_column() {
    let db = TestDb::new().await;
    let admin = db.pool(2).await;
    migrator().up_to(1).run_pre(&admin).await.unwrap();
    let app = PgPoolOptions::new().max_connections(1).connect_with(db.options.clone()).await.unwrap();
    assert_eq!(star_reads(&app, 3).await.0, 0);

    sqlx::raw_sql("ALTER TABLE posts ADD COLUMN body TEXT").execute(&admin).await.unwrap();
    let (failed, error) = star_reads(&app, 20).await;
    assert_eq!(failed, 20, "every use of the cached statement fails, and it never heals");
    assert!(error.unwrap().contains("cached plan must not change result type"));
    // A fresh connection (or an uncached query) works: the cache is the problem.
    let fresh = PgPoolOptions::new().max_connections(1).connect_with(db.options.clone()).await.unwrap();
    assert_eq!(star_reads(&fresh, 1).await.0, 0);
}

#[tokio::test]
async fn a_type_change_breaks_even_an_explicit_column_list() {
    let db = TestDb::new().await;
    let admin = db.pool(2).await;
    migrator().up_to(2).run_pre(&admin).await.unwrap();
    let app = PgPoolOptions::new().max_connections(1).connect_with(db.options.clone()).await.unwrap();
    let read = || sqlx::query_as::<_, Post>("SELECT id, title, summary FROM posts WHERE id = 1").fetch_one(&app);
    read().await.unwrap();
    migrator().run_pre(&admin).await.unwrap(); // varchar(100) -> varchar(200)
    let e = read().await.unwrap_err();
    assert!(zdm::healing::is_stale_plan(&e), "{e}");
}

#[tokio::test]
async fn a_healing_pool_renews_connections_after_zdm_migrates() {
    let db = TestDb::new().await;
    let admin = db.pool(2).await;
    migrator().up_to(1).run_pre(&admin).await.unwrap();
    let app = zdm::healing::connect_with(PgPoolOptions::new().max_connections(2), db.options.clone()).await.unwrap();
    assert_eq!(star_reads(&app, 5).await.0, 0);

    for (version, what) in [(2, "add column"), (3, "type change")] {
        migrator().up_to(version).run_pre(&admin).await.unwrap();
        // Give the notice a moment; the retry helper covers this window (next test).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (failed, error) = star_reads(&app, 20).await;
        assert_eq!(failed, 0, "after the {what}: {error:?}");
    }
}

#[tokio::test]
async fn retry_heals_a_stale_statement_at_once() {
    let db = TestDb::new().await;
    let admin = db.pool(2).await;
    migrator().up_to(1).run_pre(&admin).await.unwrap();
    // A plain pool: no listener, so only the retry stands between the app and the error.
    let app = PgPoolOptions::new().max_connections(1).connect_with(db.options.clone()).await.unwrap();
    let read = || {
        zdm::healing::retry(&app, |conn| {
            Box::pin(async move { sqlx::query_as::<_, Post>("SELECT * FROM posts WHERE id = 1").fetch_one(conn).await })
        })
    };
    assert_eq!(read().await.unwrap().title, "first");
    migrator().run_pre(&admin).await.unwrap(); // add column, then a type change
    for _ in 0..20 {
        assert_eq!(read().await.unwrap().summary.as_deref(), Some("short"));
    }
    // Other errors pass through untouched.
    let err = zdm::healing::retry(&app, |conn| {
        Box::pin(async move { sqlx::query_scalar::<_, i64>("SELECT no_such_column FROM posts").fetch_one(conn).await })
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no_such_column"), "{err}");
}
