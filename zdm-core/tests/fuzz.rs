//! Fuzzing the readers of migration files with generated input: SQL-ish fragments glued
//! at random (quotes, dollar quotes, comments, directives, keywords, garbage bytes). Each
//! reader must return normally, and what it returns must be well-formed: statement ranges
//! inside the text and in order, lines from 1.

use zdm_core::lint::{lint, LintConfig, LintInput};
use zdm_core::{directive, split, Phase};

const PIECES: &[&str] = &[
    "ALTER TABLE posts ",
    "ADD COLUMN x int",
    " NOT NULL",
    " DEFAULT random()",
    "DROP COLUMN y",
    ";",
    ";;",
    "\n",
    "'",
    "''",
    "\"",
    "$$",
    "$tag$",
    "$1",
    "--",
    "-- zdm:after_deploy\n",
    "-- zdm:safety_assured why\n",
    "-- zdm:safety_assured\n",
    "-- zdm:bogus\n",
    "/*",
    "*/",
    "E'\\",
    "CREATE INDEX CONCURRENTLY i ON t (a)",
    "DO $$ BEGIN EXECUTE 'x'; END $$",
    "CREATE TABLE t (a int, b text)",
    "(",
    ")",
    ",",
    "USING a::text",
    "ALTER COLUMN a TYPE bigint",
    "SET NOT NULL",
    "UPDATE t SET a = 1",
    "é",
    "\u{0}",
    " ",
    "VALIDATE CONSTRAINT c",
    "CHECK (a IS NOT NULL) NOT VALID",
    "REFERENCES u (id)",
    "BEGIN",
    "END",
    "RENAME TO z",
    "DROP TABLE t CASCADE",
];

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn generated(rng: &mut Rng) -> String {
    let len = (rng.next() % 40) as usize;
    (0..len).map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize]).collect()
}

#[test]
fn readers_return_well_formed_results_on_generated_input() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for _ in 0..5_000 {
        let sql = generated(&mut rng);
        let lexed = split::lex(&sql);
        let mut last_end = 0;
        for s in &lexed.statements {
            assert!(s.offset >= last_end && s.offset + s.text.len() <= sql.len(), "{sql:?}");
            assert_eq!(&sql[s.offset..s.offset + s.text.len()], s.text);
            assert!(s.line >= 1);
            last_end = s.offset + s.text.len();
        }
        for s in zdm_core::lint::parse::parse(&sql) {
            assert!(s.range.start <= s.range.end && s.range.end <= sql.len(), "{sql:?}: {:?}", s.range);
            assert!(sql.is_char_boundary(s.range.start) && sql.is_char_boundary(s.range.end), "{sql:?}");
        }
        let assured = match directive::parse(&sql) {
            Ok(d) => d.safety_assured,
            Err(errors) => {
                assert!(errors.iter().all(|e| e.line >= 1 && !e.message.is_empty()));
                Vec::new()
            }
        };
        let input = LintInput {
            version: 1,
            path: "f.sql",
            sql: &sql,
            phase: Phase::PreDeploy,
            no_transaction: false,
            safety_assured: &assured,
        };
        for f in lint(&[input], &LintConfig::default()) {
            assert!(f.line >= 1 && f.column >= 1 && !f.message.is_empty(), "{sql:?}: {f}");
        }
    }
}

#[test]
fn arbitrary_bytes_as_utf8_do_not_break_the_readers() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..(rng.next() % 200)).map(|_| (rng.next() % 128) as u8).collect();
        let sql = String::from_utf8(bytes).unwrap();
        let stmts = zdm_core::lint::parse::parse(&sql);
        assert!(stmts.iter().all(|s| s.range.end <= sql.len()));
        let _ = directive::parse(&sql);
    }
}

/// The readers added for adoption, old queries and the registry: the baseline manifest, an
/// old query's facts, a published mapped column.
#[test]
fn manifest_query_facts_and_registry_readers_survive_generated_input() {
    use zdm_core::baseline::Manifest;
    use zdm_core::gate::Mapped;
    let extra = [
        "# c\n",
        "1 ",
        "20240101 ",
        "ab",
        "0",
        "\t",
        "INSERT INTO t (a, b) VALUES ($1)",
        " RETURNING *",
        "SELECT t.* FROM t",
    ];
    let mut rng = Rng(7);
    for _ in 0..3_000 {
        let mut text = generated(&mut rng);
        for _ in 0..(rng.next() % 6) {
            text.push_str(extra[(rng.next() % extra.len() as u64) as usize]);
        }
        match Manifest::parse(&text) {
            Ok(m) => assert!(m.entries.iter().all(|(_, sum)| sum.len() == 48)),
            Err((line, message)) => assert!(line >= 1 && line <= text.lines().count() && !message.is_empty()),
        }
        let facts = zdm_core::old_query::facts(&text);
        if let Some((_, Some(columns))) = &facts.insert {
            assert!(columns.iter().all(|c| !c.contains(',')), "{text:?}: {columns:?}");
        }
        if let Some(m) = Mapped::decode(&text) {
            assert_eq!(Mapped::decode(&m.encode()), Some(m));
        }
    }
}
