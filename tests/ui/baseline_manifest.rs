fn main() {
    // The manifest lists 0001 and 0002; 0002 was edited since, and 0003 is not listed (a
    // late merge): both are judged. A malformed manifest names its line.
    let _ = zdm::migrator!("../../../../tests/ui/migrations/manifest_edited");
    let _ = zdm::migrator!("../../../../tests/ui/migrations/manifest_bad");
}
