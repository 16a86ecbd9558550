//! Lints a migrations folder (sqlx's or diesel's layout) and prints what the analyzer
//! makes of it: the share of statements it could read, the findings per rule, and with
//! `--show RULE` every finding of one rule. `--dialect sqlite` reads and judges the folder as
//! SQLite (replayed into an in-memory SQLite) instead of PostgreSQL.
//!
//!     cargo run --release --example lint_dir -- path/to/migrations [--dialect sqlite] [--start-after V] [--postgres 15] [--show RULE]

use std::collections::BTreeMap;

use zdm::lint::{LintConfig, PgVersion, Severity, StmtKind};
use zdm::Dialect;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut config = LintConfig::default();
    let mut show: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--start-after" => config.start_after = args.next().and_then(|v| v.parse().ok()),
            "--postgres" => config.postgres = args.next().and_then(|v| PgVersion::parse(&v)).expect("--postgres 15"),
            "--show" => show.extend(args.next()),
            "--dialect" => {
                config.dialect = args.next().and_then(|v| Dialect::parse(&v)).expect("--dialect postgres|sqlite")
            }
            _ => dir = Some(a),
        }
    }
    let dir = dir.expect("usage: lint_dir <migrations folder> [--start-after V] [--postgres N] [--show RULE]");
    let set = match zdm::lint::read_set(std::path::Path::new(&dir)) {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    };
    let (mut statements, mut unreadable) = (0usize, Vec::new());
    if config.dialect == Dialect::Sqlite {
        // The statements as SQLite reads them: the set replayed in order, as the lint does.
        let mut engine = zdm_core::lint::sqlite::replay::Engine::open().expect("an in-memory SQLite");
        let mut ordered: Vec<_> = set.iter().collect();
        ordered.sort_by_key(|m| m.version);
        for m in ordered {
            let replayed = engine.replay(&m.sql, !m.directives.no_transaction);
            for s in zdm_core::lint::sqlite::statements(&replayed) {
                statements += 1;
                if let zdm_core::lint::sqlite::model::Kind::Unreadable { message } = s.kind {
                    let line = zdm_line(&m.sql, s.focus);
                    unreadable.push(format!("{}:{line}: {message}", m.path));
                }
            }
        }
    }
    for m in set.iter().filter(|_| config.dialect == Dialect::Postgres) {
        for s in zdm::lint::parse_statements(&m.sql) {
            statements += 1;
            if let StmtKind::Unparsable { message } = s.kind {
                let line = zdm_line(&m.sql, s.range.start);
                unreadable.push(format!("{}:{line}: {message}", m.path));
            }
        }
    }
    let started = std::time::Instant::now();
    let findings = zdm::lint::lint_dir(&dir, &config).expect("read above");
    let took = started.elapsed();
    println!("{} migrations, {statements} statements, linted in {took:.2?}", set.len());
    println!(
        "readable: {} of {statements} ({:.2}%); unanalysable: {}",
        statements - unreadable.len(),
        100.0 * (statements - unreadable.len()) as f64 / statements.max(1) as f64,
        unreadable.len()
    );
    for u in &unreadable {
        println!("  unanalysable {u}");
    }
    let mut per_rule: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for f in &findings {
        let e = per_rule.entry(f.rule).or_default();
        match (f.severity, f.assured.is_some()) {
            (_, true) => e.2 += 1,
            (Severity::Error, false) => e.0 += 1,
            _ => e.1 += 1,
        }
    }
    println!("{:<36} {:>7} {:>9} {:>9}", "rule", "errors", "warnings", "assured");
    for (rule, (e, w, a)) in &per_rule {
        println!("{rule:<36} {e:>7} {w:>9} {a:>9}");
    }
    for f in findings.iter().filter(|f| show.iter().any(|r| r == f.rule)) {
        println!("\n{f}");
    }
}

fn zdm_line(sql: &str, offset: usize) -> usize {
    sql[..offset.min(sql.len())].matches('\n').count() + 1
}
