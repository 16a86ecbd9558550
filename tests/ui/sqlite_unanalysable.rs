fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/sqlite_unanalysable", dialect = "sqlite");
}
