//! A SQLite set is judged as SQLite (`dialect = "sqlite"`): what SQLite apps write compiles
//! and runs, and a set never runs on the other database's pool.

mod common;

use common::{TestDb, TestSqlite};
use zdm::sqlx;

#[tokio::test]
async fn a_sqlite_set_compiles_and_runs_on_sqlite() {
    let db = TestSqlite::new();
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/sqlite_blog", dialect = "sqlite").app("blog", "1.0.0");
    let pre = m.run_pre(&pool).await.unwrap();
    assert_eq!(pre.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2]);
    let post = m.run_post(&pool).await.unwrap();
    assert_eq!(post.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
    let (strict, without_rowid): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT strict FROM pragma_table_list('posts')), (SELECT wr FROM pragma_table_list('settings'))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((strict, without_rowid), (1, 1));
    let theme: String =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'theme'").fetch_one(&pool).await.unwrap();
    assert_eq!(theme, "dark", "the rebuild kept the rows");
}

#[tokio::test]
async fn a_postgres_set_is_refused_on_a_sqlite_pool() {
    let db = TestSqlite::new();
    let pool = db.pool(1).await;
    let err = zdm::migrator!("tests/migrations/phases").run_pre(&pool).await.unwrap_err();
    assert!(matches!(err, zdm::Error::WrongDialect { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("`dialect = \"postgres\"` (PostgreSQL)") && text.contains("SQLite pool"), "{text}");
    assert!(text.contains("dialect = \"sqlite\""), "names the fix: {text}");
    // Nothing ran: zdm's tables were not even made.
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master").fetch_one(&pool).await.unwrap();
    assert_eq!(tables, 0);
    assert!(zdm::migrator!("tests/migrations/phases").status(&pool).await.is_err());
}

#[tokio::test]
async fn a_sqlite_set_is_refused_on_a_postgres_pool() {
    let db = TestDb::new().await;
    let pool = db.pool(1).await;
    let err = zdm::migrator!("tests/migrations/sqlite_blog", dialect = "sqlite").run_pre(&pool).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, zdm::Error::WrongDialect { .. }), "{text}");
    assert!(text.contains("`dialect = \"sqlite\"` (SQLite)") && text.contains("PostgreSQL pool"), "{text}");
}
