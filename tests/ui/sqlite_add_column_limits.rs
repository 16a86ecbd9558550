fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_add_column_limits", dialect = "sqlite");
}
