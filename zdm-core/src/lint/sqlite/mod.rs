//! The SQLite dialect: a migration set written for SQLite is read and judged by SQLite.
//!
//! **Why the real SQLite and not a grammar.** SQLite's grammar keeps growing (`STRICT`,
//! `WITHOUT ROWID`, `AUTOINCREMENT`, `INSERT OR IGNORE`, `PRAGMA`, triggers with `NEW.`)
//! and PostgreSQL's parser reads none of that: on a SQLite app's first migration written
//! with them (`tests/migrations/sqlite_blog`) squawk-syntax read 8 of 15 statements, SQLite
//! all 14. On a plain history (vaultwarden's 56 SQLite migrations, 105 statements) both
//! read everything, but only the replay sees that 5 `DROP TABLE` + `RENAME TO` pairs are
//! table rebuilds (two of them drop a column, two cascade through foreign keys). The C
//! library sqlx already bundles is the exact parser and the exact schema: `replay` runs
//! the set into an in-memory SQLite at compile time. It adds no C build where sqlx's
//! `sqlite-bundled` compiles it with the same features (zdm's workspace: one
//! `libsqlite3-sys` build, 6.3 s, shared) and 0.6 s to zdm-core's own compile.
//!
//! **Where the C code stops.** `zdm-core` stays pure apart from `replay`, which sits
//! behind the `sqlite` feature (the macros enable it). It turns each statement into plain
//! data: [`model::Stmt`] (what SQLite's authorizer said the statement does, and whether
//! SQLite refused it) and the [`model::Snapshot`] of the schema before and after it. The
//! rules (`lint/rules/`, in [`super::rules::SQLITE_RULES`]) are pure functions of those,
//! and [`rebuild`] recognises the 12-step table rebuild so it is judged as the change it
//! makes, not as a drop and a rename.
//!
//! **Table sizes.** SQLite has one writer: a long statement (an index build, a rebuild's
//! copy) makes every other writer wait (`SQLITE_BUSY` after the busy timeout). The replay
//! has the schema but not the production rows, so those rules warn rather than fail.

pub mod model;
pub mod rebuild;
#[cfg(feature = "sqlite")]
pub mod replay;

use std::collections::HashSet;

use model::{Alter, Auth, Kind, Outcome, Replayed, ReplayedFile, Snapshot, Stmt};
use rebuild::Rebuild;

use crate::migration::Phase;

/// What the rules know when they judge one statement of a SQLite file.
pub struct Cx<'a> {
    pub phase: Phase,
    /// zdm runs the file inside one transaction (not `no_transaction`).
    pub transactional: bool,
    /// Every statement of the file, and this one's index.
    pub stmts: &'a [Stmt],
    pub index: usize,
    /// `states[i]`: the schema before statement `i`; one more after the file.
    pub states: &'a [Snapshot],
    pub file: &'a FileState,
    /// The table rebuilds of the file.
    pub rebuilds: &'a [Rebuild],
}

impl Cx<'_> {
    /// The schema before this statement.
    pub fn before(&self) -> &Snapshot {
        &self.states[self.index]
    }

    /// The schema after this statement.
    pub fn after(&self) -> &Snapshot {
        &self.states[self.index + 1]
    }

    /// Created earlier in this file: no old code uses it.
    pub fn is_new(&self, table: &str) -> bool {
        self.file.created.contains(&table.to_ascii_lowercase())
    }

    /// Existed before this statement and was not made by this file: old code may use it.
    pub fn is_live(&self, table: &str) -> bool {
        self.before().table(table).is_some() && !self.is_new(table)
    }

    /// The rebuild this statement begins (its first statement that touches the old table).
    pub fn rebuild_here(&self) -> Option<&Rebuild> {
        self.rebuilds.iter().find(|r| r.at == self.index)
    }

    /// This statement is one step of a rebuild: judged through [`Cx::rebuild_here`].
    pub fn in_rebuild(&self) -> bool {
        self.rebuilds.iter().any(|r| r.parts.contains(&self.index))
    }

    /// Foreign keys are enforced when this statement runs: inside a transaction a
    /// `PRAGMA foreign_keys = OFF` does nothing, so only one outside any transaction counts.
    pub fn foreign_keys_on(&self) -> bool {
        !self.file.foreign_keys_off
    }

    /// Inside a transaction: zdm's, or one the file began itself.
    pub fn in_transaction(&self) -> bool {
        self.transactional || self.file.explicit_transaction
    }
}

/// What earlier statements of the same file did.
#[derive(Debug, Default)]
pub struct FileState {
    /// Tables created in this file (lowercase), and the names they were renamed to.
    pub created: HashSet<String>,
    /// A `BEGIN` of the file's own is open.
    pub explicit_transaction: bool,
    /// A `PRAGMA foreign_keys = OFF` ran outside any transaction (and no `= ON` since).
    pub foreign_keys_off: bool,
}

impl FileState {
    pub fn record(&mut self, stmt: &Stmt, transactional: bool, before: &Snapshot) {
        match &stmt.kind {
            Kind::CreateTable { table } if before.table(table).is_none() => {
                self.created.insert(table.to_ascii_lowercase());
            }
            Kind::AlterTable { table, change: Alter::RenameTo { to } }
                if self.created.contains(&table.to_ascii_lowercase()) =>
            {
                self.created.insert(to.to_ascii_lowercase());
            }
            Kind::Transaction { op } => self.explicit_transaction = op == "BEGIN",
            // Inside a transaction SQLite ignores the pragma, so it changes nothing.
            Kind::Pragma { name, .. }
                if name.eq_ignore_ascii_case("foreign_keys") && !transactional && !self.explicit_transaction =>
            {
                self.foreign_keys_off = stmt.turns_foreign_keys_off();
            }
            _ => {}
        }
    }
}

// SQLite's authorizer action codes (sqlite3.h, "Authorizer Action Codes"): a stable API.
const CREATE_INDEX: i32 = 1;
const CREATE_TABLE: i32 = 2;
const CREATE_TRIGGER: i32 = 7;
const CREATE_VIEW: i32 = 8;
const DELETE: i32 = 9;
const DROP_INDEX: i32 = 10;
const DROP_TABLE: i32 = 11;
const DROP_TRIGGER: i32 = 16;
const DROP_VIEW: i32 = 17;
const INSERT: i32 = 18;
const PRAGMA: i32 = 19;
const READ: i32 = 20;
const TRANSACTION: i32 = 22;
const UPDATE: i32 = 23;
const ALTER_TABLE: i32 = 26;
const SAVEPOINT: i32 = 32;

/// A replayed file as the rules see it: each statement classified from what the
/// authorizer reported and how the schema changed around it.
pub fn statements(file: &ReplayedFile) -> Vec<Stmt> {
    file.stmts
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.range.is_empty())
        .map(|(i, r)| classify(r, &file.states[i], &file.states[i + 1]))
        .collect()
}

fn classify(r: &Replayed, before: &Snapshot, after: &Snapshot) -> Stmt {
    let (kind, refused, focus) = match &r.outcome {
        Outcome::Syntax { at, message } => (Kind::Unreadable { message: message.clone() }, None, *at),
        Outcome::Refused { message } => (kind_of(&r.actions, before, after), Some(message.clone()), r.range.start),
        Outcome::Ran => (kind_of(&r.actions, before, after), None, r.range.start),
    };
    Stmt { range: r.range.clone(), focus, kind, refused }
}

fn kind_of(actions: &[Auth], before: &Snapshot, after: &Snapshot) -> Kind {
    let arg = |s: &Option<String>| s.clone().unwrap_or_default();
    let user_table = |a: &Auth| !arg(&a.a).to_ascii_lowercase().starts_with("sqlite_");
    // Schema changes first: SQLite also authorizes their writes to `sqlite_schema`.
    for a in actions {
        let kind = match a.code {
            CREATE_TABLE => Kind::CreateTable { table: arg(&a.a) },
            CREATE_INDEX => Kind::CreateIndex { index: arg(&a.a), table: arg(&a.b) },
            CREATE_VIEW => Kind::CreateView,
            CREATE_TRIGGER => Kind::CreateTrigger { table: arg(&a.b) },
            DROP_TABLE => Kind::DropTable { table: arg(&a.a) },
            DROP_INDEX => Kind::DropIndex { index: arg(&a.a), table: arg(&a.b) },
            DROP_VIEW => Kind::DropView,
            DROP_TRIGGER => Kind::DropTrigger,
            ALTER_TABLE => {
                let table = arg(&a.b);
                Kind::AlterTable { change: alter(&table, before, after), table }
            }
            _ => continue,
        };
        return kind;
    }
    for a in actions {
        let kind = match a.code {
            TRANSACTION => Kind::Transaction { op: arg(&a.a).to_ascii_uppercase() },
            SAVEPOINT => Kind::Savepoint,
            PRAGMA => Kind::Pragma { name: arg(&a.a), value: a.b.clone() },
            INSERT if user_table(a) => {
                let table = arg(&a.a);
                let mut reads: Vec<String> = Vec::new();
                for r in actions.iter().filter(|r| r.code == READ && user_table(r)) {
                    let t = arg(&r.a);
                    if !t.eq_ignore_ascii_case(&table) && !reads.iter().any(|x| x.eq_ignore_ascii_case(&t)) {
                        reads.push(t);
                    }
                }
                Kind::Insert { table, reads }
            }
            UPDATE if user_table(a) => Kind::Update { table: arg(&a.a) },
            DELETE if user_table(a) => Kind::Delete { table: arg(&a.a) },
            _ => continue,
        };
        return kind;
    }
    Kind::Other
}

/// What an `ALTER TABLE` on `table` did: the schema before and after say it exactly.
fn alter(table: &str, before: &Snapshot, after: &Snapshot) -> Alter {
    let Some(old) = before.table(table) else {
        return Alter::Unknown;
    };
    let Some(new) = after.table(table) else {
        let gone: Vec<&String> = after.tables.keys().filter(|k| !before.tables.contains_key(*k)).collect();
        return match gone.as_slice() {
            [to] => Alter::RenameTo { to: after.tables[*to].name.clone() },
            _ => Alter::Unknown,
        };
    };
    let names = |t: &model::Table| t.columns.iter().map(|c| c.name.to_ascii_lowercase()).collect::<Vec<_>>();
    let (was, is) = (names(old), names(new));
    let added: Vec<&String> = is.iter().filter(|c| !was.contains(c)).collect();
    let dropped: Vec<&String> = was.iter().filter(|c| !is.contains(c)).collect();
    let spelled = |t: &model::Table, lower: &str| t.column(lower).map_or(lower.to_string(), |c| c.name.clone());
    match (added.as_slice(), dropped.as_slice()) {
        ([a], []) => Alter::AddColumn { column: spelled(new, a) },
        ([], [d]) => Alter::DropColumn { column: spelled(old, d) },
        ([a], [d]) => Alter::RenameColumn { from: spelled(old, d), to: spelled(new, a) },
        _ => Alter::Unknown,
    }
}

/// Judges a SQLite migration set; see [`super::lint`].
#[cfg(feature = "sqlite")]
pub fn lint(migrations: &[super::LintInput<'_>], config: &super::LintConfig) -> Vec<super::Finding> {
    let mut order: Vec<&super::LintInput<'_>> = migrations.iter().collect();
    order.sort_by_key(|m| m.version);
    let mut engine = match replay::Engine::open() {
        Ok(e) => e,
        Err(message) => return order.first().map(|m| vec![engine_missing(m, &message)]).unwrap_or_default(),
    };
    let mut findings = Vec::new();
    for m in order {
        let judged = super::is_judged(m, config);
        let replayed = engine.replay(m.sql, !m.no_transaction);
        if judged {
            judge(m, &replayed, &mut findings);
        }
    }
    findings
}

/// Without the `sqlite` feature there is no SQLite to replay into: one finding says so.
#[cfg(not(feature = "sqlite"))]
pub fn lint(migrations: &[super::LintInput<'_>], _config: &super::LintConfig) -> Vec<super::Finding> {
    let first = migrations.iter().min_by_key(|m| m.version);
    first.map(|m| vec![engine_missing(m, "zdm-core was built without its `sqlite` feature")]).unwrap_or_default()
}

fn engine_missing(m: &super::LintInput<'_>, message: &str) -> super::Finding {
    let rule = &super::rules::unanalysable::SQLITE;
    let hit = super::rules::Hit::anywhere(format!("the SQLite analyzer is not available: {message}"));
    let starts = super::line_starts(m.sql);
    super::make_finding(m, &starts, (rule.id, rule.why, rule.recipe), 0..0, 0, 0, hit, super::Severity::Error)
}

/// Judges one replayed file.
pub fn judge(m: &super::LintInput<'_>, replayed: &ReplayedFile, findings: &mut Vec<super::Finding>) {
    let stmts = statements(replayed);
    // `statements` leaves out empty ranges; keep the states aligned with what is left.
    let states: Vec<Snapshot> = {
        let kept: Vec<usize> = (0..replayed.stmts.len()).filter(|&i| !replayed.stmts[i].range.is_empty()).collect();
        let mut s: Vec<Snapshot> = kept.iter().map(|&i| replayed.states[i].clone()).collect();
        s.push(replayed.states[replayed.states.len() - 1].clone());
        s
    };
    let rebuilds = rebuild::find(&stmts, &states);
    let mut file = FileState::default();
    let transactional = !m.no_transaction;
    let mut lines: Option<Vec<usize>> = None;
    for (index, stmt) in stmts.iter().enumerate() {
        let cx = Cx {
            phase: m.phase,
            transactional,
            stmts: &stmts,
            index,
            states: &states,
            file: &file,
            rebuilds: &rebuilds,
        };
        for rule in super::rules::SQLITE_RULES {
            let mut hits = Vec::new();
            (rule.check)(stmt, &cx, &mut hits);
            for hit in hits {
                let on_new = hit.table.as_deref().is_some_and(|t| cx.is_new(t));
                if let Some(severity) = super::severity(rule.kind, m.phase, on_new) {
                    let at = hit.span.as_ref().map_or(stmt.focus, |s| s.start);
                    findings.push(super::make_finding(
                        m,
                        lines.get_or_insert_with(|| super::line_starts(m.sql)),
                        (rule.id, rule.why, rule.recipe),
                        stmt.range.clone(),
                        at,
                        stmt.range.start,
                        hit,
                        severity,
                    ));
                }
            }
        }
        file.record(stmt, transactional, &states[index]);
    }
}

/// Test helpers: a setup file, then the migration under test, replayed and judged.
#[cfg(all(test, feature = "sqlite"))]
pub(crate) mod test_util {
    use crate::directive;
    use crate::lint::{lint, Dialect, Finding, LintConfig, LintInput};
    use crate::migration::Phase;

    /// The tables the tests migrate against, created by an earlier migration.
    pub const SETUP: &str = "
        CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE);
        CREATE TABLE posts (
            id INTEGER PRIMARY KEY,
            user_id INTEGER REFERENCES users (id),
            title TEXT NOT NULL,
            body TEXT,
            views INTEGER NOT NULL DEFAULT 0,
            legacy_slug TEXT
        ) STRICT;
        CREATE TABLE tags (name TEXT PRIMARY KEY, note TEXT) WITHOUT ROWID;
        CREATE INDEX posts_title_idx ON posts (title);
    ";

    pub struct Run {
        pub sql: &'static str,
        pub phase: Phase,
        pub no_transaction: bool,
    }

    pub fn pre(sql: &'static str) -> Run {
        Run { sql, phase: Phase::PreDeploy, no_transaction: false }
    }
    pub fn post(sql: &'static str) -> Run {
        Run { phase: Phase::PostDeploy, ..pre(sql) }
    }

    impl Run {
        pub fn no_tx(mut self) -> Run {
            self.no_transaction = true;
            self
        }
        pub fn findings(&self) -> Vec<Finding> {
            let d = directive::parse(self.sql).expect("test SQL has valid directives");
            let config = LintConfig { dialect: Dialect::Sqlite, start_after: Some(1), ..LintConfig::default() };
            let files = [
                LintInput {
                    version: 1,
                    path: "setup.sql",
                    sql: SETUP,
                    phase: Phase::PreDeploy,
                    no_transaction: false,
                    safety_assured: &[],
                },
                LintInput {
                    version: 2,
                    path: "m.sql",
                    sql: self.sql,
                    phase: self.phase,
                    no_transaction: self.no_transaction,
                    safety_assured: &d.safety_assured,
                },
            ];
            lint(&files, &config)
        }
        /// The ids of the blocking findings.
        pub fn errors(&self) -> Vec<&'static str> {
            self.findings().into_iter().filter(|f| f.blocks()).map(|f| f.rule).collect()
        }
        /// `rule` reports something nobody vouched for.
        pub fn fires(&self, rule: &str) -> bool {
            self.findings().iter().any(|f| f.rule == rule && f.assured.is_none())
        }
    }
}
