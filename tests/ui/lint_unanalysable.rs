fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/lint_unanalysable");
}
