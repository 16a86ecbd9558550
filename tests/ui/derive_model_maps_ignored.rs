// A derived model's field that maps to an ignored column (directly or through sqlx's
// renames) does not compile; skipped and flattened fields map nothing of this table.

#[derive(sqlx::FromRow)]
struct Audit {
    created_by: String,
}

#[derive(sqlx::FromRow, zdm::Model)]
#[sqlx(rename_all = "camelCase")]
#[zdm(table = "posts", ignored_columns(legacySlug, description, audit))]
struct Post {
    id: i64,
    legacy_slug: String,
    #[sqlx(rename = "description")]
    summary: String,
    #[sqlx(skip)]
    description: String,
    #[sqlx(flatten)]
    audit: Audit,
}

fn main() {}
