//! Fuzzing zdm-core's readers of migration input: directive parsing, file naming (and the
//! file-set reader that reports `file:line`), the baseline manifest, the two statement
//! splitters, the lint entry and `removed` (what a migration drops), plus the old-query and
//! registry readers.
//!
//! Each target gets generated input: SQL-ish fragments glued at random, mutations of
//! realistic files, random bytes and random text from a small alphabet. A target must
//! return normally (a panic is caught per input with `catch_unwind` and reported with the
//! escaped input, the panic message and a backtrace), and what it returns must be
//! well-formed: every error carries a line within the input's line count (and the file name
//! where the API carries one), statement ranges lie inside the text and in order, lines
//! start at 1.
//!
//! Input `case` of a target is generated from `(seed, target name, case)` alone, so any
//! failure reproduces on its own:
//! `cargo run -p zdm-core --release --example fuzz -- --target NAME --seed SEED --case N`.
//!
//! This file is the harness and the CI smoke (`cargo test -p zdm-core --test fuzz`, a few
//! seconds). `examples/fuzz.rs` includes it and runs the recorded long run (10^6 inputs per
//! target); see `docs/src/fuzzing.md`.

#![allow(dead_code)]

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use zdm_core::baseline::{self, Manifest};
use zdm_core::checksum::checksum;
use zdm_core::directive::{self, AssuredScope, SafetyAssured};
use zdm_core::gate::Mapped;
use zdm_core::lint::{self, LintConfig, LintInput, PgVersion};
use zdm_core::source::{self, FileName, SourceFile};
use zdm_core::{exec, old_query, removed, split, Phase};

// ---------------------------------------------------------------------------------------
// Randomness

/// splitmix64: small, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// The generator of input `case` of `target`: independent of every other input.
    pub fn for_case(seed: u64, target: &str, case: u64) -> Rng {
        let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in target.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Rng(h ^ case.wrapping_mul(0xd6e8_feb8_6659_fd93));
        rng.next_u64();
        rng
    }
}

// ---------------------------------------------------------------------------------------
// Material for the generators

/// Whole statements, for glued files.
const STATEMENTS: &[&str] = &[
    "CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL, a int, b text)",
    "CREATE TABLE u (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, doc json, s serial)",
    "CREATE TABLE p (a int, b int GENERATED ALWAYS AS (a * 2) STORED) PARTITION BY RANGE (a)",
    "CREATE TABLE IF NOT EXISTS public.\"Posts\" (\"Old Name\" text, é int)",
    "CREATE TABLE c AS SELECT * FROM posts",
    "SELECT * INTO n FROM posts",
    "ALTER TABLE posts ADD COLUMN x int",
    "ALTER TABLE posts ADD COLUMN c int DEFAULT 0 NOT NULL",
    "ALTER TABLE posts ADD COLUMN r float DEFAULT random()",
    "ALTER TABLE posts ADD COLUMN k uuid DEFAULT gen_random_uuid()",
    "ALTER TABLE posts ADD COLUMN ts timestamptz DEFAULT now()",
    "ALTER TABLE posts ADD COLUMN j jsonb",
    "ALTER TABLE posts ADD COLUMN n bigserial",
    "ALTER TABLE posts DROP COLUMN a",
    "ALTER TABLE posts DROP COLUMN IF EXISTS \"Old Name\" CASCADE, DROP COLUMN b",
    "ALTER TABLE posts ALTER COLUMN title TYPE varchar(10)",
    "ALTER TABLE posts ALTER COLUMN a TYPE bigint USING a::bigint",
    "ALTER TABLE posts ALTER COLUMN b TYPE text",
    "ALTER TABLE posts ALTER COLUMN a SET NOT NULL",
    "ALTER TABLE posts ALTER COLUMN a DROP NOT NULL",
    "ALTER TABLE posts ALTER COLUMN a SET DEFAULT 1",
    "ALTER TABLE posts ALTER COLUMN a DROP DEFAULT",
    "ALTER TABLE posts RENAME COLUMN a TO z",
    "ALTER TABLE posts RENAME TO p2",
    "ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id) NOT VALID",
    "ALTER TABLE posts ADD CONSTRAINT fk2 FOREIGN KEY (a) REFERENCES u (id)",
    "ALTER TABLE posts VALIDATE CONSTRAINT fk",
    "ALTER TABLE posts ADD CONSTRAINT ck CHECK (a IS NOT NULL) NOT VALID",
    "ALTER TABLE posts ADD CONSTRAINT ck2 CHECK (a > 0)",
    "ALTER TABLE posts ADD CONSTRAINT uq UNIQUE (a)",
    "ALTER TABLE posts ADD CONSTRAINT uq2 UNIQUE USING INDEX i",
    "ALTER TABLE posts ADD PRIMARY KEY (id)",
    "ALTER TABLE posts ADD EXCLUDE USING gist (a WITH &&)",
    "ALTER TABLE posts DROP CONSTRAINT fk",
    "ALTER TABLE p ATTACH PARTITION p1 FOR VALUES FROM (1) TO (10)",
    "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY",
    "ALTER TABLE posts DISABLE TRIGGER ALL",
    "ALTER TABLE posts SET LOGGED",
    "ALTER TABLE ONLY posts ALTER COLUMN a SET STATISTICS 100",
    "ALTER TABLE IF EXISTS public.posts ADD COLUMN y text",
    "CREATE INDEX i ON posts (a)",
    "CREATE INDEX CONCURRENTLY i ON posts (a)",
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i2 ON ONLY posts USING btree (lower(title)) WHERE a > 0",
    "CREATE INDEX CONCURRENTLY ON posts (b)",
    "CREATE INDEX CONCURRENTLY pi ON p (a)",
    "DROP INDEX i",
    "DROP INDEX CONCURRENTLY IF EXISTS i",
    "REINDEX TABLE posts",
    "REINDEX INDEX CONCURRENTLY i",
    "REFRESH MATERIALIZED VIEW mv",
    "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
    "CREATE TRIGGER tr BEFORE UPDATE ON posts FOR EACH ROW EXECUTE FUNCTION f()",
    "CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN NEW.a := 1; RETURN NEW; END $f$",
    "DO $$ BEGIN ALTER TABLE posts DROP COLUMN a; END $$",
    "DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'x'; END $$",
    "DO $x$ DECLARE n int; BEGIN IF true THEN n := 1; END IF; END $x$",
    "DO 'BEGIN END'",
    "DO $$BEGIN UPDATE posts SET a = 1; END;$$",
    "LOCK TABLE posts IN ACCESS EXCLUSIVE MODE",
    "TRUNCATE posts, u CASCADE",
    "TRUNCATE TABLE posts",
    "VACUUM FULL posts",
    "CLUSTER posts USING i",
    "DELETE FROM posts WHERE id < 10",
    "DELETE FROM posts",
    "UPDATE posts SET a = 0",
    "UPDATE posts SET a = 0 WHERE id BETWEEN 1 AND 1000",
    "INSERT INTO posts (a, b) SELECT a, b FROM u RETURNING *",
    "INSERT INTO posts VALUES (1, 'x')",
    "CREATE TYPE mood AS ENUM ('a', 'b')",
    "ALTER TYPE mood ADD VALUE 'c' AFTER 'a'",
    "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'd'",
    "ALTER TYPE mood RENAME VALUE 'a' TO 'z'",
    "CREATE DOMAIN d AS int",
    "ALTER DOMAIN d ADD CONSTRAINT dc CHECK (VALUE > 0)",
    "DROP SCHEMA s CASCADE",
    "ALTER SCHEMA s RENAME TO s2",
    "DROP DATABASE db",
    "DROP VIEW IF EXISTS v",
    "DROP MATERIALIZED VIEW mv",
    "DROP FUNCTION f()",
    "DROP TABLE posts",
    "DROP TABLE IF EXISTS audit, public.notes CASCADE",
    "DROP TABLE \"Mixed Case\".\"T\"",
    "CREATE VIEW v AS SELECT * FROM posts",
    "CREATE MATERIALIZED VIEW mv AS SELECT a FROM posts",
    "SET lock_timeout = '1s'",
    "SET LOCAL statement_timeout TO 0",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SELECT 1",
    "SELECT $1, $2::text",
    "PREPARE p AS SELECT $1",
    "COPY posts FROM stdin",
    "COMMENT ON TABLE posts IS 'it''s; fine'",
    "SELECT E'a\\';b', 'x''y', $tag$ ; $tag$, \"we;ird\"",
    "ALTER TABLE U&\"d\\0061t\\+000061\" DROP COLUMN U&\"\\00e9\"",
    "DO $$ BEGIN CREATE TYPE mood AS ENUM ('a'); EXCEPTION WHEN duplicate_object THEN null; END $$",
    "DO $$ DECLARE n int := 0; BEGIN IF NOT EXISTS (SELECT 1 FROM t) THEN ALTER TABLE posts ADD COLUMN z int; ELSIF n > 1 THEN NULL; ELSE RAISE NOTICE 'x;'; END IF; END $$",
    "DO $d$ BEGIN <<l>> FOR r IN SELECT id FROM posts LOOP UPDATE posts SET a = 1 WHERE id = r.id; END LOOP l; END $d$",
    "DO 'BEGIN EXECUTE ''DROP TABLE t''; END'",
    "DO LANGUAGE plpgsql $$ BEGIN EXECUTE format('DROP TABLE %I', t); n := 1; PERFORM f(); END $$",
    "DO $$ BEGIN CASE x WHEN 1 THEN SELECT a INTO STRICT v FROM t; ELSE DO $i$ BEGIN NULL; END $i$; END CASE; END $$",
    "WITH u AS (UPDATE posts SET a = 0 WHERE a IS NULL RETURNING id) SELECT count(*) FROM u",
    "INSERT OR IGNORE INTO t (a) VALUES (1)",
    "PRAGMA foreign_keys = ON",
];

/// Fragments that are not whole statements.
const FRAGMENTS: &[&str] = &[
    "ALTER TABLE posts ",
    "ALTER TABLE ",
    "ADD COLUMN x int",
    " NOT NULL",
    " DEFAULT random()",
    "DROP COLUMN y",
    "DROP TABLE t CASCADE",
    "CREATE INDEX CONCURRENTLY i ON t (a)",
    "CREATE TABLE t (a int, b text)",
    "USING a::text",
    "ALTER COLUMN a TYPE bigint",
    "SET NOT NULL",
    "UPDATE t SET a = 1",
    "VALIDATE CONSTRAINT c",
    "CHECK (a IS NOT NULL) NOT VALID",
    "REFERENCES u (id)",
    "RENAME TO z",
    "DO ",
    "DO $$",
    "$$",
    "$x$",
    "EXECUTE ",
    "EXECUTE '",
    "IF ",
    " THEN ",
    "ELSIF ",
    "ELSE ",
    "END IF",
    "LOOP ",
    "END LOOP",
    "EXCEPTION WHEN ",
    "DECLARE ",
    "<<",
    ">>",
    ":=",
    " INTO ",
    "CASE ",
    "WHEN ",
    "BEGIN",
    "END",
    "END;",
    "IF EXISTS ",
    "ONLY ",
    "CONCURRENTLY ",
    "public.",
    "posts",
    "\"Old Name\"",
    "\"a\"\"b\"",
    "U&\"\\",
    "ünïcödé",
    "表",
    "a",
    "1",
    "1e308",
    "-9223372036854775808",
    "::",
    "[",
    "]",
    "ARRAY[1,2]",
    "(",
    ")",
    ",",
    ".",
    "*",
];

/// Lexically interesting bits.
const NOISE: &[&str] = &[
    ";",
    ";;",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "'",
    "''",
    "\"",
    "`",
    "$$",
    "$tag$",
    "$1",
    "$0$",
    "$é$",
    "$",
    "--",
    "--\n",
    "/*",
    "*/",
    "/* /* nested */",
    "E'\\",
    "e'\\'",
    "B'101'",
    "X'ff'",
    "N'x'",
    "\\",
    "\\\\",
    "é",
    "\u{0}",
    "\u{feff}",
    "\u{a0}",
    "\u{2028}",
    "\u{3000}",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{301}",
];

const DIRECTIVES: &[&str] = &[
    "-- zdm:after_deploy\n",
    "-- zdm:no_transaction\n",
    "-- zdm:safety_assured why\n",
    "-- zdm:safety_assured\n",
    "-- zdm:bogus\n",
    "-- zdm:lock_timeout 2s\n",
    "-- zdm:statement_timeout 10min\n",
    "-- no-transaction\n",
    "-- zdm:",
    "--zdm:",
    "-- zdm: ",
    "zdm:",
    "after_deploy",
    "no_transaction",
    "lock_timeout",
    "statement_timeout",
    "safety_assured",
    " reason",
    " ",
    "\t",
    "5s",
    "500ms",
    "2min",
    "1h",
    "0",
    "-1s",
    "18446744073709551615",
    "18446744073709551616min",
    "99999999999999h",
    "1.5s",
    "٣s",
    "\n",
    "SELECT 1;",
    "SELECT 1;\n",
    "CREATE INDEX CONCURRENTLY i ON t (a);\n",
];

const MANIFEST: &[&str] = &[
    "# zdm baseline\n",
    "#",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\u{a0}",
    "1",
    "20240101120000",
    "-5",
    "+7",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "00",
    "ff",
    "FF",
    "0g",
    "é",
    "x",
    "١٢",
    "1 ",
    "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
    "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95",
    "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b0",
    "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b9é",
];

const NAMES: &[&str] = &[
    "0",
    "1",
    "0001",
    "2024",
    "20240101120000",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
    "2019-02-26-002946",
    "-",
    "--",
    "_",
    "__",
    "add_posts",
    "x",
    ".sql",
    ".up.sql",
    ".down.sql",
    ".SQL",
    ".sql.sql",
    ".",
    "..",
    "/",
    "\\",
    "up.sql",
    "down.sql",
    "metadata.toml",
    "é",
    "١",
    " ",
    "\n",
    "\u{0}",
    "+1",
    "v1",
    "m/",
];

/// Realistic files, mutated by the generators.
const SQL_SEEDS: &[&str] = &[
    "-- zdm:after_deploy\n-- zdm:lock_timeout 5s\nALTER TABLE posts DROP COLUMN legacy;\nDROP TABLE IF EXISTS audit;\n",
    "-- zdm:no_transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS posts_a ON posts (a);\nDROP INDEX CONCURRENTLY old_i;\n",
    "CREATE TABLE posts (\n  id bigint PRIMARY KEY,\n  title text NOT NULL -- the title\n);\n/* a /* nested */ comment */\nINSERT INTO posts VALUES (1, 'it''s; fine');\n",
    "-- zdm:safety_assured table is tiny\nALTER TABLE posts ALTER COLUMN a SET NOT NULL;\nSELECT 1;\n-- zdm:safety_assured reviewed\nDROP TABLE t;\n",
    "CREATE FUNCTION f() RETURNS trigger AS $body$\nBEGIN\n  NEW.x := 1; RETURN NEW;\nEND\n$body$ LANGUAGE plpgsql;\nDO $$ BEGIN PERFORM 1; END $$;\n",
    "ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES u (id) NOT VALID;\nALTER TABLE posts VALIDATE CONSTRAINT fk;\n",
    "SELECT E'a\\';b'; SELECT \"we;ird\" FROM t; PREPARE p AS SELECT $1; SELECT 2;",
    "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);",
    "ALTER TABLE \"Posts\" DROP COLUMN \"Old Name\", DROP COLUMN IF EXISTS é;\nALTER TYPE mood ADD VALUE 'c';\n",
    "UPDATE posts SET a = 0 WHERE id IN (SELECT id FROM posts WHERE a IS NULL LIMIT 1000);\n",    "DO $$\nDECLARE\n  n int;\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN\n    CREATE TYPE mood AS ENUM ('a');\n  END IF;\n  BEGIN\n    ALTER TABLE posts RENAME COLUMN a TO b;\n  EXCEPTION WHEN undefined_column THEN NULL;\n  END;\n  EXECUTE 'ALTER TABLE posts DROP COLUMN x';\n  EXECUTE 'DROP ' || 'TABLE t';\nEND $$;\n",
];

const NAME_SEEDS: &[&str] = &[
    "20240101120000_add_posts.sql",
    "0001_init.up.sql",
    "0001_init.down.sql",
    "2019-02-26-002946_create_user",
    "00000000000000_diesel_initial_setup",
    ".0001_hidden.sql",
    "README.md",
    "9223372036854775807_max.sql",
];

// ---------------------------------------------------------------------------------------
// Generators

/// How to make text for one kind of input.
struct Spec {
    groups: &'static [&'static [&'static str]],
    seeds: &'static [&'static str],
    alphabet: &'static str,
    max_pieces: usize,
    /// Also whole files of statements.
    files: bool,
}

const SQL_SPEC: Spec = Spec {
    groups: &[STATEMENTS, FRAGMENTS, NOISE, DIRECTIVES],
    seeds: SQL_SEEDS,
    alphabet: "-;'\"$/*\n eEab_1\\()`",
    max_pieces: 40,
    files: true,
};

const DIRECTIVE_SPEC: Spec = Spec {
    groups: &[DIRECTIVES, DIRECTIVES, NOISE, FRAGMENTS],
    seeds: SQL_SEEDS,
    alphabet: "-- zdm:_adeloystin\n;'$/*\"05smh\t",
    max_pieces: 30,
    files: true,
};

const MANIFEST_SPEC: Spec = Spec {
    groups: &[MANIFEST, MANIFEST, NOISE],
    seeds: &[
        "# c\n1 38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b\n",
    ],
    alphabet: "# \n\t0123456789abcdefABCDEFxg-+",
    max_pieces: 24,
    files: false,
};

const NAME_SPEC: Spec = Spec {
    groups: &[NAMES, NAMES, NOISE],
    seeds: NAME_SEEDS,
    alphabet: "0123456789_-.sqlupdown/\\é ",
    max_pieces: 10,
    files: false,
};

fn random_char(rng: &mut Rng) -> char {
    let code = match rng.below(4) {
        0 => rng.below(0x80),
        1 => 0x80 + rng.below(0x800 - 0x80),
        2 => 0x800 + rng.below(0x1_0000 - 0x800),
        _ => 0x1_0000 + rng.below(0x11_0000 - 0x1_0000),
    };
    char::from_u32(code as u32).unwrap_or('\u{fffd}')
}

fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.below(max + 1);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn glue(rng: &mut Rng, spec: &Spec) -> String {
    let mut out = String::new();
    for _ in 0..rng.below(spec.max_pieces + 1) {
        match rng.below(24) {
            0 => out.push(random_char(rng)),
            1 => out.push_str(rng.pick(NOISE)),
            _ => {
                let group = rng.pick(spec.groups);
                out.push_str(rng.pick(group));
            }
        }
    }
    out
}

/// Statements separated by `;` and newlines, with a little noise: the shape of a file.
fn statements_text(rng: &mut Rng) -> String {
    let mut out = String::new();
    if rng.chance(30) {
        out.push_str(rng.pick(DIRECTIVES));
    }
    for _ in 0..rng.below(9) {
        if rng.chance(10) {
            out.push_str(rng.pick(DIRECTIVES));
        }
        out.push_str(rng.pick(STATEMENTS));
        if rng.chance(10) {
            let group = if rng.chance(50) { NOISE } else { FRAGMENTS };
            out.push_str(rng.pick(group));
        }
        out.push_str(if rng.chance(85) { ";\n" } else { rng.pick(NOISE) });
    }
    out
}

fn mutate(rng: &mut Rng, spec: &Spec, mut b: Vec<u8>) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\n;'\"$-/*\\ \0\xff\xc3";
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(b.len() + 1);
        match rng.below(9) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => b.insert(at, rng.next_u64() as u8),
            2 => {
                let group = rng.pick(spec.groups);
                let piece = rng.pick(group).as_bytes();
                b.splice(at..at, piece.iter().copied());
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(b.len());
                b.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + 1 + rng.below(32)).min(b.len());
                let copy = b[at.min(end)..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, copy);
            }
            5 => {
                let other = rng.pick(spec.seeds).as_bytes();
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                b.splice(at..at, other[from..end].iter().copied());
            }
            6 => b.truncate(at),
            7 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.pick(INTERESTING);
            }
            _ => b.insert(at, rng.pick(INTERESTING)),
        }
    }
    b
}

fn text_bytes(rng: &mut Rng, spec: &Spec) -> Vec<u8> {
    match rng.below(100) {
        0..=2 if spec.files => {
            // Nesting, kept well inside the parser's stack limits (see `SHAPES`).
            let depth = 1 + rng.below(64);
            let (open, close) =
                rng.pick(&[("(", ")"), ("(SELECT ", ")"), ("ARRAY[", "]"), ("CASE WHEN a THEN ", " END")]);
            let inner = glue(rng, &Spec { max_pieces: 4, ..SQL_SPEC });
            format!("SELECT {}{inner}{};", open.repeat(depth), close.repeat(depth)).into_bytes()
        }
        0..=34 => glue(rng, spec).into_bytes(),
        35..=44 if spec.files => statements_text(rng).into_bytes(),
        35..=69 => {
            let seed = rng.pick(spec.seeds).as_bytes().to_vec();
            mutate(rng, spec, seed)
        }
        70..=84 => random_bytes(rng, 256),
        _ => {
            let alphabet: Vec<char> = spec.alphabet.chars().collect();
            (0..rng.below(200)).map(|_| rng.pick(&alphabet)).collect::<String>().into_bytes()
        }
    }
}

/// Text for a `&str` API: the generated bytes, invalid UTF-8 replaced by U+FFFD (bytes that
/// are not UTF-8 reach zdm only through `source::parse_files`, which is fuzzed with them).
fn text(rng: &mut Rng, spec: &Spec) -> String {
    String::from_utf8_lossy(&text_bytes(rng, spec)).into_owned()
}

// ---------------------------------------------------------------------------------------
// Inputs

/// One lint input, owned.
#[derive(Debug, Clone)]
pub struct LintFile {
    pub version: i64,
    pub path: String,
    pub sql: String,
    pub phase: Phase,
    pub no_transaction: bool,
    pub safety_assured: Vec<SafetyAssured>,
}

/// A migration set and the lint settings.
#[derive(Debug, Clone)]
pub struct LintCase {
    pub files: Vec<LintFile>,
    pub postgres: PgVersion,
    pub start_after: Option<i64>,
    pub baseline: Option<Manifest>,
}

/// What one target is given.
#[derive(Debug, Clone)]
pub enum Input {
    Text(String),
    Files(Vec<SourceFile>),
    Lint(LintCase),
}

impl fmt::Display for Input {
    /// Escaped so that it can be pasted into a Rust string literal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Text(t) => write!(f, "{t:?}"),
            Input::Files(files) => {
                for file in files {
                    match std::str::from_utf8(&file.bytes) {
                        Ok(t) => writeln!(f, "  file {:?}: {t:?}", file.path)?,
                        Err(_) => writeln!(f, "  file {:?}: b\"{}\"", file.path, file.bytes.escape_ascii())?,
                    }
                }
                Ok(())
            }
            Input::Lint(case) => write!(f, "{case:#?}"),
        }
    }
}

fn gen_sql(rng: &mut Rng) -> Input {
    Input::Text(text(rng, &SQL_SPEC))
}

fn gen_directive(rng: &mut Rng) -> Input {
    Input::Text(text(rng, &DIRECTIVE_SPEC))
}

/// A file or folder name: half of them shaped like one (`<version>_<description>.sql`),
/// with odd parts.
fn name_text(rng: &mut Rng) -> String {
    if rng.chance(50) {
        return text(rng, &NAME_SPEC);
    }
    let mut name = String::new();
    if rng.chance(5) {
        name.push('.');
    }
    name.push_str(rng.pick(&[
        "0",
        "1",
        "0001",
        "20240101120000",
        "9223372036854775807",
        "9223372036854775808",
        "99999999999999999999",
        "2019-02-26-002946",
        "-",
        "--1",
        "",
        "+1",
        "-1",
        "١",
        "v1",
        " 1",
        "1 ",
    ]));
    if rng.chance(90) {
        name.push('_');
    }
    if rng.chance(80) {
        let spec = Spec { max_pieces: 3, ..NAME_SPEC };
        name.push_str(&glue(rng, &spec));
    }
    name.push_str(rng.pick(&[
        ".sql",
        ".sql",
        ".up.sql",
        ".down.sql",
        ".SQL",
        "",
        ".sql ",
        " .sql",
        "_.sql",
        ".up.down.sql",
    ]));
    if rng.chance(15) {
        name = String::from_utf8_lossy(&mutate(rng, &NAME_SPEC, name.into_bytes())).into_owned();
    }
    name
}

fn gen_name(rng: &mut Rng) -> Input {
    Input::Text(name_text(rng))
}

/// The registry's text form: `table<TAB>column<TAB>struct`, with odd parts.
fn gen_registry(rng: &mut Rng) -> Input {
    if rng.chance(30) {
        return gen_sql(rng);
    }
    let parts: Vec<String> = (0..rng.below(5)).map(|_| text(rng, &NAME_SPEC)).collect();
    Input::Text(parts.join("\t"))
}

fn gen_manifest(rng: &mut Rng) -> Input {
    if rng.chance(20) {
        // A real manifest, then maybe damaged.
        let bodies: Vec<(i64, Vec<u8>)> =
            (0..rng.below(5)).map(|_| (rng.next_u64() as i64 >> rng.below(64), random_bytes(rng, 8))).collect();
        let rendered = Manifest::render(bodies.iter().map(|(v, b)| (*v, b.as_slice())));
        let bytes = if rng.chance(50) { mutate(rng, &MANIFEST_SPEC, rendered.into_bytes()) } else { rendered.into() };
        return Input::Text(String::from_utf8_lossy(&bytes).into_owned());
    }
    Input::Text(text(rng, &MANIFEST_SPEC))
}

fn gen_path(rng: &mut Rng) -> String {
    let folder = rng.pick(&["m/", "migrations/", "", "a\\b\\", "m/x/", "./m/"]);
    let name = name_text(rng);
    match rng.below(3) {
        0 => format!("{folder}{name}"),
        1 => format!("{folder}{name}/{}", rng.pick(&["up.sql", "down.sql", "metadata.toml", "up.sql", "x.sql"])),
        _ => {
            // Mostly well-formed names, so that contents get read too.
            let version = rng.below(5);
            if rng.chance(50) {
                format!("{folder}{version:04}_{}.sql", rng.pick(&["a", "b_c", "é"]))
            } else {
                format!(
                    "{folder}2024-01-0{version}-000000_{}/{}",
                    rng.pick(&["a", "b"]),
                    rng.pick(&["up.sql", "metadata.toml"])
                )
            }
        }
    }
}

fn gen_files(rng: &mut Rng) -> Input {
    let files = (0..1 + rng.below(4))
        .map(|_| {
            let path = gen_path(rng);
            let bytes = match rng.below(10) {
                0..=4 => {
                    let spec = if rng.chance(50) { &SQL_SPEC } else { &DIRECTIVE_SPEC };
                    text(rng, spec).into_bytes()
                }
                5 => random_bytes(rng, 64),
                6 | 7 => {
                    let mut b = text(rng, &SQL_SPEC).into_bytes();
                    let at = rng.below(b.len() + 1);
                    b.insert(at, rng.pick(&[0xff, 0xc3, 0x80, 0xe2]));
                    b
                }
                8 => rng
                    .pick(&[
                        "run_in_transaction = false\n",
                        "run_in_transaction=false # x",
                        "# run_in_transaction = false",
                    ])
                    .as_bytes()
                    .to_vec(),
                _ => Vec::new(),
            };
            SourceFile { path, bytes }
        })
        .collect();
    Input::Files(files)
}

fn gen_lint(rng: &mut Rng) -> Input {
    let files: Vec<LintFile> = (0..1 + rng.below(3))
        .map(|i| {
            let sql = if rng.chance(60) { statements_text(rng) } else { text(rng, &SQL_SPEC) };
            let version = match rng.below(10) {
                0 => rng.pick(&[i64::MIN, i64::MAX, 0, -1]),
                _ => rng.below(6) as i64,
            };
            let safety_assured = match directive::parse(&sql) {
                Ok(d) if rng.chance(80) => d.safety_assured,
                _ => (0..rng.below(3))
                    .map(|_| SafetyAssured {
                        reason: "r".into(),
                        line: rng.below(20),
                        scope: if rng.chance(50) {
                            AssuredScope::File
                        } else {
                            AssuredScope::Statement { line: rng.below(20) }
                        },
                    })
                    .collect(),
            };
            LintFile {
                version,
                path: format!("m/{i}_{version}.sql"),
                phase: if rng.chance(50) { Phase::PreDeploy } else { Phase::PostDeploy },
                no_transaction: rng.chance(30),
                safety_assured,
                sql,
            }
        })
        .collect();
    let postgres = PgVersion {
        major: 9 + rng.below(10) as u32,
        minor: if rng.chance(30) { Some(rng.below(25) as u32) } else { None },
    };
    let start_after = if rng.chance(15) { Some(files[rng.below(files.len())].version) } else { None };
    let baseline = if rng.chance(15) {
        let f = &files[rng.below(files.len())];
        Some(Manifest { entries: vec![(f.version, checksum(f.sql.as_bytes()))] })
    } else {
        None
    };
    Input::Lint(LintCase { files, postgres, start_after, baseline })
}

// ---------------------------------------------------------------------------------------
// Checks

/// What a target did with an input that it handled well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// It returned errors (for the lint: findings), each well-formed.
    Rejected,
}

/// `Err` is a broken invariant, described.
pub type Outcome = Result<Verdict, String>;

fn text_of(input: &Input) -> &str {
    match input {
        Input::Text(t) => t,
        _ => unreachable!("a text target was given {input:?}"),
    }
}

/// Lines as zdm counts them (`split::line_of`): newlines + 1.
fn line_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count() + 1
}

fn line_text(text: &str, line: usize) -> Option<&str> {
    text.split('\n').nth(line.checked_sub(1)?)
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn line_in(text: &[u8], line: usize, what: &str) -> Result<(), String> {
    let count = line_count(text);
    ensure((1..=count).contains(&line), || format!("{what}: line {line} outside 1..={count}"))
}

/// The path directive and file-set targets give their text.
const FUZZ_PATH: &str = "m/0001_fuzz.sql";

fn check_directive(input: &Input) -> Outcome {
    let sql = text_of(input);
    let via_files = source::parse_files(vec![SourceFile { path: FUZZ_PATH.into(), bytes: sql.as_bytes().to_vec() }]);
    match directive::parse(sql) {
        Ok(d) => {
            for a in &d.safety_assured {
                line_in(sql.as_bytes(), a.line, "safety_assured")?;
                ensure(!a.reason.trim().is_empty(), || format!("empty safety_assured reason at line {}", a.line))?;
                if let AssuredScope::Statement { line } = a.scope {
                    line_in(sql.as_bytes(), line, "safety_assured's statement")?;
                    ensure(line > a.line, || format!("safety_assured at line {} covers line {line}", a.line))?;
                }
            }
            let files = via_files.map_err(|e| format!("directives parse but parse_files fails: {e:?}"))?;
            let m = files.first().ok_or("parse_files returned nothing")?;
            ensure(
                m.directives.after_deploy == d.after_deploy
                    && m.directives.safety_assured == d.safety_assured
                    && m.directives.no_transaction >= d.no_transaction,
                || format!("parse_files read other directives: {:?} vs {d:?}", m.directives),
            )?;
            Ok(Verdict::Accepted)
        }
        Err(errors) => {
            ensure(!errors.is_empty(), || "Err with no error".into())?;
            for e in &errors {
                line_in(sql.as_bytes(), e.line, &e.message)?;
                ensure(!e.message.is_empty(), || format!("empty message at line {}", e.line))?;
                ensure(line_text(sql, e.line).is_some_and(|l| l.contains("zdm:")), || {
                    format!("error at line {} whose text has no `zdm:`: {}", e.line, e.message)
                })?;
            }
            // Through the file reader each error names the file and the line.
            let source_errors = via_files.err().ok_or("directives fail but parse_files accepts the file")?;
            for e in &errors {
                let named = source_errors
                    .iter()
                    .any(|s| s.path == FUZZ_PATH && s.line == Some(e.line) && s.message == e.message);
                ensure(named, || format!("parse_files does not report {e:?}: {source_errors:?}"))?;
            }
            for s in &source_errors {
                let shown = s.to_string();
                ensure(shown.starts_with(&format!("{FUZZ_PATH}:{}: ", s.line.unwrap_or(0))), || {
                    format!("error does not start with file:line: {shown}")
                })?;
            }
            Ok(Verdict::Rejected)
        }
    }
}

fn check_file_name(input: &Input) -> Outcome {
    let name = text_of(input);
    let ignored = name.starts_with('.') || !name.ends_with(".sql");
    let verdict = match source::parse_file_name(name) {
        Ok(FileName::Up { version, description }) => {
            ensure(!ignored && !name.ends_with(".down.sql"), || format!("{name:?} read as an up migration"))?;
            let digits = name.split('_').next().unwrap_or_default();
            ensure(version >= 0 && digits.parse::<i64>() == Ok(version), || format!("version {version} of {name:?}"))?;
            ensure(!description.is_empty(), || format!("empty description of {name:?}"))?;
            Verdict::Accepted
        }
        Ok(FileName::Down { version }) => {
            ensure(name.ends_with(".down.sql") && !ignored && version >= 0, || format!("{name:?} read as down"))?;
            Verdict::Accepted
        }
        Ok(FileName::Other) => {
            ensure(ignored, || format!("{name:?} ignored"))?;
            Verdict::Accepted
        }
        Err(message) => {
            ensure(!ignored, || format!("ignorable {name:?} rejected"))?;
            ensure(message.contains(&format!("`{name}`")), || format!("error does not name the file: {message}"))?;
            Verdict::Rejected
        }
    };
    match source::parse_dir_name(name) {
        Ok((version, n)) => {
            ensure(version >= 0 && !n.is_empty(), || format!("folder {name:?} read as {version} {n:?}"))?
        }
        Err(message) => {
            ensure(message.contains(&format!("`{name}`")), || format!("error does not name the folder: {message}"))?
        }
    }
    // In a folder, as sqlx's file and as diesel's folder: errors name the path.
    for path in [format!("m/{name}"), format!("m/{name}/up.sql")] {
        if let Err(errors) = source::parse_files(vec![SourceFile { path: path.clone(), bytes: b"SELECT 1;".to_vec() }])
        {
            for e in errors {
                ensure(e.path == path && e.line.is_none_or(|l| l == 1), || format!("{path:?}: {e:?}"))?;
                ensure(e.to_string().starts_with(&format!("{path}:")), || format!("{path:?}: {e}"))?;
            }
        }
    }
    Ok(verdict)
}

fn check_files(input: &Input) -> Outcome {
    let Input::Files(files) = input else { unreachable!() };
    match source::parse_files(files.clone()) {
        Ok(migrations) => {
            for pair in migrations.windows(2) {
                ensure(pair[0].version < pair[1].version, || format!("not sorted or duplicate: {}", pair[1].version))?;
            }
            for m in &migrations {
                let from = files.iter().any(|f| f.path == m.path && f.bytes == m.sql.as_bytes());
                ensure(from, || format!("{:?} is not one of the input files", m.path))?;
                ensure(m.checksum == checksum(m.sql.as_bytes()), || format!("checksum of {}", m.path))?;
                ensure(!m.description.is_empty(), || format!("empty description of {}", m.path))?;
            }
            Ok(Verdict::Accepted)
        }
        Err(errors) => {
            ensure(!errors.is_empty(), || "Err with no error".into())?;
            for e in &errors {
                let file = files.iter().find(|f| f.path == e.path).ok_or_else(|| format!("unknown file in {e:?}"))?;
                ensure(!e.message.is_empty(), || format!("empty message: {e:?}"))?;
                let shown = e.to_string();
                match e.line {
                    Some(line) => {
                        let max = files.iter().filter(|f| f.path == e.path).map(|f| line_count(&f.bytes)).max();
                        ensure(max.is_some_and(|max| (1..=max).contains(&line)), || {
                            format!("line {line} outside {}'s {} lines: {}", e.path, line_count(&file.bytes), e.message)
                        })?;
                        ensure(shown.starts_with(&format!("{}:{line}: ", e.path)), || format!("shown as {shown}"))?;
                    }
                    None => ensure(shown.starts_with(&format!("{}: ", e.path)), || format!("shown as {shown}"))?,
                }
            }
            Ok(Verdict::Rejected)
        }
    }
}

fn check_manifest(input: &Input) -> Outcome {
    let text = text_of(input);
    match Manifest::parse(text) {
        Ok(m) => {
            ensure(m.entries.iter().all(|(_, sum)| sum.len() == 48), || "a checksum not of 48 bytes".into())?;
            let rows = text.lines().filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#')).count();
            ensure(m.entries.len() == rows, || format!("{} entries from {rows} rows", m.entries.len()))?;
            Ok(Verdict::Accepted)
        }
        Err((line, message)) => {
            let count = text.lines().count();
            ensure((1..=count).contains(&line), || format!("line {line} outside 1..={count}: {message}"))?;
            let bad = text.lines().nth(line - 1).unwrap_or_default().trim();
            ensure(!bad.is_empty() && !bad.starts_with('#'), || {
                format!("line {line} is blank or a comment: {message}")
            })?;
            ensure(!message.is_empty(), || format!("empty message at line {line}"))?;
            // As the macros and the facade show it.
            let shown = format!("{}:{line}: {message}", baseline::FILE_NAME);
            ensure(shown.starts_with("zdm-baseline.txt:"), || shown.clone())?;
            Ok(Verdict::Rejected)
        }
    }
}

fn check_statement(sql: &str, s: &split::Statement<'_>, last_end: usize) -> Result<usize, String> {
    let end = s.offset + s.text.len();
    ensure(s.offset >= last_end, || format!("statement at {} overlaps the previous one (ends {last_end})", s.offset))?;
    ensure(sql.get(s.offset..end) == Some(s.text), || {
        format!("statement {:?} is not the text at {}", s.text, s.offset)
    })?;
    ensure(!s.text.is_empty() && s.text.trim_end() == s.text, || format!("untrimmed statement {:?}", s.text))?;
    ensure(!s.text.starts_with(|c: char| c.is_ascii_whitespace()), || format!("untrimmed statement {:?}", s.text))?;
    ensure(s.line == line_count(&sql.as_bytes()[..s.offset]), || {
        format!("statement at {} on line {}", s.offset, s.line)
    })?;
    line_in(sql.as_bytes(), s.line, "statement")?;
    Ok(end)
}

fn check_split(input: &Input) -> Outcome {
    let sql = text_of(input);
    let lexed = split::lex(sql);
    let mut last_end = 0;
    for s in &lexed.statements {
        last_end = check_statement(sql, s, last_end)?;
    }
    let mut last = None;
    for c in &lexed.line_comments {
        ensure(last.is_none_or(|l| c.offset > l), || format!("comment at {} out of order", c.offset))?;
        last = Some(c.offset);
        ensure(sql.get(c.offset..c.offset + 2) == Some("--"), || format!("comment at {} is not `--`", c.offset))?;
        let body = c.offset + 2..c.offset + 2 + c.body.len();
        ensure(sql.get(body) == Some(c.body) && !c.body.contains('\n'), || format!("comment body {:?}", c.body))?;
        ensure(c.line == line_count(&sql.as_bytes()[..c.offset]), || {
            format!("comment at {} on line {}", c.offset, c.line)
        })?;
    }
    ensure(split::statements(sql) == lexed.statements, || "statements() differs from lex()".into())?;
    Ok(Verdict::Accepted)
}

fn check_exec(input: &Input) -> Outcome {
    use zdm_core::exec::ExecClass;
    let sql = text_of(input);
    let stmts = exec::statements(sql);
    let split = split::statements(sql);
    ensure(stmts.len() == split.len(), || format!("{} statements, the splitter finds {}", stmts.len(), split.len()))?;
    for (e, s) in stmts.iter().zip(&split) {
        ensure(std::ptr::eq(e.text, s.text) && e.line == s.line, || {
            format!("{:?} line {} vs {:?}", e.text, e.line, s)
        })?;
        ensure(e.creates_index.is_none() || e.class == ExecClass::Concurrent, || format!("{e:?}"))?;
        ensure(!e.needs_no_transaction || e.class == ExecClass::Concurrent, || format!("{e:?}"))?;
    }
    let only = !stmts.is_empty() && stmts.iter().all(|s| s.needs_no_transaction);
    ensure(exec::only_no_transaction_statements(sql) == only, || "only_no_transaction_statements disagrees".into())?;
    Ok(Verdict::Accepted)
}

fn check_parsed_ranges(sql: &str) -> Result<(), String> {
    let mut last_start = 0;
    for s in lint::parse::parse(sql) {
        let r = &s.range;
        ensure(r.start <= r.end && r.end <= sql.len(), || format!("statement range {r:?} outside 0..{}", sql.len()))?;
        ensure(sql.is_char_boundary(r.start) && sql.is_char_boundary(r.end), || format!("range {r:?} splits a char"))?;
        ensure(r.start >= last_start, || format!("range {r:?} before {last_start}"))?;
        last_start = r.start;
    }
    Ok(())
}

fn check_lint(input: &Input) -> Outcome {
    let Input::Lint(case) = input else { unreachable!() };
    for f in &case.files {
        check_parsed_ranges(&f.sql).map_err(|e| format!("{}: {e}", f.path))?;
    }
    let inputs: Vec<LintInput<'_>> = case
        .files
        .iter()
        .map(|f| LintInput {
            version: f.version,
            path: &f.path,
            sql: &f.sql,
            phase: f.phase,
            no_transaction: f.no_transaction,
            safety_assured: &f.safety_assured,
        })
        .collect();
    let config = LintConfig {
        dialect: Default::default(),
        postgres: case.postgres,
        start_after: case.start_after,
        baseline: case.baseline.clone(),
        deployed: None,
    };
    let findings = lint::lint(&inputs, &config);
    for f in &findings {
        let file = case.files.iter().find(|m| m.path == f.file).ok_or_else(|| format!("unknown file in {f}"))?;
        let sql = &file.sql;
        ensure(f.version == file.version, || format!("version {} for {}", f.version, file.path))?;
        line_in(sql.as_bytes(), f.line, &f.to_string())?;
        let width = line_text(sql, f.line).map_or(0, |l| l.chars().count());
        ensure(f.column >= 1 && f.column <= width + 1, || format!("column {} of a {width}-char line: {f}", f.column))?;
        let span = &f.span;
        ensure(span.start <= span.end && span.end <= sql.len(), || format!("span {span:?}: {f}"))?;
        ensure(sql.is_char_boundary(span.start) && sql.is_char_boundary(span.end), || format!("span {span:?}: {f}"))?;
        ensure(!f.message.is_empty() && !f.rule.is_empty(), || format!("empty message or rule: {f:?}"))?;
        let head = format!("{}:{}:{}: ", f.file, f.line, f.column);
        ensure(f.to_string().starts_with(&head), || format!("shown without file:line:column: {f}"))?;
        ensure(case.start_after.is_none_or(|base| file.version > base), || format!("history judged: {f}"))?;
    }
    Ok(if findings.is_empty() { Verdict::Accepted } else { Verdict::Rejected })
}

fn check_removed(input: &Input) -> Outcome {
    let sql = text_of(input);
    let removed = removed::removed(sql);
    for r in &removed {
        ensure(!r.table.is_empty() && r.column.as_ref().is_none_or(|c| !c.is_empty()), || format!("{r:?}"))?;
    }
    ensure(removed.is_empty() || sql.to_ascii_lowercase().contains("drop"), || format!("{removed:?} without a DROP"))?;
    Ok(Verdict::Accepted)
}

fn check_old_query(input: &Input) -> Outcome {
    let facts = old_query::facts(text_of(input));
    if let Some((_, Some(columns))) = &facts.insert {
        ensure(columns.iter().all(|c| !c.is_empty()), || format!("empty insert column: {columns:?}"))?;
    }
    Ok(Verdict::Accepted)
}

fn check_registry(input: &Input) -> Outcome {
    match Mapped::decode(text_of(input)) {
        Some(m) => {
            ensure(Mapped::decode(&m.encode()).as_ref() == Some(&m), || format!("{m:?} does not round-trip"))?;
            Ok(Verdict::Accepted)
        }
        None => Ok(Verdict::Rejected),
    }
}

// ---------------------------------------------------------------------------------------
// Targets

pub struct Target {
    pub name: &'static str,
    /// The API under test.
    pub api: &'static str,
    /// The API returns errors (otherwise "errors returned" does not apply).
    pub can_fail: bool,
    pub gen: fn(&mut Rng) -> Input,
    pub check: fn(&Input) -> Outcome,
    /// Relative cost: the CI smoke runs `SMOKE_CASES / cost` inputs.
    pub cost: u64,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "directive",
        api: "directive::parse (+ source::parse_files for file:line)",
        can_fail: true,
        gen: gen_directive,
        check: check_directive,
        cost: 4,
    },
    Target {
        name: "file_name",
        api: "source::parse_file_name, parse_dir_name, parse_files",
        can_fail: true,
        gen: gen_name,
        check: check_file_name,
        cost: 1,
    },
    Target { name: "files", api: "source::parse_files", can_fail: true, gen: gen_files, check: check_files, cost: 4 },
    Target {
        name: "manifest",
        api: "baseline::Manifest::parse",
        can_fail: true,
        gen: gen_manifest,
        check: check_manifest,
        cost: 1,
    },
    Target {
        name: "split",
        api: "split::lex, split::statements",
        can_fail: false,
        gen: gen_sql,
        check: check_split,
        cost: 1,
    },
    Target { name: "exec", api: "exec::statements", can_fail: false, gen: gen_sql, check: check_exec, cost: 8 },
    Target {
        name: "lint",
        api: "lint::lint (LintInput), lint::parse::parse",
        can_fail: true,
        gen: gen_lint,
        check: check_lint,
        cost: 15,
    },
    Target { name: "removed", api: "removed::removed", can_fail: false, gen: gen_sql, check: check_removed, cost: 6 },
    Target {
        name: "old_query",
        api: "old_query::facts",
        can_fail: false,
        gen: gen_sql,
        check: check_old_query,
        cost: 5,
    },
    Target {
        name: "registry",
        api: "gate::Mapped::decode",
        can_fail: true,
        gen: gen_registry,
        check: check_registry,
        cost: 1,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

// ---------------------------------------------------------------------------------------
// Running

thread_local! {
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside a case are recorded (message, location, backtrace) instead of printed;
/// any other panic goes to the previous hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(Cell::get) {
                let report = format!("{info}\nbacktrace:\n{}", Backtrace::force_capture());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(report));
            } else {
                previous(info);
            }
        }));
    });
}

/// How one input went.
#[derive(Debug)]
pub enum Failure {
    Panic(String),
    Violation(String),
}

/// Runs one input through `check`, catching a panic.
pub fn run_input(check: fn(&Input) -> Outcome, input: &Input) -> Result<Verdict, Failure> {
    install_hook();
    IN_CASE.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(input)));
    IN_CASE.with(|c| c.set(false));
    match result {
        Ok(Ok(verdict)) => Ok(verdict),
        Ok(Err(violation)) => Err(Failure::Violation(violation)),
        Err(payload) => {
            let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string payload)".into());
            Err(Failure::Panic(recorded.unwrap_or(message)))
        }
    }
}

/// The report of a failed input: target, case, escaped input, what went wrong.
pub fn report(t: &Target, seed: u64, case: u64, input: &Input, failure: &Failure) -> String {
    let (kind, detail) = match failure {
        Failure::Panic(p) => ("PANIC", p.as_str()),
        Failure::Violation(v) => ("BROKEN INVARIANT", v.as_str()),
    };
    format!(
        "{kind} in target `{}` ({}), seed {seed:#x}, case {case}\n\
         input: {input}\n{detail}\n\
         reproduce: cargo run -p zdm-core --release --example fuzz -- --target {} --seed {seed:#x} --case {case}",
        t.name, t.api, t.name
    )
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub inputs: u64,
    pub panics: u64,
    pub violations: u64,
    pub rejected: u64,
    /// The first reports, up to the number asked for.
    pub reports: Vec<String>,
}

impl Stats {
    pub fn merge(&mut self, other: Stats, keep: usize) {
        self.inputs += other.inputs;
        self.panics += other.panics;
        self.violations += other.violations;
        self.rejected += other.rejected;
        self.reports.extend(other.reports);
        self.reports.truncate(keep);
    }
}

/// Runs cases `cases` of `t`, keeping the first `keep` failure reports.
pub fn run_range(t: &Target, seed: u64, cases: Range<u64>, keep: usize) -> Stats {
    let mut stats = Stats::default();
    for case in cases {
        let input = (t.gen)(&mut Rng::for_case(seed, t.name, case));
        stats.inputs += 1;
        match run_input(t.check, &input) {
            Ok(Verdict::Accepted) => {}
            Ok(Verdict::Rejected) => stats.rejected += 1,
            Err(failure) => {
                match failure {
                    Failure::Panic(_) => stats.panics += 1,
                    Failure::Violation(_) => stats.violations += 1,
                }
                if stats.reports.len() < keep {
                    stats.reports.push(report(t, seed, case, &input, &failure));
                }
            }
        }
    }
    stats
}

// ---------------------------------------------------------------------------------------
// Deep nesting

/// A shape's name and its statement at depth `n`.
pub type Shape = (&'static str, fn(usize) -> String);

/// Statements whose syntax tree is `n` levels deep. The parser (squawk-parser) descends and
/// its tree (rowan) drops recursively, so past some depth a thread's stack overflows, which
/// aborts the process: `catch_unwind` cannot see it. The long run measures, in child
/// processes, the depth each shape reaches on a 2 MiB thread (a tokio worker's default
/// stack, where the executor splits migrations); the smoke checks a floor.
pub const SHAPES: &[Shape] = &[
    ("parentheses", |n| format!("SELECT {}1{};", "(".repeat(n), ")".repeat(n))),
    ("subselects", |n| format!("SELECT {}1{};", "(SELECT ".repeat(n), ")".repeat(n))),
    ("arrays", |n| format!("SELECT {}1{};", "ARRAY[".repeat(n), "]".repeat(n))),
    ("case", |n| format!("SELECT {}1{};", "CASE WHEN a THEN ".repeat(n), " END".repeat(n))),
    ("or_chain", |n| format!("DELETE FROM t WHERE {}false;", "id = 1 OR ".repeat(n))),
    ("and_chain", |n| format!("SELECT * FROM t WHERE {}true;", "a AND ".repeat(n))),
    ("plus_chain", |n| format!("UPDATE t SET a = 1{};", " + 1".repeat(n))),
    ("concat_chain", |n| format!("UPDATE t SET b = 'a'{};", " || 'a'".repeat(n))),
    ("casts", |n| format!("SELECT 1{};", "::int".repeat(n))),
    ("in_list", |n| format!("DELETE FROM t WHERE id IN ({}1);", "1, ".repeat(n))),
    ("values_rows", |n| format!("INSERT INTO t VALUES {}(1, 'x');", "(1, 'x'), ".repeat(n))),
    ("block_comments", |n| format!("{}SELECT 1;", "/*".repeat(n))),
];

/// Every reader of migration text over `sql`, as the executor and the macros call them.
pub fn read_everything(sql: &str) {
    let _ = split::lex(sql);
    let _ = directive::parse(sql);
    let _ = exec::statements(sql);
    let _ = removed::removed(sql);
    let input = LintInput {
        version: 1,
        path: FUZZ_PATH,
        sql,
        phase: Phase::PreDeploy,
        no_transaction: false,
        safety_assured: &[],
    };
    let _ = lint::lint(&[input], &LintConfig::default());
}

/// Reads `sql` on a thread with a stack of `stack` bytes (an overflow aborts the process).
pub fn read_on_stack(sql: String, stack: usize) {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || read_everything(&sql))
        .expect("a thread")
        .join()
        .expect("no panic");
}

// ---------------------------------------------------------------------------------------
// The CI smoke: every target, a few seconds in debug.

pub const SMOKE_SEED: u64 = 0x5eed_2a11;
const SMOKE_CASES: u64 = 6_000;

fn smoke(name: &str) {
    let t = target(name).expect("a target");
    let stats = run_range(t, SMOKE_SEED, 0..SMOKE_CASES / t.cost, 5);
    assert!(stats.panics == 0 && stats.violations == 0, "{}", stats.reports.join("\n\n"));
    // The generator reaches both sides of the target.
    if t.can_fail {
        assert!(
            stats.rejected > 0 && stats.rejected < stats.inputs,
            "`{name}`: {} of {} inputs rejected: the generator misses a side",
            stats.rejected,
            stats.inputs
        );
    }
}

#[test]
fn smoke_directive() {
    smoke("directive");
}

#[test]
fn smoke_file_name() {
    smoke("file_name");
}

#[test]
fn smoke_files() {
    smoke("files");
}

#[test]
fn smoke_manifest() {
    smoke("manifest");
}

#[test]
fn smoke_split() {
    smoke("split");
}

#[test]
fn smoke_exec() {
    smoke("exec");
}

#[test]
fn smoke_lint() {
    smoke("lint");
}

#[test]
fn smoke_removed() {
    smoke("removed");
}

#[test]
fn smoke_old_query() {
    smoke("old_query");
}

#[test]
fn smoke_registry() {
    smoke("registry");
}

/// A floor under the depth the readers handle on a 2 MiB thread in a debug build (an
/// unoptimised parser uses far more stack per level than the release build measured in
/// docs/src/fuzzing.md). Deeper input aborts the process; this keeps it from getting shallower.
#[test]
fn moderately_deep_statements_are_read_on_a_small_stack() {
    for (_, make) in SHAPES {
        read_on_stack(make(100), 2 << 20);
    }
}

#[test]
fn every_target_has_a_smoke_test() {
    let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        ["directive", "file_name", "files", "manifest", "split", "exec", "lint", "removed", "old_query", "registry"]
    );
}

/// The harness itself: a panic inside a target is caught, counted and reported with the
/// escaped input, the panic message and a backtrace; a broken invariant likewise.
#[test]
fn a_panicking_target_is_caught_and_reported_with_its_input() {
    fn check(input: &Input) -> Outcome {
        let t = text_of(input);
        if t.contains('\n') {
            let v: Vec<u8> = Vec::new();
            let _ = v[t.len()];
        }
        if t.contains(';') {
            return Err("a semicolon".into());
        }
        Ok(Verdict::Accepted)
    }
    let t = Target { name: "planted", api: "test", can_fail: false, gen: gen_sql, check, cost: 1 };
    let stats = run_range(&t, 1, 0..300, 1000);
    assert!(stats.panics > 0 && stats.violations > 0, "{stats:?}");
    let panic = stats.reports.iter().find(|r| r.starts_with("PANIC")).unwrap();
    assert!(panic.contains("target `planted`") && panic.contains("index out of bounds"), "{panic}");
    assert!(panic.contains("input: \"") && panic.contains("\\n") && panic.contains("backtrace:"), "{panic}");
    assert!(panic.contains("--target planted --seed 0x1 --case "), "{panic}");
    let violation = stats.reports.iter().find(|r| r.starts_with("BROKEN INVARIANT")).unwrap();
    assert!(violation.contains("a semicolon"), "{violation}");
    // The case number regenerates the same input.
    let case: u64 = panic.rsplit("--case ").next().unwrap().trim().parse().unwrap();
    let again = gen_sql(&mut Rng::for_case(1, "planted", case));
    assert!(panic.contains(&format!("input: {again}\n")));
}
