fn main() {
    let _ = zdm::migrator!("../../../../tests/ui/migrations/unknown_directive");
}
