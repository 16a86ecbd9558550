fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_add_required_column", dialect = "sqlite");
}
