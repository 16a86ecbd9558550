fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_foreign_keys_in_transaction", dialect = "sqlite");
}
