//! Model structs, in the attribute spelling (`#[zdm::ignored_columns]`) and the derive
//! (`#[derive(zdm::Model)]` + `#[zdm(..)]`): the derive registers exactly what the
//! attribute registers, follows sqlx's `rename`, `rename_all`, `skip` and `flatten` the
//! same way, and composes with `#[derive(sqlx::FromRow)]` on a real PostgreSQL.

mod common;

use common::TestDb;
use zdm::sqlx::{self, AssertSqlSafe};

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Audit {
    created_by: String,
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
#[sqlx(rename_all = "camelCase")]
#[zdm::ignored_columns(table = "app.Posts", columns(legacySlug))]
struct ByAttribute {
    post_id: i64,
    #[sqlx(rename = "headline")]
    title: String,
    #[sqlx(skip)]
    cached: Option<String>,
    #[sqlx(flatten)]
    audit: Audit,
}

#[derive(Debug, PartialEq, sqlx::FromRow, zdm::Model)]
#[sqlx(rename_all = "camelCase")]
#[zdm(table = "app.Posts", ignored_columns(legacySlug))]
struct ByDerive {
    post_id: i64,
    #[sqlx(rename = "headline")]
    title: String,
    #[sqlx(skip)]
    cached: Option<String>,
    #[sqlx(flatten)]
    audit: Audit,
}

/// Generic, and ignoring nothing (`ignored_columns` is optional); the options may be split.
#[derive(Debug, PartialEq, sqlx::FromRow, zdm::Model)]
#[zdm(table = "app.Posts")]
#[zdm(ignored_columns())]
struct Plain<T> {
    #[sqlx(rename = "postId")]
    id: i64,
    headline: T,
}

fn registered(name: &str) -> zdm::ModelInfo {
    zdm::__private::inventory::iter::<zdm::__private::RegisteredModel>
        .into_iter()
        .map(|m| m.0)
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not registered"))
}

#[test]
fn a_derived_model_registers_what_the_attribute_registers() {
    assert_eq!(ByDerive::TABLE, ByAttribute::TABLE);
    assert_eq!(ByDerive::COLUMNS, ["postId", "headline"], "renamed, skipped and flattened fields as sqlx maps them");
    assert_eq!(ByDerive::COLUMNS, ByAttribute::COLUMNS);
    assert_eq!(ByDerive::COLUMN_LIST, ByAttribute::COLUMN_LIST);
    assert_eq!(ByDerive::SELECT, r#"SELECT "postId", "headline" FROM "app"."Posts""#);
    assert_eq!(ByDerive::SELECT, ByAttribute::SELECT);
    assert_eq!(ByDerive::IGNORED_COLUMNS, ["legacySlug"]);
    assert_eq!(ByDerive::IGNORED_COLUMNS, ByAttribute::IGNORED_COLUMNS);

    let (derived, attribute) = (registered("models::ByDerive"), registered("models::ByAttribute"));
    assert_eq!(derived, ByDerive::ZDM_MODEL);
    assert_eq!(
        (derived.table, derived.columns, derived.ignored),
        (attribute.table, attribute.columns, attribute.ignored)
    );
    assert_eq!(registered("models::Plain").columns, ["postId", "headline"]);
    assert!(Plain::<String>::IGNORED_COLUMNS.is_empty());
}

#[tokio::test]
async fn a_derived_model_reads_rows_through_from_row_and_is_published_by_its_instance() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    sqlx::raw_sql(
        r#"CREATE SCHEMA app;
           CREATE TABLE app."Posts" ("postId" bigint PRIMARY KEY, headline text NOT NULL, "legacySlug" text,
                                     created_by text NOT NULL);
           INSERT INTO app."Posts" VALUES (1, 'Hello', 'hello-1', 'ann'), (2, 'Again', NULL, 'bob');"#,
    )
    .execute(&pool)
    .await
    .unwrap();

    // The derive's SELECT is a `&'static str` sqlx takes as it is.
    let plain: Vec<Plain<String>> = sqlx::query_as(Plain::<String>::SELECT).fetch_all(&pool).await.unwrap();
    assert_eq!(plain, [Plain { id: 1, headline: "Hello".into() }, Plain { id: 2, headline: "Again".into() }]);

    // A flattened struct reads its own columns: the list names them beside the model's.
    let sql = format!("SELECT {}, created_by FROM {} ORDER BY 1", ByDerive::COLUMN_LIST, r#"app."Posts""#);
    let derived: Vec<ByDerive> = sqlx::query_as(AssertSqlSafe(sql.clone())).fetch_all(&pool).await.unwrap();
    let attribute: Vec<ByAttribute> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap();
    assert_eq!(
        derived[0],
        ByDerive { post_id: 1, title: "Hello".into(), cached: None, audit: Audit { created_by: "ann".into() } }
    );
    assert_eq!(derived.len(), 2);
    assert_eq!(
        derived.iter().map(|p| (p.post_id, &p.title, &p.audit)).collect::<Vec<_>>(),
        attribute.iter().map(|p| (p.post_id, &p.title, &p.audit)).collect::<Vec<_>>()
    );

    // Its instance publishes the derived struct's columns like the attribute's: the gate
    // of a drop of `app.Posts.headline` would see both.
    let report = zdm::migrator!("tests/migrations/phases").run_pre(&pool).await.unwrap();
    let mapped: Vec<String> =
        sqlx::query_scalar("SELECT unnest(mapped) FROM zdm_instances").fetch_all(&pool).await.unwrap();
    for by in ["models::ByDerive", "models::ByAttribute", "models::Plain"] {
        for column in ["postId", "headline"] {
            let entry = format!("app.Posts\t{column}\t{by}");
            assert!(mapped.contains(&entry), "{entry:?} not in {mapped:?}");
        }
    }
    let ignored: Vec<String> =
        sqlx::query_scalar("SELECT unnest(ignored) FROM zdm_instances").fetch_all(&pool).await.unwrap();
    assert!(ignored.iter().any(|i| i == "app.Posts.legacySlug"), "{ignored:?}");
    report.instance.unwrap().stop().await.unwrap();
}
