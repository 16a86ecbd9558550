//! The safety analyzer: judges every statement of a migration set against the rules in
//! [`rules`], with the schema the set builds ([`schema`]) and the phase each migration runs
//! in. It is what `zdm::migrations!` runs at compile time and what tools call through
//! [`lint`].
//!
//! Phase semantics (see `shared/lint-rules.md`): rules that break old code are errors in
//! pre-deploy migrations (renames in every phase); lock rules are errors in every phase;
//! neither applies to a table created earlier in the same file, which no old code uses,
//! nor — when the project says which migrations are deployed ([`LintConfig::deployed`]) —
//! to a table created by an earlier migration of the release not yet deployed.
//!
//! Each dialect owns its parser and its advice ([`LintConfig::dialect`]): a PostgreSQL set
//! is read by squawk-syntax ([`parse`]) and judged by [`rules::RULES`]; a SQLite set is
//! replayed into SQLite itself ([`sqlite`]) and judged by [`rules::SQLITE_RULES`]. No
//! statement of one dialect gets the other's advice.

pub mod finding;
pub mod model;
pub mod parse;
mod plpgsql;
pub mod predict;
pub mod rules;
pub mod schema;
pub mod sqlite;
pub mod types;

pub use finding::{Finding, Severity};
use model::{Action, Stmt, StmtKind};
pub use predict::{disagreements, predict, Disagreement, LockMode, Observed, StatementPlan, TableLock};
use rules::{Cx, FileState, Hit, Kind, RULES};
use schema::Schema;

pub use crate::dialect::Dialect;
use crate::directive::{AssuredScope, SafetyAssured};
use crate::migration::Phase;

/// The PostgreSQL version the lint assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgVersion {
    pub major: u32,
    /// Known only when configured as `"14.2"`; used by minor-release nuances.
    pub minor: Option<u32>,
}

impl Default for PgVersion {
    fn default() -> Self {
        PgVersion { major: 15, minor: None }
    }
}

impl PgVersion {
    /// Reads `15`, `"14.3"`.
    pub fn parse(text: &str) -> Option<PgVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            Some(m) => Some(m.parse().ok()?),
            None => None,
        };
        (parts.next().is_none() && (9..=99).contains(&major)).then_some(PgVersion { major, minor })
    }
}

/// Project-level lint settings.
#[derive(Debug, Clone, Default)]
pub struct LintConfig {
    /// The database the set is written for (default PostgreSQL): which parser reads it and
    /// which rules judge it.
    pub dialect: Dialect,
    /// Target PostgreSQL version (default 15).
    pub postgres: PgVersion,
    /// Migrations at or below this version are history: replayed for the schema, not judged.
    pub start_after: Option<i64>,
    /// The baseline manifest (`zdm-baseline.txt`): the listed versions with the listed
    /// checksums are history too.
    pub baseline: Option<crate::baseline::Manifest>,
    /// The newest migration every deployed build has run (`deployed = <version>` in
    /// `zdm.toml`, or the macros' `deployed = ..` argument). Later migrations are the
    /// release being made: a table one of them creates is empty and unused by any deployed
    /// build, so lock rules and old-build rules treat it as new for every later migration
    /// of the release, not only for the rest of its own file.
    ///
    /// The trade-off: this is the project's statement, not something zdm can check at
    /// compile time. A table created in this release but already used by a build deployed
    /// from a release branch (or a hotfix) would be misjudged as new; keep the value at the
    /// newest version really deployed. `None` (the default): only the same-file exemption.
    /// The baseline manifest does not set it: a baseline is written once, at adoption, and
    /// taking it as "deployed" would exempt every table created since adoption forever.
    pub deployed: Option<i64>,
}

/// One migration as the analyzer sees it.
#[derive(Debug, Clone)]
pub struct LintInput<'a> {
    pub version: i64,
    /// Shown in findings (`migrations/0003_add_index.sql`).
    pub path: &'a str,
    pub sql: &'a str,
    pub phase: Phase,
    pub no_transaction: bool,
    pub safety_assured: &'a [SafetyAssured],
}

impl<'a> LintInput<'a> {
    pub fn from_parsed(m: &'a crate::source::ParsedMigration) -> LintInput<'a> {
        LintInput {
            version: m.version,
            path: &m.path,
            sql: &m.sql,
            phase: if m.directives.after_deploy { Phase::PostDeploy } else { Phase::PreDeploy },
            no_transaction: m.directives.no_transaction,
            safety_assured: &m.directives.safety_assured,
        }
    }
}

/// Judges a migration set (any order; replayed by version) and returns every finding,
/// silenced ones included (with their `safety_assured` reason).
pub fn lint(migrations: &[LintInput<'_>], config: &LintConfig) -> Vec<Finding> {
    if config.dialect == Dialect::Sqlite {
        return sqlite::lint(migrations, config);
    }
    let mut order: Vec<&LintInput<'_>> = migrations.iter().collect();
    order.sort_by_key(|m| m.version);
    let mut schema = Schema::default();
    let mut findings = Vec::new();
    for (m, stmts) in order.iter().zip(parse_all(&order)) {
        lint_parsed(m, stmts, config, &mut schema, is_judged(m, config).then_some(&mut findings));
    }
    findings
}

/// Every file parsed, on as many threads as the machine has cores (each file's parse is
/// independent; judging replays the schema in order and stays on one). A few files are
/// parsed where they are.
fn parse_all(order: &[&LintInput<'_>]) -> Vec<Vec<Stmt>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if threads < 2 || order.len() < 16 {
        return order.iter().map(|m| parse::parse(m.sql)).collect();
    }
    // Interleaved, so that big files (often the early ones) spread over the threads.
    let mut parsed: Vec<Vec<Stmt>> = vec![Vec::new(); order.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..order.len()).step_by(threads).map(|i| (i, parse::parse(order[i].sql))).collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            // A parser panic is a bug; it stays one (as it would on one thread).
            for (i, stmts) in worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) {
                parsed[i] = stmts;
            }
        }
    });
    parsed
}

/// Whether `m` is judged, or only replayed for the schema (history before `start_after`
/// or in the baseline manifest).
fn is_judged(m: &LintInput<'_>, config: &LintConfig) -> bool {
    config.start_after.is_none_or(|base| m.version > base)
        && !config.baseline.as_ref().is_some_and(|b| b.is_history(m.version, m.sql))
}

/// Judges one file against (and then applies it to) `schema`; `findings` is `None` for
/// baselined history, which only feeds the schema.
pub fn lint_file(m: &LintInput<'_>, config: &LintConfig, schema: &mut Schema, findings: Option<&mut Vec<Finding>>) {
    lint_parsed(m, parse::parse(m.sql), config, schema, findings);
}

/// [`lint_file`] with the file already parsed.
fn lint_parsed(
    m: &LintInput<'_>,
    stmts: Vec<Stmt>,
    config: &LintConfig,
    schema: &mut Schema,
    mut findings: Option<&mut Vec<Finding>>,
) {
    let mut file = FileState::default();
    // Where each line starts, computed at the first finding (a file of many findings would
    // otherwise be scanned from its start for each).
    let mut lines: Option<Vec<usize>> = None;
    let post_version = (m.phase == Phase::PostDeploy).then_some(m.version);
    let unreleased = config.deployed.is_some_and(|deployed| m.version > deployed);
    schema.begin_file();
    for (index, stmt) in stmts.iter().enumerate() {
        // What the server would skip (`IF NOT EXISTS` of what exists, ..) is not judged.
        let Some(stmt) = schema.effective(stmt) else {
            continue;
        };
        let stmt = stmt.as_ref();
        if let Some(findings) = findings.as_deref_mut() {
            let cx = Cx {
                phase: m.phase,
                transactional: !m.no_transaction,
                pg: config.postgres,
                schema,
                file: &file,
                stmts: &stmts,
                index,
                sql: m.sql,
            };
            for rule in RULES {
                let mut hits = Vec::new();
                (rule.check)(stmt, &cx, &mut hits);
                for hit in hits {
                    let on_new_table = hit.table.as_deref().is_some_and(|t| file.is_new(t, schema));
                    if let Some(severity) = severity(rule.kind, m.phase, on_new_table) {
                        let at = hit.span.as_ref().map_or(stmt.focus, |s| s.start);
                        let rule = (rule.id, rule.why, rule.recipe);
                        let starts = lines.get_or_insert_with(|| line_starts(m.sql));
                        let span = stmt.range.clone();
                        findings.push(make_finding(m, starts, rule, span, at, stmt.unit.start, hit, severity));
                    }
                }
            }
        }
        file.record(stmt, schema);
        if unreleased {
            if let StmtKind::CreateTable { table, .. } | StmtKind::CreateTableAs { table, .. } = &stmt.kind {
                if !schema.creates_nothing(table) {
                    let key = schema.resolve_new(table);
                    schema.unreleased.insert(key);
                }
            }
        }
        schema.apply(stmt, post_version);
    }
}

/// The byte offset where each line of `sql` starts (the first is 0).
fn line_starts(sql: &str) -> Vec<usize> {
    std::iter::once(0).chain(sql.match_indices('\n').map(|(i, _)| i + 1)).collect()
}

/// Whether a hit is reported, and how loudly, given the phase and the same-file exemption.
fn severity(kind: Kind, phase: Phase, on_new_table: bool) -> Option<Severity> {
    match kind {
        Kind::RunTimeError => Some(Severity::Error),
        Kind::Warning => Some(Severity::Warning),
        Kind::Info => Some(Severity::Info),
        _ if on_new_table => None,
        Kind::Breaks if phase == Phase::PostDeploy => None,
        Kind::Breaks | Kind::BreaksEveryPhase | Kind::Locks | Kind::BreaksAndLocks => Some(Severity::Error),
    }
}

/// A finding of `rule` (id, why, recipe) on the statement at `span`, pointing at byte `at`;
/// a `safety_assured` comment before the statement that starts at `unit_start` silences it.
#[allow(clippy::too_many_arguments)]
fn make_finding(
    m: &LintInput<'_>,
    line_starts: &[usize],
    (id, why, recipe): (&'static str, &'static str, &'static str),
    span: std::ops::Range<usize>,
    at: usize,
    unit_start: usize,
    hit: Hit,
    severity: Severity,
) -> Finding {
    let start = at.min(m.sql.len());
    // 1-based line of byte `pos`: the number of line starts at or before it.
    let line_at = |pos: usize| line_starts.partition_point(|&s| s <= pos);
    let line = line_at(start);
    let line_start = line_starts[line - 1];
    let column = m.sql[line_start..start].chars().count() + 1;
    let stmt_line = line_at(unit_start.min(m.sql.len()));
    let assured = m
        .safety_assured
        .iter()
        .find(|a| a.scope == AssuredScope::File || a.scope == AssuredScope::Statement { line: stmt_line })
        .map(|a| a.reason.clone());
    Finding {
        rule: id,
        severity,
        version: m.version,
        file: m.path.to_string(),
        line,
        column,
        span,
        message: hit.message,
        why,
        recipe,
        assured,
    }
}

impl FileState {
    /// Notes what `stmt` did that later statements of the same file care about.
    fn record(&mut self, stmt: &Stmt, schema: &Schema) {
        match &stmt.kind {
            // `IF NOT EXISTS` on a table the set made earlier creates nothing: old code uses it.
            StmtKind::CreateTable { table, if_not_exists: true, .. } if schema.creates_nothing(table) => {}
            StmtKind::CreateTable { table, .. } | StmtKind::CreateTableAs { table, .. } => {
                self.created.insert(schema.resolve_new(table));
            }
            StmtKind::AlterTable { table, actions } => {
                for a in actions {
                    match a {
                        Action::AddConstraint(c) if c.not_valid => {
                            if let Some(n) = &c.name {
                                self.not_valid.insert(n.clone());
                            }
                        }
                        Action::RenameTo { to } => {
                            let from = schema.resolve(table);
                            if self.created.contains(&from) {
                                self.created.insert(schema::Key { schema: from.schema, name: to.clone() });
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if let Some(table) = rules::access_exclusive_table(stmt, schema) {
            if !self.is_new(&table, schema) && self.exclusive.is_none() {
                self.exclusive = Some(table);
            }
        }
    }
}
