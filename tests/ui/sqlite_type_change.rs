fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_type_change", dialect = "sqlite");
}
