//! Adding, changing or removing a migration file rebuilds a crate that embeds the folder,
//! without touching its Rust code: edits through `include_str!`, added and removed files
//! through `zdm::build::track` in build.rs. Builds a small probe crate with cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Builds the probe and returns what its binary prints.
fn build_and_run(app: &Path, target: &Path) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet"])
        .current_dir(app)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    assert!(out.status.success(), "probe build failed: {}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(target.join("debug/rebuild_probe")).output().unwrap();
    assert!(run.status.success());
    String::from_utf8(run.stdout).unwrap()
}

#[test]
fn migration_files_trigger_rebuilds() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = repo.join("target/zdm-rebuild-test");
    let app = root.join("app");
    let _ = std::fs::remove_dir_all(&app);
    let zdm = repo.display().to_string();
    write(
        &app.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"rebuild_probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nzdm = {{ path = {zdm:?} }}\n\n[build-dependencies]\nzdm = {{ path = {zdm:?} }}\n\n[workspace]\n"
        ),
    );
    std::fs::copy(repo.join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    write(&app.join("build.rs"), "fn main() {\n    zdm::build::track(\"migrations\");\n}\n");
    write(
        &app.join("src/main.rs"),
        "fn main() {\n    for m in zdm::migrator!(\"migrations\").migrations() {\n        \
         println!(\"{} {} {:02x}\", m.version, m.description, m.checksum[0]);\n    }\n}\n",
    );
    write(&app.join("migrations/0001_first.sql"), "SELECT 1;\n");
    let target = repo.join("target/zdm-probes");

    let first = build_and_run(&app, &target);
    assert_eq!(first.lines().count(), 1, "{first}");
    assert!(first.starts_with("1 first "));

    write(&app.join("migrations/0002_second.sql"), "SELECT 2;\n");
    let added = build_and_run(&app, &target);
    assert_eq!(added.lines().map(|l| l.split(' ').nth(1).unwrap()).collect::<Vec<_>>(), ["first", "second"]);

    write(&app.join("migrations/0001_first.sql"), "SELECT 1 + 1;\n");
    let changed = build_and_run(&app, &target);
    assert_ne!(changed.lines().next(), added.lines().next(), "the checksum follows the edit");

    std::fs::remove_file(app.join("migrations/0002_second.sql")).unwrap();
    let removed = build_and_run(&app, &target);
    assert_eq!(removed.lines().count(), 1, "{removed}");
}
