//! Lint speed: throughput over 1,000 generated migration files, and the build time that
//! `zdm::migrations!` embedding (and linting) those files adds to a crate.
//!
//!     cargo run --release --example bench_lint            # full: 1,000 files, build-time probe
//!     cargo run --example bench_lint -- --smoke           # CI: 20 files, no build probe
//!     cargo run --release --example bench_lint -- --dir path/to/migrations   # a real history
//!
//! With `--dir`, the folder (sqlx's or diesel's layout) is copied and baselined at its
//! newest version (`zdm-baseline.txt`, as an adopting project does), so `migrations!`
//! embeds, checksums and replays every file without failing the build on its findings.
//!
//! The build probe compiles a small crate twice (with and without the macro call) in
//! target/zdm-bench-lint, after one warm-up build of its dependencies.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One generated migration; every tenth builds an index concurrently, every
/// seventh is an after_deploy cleanup, the rest create and fill a table.
fn migration(i: usize) -> (String, String) {
    let version = 20240000000000i64 + i as i64;
    if i.is_multiple_of(10) && i > 0 {
        let t = i - 1;
        let sql = format!(
            "-- zdm:no_transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t{t}_created_idx ON t{t} (created_at);\n"
        );
        return (format!("{version}_index_t{t}.sql"), sql);
    }
    if i.is_multiple_of(7) && i > 0 {
        let t = i - 2;
        let sql = format!("-- zdm:after_deploy\nALTER TABLE t{t} DROP COLUMN note;\n");
        return (format!("{version}_cleanup_t{t}.sql"), sql);
    }
    let sql = format!(
        "-- table {i}\nCREATE TABLE t{i} (\n    id bigint PRIMARY KEY,\n    name text NOT NULL,\n    \
         created_at timestamptz DEFAULT now()\n);\nALTER TABLE t{i} ADD COLUMN note text;\n\
         CREATE INDEX t{i}_name_idx ON t{i} (name);\nINSERT INTO t{i} (id, name) VALUES (1, 'first; not a split');\n\
         COMMENT ON TABLE t{i} IS 'generated';\n"
    );
    (format!("{version}_create_t{i}.sql"), sql)
}

fn generate(dir: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let (name, sql) = migration(i);
        std::fs::write(dir.join(name), sql).unwrap();
    }
}

fn cargo_build(app: &Path, target: &Path) -> Duration {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t = Instant::now();
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--release"])
        .current_dir(app)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    assert!(out.status.success(), "probe build failed: {}", String::from_utf8_lossy(&out.stderr));
    t.elapsed()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let args: Vec<String> = std::env::args().collect();
    let real = args.iter().position(|a| a == "--dir").and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = repo.join("target/zdm-bench-lint");
    let app = root.join("app");
    let n = match &real {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(app.join("migrations"));
            copy_dir(dir, &app.join("migrations"));
            let set = zdm::lint::read_set(&app.join("migrations")).unwrap();
            let newest = set.iter().map(|m| m.version).max().expect("a migration");
            zdm::baseline::write(app.join("migrations"), newest).unwrap();
            set.len()
        }
        None => {
            let n = if smoke { 20 } else { 1000 };
            generate(&app.join("migrations"), n);
            n
        }
    };

    let set = zdm::lint::read_set(&app.join("migrations")).unwrap();
    let statements: usize = set.iter().map(|m| zdm::lint::parse_statements(&m.sql).len()).sum();
    let inputs: Vec<zdm::lint::LintInput<'_>> = set.iter().map(zdm::lint::LintInput::from_parsed).collect();
    let config = zdm::lint::LintConfig::default();
    let runs = if smoke { 3 } else { 10 };
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let findings = zdm::lint(&inputs, &config);
        times.push(t.elapsed());
        assert!(
            real.is_some() || findings.iter().all(|f| !f.blocks()),
            "generated files are safe: {:?}",
            findings.first()
        );
    }
    let t = median(times);
    println!("lint (every file judged): {n} files, {statements} statements, median of {runs} runs");
    println!("  {:<28} {:>12.2?}", "time", t);
    println!("  {:<28} {:>12.0}", "statements / s", statements as f64 / t.as_secs_f64());
    if smoke {
        println!("build probe skipped in --smoke");
        return;
    }

    let zdm = repo.display().to_string();
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bench_lint_probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nzdm = {{ path = {zdm:?} }}\n\n[workspace]\n"
        ),
    )
    .unwrap();
    std::fs::copy(repo.join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    std::fs::create_dir_all(app.join("src")).unwrap();
    let with = "zdm::migrations!(\"migrations\");\nfn main() { println!(\"{}\", ZDM_MIGRATIONS.sql.len()); }\n";
    let without = "fn main() { let _ = zdm::Phase::PreDeploy; println!(\"0\"); }\n";
    let target = root.join("target");
    std::fs::write(app.join("src/main.rs"), without).unwrap();
    cargo_build(&app, &target); // warm-up: dependencies
    let mut t_with = Vec::new();
    let mut t_without = Vec::new();
    for _ in 0..3 {
        std::fs::write(app.join("src/main.rs"), without).unwrap();
        t_without.push(cargo_build(&app, &target));
        std::fs::write(app.join("src/main.rs"), with).unwrap();
        t_with.push(cargo_build(&app, &target));
    }
    let (a, b) = (median(t_with), median(t_without));
    println!("build of the probe crate (release, dependencies built), median of 3");
    println!("  {:<28} {:>12.2?}", "without migrations!", b);
    let what = if real.is_some() {
        format!("with migrations! ({n} files, baselined)")
    } else {
        format!("with migrations! ({n} files)")
    };
    println!("  {:<28} {:>12.2?}", what, a);
    println!("  {:<28} {:>12.2?}", "added", a.saturating_sub(b));
}
