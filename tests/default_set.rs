//! The card's literal form: `zdm::migrations!` at item level, then `zdm::run_pre(&pool)`.

mod common;

use common::{versions, TestDb};

zdm::migrations!("tests/migrations/phases");

#[tokio::test]
async fn free_functions_use_the_registered_set() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    zdm::run_pre(&pool).await.unwrap();
    let status = zdm::status(&pool).await.unwrap();
    assert_eq!(versions(status.applied()), [1, 3]);
    zdm::run_post(&pool).await.unwrap();
    assert_eq!(versions(zdm::status(&pool).await.unwrap().applied()), [1, 2, 3, 4]);
    assert!(zdm::run_all(&pool).await.unwrap().applied.is_empty());
    assert_eq!(ZDM_MIGRATIONS.sql.len(), 4);
    // The free functions' futures are Send too.
    let handle = tokio::spawn(async move { zdm::run_pre(&pool).await.map(|r| r.applied.len()) });
    assert_eq!(handle.await.unwrap().unwrap(), 0);
}
