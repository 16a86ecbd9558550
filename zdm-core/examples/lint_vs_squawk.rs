//! Lint throughput on real migration folders, side by side with squawk in one run.
//!
//!     cargo run --release -p zdm-core --features fs --example lint_vs_squawk -- DIR [DIR ..]
//!     cargo run -p zdm-core --features fs --example lint_vs_squawk -- --smoke   # CI
//!
//! For each folder: zdm's lint in this process (read, parse, judge: the median of 9 runs,
//! split into its phases) and the `squawk` binary (`pip install squawk-cli`; `SQUAWK=path`
//! picks one) over the same up-migrations with `--reporter json` as a whole process (the
//! median of 9; its process start is measured with an empty file and subtracted, so both
//! columns are the work alone). Files per second and the ratio are printed. `--smoke` lints
//! a small generated folder and skips squawk when it is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use zdm_core::lint::{lint, LintConfig, LintInput, PgVersion};
use zdm_core::source::{parse_files, read_dir};

const RUNS: usize = 9;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The up-migrations of a folder, as squawk is given them (diesel's `down.sql` left out).
fn up_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            up_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "sql")
            && !p.file_name().is_some_and(|n| n == "down.sql" || n.to_string_lossy().ends_with(".down.sql"))
        {
            out.push(p);
        }
    }
}

fn squawk() -> Option<String> {
    let bin = std::env::var("SQUAWK").unwrap_or_else(|_| "squawk".into());
    Command::new(&bin).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| bin)
}

fn time_squawk(bin: &str, files: &[PathBuf]) -> Duration {
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let _ = Command::new(bin).args(files).args(["--reporter", "json"]).output();
                t.elapsed()
            })
            .collect(),
    )
}

fn smoke_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zdm_lint_vs_squawk_{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for i in 1..=20 {
        let sql = format!(
            "CREATE TABLE t{i} (id bigint PRIMARY KEY, name text NOT NULL);\nCREATE INDEX t{i}_name ON t{i} (name);\n\
             ALTER TABLE t{i} ADD COLUMN note text DEFAULT 'x';\n"
        );
        std::fs::write(dir.join(format!("{:04}_t{i}.sql", i)), sql).unwrap();
    }
    dir
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let dirs: Vec<PathBuf> = if smoke {
        vec![smoke_dir()]
    } else {
        args.iter().filter(|a| !a.starts_with("--")).map(PathBuf::from).collect()
    };
    if dirs.is_empty() {
        eprintln!("usage: lint_vs_squawk DIR [DIR ..]   (migration folders, sqlx's or diesel's layout)");
        std::process::exit(2);
    }
    let squawk = squawk();
    let config = LintConfig { postgres: PgVersion::parse("15").unwrap(), ..LintConfig::default() };
    // squawk's process start, measured on an empty file, so that only its work is compared.
    let empty = std::env::temp_dir().join(format!("zdm_empty_{}.sql", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    let squawk_start = squawk.as_deref().map(|b| time_squawk(b, std::slice::from_ref(&empty)));
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11} {:>7}",
        "folder", "files", "read ms", "lint ms", "zdm ms", "findings", "squawk ms", "zdm files/s", "ratio"
    );
    for dir in &dirs {
        let mut read = Vec::new();
        let mut judged = Vec::new();
        let mut findings = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let files = read_dir(dir, &dir.display().to_string()).expect("a readable folder");
            let set = parse_files(files).expect("a valid folder");
            read.push(t.elapsed());
            let inputs: Vec<LintInput<'_>> = set.iter().map(LintInput::from_parsed).collect();
            let t = Instant::now();
            findings = lint(&inputs, &config).len();
            judged.push(t.elapsed());
        }
        let (read, judged) = (median(read), median(judged));
        let zdm = read + judged;
        let mut files = Vec::new();
        up_files(dir, &mut files);
        files.sort();
        let theirs = squawk.as_deref().map(|b| time_squawk(b, &files).saturating_sub(squawk_start.unwrap_or_default()));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<28} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9} {:>10} {:>11.0} {:>7}",
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
            files.len(),
            ms(read),
            ms(judged),
            ms(zdm),
            findings,
            theirs.map_or("-".into(), |t| format!("{:.1}", ms(t))),
            files.len() as f64 / zdm.as_secs_f64(),
            theirs.map_or("-".into(), |t| format!("{:.2}x", t.as_secs_f64() / zdm.as_secs_f64())),
        );
    }
    if let Some(start) = squawk_start {
        println!(
            "\nratio = squawk's time / zdm's (above 1: zdm is faster); squawk's process start ({:.1} ms) subtracted",
            start.as_secs_f64() * 1e3
        );
    } else {
        println!("\nsquawk not found (pip install squawk-cli, or SQUAWK=path): zdm's figures only");
    }
    let _ = std::fs::remove_file(&empty);
    if smoke {
        let _ = std::fs::remove_dir_all(&dirs[0]);
    }
}
