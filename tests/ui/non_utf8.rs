fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/non_utf8");
}
