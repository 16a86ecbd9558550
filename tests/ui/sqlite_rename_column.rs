fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_rename_column", dialect = "sqlite");
}
