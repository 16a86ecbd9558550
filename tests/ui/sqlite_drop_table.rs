fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_drop_table", dialect = "sqlite");
}
