// `#[derive(zdm::Model)]`: every mistake in its `#[zdm(..)]` options is reported at its
// own tokens, all at once.

#[derive(zdm::Model)]
struct NoTable {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(ignored_columns(legacy))]
struct OnlyIgnored {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(table = "posts", columns(legacy))]
struct AttributeSpelling {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(table = "posts", ignored_columns(legacy, legacy))]
struct Twice {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(table = "posts")]
#[zdm(table = "articles")]
struct TwoTables {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(table = "")]
struct EmptyTable {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(table = "posts", ignored_columns("legacy"))]
struct QuotedColumns {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm = "posts"]
struct NotAList {
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(table = "posts")]
struct OnAField {
    #[zdm(rename = "post_id")]
    id: i64,
}

#[derive(zdm::Model)]
#[zdm(table = "posts")]
struct Tuple(i64, String);

#[derive(zdm::Model)]
#[zdm(table = "posts")]
enum NotAStruct {
    Post,
}

#[derive(sqlx::FromRow, zdm::Model)]
#[sqlx(rename_all = "Title Case")]
#[zdm(table = "posts")]
struct BadRename {
    id: i64,
}

fn main() {}
