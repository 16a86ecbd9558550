fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_transaction_control", dialect = "sqlite");
}
