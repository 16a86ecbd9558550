// A warning of the SQLite lint, made an error here so the test can pin it.
#![deny(deprecated)]

fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_table_rebuild", dialect = "sqlite");
}
