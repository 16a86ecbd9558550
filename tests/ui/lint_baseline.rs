fn main() {
    // 0001 and 0002 are history; 0003 is judged with the schema they built.
    let _ = zdm::migrator!("../../../../tests/ui/migrations/lint_baseline", start_after = 2, postgres = "14");
}
