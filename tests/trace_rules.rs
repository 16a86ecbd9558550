//! The lint against the server: every PostgreSQL rule's documented example and its "use
//! instead" SQL (the ```sql blocks of `zdm-core/src/lint/rules/<id>.rs`) are run through
//! `Migrator::trace`, and where the server locks more, rewrites or scans where the lint's
//! prediction said it would not, the test fails. A block the server refuses on this
//! schema (`DROP DATABASE` in a transaction, a `DO` block naming an unset variable) is
//! reported and skipped: there is nothing to observe.

mod common;

use common::TestDb;
use zdm::plan::TraceOptions;
use zdm::Migrator;

/// The schema every example is written against (the names the rule docs use).
const SETUP: &str = "
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN email AS text;
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, seen boolean);
CREATE TABLE posts (
    id bigint PRIMARY KEY,
    user_id bigint,
    title varchar(100) NOT NULL,
    body text,
    price numeric(10,2),
    status text NOT NULL DEFAULT 'draft',
    score int CHECK (score >= 0),
    legacy_slug text,
    mood mood
);
CREATE INDEX posts_title_idx ON posts (title);
CREATE TABLE events (id bigint, at timestamptz) PARTITION BY RANGE (at);
CREATE TABLE events_2019 PARTITION OF events FOR VALUES FROM ('2019-01-01') TO ('2020-01-01');
CREATE TABLE events_2024 (id bigint, at timestamptz);
CREATE TABLE events_archive (id bigint NOT NULL);
CREATE TABLE legacy_sessions (id bigint);
CREATE TABLE sessions (id bigint);
CREATE TABLE bookings (room int, during tstzrange);
CREATE FUNCTION slugify(text) RETURNS text LANGUAGE sql AS $$ SELECT lower($1) $$;
CREATE FUNCTION sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE VIEW active_posts AS SELECT id FROM users;
CREATE MATERIALIZED VIEW post_stats AS SELECT 1 AS id;
CREATE UNIQUE INDEX post_stats_id ON post_stats (id);
CREATE SCHEMA reporting;
CREATE SCHEMA billing;
";

/// The ```sql blocks of a rule file's module doc, in order.
fn sql_blocks(source: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in source.lines().take_while(|l| l.starts_with("//!")) {
        let text = line.trim_start_matches("//!").strip_prefix(' ').unwrap_or(line.trim_start_matches("//!"));
        match (&mut current, text.trim()) {
            (None, "```sql") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), _) => {
                b.push_str(text);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// The setup as migration 1 and each statement of `block` as a migration of its own
/// (`no_transaction` where PostgreSQL needs it).
fn set(block: &str) -> Migrator {
    let mut files = vec![zdm_core::source::SourceFile {
        path: "migrations/0001_setup.sql".into(),
        bytes: SETUP.as_bytes().to_vec(),
    }];
    for (i, st) in zdm_core::exec::statements(block).iter().enumerate() {
        let mut sql = st.text.trim().to_string();
        if sql.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with("--")) {
            continue;
        }
        if st.needs_no_transaction && !sql.contains("zdm:no_transaction") {
            sql = format!("-- zdm:no_transaction\n{sql}");
        }
        files.push(zdm_core::source::SourceFile {
            path: format!("migrations/{:04}_example.sql", i + 2),
            bytes: format!("{sql};\n").into_bytes(),
        });
    }
    let parsed = zdm_core::source::parse_files(files).expect("rule examples parse as migration files");
    Migrator::from_parsed(parsed, "trace-rules", "1.0.0").without_registration()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_example_is_traced_without_disagreement() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    set("").run_all(&pool).await.unwrap();

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/zdm-core/src/lint/rules");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".rs") && name != "mod.rs" && !name.starts_with("sqlite_")
        })
        .collect();
    files.sort();

    let (mut traced, mut refused, mut found) = (0, Vec::new(), Vec::new());
    for path in files {
        let rule = path.file_stem().unwrap().to_string_lossy().replace('_', "-");
        let source = std::fs::read_to_string(&path).unwrap();
        for (b, block) in sql_blocks(&source).iter().enumerate() {
            let trace = set(block).trace(&pool, TraceOptions { sample_rows: 0 }).await.unwrap();
            traced += trace
                .migrations
                .iter()
                .map(|m| m.statements.iter().filter(|s| s.error.is_none()).count())
                .sum::<usize>();
            if let Some((m, s)) = trace.failed() {
                refused.push(format!(
                    "{rule} block {b}: {} refused: {}",
                    m.plan.source,
                    s.error.as_deref().unwrap_or("")
                ));
            }
            for (_, s, d) in trace.disagreements() {
                found.push(format!("{rule} block {b}: `{}`: {d}", s.predicted.summary(80)));
            }
        }
    }
    println!("{traced} statements traced");
    for r in &refused {
        println!("refused (not observable): {r}");
    }
    for d in &found {
        println!("DISAGREES: {d}");
    }
    assert!(traced > 60, "too few statements traced: {traced}");
    assert!(found.is_empty(), "{} disagreement(s):\n{}", found.len(), found.join("\n"));
}
