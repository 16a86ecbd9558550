//! `zdm::testing::check_old_queries`: the deployed build's queries against the next
//! build's pending pre-deploy migrations, in a scratch database on a real PostgreSQL.

mod common;

use common::TestDb;
use zdm::sqlx;
use zdm::testing::{check_old_queries, query_list, sqlx_offline_queries, Problem};

const OLD_QUERIES: &str = "
-- what the deployed build (migrations 1..=1) sends
SELECT * FROM posts WHERE id = $1;
SELECT id, title FROM posts;
SELECT slug FROM posts WHERE id = $1;
INSERT INTO posts VALUES ($1, $2, $3, $4);
INSERT INTO posts (title) VALUES ($1) RETURNING id;
INSERT INTO comments (post_id) VALUES ($1);
SELECT nope FROM posts;
";

#[tokio::test]
async fn each_broken_query_is_reported_with_the_migration_that_breaks_it() {
    let db = TestDb::new().await;
    let admin = db.pool(2).await;
    let next = zdm::migrator!("tests/migrations/old_queries");
    let queries = query_list(OLD_QUERIES);
    assert_eq!(queries.len(), 7);
    let report = check_old_queries(&admin, &next, 1, &queries).await.unwrap();
    println!("{report}");
    assert_eq!(report.checked, 7);
    assert_eq!(report.migrations, [2, 3, 4], "after_deploy 5 is not checked: the old build is gone by then");

    let found: Vec<(usize, Option<i64>, &Problem)> = report
        .findings
        .iter()
        .map(|f| (f.query.source.trim_start_matches("list:").parse().unwrap(), f.migration, &f.problem))
        .collect();
    let has = |q: usize, v: Option<i64>, p: fn(&Problem) -> bool| {
        found.iter().any(|(fq, fv, fp)| *fq == q && *fv == v && p(fp))
    };
    assert!(has(1, Some(2), |p| matches!(p, Problem::ShapeChanges { star: true, .. })), "{report}");
    assert!(has(3, Some(3), |p| matches!(p, Problem::DoesNotPrepare(e) if e.contains("slug"))), "{report}");
    assert!(has(4, Some(2), |p| matches!(p, Problem::InsertWithoutColumns { .. })), "{report}");
    assert!(has(5, Some(4), |p| matches!(p, Problem::CheckMayReject { column, .. } if column == "views")), "{report}");
    assert!(has(6, Some(4), |p| matches!(p, Problem::OmitsRequired { column, .. } if column == "body")), "{report}");
    assert!(has(7, None, |p| matches!(p, Problem::DoesNotPrepare(_))), "{report}");
    assert!(!found.iter().any(|(q, _, _)| *q == 2), "an explicit column list survives all three: {report}");
    assert_eq!(report.findings.len(), 6, "{report}");
    let text = report.to_string();
    assert!(text.contains("broken by migration 3 (tests/migrations/old_queries/0003_rename_slug.sql)"), "{text}");
    assert!(text.contains("cached plan must not change result type"), "{text}");

    // The scratch database is gone; the app's database was never touched.
    assert!(report.scratch_database.starts_with("zdm_old_query_check_"));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&report.scratch_database)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn a_type_change_under_an_explicit_list_is_reported() {
    let db = TestDb::new().await;
    let admin = db.pool(2).await;
    let next = zdm::migrator!("tests/migrations/stmt_cache");
    let queries = query_list("SELECT id, title, summary FROM posts WHERE id = $1; SELECT id FROM posts");
    let report = check_old_queries(&admin, &next, 1, &queries).await.unwrap();
    assert_eq!(report.findings.len(), 1, "{report}");
    assert_eq!(report.findings[0].migration, Some(3));
    assert!(report.to_string().contains("type modifier changed"), "{report}");
}

#[test]
fn sqlx_offline_data_is_read() {
    let dir = std::env::temp_dir().join(format!("zdm_sqlx_offline_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("query-0a1b.json"),
        r#"{"db_name": "PostgreSQL", "query": "SELECT *\nFROM posts WHERE title = 'it''s'", "describe": {}, "hash": "0a1b"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "not a query").unwrap();
    let queries = sqlx_offline_queries(&dir).unwrap();
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].source, "query-0a1b.json");
    assert_eq!(queries[0].sql, "SELECT *\nFROM posts WHERE title = 'it''s'");

    std::fs::write(dir.join("query-bad.json"), "{ not json").unwrap();
    let err = sqlx_offline_queries(&dir).unwrap_err().to_string();
    assert!(err.contains("query-bad.json") && err.contains("not valid JSON"), "{err}");
    let err = sqlx_offline_queries(dir.join("missing")).unwrap_err().to_string();
    assert!(err.contains("cargo sqlx prepare"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
