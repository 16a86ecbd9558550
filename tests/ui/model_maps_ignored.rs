// A field that maps to an ignored column (directly or through sqlx's renames) does not
// compile; every such field is reported.
#[derive(sqlx::FromRow)]
#[sqlx(rename_all = "camelCase")]
#[zdm::ignored_columns(table = "posts", columns(legacySlug, description))]
struct Post {
    id: i64,
    legacy_slug: String,
    #[sqlx(rename = "description")]
    summary: String,
    #[sqlx(skip)]
    description: String,
}

fn main() {

}
