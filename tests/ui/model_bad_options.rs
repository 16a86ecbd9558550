#[zdm::ignored_columns(columns(legacy))]
struct NoTable {
    id: i64,
}

#[zdm::ignored_columns(table = "posts", columns(legacy, legacy))]
struct Twice {
    id: i64,
}

#[zdm::model(table = "posts", columns(legacy))]
struct ModelTakesNoColumns {
    id: i64,
}

#[zdm::model(table = "posts")]
struct Tuple(i64, String);

#[derive(sqlx::FromRow)]
#[sqlx(rename_all = "Title Case")]
#[zdm::model(table = "posts")]
struct BadRename {
    id: i64,
}

fn main() {}
