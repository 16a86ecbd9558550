//! What each statement of a migration set will do to the server, predicted from its text:
//! the lock it takes on each table (in PostgreSQL's own names), whether it rewrites a
//! table (new storage, `relfilenode` changes) and whether it reads every row of an existing
//! table (a scan). It is the lint's statement model ([`super::model`]) and replayed schema
//! ([`super::schema`]) read as a plan, so `zdm plan` shows what the rules reason about and a
//! lock trace on a real server can hold the two against each other.
//!
//! Statements are the ones the executor sends ([`crate::exec::statements`]): a `DO` block
//! is one statement whose prediction joins what it runs.
//!
//! What zdm cannot follow is predicted as a lower bound and flagged
//! [`StatementPlan::unknown`], never guessed. Triggers: the replayed schema records the
//! set's triggers and, of their PL/pgSQL functions, only the materialized views they
//! refresh; a write to a table with such a trigger predicts those refreshes and is
//! `unknown` (whatever else the function writes is not read). `DROP VIEW .. CASCADE`
//! locks the set's views built on it and is `unknown` (views made outside the set);
//! `DROP FUNCTION .. CASCADE` locks the tables whose triggers of the set run it and is
//! `unknown` (other dependants). See
//! [`disagreements`] for why row locks on other tables are not held against a prediction.
//!
//! What counts as a scan: a full read of an existing table by DDL (`SET NOT NULL`, a
//! validated `CHECK` or foreign key, an index build, a rewrite). A DML statement's access
//! path is the planner's choice, so `UPDATE`/`DELETE`/`INSERT` predict no scan.

use std::fmt;

use super::model::{Action, ColumnDef, ConstraintKind, DefaultKind, Stmt, StmtKind};
use super::schema::Schema;
use super::types::{self, Change};
use super::{LintConfig, LintInput};
use crate::migration::Phase;

/// A table-level lock mode, weakest first, named as `pg_locks.mode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum LockMode {
    AccessShareLock,
    RowShareLock,
    RowExclusiveLock,
    ShareUpdateExclusiveLock,
    ShareLock,
    ShareRowExclusiveLock,
    ExclusiveLock,
    AccessExclusiveLock,
}

impl LockMode {
    /// Every mode, weakest first.
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShareLock,
        LockMode::RowShareLock,
        LockMode::RowExclusiveLock,
        LockMode::ShareUpdateExclusiveLock,
        LockMode::ShareLock,
        LockMode::ShareRowExclusiveLock,
        LockMode::ExclusiveLock,
        LockMode::AccessExclusiveLock,
    ];

    /// The name `pg_locks.mode` uses (`AccessExclusiveLock`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::AccessShareLock => "AccessShareLock",
            LockMode::RowShareLock => "RowShareLock",
            LockMode::RowExclusiveLock => "RowExclusiveLock",
            LockMode::ShareUpdateExclusiveLock => "ShareUpdateExclusiveLock",
            LockMode::ShareLock => "ShareLock",
            LockMode::ShareRowExclusiveLock => "ShareRowExclusiveLock",
            LockMode::ExclusiveLock => "ExclusiveLock",
            LockMode::AccessExclusiveLock => "AccessExclusiveLock",
        }
    }

    /// Reads a `pg_locks.mode` value.
    pub fn parse(text: &str) -> Option<LockMode> {
        LockMode::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// Whether it blocks ordinary reads (`SELECT`): only ACCESS EXCLUSIVE does.
    pub fn blocks_reads(self) -> bool {
        self == LockMode::AccessExclusiveLock
    }

    /// Whether it blocks ordinary writes (`INSERT`/`UPDATE`/`DELETE`).
    pub fn blocks_writes(self) -> bool {
        self >= LockMode::ShareLock
    }

    /// Whether a request for `self` must wait while another transaction holds `other` on
    /// the same table (PostgreSQL's table of conflicting lock modes; symmetric).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        use LockMode::*;
        let (weak, strong) = if self <= other { (self, other) } else { (other, self) };
        match weak {
            AccessShareLock => strong == AccessExclusiveLock,
            RowShareLock => strong >= ExclusiveLock,
            RowExclusiveLock => strong >= ShareLock,
            ShareUpdateExclusiveLock => strong >= ShareUpdateExclusiveLock,
            // SHARE does not conflict with itself.
            ShareLock => strong >= ShareRowExclusiveLock,
            ShareRowExclusiveLock | ExclusiveLock | AccessExclusiveLock => true,
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lock on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TableLock {
    /// Unqualified, normalised as the lint names tables (`Posts` quoted stays `Posts`).
    pub table: String,
    pub mode: LockMode,
}

/// The prediction for one statement as the executor sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StatementPlan {
    pub version: i64,
    /// 1-based line of the statement in its file.
    pub line: usize,
    /// The statement's text (as sent, comments before it included).
    pub sql: String,
    /// The strongest lock per table, strongest first. A table it only reads is left out.
    pub locks: Vec<TableLock>,
    /// Tables that get new storage (rewritten, or emptied by `TRUNCATE`).
    pub rewrites: Vec<String>,
    /// Existing tables it reads in full (see the module doc).
    pub scans: Vec<String>,
    /// The statement's effect depends on something zdm cannot see (a `DO` block that runs
    /// `EXECUTE`, an unparsable statement): the prediction is a lower bound.
    pub unknown: bool,
    /// It cannot run inside a transaction block (`CONCURRENTLY`).
    pub needs_no_transaction: bool,
    /// The schema the statement named for a locked table, as (table, schema); a table
    /// written unqualified is found on the search_path.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub schemas: Vec<(String, String)>,
}

impl StatementPlan {
    /// The strongest lock of the statement.
    pub fn strongest(&self) -> Option<&TableLock> {
        self.locks.first()
    }

    /// The lock predicted on `table` (none: at most ACCESS SHARE, a read).
    pub fn lock_on(&self, table: &str) -> Option<LockMode> {
        self.locks.iter().find(|l| l.table == table).map(|l| l.mode)
    }

    /// The statement, on one line, shortened to `max` characters.
    pub fn summary(&self, max: usize) -> String {
        let text: String = self
            .sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if text.chars().count() <= max {
            text
        } else {
            let cut: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        }
    }
}

/// Predicts every statement of `migrations` (replayed in version order; SQLite sets get an
/// empty prediction: its locks are the database file's, not a table's).
pub fn predict(migrations: &[LintInput<'_>], config: &LintConfig) -> Vec<StatementPlan> {
    if config.dialect == crate::Dialect::Sqlite {
        return Vec::new();
    }
    let mut order: Vec<&LintInput<'_>> = migrations.iter().collect();
    order.sort_by_key(|m| m.version);
    let mut schema = Schema::default();
    let mut out = Vec::new();
    for m in order {
        out.extend(predict_file(m, config, &mut schema));
    }
    out
}

/// Predicts the statements of one file against (and then applies them to) `schema`.
pub fn predict_file(m: &LintInput<'_>, config: &LintConfig, schema: &mut Schema) -> Vec<StatementPlan> {
    let post_version = (m.phase == Phase::PostDeploy).then_some(m.version);
    let mut out = Vec::new();
    for exec in crate::exec::statements(m.sql) {
        let parsed = if crate::removed::too_deep(exec.text) { Vec::new() } else { super::parse::parse(exec.text) };
        let mut p = Prediction::default();
        for stmt in &parsed {
            // An `ALTER TABLE` as the rules judge it (a default calling a volatile function
            // of the set rewrites; an `ADD COLUMN IF NOT EXISTS` of a column the table has
            // does nothing). A statement the server skips whole still takes its lock first
            // (`CREATE INDEX IF NOT EXISTS` of an existing index: SHARE), so it is predicted.
            let judged = match &stmt.kind {
                StmtKind::AlterTable { .. } => schema.effective(stmt),
                _ => None,
            };
            p.unknown |= stmt_effect(judged.as_deref().unwrap_or(stmt), schema, config, &mut p);
            schema.apply(stmt, post_version);
        }
        let mut locks: Vec<TableLock> = p.locks.into_iter().map(|(table, mode)| TableLock { table, mode }).collect();
        locks.sort_by(|a, b| b.mode.cmp(&a.mode).then_with(|| a.table.cmp(&b.table)));
        out.push(StatementPlan {
            version: m.version,
            line: exec.line,
            sql: exec.text.to_string(),
            locks,
            rewrites: p.rewrites,
            scans: p.scans,
            unknown: p.unknown,
            needs_no_transaction: exec.needs_no_transaction,
            schemas: p.schemas,
        });
    }
    out
}

#[derive(Default)]
struct Prediction {
    locks: Vec<(String, LockMode)>,
    schemas: Vec<(String, String)>,
    rewrites: Vec<String>,
    scans: Vec<String>,
    unknown: bool,
}

/// A table as the plan names it: without its schema, as `pg_class.relname` (and so the
/// trace) names it.
fn bare(table: &str) -> String {
    super::model::split_qualified(table).1
}

impl Prediction {
    fn lock(&mut self, written: &str, mode: LockMode) {
        let (schema, table) = super::model::split_qualified(written);
        if table.is_empty() {
            return;
        }
        if let Some(schema) = schema.filter(|_| !self.schemas.iter().any(|(t, _)| *t == table)) {
            self.schemas.push((table.clone(), schema));
        }
        match self.locks.iter_mut().find(|(t, _)| *t == table) {
            Some((_, m)) => *m = (*m).max(mode),
            None => self.locks.push((table, mode)),
        }
    }
    fn rewrite(&mut self, table: &str) {
        let table = bare(table);
        if !table.is_empty() && !self.rewrites.contains(&table) {
            self.rewrites.push(table.clone());
        }
        self.scan(&table);
    }
    fn scan(&mut self, table: &str) {
        let table = bare(table);
        if !table.is_empty() && !self.scans.contains(&table) {
            self.scans.push(table);
        }
    }
}

use LockMode::*;

/// Adds what `stmt` does to `p`, judged against `schema` (the schema before it); returns
/// whether zdm cannot tell.
fn stmt_effect(stmt: &Stmt, schema: &Schema, config: &LintConfig, p: &mut Prediction) -> bool {
    match &stmt.kind {
        StmtKind::CreateTable { table, columns, constraints, if_not_exists, .. } => {
            if *if_not_exists && schema.table(table).is_some() {
                return false;
            }
            p.lock(table, AccessExclusiveLock);
            // A foreign key puts triggers on the table it references.
            let refs =
                columns.iter().filter_map(|c| c.references.as_deref()).chain(constraints.iter().filter_map(|c| {
                    match &c.kind {
                        ConstraintKind::ForeignKey { references, .. } => references.as_deref(),
                        _ => None,
                    }
                }));
            for r in refs {
                if r != table {
                    p.lock(r, ShareRowExclusiveLock);
                }
            }
        }
        StmtKind::CreateTableAs { table, .. } => p.lock(table, AccessExclusiveLock),
        StmtKind::AlterTable { table, actions } => {
            for a in actions {
                alter_effect(table, a, schema, config, p);
            }
        }
        StmtKind::CreateIndex { table, concurrently, .. } => {
            p.lock(table, if *concurrently { ShareUpdateExclusiveLock } else { ShareLock });
            p.scan(table);
        }
        StmtKind::DropIndex { names, concurrently, .. } => {
            for table in names.iter().filter_map(|n| schema.index_table(n)) {
                p.lock(&table, if *concurrently { ShareUpdateExclusiveLock } else { AccessExclusiveLock });
            }
        }
        StmtKind::DropTable { tables, .. } => {
            for t in tables {
                p.lock(t, AccessExclusiveLock);
                // Its foreign keys' triggers leave the tables they reference.
                for r in schema.table(t).into_iter().flat_map(|t| referenced(schema, t, |_| true)) {
                    p.lock(&r, AccessExclusiveLock);
                }
            }
        }
        StmtKind::Truncate { tables, cascade } => {
            for t in tables {
                p.lock(t, AccessExclusiveLock);
                p.rewrites.push(bare(t));
                // CASCADE looks for the tables that reference it: the server counts a
                // sequential scan of the table (seen on PostgreSQL 15).
                if *cascade {
                    p.scan(t);
                }
            }
            return tables.iter().any(|t| schema.has_trigger(t));
        }
        StmtKind::Reindex { concurrently, table, index } => {
            // `REINDEX INDEX i` locks i's table as `REINDEX TABLE` does (SHARE: writes wait).
            let table = table.clone().or_else(|| index.as_ref().and_then(|i| schema.index_table(i)));
            match table.as_deref() {
                Some(t) => {
                    p.lock(t, if *concurrently { ShareUpdateExclusiveLock } else { ShareLock });
                    p.scan(t);
                }
                None => return true,
            }
        }
        StmtKind::TableRewrite { table, .. } => match table {
            Some(t) => {
                p.lock(t, AccessExclusiveLock);
                p.rewrite(t);
            }
            None => return true,
        },
        StmtKind::Lock { tables } => {
            // The mode is not in the model: assume the default, ACCESS EXCLUSIVE.
            for t in tables {
                p.lock(t, AccessExclusiveLock);
            }
        }
        // A trigger the set put on the table runs a function whose writes (or refreshes)
        // zdm does not read: the prediction is a lower bound.
        // The materialized views its functions refresh (read from their bodies) are
        // predicted as their refresh locks them.
        StmtKind::Update { table, .. } | StmtKind::Delete { table, .. } | StmtKind::Insert { table, .. } => {
            p.lock(table, RowExclusiveLock);
            for (view, concurrently) in schema.trigger_refreshes(table) {
                refresh(&view, concurrently, p);
            }
            return schema.has_trigger(table);
        }
        StmtKind::CreateTrigger { table, .. } => p.lock(table, ShareRowExclusiveLock),
        StmtKind::DropTrigger { table } => p.lock(table, AccessExclusiveLock),
        StmtKind::Comment { table } => p.lock(table, ShareUpdateExclusiveLock),
        StmtKind::Do { dynamic } => return *dynamic,
        StmtKind::Unparsable { .. } => return true,
        // Domains are checked against every column that uses them: tables zdm cannot list.
        StmtKind::AlterDomainAddConstraint { not_valid } => return !*not_valid,
        StmtKind::DropSchema { cascade: true } => return true,
        // The view's query runs again into new storage (ACCESS EXCLUSIVE); CONCURRENTLY
        // diffs it against the old rows under EXCLUSIVE (reads go on, writes wait).
        StmtKind::RefreshMatView { concurrently, view } => match view {
            Some(v) => refresh(v, *concurrently, p),
            None => return true,
        },
        // A materialized view is a relation of its own (a plain view's lock is on no table).
        // CASCADE drops the views (and materialized views) built on them: the set's are
        // followed; others (made outside the set) are not, so it stays a lower bound.
        StmtKind::DropView { names, cascade } => {
            for v in names {
                p.lock(v, AccessExclusiveLock);
            }
            if *cascade {
                for v in schema.dependent_views(names) {
                    p.lock(&v, AccessExclusiveLock);
                }
            }
            return *cascade;
        }
        // CASCADE drops the triggers that run the function, each under ACCESS EXCLUSIVE on
        // its table (the set's triggers are followed); what else depends on the function
        // (a default, an index, a view) zdm does not follow: a lower bound.
        StmtKind::DropRoutine { names, cascade } => {
            if *cascade {
                for t in names.iter().flat_map(|f| schema.trigger_tables(f)) {
                    p.lock(&t, AccessExclusiveLock);
                }
            }
            return *cascade;
        }
        // Statistics (and a plain VACUUM) let reads and writes go on; without a list, every table.
        StmtKind::Analyze { tables } if tables.is_empty() => {
            let mut all: Vec<String> = schema.tables.keys().map(|k| k.name.clone()).collect();
            all.sort();
            for t in all {
                p.lock(&t, ShareUpdateExclusiveLock);
            }
        }
        StmtKind::Analyze { tables } => {
            for t in tables {
                p.lock(t, ShareUpdateExclusiveLock);
            }
        }
        StmtKind::DropSchema { cascade: false }
        | StmtKind::DropDatabase
        | StmtKind::RenameSchema
        | StmtKind::RenameEnumValue
        | StmtKind::AddEnumValue { .. }
        | StmtKind::CreateRoutine { .. }
        | StmtKind::CreateView { .. }
        // A session setting: no lock.
        | StmtKind::SetSearchPath { .. }
        | StmtKind::Other => {}
    }
    false
}

/// A materialized view's refresh: new storage, or a diff under EXCLUSIVE.
fn refresh(view: &str, concurrently: bool, p: &mut Prediction) {
    if concurrently {
        p.lock(view, ExclusiveLock);
        p.scan(view);
    } else {
        p.lock(view, AccessExclusiveLock);
        p.rewrite(view);
    }
}

/// Adds one `ALTER TABLE` action of `table` to `p`.
fn alter_effect(table: &str, action: &Action, schema: &Schema, config: &LintConfig, p: &mut Prediction) {
    let t = schema.table(table);
    match action {
        Action::AddColumn(def) => {
            p.lock(table, AccessExclusiveLock);
            let filled = def.default.is_some() || def.identity || def.serial || def.generated_stored;
            if add_column_rewrites(def, config) {
                p.rewrite(table);
            } else if def.check
                || def.primary_key
                || def.unique
                || def.references.is_some()
                || (def.not_null && !filled)
            {
                // A new constraint is proven (or its index built) over every row; a NOT
                // NULL column without a default is checked row by row (and fails on any).
                p.scan(table);
            }
            if let Some(r) = def.references.as_deref().filter(|r| *r != table) {
                p.lock(r, ShareRowExclusiveLock);
            }
        }
        Action::AlterType { column, ty, using } => {
            p.lock(table, AccessExclusiveLock);
            let old = t.and_then(|t| t.column(column)).and_then(|c| c.ty.as_ref());
            let change = match ty {
                Some(new) if !*using => types::judge(old, new, config.postgres.major),
                _ => Change::Rewrite,
            };
            match change {
                Change::Rewrite => p.rewrite(table),
                // Constraints on the column are checked again.
                Change::NoRewrite if t.is_some_and(|t| t.check_uses(column)) => p.scan(table),
                // An index on the column is built again (seen on PostgreSQL 15).
                Change::NoRewrite if ty.as_ref().is_some_and(|new| schema.rebuilds_index(table, column, old, new)) => {
                    p.scan(table)
                }
                _ => {}
            }
        }
        Action::SetNotNull { column } => {
            p.lock(table, AccessExclusiveLock);
            let already = t.and_then(|t| t.column(column)).is_some_and(|c| c.not_null);
            let proven = config.postgres.major >= 12 && t.is_some_and(|t| t.has_valid_not_null_check(column));
            if !already && !proven {
                p.scan(table);
            }
        }
        Action::AddConstraint(c) => match &c.kind {
            ConstraintKind::ForeignKey { references, .. } => {
                p.lock(table, ShareRowExclusiveLock);
                if let Some(r) = references.as_deref().filter(|r| *r != table) {
                    p.lock(r, ShareRowExclusiveLock);
                }
                if !c.not_valid {
                    p.scan(table);
                }
            }
            ConstraintKind::Check { .. } => {
                p.lock(table, AccessExclusiveLock);
                if !c.not_valid {
                    p.scan(table);
                }
            }
            ConstraintKind::Unique | ConstraintKind::PrimaryKey | ConstraintKind::Exclude => {
                p.lock(table, AccessExclusiveLock);
                if !c.using_index {
                    p.scan(table);
                }
            }
            ConstraintKind::Other => p.lock(table, AccessExclusiveLock),
        },
        Action::ValidateConstraint { name } => {
            p.lock(table, ShareUpdateExclusiveLock);
            p.scan(table);
            // A foreign key's check reads the referenced rows `FOR KEY SHARE`.
            let fk = t.and_then(|t| t.constraints.iter().find(|c| c.name.as_deref() == Some(name.as_str())));
            if let Some(ConstraintKind::ForeignKey { references: Some(r), .. }) = fk.map(|c| &c.kind) {
                if r != table {
                    p.lock(r, RowShareLock);
                }
            }
        }
        Action::Rewrite { .. } => {
            p.lock(table, AccessExclusiveLock);
            p.rewrite(table);
        }
        Action::AttachPartition { partition } => {
            p.lock(table, ShareUpdateExclusiveLock);
            p.lock(partition, AccessExclusiveLock);
            p.scan(partition);
        }
        Action::DetachPartition { partition, concurrently } => {
            // CONCURRENTLY spares the parent, not the partition: its second transaction
            // takes ACCESS EXCLUSIVE on the partition (seen on PostgreSQL 15).
            p.lock(table, if *concurrently { ShareUpdateExclusiveLock } else { AccessExclusiveLock });
            p.lock(partition, AccessExclusiveLock);
        }
        Action::EnableDisableTrigger => p.lock(table, ShareRowExclusiveLock),
        Action::DropColumn { column } => {
            p.lock(table, AccessExclusiveLock);
            // Its foreign keys go with it: by their columns, or by the default name of an
            // inline `REFERENCES` whose columns were not recorded.
            let fk = format!("{}_{column}_fkey", bare(table));
            let on_column = |c: &super::schema::Constraint| match &c.kind {
                ConstraintKind::ForeignKey { local, .. } => {
                    local.iter().any(|l| l == column) || c.name.as_deref() == Some(fk.as_str())
                }
                _ => false,
            };
            for c in t.into_iter().flat_map(|t| t.constraints.iter()).filter(|c| on_column(c)) {
                match &c.references {
                    Some(key) => p.lock(&schema.shown(key), AccessExclusiveLock),
                    None => {
                        if let ConstraintKind::ForeignKey { references: Some(r), .. } = &c.kind {
                            p.lock(r, AccessExclusiveLock);
                        }
                    }
                }
            }
        }
        // Dropping a foreign key takes its triggers off the referenced table.
        Action::DropConstraint { name } => {
            p.lock(table, AccessExclusiveLock);
            for r in t.into_iter().flat_map(|t| referenced(schema, t, |n| n == name)) {
                p.lock(&r, AccessExclusiveLock);
            }
        }
        Action::DropNotNull { .. }
        | Action::SetDefault { .. }
        | Action::DropDefault { .. }
        | Action::RenameColumn { .. }
        | Action::Other => p.lock(table, AccessExclusiveLock),
        // The lock is on the table, whatever it is called once the statement ran.
        Action::RenameTo { to } => {
            p.lock(table, AccessExclusiveLock);
            p.lock(to, AccessExclusiveLock);
        }
    }
}

/// The tables the foreign keys of `t` whose name passes `named` reference, by their name
/// now (a table renamed since the key was made is locked under its new name).
fn referenced(schema: &Schema, t: &super::schema::Table, named: impl Fn(&str) -> bool) -> Vec<String> {
    t.constraints
        .iter()
        .filter(|c| c.name.as_deref().is_none_or(&named))
        .filter_map(|c| match (&c.kind, &c.references) {
            (ConstraintKind::ForeignKey { .. }, Some(key)) => Some(schema.shown(key)),
            (ConstraintKind::ForeignKey { references, .. }, None) => references.clone(),
            _ => None,
        })
        .collect()
}

/// Adding `def` rewrites the table: a volatile default (or any default before PostgreSQL
/// 11), a stored generated column, an identity or serial column (filled from a sequence).
fn add_column_rewrites(def: &ColumnDef, config: &LintConfig) -> bool {
    let default_rewrites = match def.default {
        Some(DefaultKind::Volatile) => true,
        Some(_) => config.postgres.major < 11,
        None => false,
    };
    default_rewrites || def.generated_stored || def.identity || def.serial
}

/// What a lock trace saw one statement do on a real server (`zdm plan --trace`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Observed {
    /// The lock modes it acquired per user table (`pg_locks` of its backend), strongest first.
    pub locks: Vec<TableLock>,
    /// Tables whose `relfilenode` changed.
    pub rewrites: Vec<String>,
    /// Tables it read with a sequential scan (the `seq_scan` counter moved).
    pub scans: Vec<String>,
}

/// Where the server did more than the lint predicted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Disagreement {
    /// A lock stronger than predicted (`None`: no lock predicted on that table, i.e. a read).
    Lock { table: String, predicted: Option<LockMode>, observed: LockMode },
    /// A rewrite the lint did not predict.
    Rewrite { table: String },
    /// A full scan the lint did not predict, under a lock that blocks writes.
    Scan { table: String, under: LockMode },
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disagreement::Lock { table, predicted: Some(p), observed } => {
                write!(f, "{table}: the server took {observed}, the lint predicted {p}")
            }
            Disagreement::Lock { table, predicted: None, observed } => {
                write!(f, "{table}: the server took {observed}, the lint predicted no lock")
            }
            Disagreement::Rewrite { table } => {
                write!(f, "{table}: the server rewrote it, the lint predicted no rewrite")
            }
            Disagreement::Scan { table, under } => {
                write!(f, "{table}: the server scanned it under {under}, the lint predicted no scan")
            }
        }
    }
}

/// Holds a prediction against an observation. Only where the server did *more* counts: a
/// stronger lock on some table (a table the lint names no lock on is predicted ACCESS
/// SHARE, a read, which blocks nobody's writes), a rewrite, or a sequential scan under a
/// lock that blocks writes (SHARE or stronger, observed or predicted): a scan under a
/// weaker lock (an `UPDATE`'s plan, a `VALIDATE`) stalls no traffic. A lock weaker than
/// predicted is the server being kinder than the lint, not a disagreement.
///
/// Nor is ROW EXCLUSIVE or weaker on a table the prediction names no lock on: that is row
/// work the statement causes elsewhere (a foreign key's `FOR KEY SHARE` check, an
/// `ON DELETE CASCADE`/`SET NULL` child, a trigger's writes, a `LANGUAGE sql` body resolved
/// at `CREATE`, a data-modifying `WITH`). Those modes conflict only with SHARE and
/// stronger, so with other DDL, never with the application's reads and writes, which is
/// what the lint's lock model is about. The trace still reports them (`Observed::locks`).
pub fn disagreements(predicted: &StatementPlan, observed: &Observed) -> Vec<Disagreement> {
    let mut out = Vec::new();
    for l in &observed.locks {
        let p = predicted.lock_on(&l.table);
        if p.is_none() && l.mode <= LockMode::RowExclusiveLock {
            continue;
        }
        if l.mode > p.unwrap_or(LockMode::AccessShareLock) {
            out.push(Disagreement::Lock { table: l.table.clone(), predicted: p, observed: l.mode });
        }
    }
    for t in observed.rewrites.iter().filter(|t| !predicted.rewrites.contains(t)) {
        out.push(Disagreement::Rewrite { table: t.clone() });
    }
    for t in observed.scans.iter().filter(|t| !predicted.scans.contains(t)) {
        let seen = observed.locks.iter().filter(|l| &l.table == t).map(|l| l.mode).max();
        let under = seen.max(predicted.lock_on(t));
        if let Some(under) = under.filter(|m| m.blocks_writes()) {
            out.push(Disagreement::Scan { table: t.clone(), under });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_conflicts_follow_postgres_table() {
        // PostgreSQL docs, "Conflicting Lock Modes" (13.3.1), rows and columns weakest first.
        const TABLE: [&str; 8] =
            ["-------X", "------XX", "----XXXX", "---XXXXX", "--XX-XXX", "--XXXXXX", "-XXXXXXX", "XXXXXXXX"];
        for (i, a) in LockMode::ALL.into_iter().enumerate() {
            for (j, b) in LockMode::ALL.into_iter().enumerate() {
                let expected = TABLE[i].as_bytes()[j] == b'X';
                assert_eq!(a.conflicts_with(b), expected, "{a} vs {b}");
            }
        }
    }

    const SETUP: &str = "
        CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
        CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint, title varchar(100) NOT NULL,
            body text, price numeric(10,2), score int CHECK (score >= 0));
        CREATE INDEX posts_title_idx ON posts (title);
    ";

    /// The prediction of each statement of `sql`, run after [`SETUP`].
    fn plan(sql: &str) -> Vec<StatementPlan> {
        let input = |version, sql| LintInput {
            version,
            path: "m.sql",
            sql,
            phase: Phase::PreDeploy,
            no_transaction: false,
            safety_assured: &[],
        };
        predict(&[input(1, SETUP), input(2, sql)], &LintConfig::default())
            .into_iter()
            .filter(|p| p.version == 2)
            .collect()
    }

    fn one(sql: &str) -> StatementPlan {
        let mut all = plan(sql);
        assert_eq!(all.len(), 1, "{sql}");
        all.remove(0)
    }

    #[track_caller]
    fn check(sql: &str, table: &str, mode: LockMode, rewrite: bool, scan: bool) {
        let p = one(sql);
        assert_eq!(p.lock_on(table), Some(mode), "{sql}: {p:?}");
        assert_eq!(p.rewrites.iter().any(|t| t == table), rewrite, "rewrite of {sql}");
        assert_eq!(p.scans.iter().any(|t| t == table), scan, "scan of {sql}");
    }

    #[test]
    fn create_table_locks_only_the_new_table_and_what_it_references() {
        let p = one("CREATE TABLE comments (id bigint PRIMARY KEY, post_id bigint REFERENCES posts (id));");
        assert_eq!(p.lock_on("comments"), Some(AccessExclusiveLock));
        assert_eq!(p.lock_on("posts"), Some(ShareRowExclusiveLock));
        assert!(p.rewrites.is_empty() && p.scans.is_empty());
        assert_eq!(p.strongest().map(|l| l.table.as_str()), Some("comments"));
    }

    #[test]
    fn add_column_rewrites_only_with_a_volatile_default() {
        check("ALTER TABLE posts ADD COLUMN summary text;", "posts", AccessExclusiveLock, false, false);
        check(
            "ALTER TABLE posts ADD COLUMN seen bool NOT NULL DEFAULT false;",
            "posts",
            AccessExclusiveLock,
            false,
            false,
        );
        check(
            "ALTER TABLE posts ADD COLUMN token uuid DEFAULT gen_random_uuid();",
            "posts",
            AccessExclusiveLock,
            true,
            true,
        );
    }

    #[test]
    fn set_not_null_scans() {
        check("ALTER TABLE posts ALTER COLUMN body SET NOT NULL;", "posts", AccessExclusiveLock, false, true);
        // Already NOT NULL: nothing to prove.
        check("ALTER TABLE posts ALTER COLUMN title SET NOT NULL;", "posts", AccessExclusiveLock, false, false);
    }

    #[test]
    fn checks_scan_unless_not_valid_and_validate_takes_share_update_exclusive() {
        check("ALTER TABLE posts ADD CONSTRAINT c CHECK (price > 0);", "posts", AccessExclusiveLock, false, true);
        check(
            "ALTER TABLE posts ADD CONSTRAINT c CHECK (price > 0) NOT VALID;",
            "posts",
            AccessExclusiveLock,
            false,
            false,
        );
        check("ALTER TABLE posts VALIDATE CONSTRAINT c;", "posts", ShareUpdateExclusiveLock, false, true);
    }

    #[test]
    fn foreign_keys_take_share_row_exclusive_on_both_tables() {
        let p = one("ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;");
        assert_eq!(p.lock_on("posts"), Some(ShareRowExclusiveLock));
        assert_eq!(p.lock_on("users"), Some(ShareRowExclusiveLock));
        assert!(p.scans.is_empty());
    }

    #[test]
    fn type_changes_rewrite_unless_binary_coercible() {
        check("ALTER TABLE posts ALTER COLUMN title TYPE varchar(200);", "posts", AccessExclusiveLock, false, false);
        check("ALTER TABLE posts ALTER COLUMN title TYPE text;", "posts", AccessExclusiveLock, false, false);
        check("ALTER TABLE posts ALTER COLUMN user_id TYPE int;", "posts", AccessExclusiveLock, true, true);
        check("ALTER TABLE posts ALTER COLUMN body TYPE varchar(10);", "posts", AccessExclusiveLock, true, true);
    }

    #[test]
    fn index_builds_share_vs_concurrently_share_update_exclusive() {
        check("CREATE INDEX posts_body ON posts (body);", "posts", ShareLock, false, true);
        let p = one("CREATE INDEX CONCURRENTLY posts_body ON posts (body);");
        assert_eq!(p.lock_on("posts"), Some(ShareUpdateExclusiveLock));
        assert!(p.needs_no_transaction);
        check("DROP INDEX posts_title_idx;", "posts", AccessExclusiveLock, false, false);
        check("DROP INDEX CONCURRENTLY posts_title_idx;", "posts", ShareUpdateExclusiveLock, false, false);
    }

    #[test]
    fn drops_and_renames_take_access_exclusive() {
        check("ALTER TABLE posts DROP COLUMN body;", "posts", AccessExclusiveLock, false, false);
        check("ALTER TABLE posts RENAME COLUMN body TO text;", "posts", AccessExclusiveLock, false, false);
        check("ALTER TABLE posts RENAME TO articles;", "posts", AccessExclusiveLock, false, false);
        check("DROP TABLE posts;", "posts", AccessExclusiveLock, false, false);
    }

    #[test]
    fn data_changes_take_row_exclusive() {
        check("UPDATE posts SET body = '' WHERE body IS NULL;", "posts", RowExclusiveLock, false, false);
        check("INSERT INTO posts (id, title) VALUES (1, 'a');", "posts", RowExclusiveLock, false, false);
        check("DELETE FROM posts WHERE id = 1;", "posts", RowExclusiveLock, false, false);
    }

    #[test]
    fn statements_follow_the_executor_and_a_do_block_joins_what_it_runs() {
        let all = plan(
            "ALTER TABLE posts ADD COLUMN a int;\n\
             DO $$ BEGIN ALTER TABLE users ADD COLUMN b int; UPDATE posts SET a = 1 WHERE id = 1; END $$;",
        );
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].line, 2);
        assert_eq!(all[1].lock_on("users"), Some(AccessExclusiveLock));
        assert_eq!(all[1].lock_on("posts"), Some(RowExclusiveLock));
        assert!(one("DO $$ BEGIN EXECUTE format('DROP TABLE %I', 'posts'); END $$;").unknown);
    }

    #[test]
    fn the_schema_of_earlier_statements_counts() {
        // The column the previous statement added is varchar(10): widening it is catalog-only.
        let all = plan(
            "ALTER TABLE posts ADD COLUMN slug varchar(10);\nALTER TABLE posts ALTER COLUMN slug TYPE varchar(20);",
        );
        assert!(all[1].rewrites.is_empty(), "{:?}", all[1]);
    }

    #[test]
    fn only_more_than_predicted_disagrees() {
        let p = one("CREATE INDEX posts_body ON posts (body);");
        let lock = |table: &str, mode| TableLock { table: table.into(), mode };
        let seen = |locks, rewrites: &[&str], scans: &[&str]| Observed {
            locks,
            rewrites: rewrites.iter().map(|s| s.to_string()).collect(),
            scans: scans.iter().map(|s| s.to_string()).collect(),
        };
        // As predicted, or weaker, or a read of another table: agreement.
        assert_eq!(disagreements(&p, &seen(vec![lock("posts", ShareLock)], &[], &["posts"])), []);
        assert_eq!(
            disagreements(&p, &seen(vec![lock("posts", AccessShareLock), lock("users", AccessShareLock)], &[], &[])),
            []
        );
        // Stronger, a rewrite, a write-blocking scan of a table the lint did not expect to scan.
        let d = disagreements(
            &p,
            &seen(vec![lock("posts", AccessExclusiveLock), lock("users", ShareLock)], &["posts"], &["users"]),
        );
        assert_eq!(
            d,
            [
                Disagreement::Lock { table: "posts".into(), predicted: Some(ShareLock), observed: AccessExclusiveLock },
                Disagreement::Lock { table: "users".into(), predicted: None, observed: ShareLock },
                Disagreement::Rewrite { table: "posts".into() },
                Disagreement::Scan { table: "users".into(), under: ShareLock },
            ]
        );
        assert_eq!(d[1].to_string(), "users: the server took ShareLock, the lint predicted no lock");
        // A scan under a lock that lets writes through (an UPDATE's plan) stalls nobody.
        let u = one("UPDATE posts SET body = '' WHERE id = 1;");
        assert_eq!(disagreements(&u, &seen(vec![lock("posts", RowExclusiveLock)], &[], &["posts"])), []);
    }

    #[test]
    fn what_the_trace_taught() {
        // A foreign key's VALIDATE reads the referenced table FOR KEY SHARE.
        let all = plan(
            "ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n\
             ALTER TABLE posts VALIDATE CONSTRAINT fk;",
        );
        assert_eq!(all[1].lock_on("users"), Some(RowShareLock));
        // REINDEX INDEX locks the index's table; a rename locks the table by both names.
        check("REINDEX INDEX posts_title_idx;", "posts", ShareLock, false, true);
        assert_eq!(one("REINDEX INDEX CONCURRENTLY posts_title_idx;").lock_on("posts"), Some(ShareUpdateExclusiveLock));
        assert_eq!(one("ALTER TABLE posts RENAME TO articles;").lock_on("articles"), Some(AccessExclusiveLock));
        // A materialized view's refresh: new storage, or a diff under EXCLUSIVE.
        check("REFRESH MATERIALIZED VIEW stats;", "stats", AccessExclusiveLock, true, true);
        check("REFRESH MATERIALIZED VIEW CONCURRENTLY stats;", "stats", ExclusiveLock, false, true);
        check("TRUNCATE users CASCADE;", "users", AccessExclusiveLock, true, true);
        // Dropping a foreign key (with its constraint, column or table) takes ACCESS
        // EXCLUSIVE on the referenced table; comments and triggers lock the table.
        let all = plan(
            "CREATE TABLE c (id int, post_id bigint REFERENCES posts (id));\n\
             ALTER TABLE c DROP COLUMN post_id;\n\
             ALTER TABLE c ADD CONSTRAINT c_fk FOREIGN KEY (id) REFERENCES users (id);\n\
             ALTER TABLE c DROP CONSTRAINT c_fk;\n\
             DROP TABLE c;",
        );
        assert_eq!(all[1].lock_on("posts"), Some(AccessExclusiveLock), "{:?}", all[1]);
        assert_eq!(all[3].lock_on("users"), Some(AccessExclusiveLock), "{:?}", all[3]);
        assert_eq!(one("COMMENT ON COLUMN public.posts.body IS 'x';").lock_on("posts"), Some(ShareUpdateExclusiveLock));
        assert_eq!(one("COMMENT ON TABLE posts IS 'x';").lock_on("posts"), Some(ShareUpdateExclusiveLock));
        assert_eq!(one("DROP TRIGGER IF EXISTS t ON posts;").lock_on("posts"), Some(AccessExclusiveLock));
        assert_eq!(one("CREATE MATERIALIZED VIEW mv AS SELECT 1;").lock_on("mv"), Some(AccessExclusiveLock));
        // A NOT NULL column without a default is checked over every row; with one it is not.
        check("ALTER TABLE posts ADD COLUMN slug text NOT NULL;", "posts", AccessExclusiveLock, false, true);
        check(
            "ALTER TABLE posts ADD COLUMN slug text NOT NULL DEFAULT '';",
            "posts",
            AccessExclusiveLock,
            false,
            false,
        );
        let p = one("ALTER TABLE events DETACH PARTITION events_2019 CONCURRENTLY;");
        assert_eq!(p.lock_on("events"), Some(ShareUpdateExclusiveLock));
        assert_eq!(p.lock_on("events_2019"), Some(AccessExclusiveLock));
    }

    #[test]
    fn row_work_on_tables_the_statement_does_not_name_is_no_disagreement() {
        let p = one("DELETE FROM users WHERE id = 1;");
        let lock = |table: &str, mode| TableLock { table: table.into(), mode };
        let seen = |locks| Observed { locks, rewrites: Vec::new(), scans: Vec::new() };
        // A cascading delete's ROW EXCLUSIVE, a foreign key check's ROW SHARE: row work.
        assert_eq!(disagreements(&p, &seen(vec![lock("posts", RowExclusiveLock), lock("comments", RowShareLock)])), []);
        // Stronger (a trigger refreshing a materialized view): still a disagreement.
        assert_eq!(
            disagreements(&p, &seen(vec![lock("stats", ExclusiveLock)])),
            [Disagreement::Lock { table: "stats".into(), predicted: None, observed: ExclusiveLock }]
        );
        // On a table it names, stronger than predicted still counts.
        let c = one("COMMENT ON TABLE posts IS 'x';");
        assert_eq!(disagreements(&c, &seen(vec![lock("posts", RowExclusiveLock)])), []);
        let s = one("SELECT 1;");
        assert_eq!(disagreements(&s, &seen(vec![lock("posts", RowExclusiveLock)])), []);
    }

    #[test]
    fn a_type_change_that_keeps_the_rows_still_rebuilds_the_indexes_it_must() {
        let all = plan(
            "ALTER TABLE posts ADD COLUMN at timestamp, ADD COLUMN seen timestamp, ADD COLUMN slug varchar(10);\n\
             CREATE INDEX posts_at ON posts (at);\n\
             CREATE INDEX posts_slug_lower ON posts (lower(slug));\n\
             ALTER TABLE posts ALTER COLUMN at TYPE timestamptz;\n\
             ALTER TABLE posts ALTER COLUMN seen TYPE timestamptz;\n\
             ALTER TABLE posts ALTER COLUMN title TYPE text;\n\
             ALTER TABLE posts ALTER COLUMN slug TYPE text;",
        );
        let scans = |i: usize| !all[i].scans.is_empty() && all[i].rewrites.is_empty();
        // timestamp → timestamptz changes the operator class: the index is built again.
        assert!(scans(3), "{:?}", all[3]);
        assert!(!scans(4), "no index: {:?}", all[4]);
        // varchar → text keeps text_ops: a plain index stays; an expression index does not.
        assert!(!scans(5), "{:?}", all[5]);
        assert!(scans(6), "{:?}", all[6]);
    }

    #[test]
    fn a_default_calling_a_volatile_function_of_the_set_rewrites() {
        let all = plan(
            "CREATE FUNCTION token(n int) RETURNS text LANGUAGE sql AS $$ SELECT md5(random()::text) $$;\n\
             CREATE FUNCTION slug(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(t) $$;\n\
             ALTER TABLE posts ADD COLUMN token text NOT NULL DEFAULT token(26);\n\
             ALTER TABLE posts ADD COLUMN s text DEFAULT public.slug('x');\n\
             ALTER TABLE posts ADD COLUMN d text DEFAULT upper('x');",
        );
        assert_eq!(all[2].rewrites, ["posts"], "{:?}", all[2]);
        assert!(all[3].rewrites.is_empty(), "{:?}", all[3]);
        // A function the set does not create is judged as a built-in.
        assert!(all[4].rewrites.is_empty(), "{:?}", all[4]);
    }

    #[test]
    fn what_the_history_traces_taught() {
        // Tables are named as pg_class names them: without their schema.
        assert_eq!(one("CREATE INDEX i ON public.posts (lower(body));").lock_on("posts"), Some(ShareLock));
        // Dropping a materialized view locks it.
        let all = plan("CREATE MATERIALIZED VIEW mv AS SELECT 1;\nDROP MATERIALIZED VIEW mv;");
        assert_eq!(all[1].lock_on("mv"), Some(AccessExclusiveLock));
        // ANALYZE (and a plain VACUUM) take SHARE UPDATE EXCLUSIVE.
        assert_eq!(one("ANALYZE posts (body);").lock_on("posts"), Some(ShareUpdateExclusiveLock));
        assert_eq!(one("VACUUM users;").lock_on("users"), Some(ShareUpdateExclusiveLock));
        // A foreign key keeps pointing at its table once that is renamed.
        let all = plan(
            "CREATE TABLE c (id int, user_id bigint REFERENCES users (id));\n\
             ALTER TABLE users RENAME TO person;\n\
             ALTER TABLE c DROP COLUMN user_id;",
        );
        assert_eq!(all[2].lock_on("person"), Some(AccessExclusiveLock), "{:?}", all[2]);
        // A foreign key of any name goes with its column.
        let all = plan(
            "ALTER TABLE posts ADD CONSTRAINT fk_posts_user FOREIGN KEY (user_id) REFERENCES users (id);\n\
             ALTER TABLE posts DROP COLUMN user_id;",
        );
        assert_eq!(all[1].lock_on("users"), Some(AccessExclusiveLock), "{:?}", all[1]);
        // An unnamed index is known by the name PostgreSQL gives it.
        let all = plan("CREATE UNIQUE INDEX ON posts (lower(title));\nDROP INDEX posts_lower_idx;");
        assert_eq!(all[1].lock_on("posts"), Some(AccessExclusiveLock), "{:?}", all[1]);
        let all = plan("CREATE INDEX ON posts (user_id, body);\nDROP INDEX posts_user_id_body_idx;");
        assert_eq!(all[1].lock_on("posts"), Some(AccessExclusiveLock), "{:?}", all[1]);
    }

    #[test]
    fn what_zdm_cannot_follow_is_a_lower_bound() {
        // A trigger's function may write, or refresh a materialized view, anywhere.
        let all = plan(
            "DELETE FROM users WHERE id = 1;\n\
             CREATE TRIGGER t AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION f();\n\
             DELETE FROM users WHERE id = 1;\n\
             TRUNCATE users;",
        );
        assert!(!all[0].unknown);
        // ... though the views its function's body refreshes are read from it.
        let r = plan(
            "CREATE FUNCTION r() RETURNS trigger LANGUAGE plpgsql AS $$\n\
             BEGIN REFRESH MATERIALIZED VIEW CONCURRENTLY user_stats; RETURN NULL; END $$;\n\
             CREATE TRIGGER t AFTER DELETE ON users FOR EACH STATEMENT EXECUTE PROCEDURE r();\n\
             DELETE FROM users WHERE id = 1;",
        );
        assert_eq!(r[2].lock_on("user_stats"), Some(ExclusiveLock), "{:?}", r[2]);
        assert_eq!(r[2].scans, ["user_stats"]);
        assert!(r[2].unknown);
        assert!(all[2].unknown && all[3].unknown, "{all:?}");
        assert_eq!(all[2].lock_on("users"), Some(RowExclusiveLock));
        // CASCADE reaches dependent views and the triggers running a function.
        assert!(one("DROP VIEW v CASCADE;").unknown);
        assert!(!one("DROP VIEW v;").unknown);
        // ... and the set's views and materialized views built on them are followed.
        let v = plan(
            "CREATE VIEW v AS SELECT * FROM users;\n\
             CREATE VIEW w AS SELECT * FROM v JOIN posts ON true;\n\
             CREATE MATERIALIZED VIEW m AS SELECT count(*) FROM public.w;\n\
             DROP VIEW v CASCADE;",
        );
        assert_eq!(v[3].lock_on("m"), Some(AccessExclusiveLock), "{:?}", v[3]);
        assert_eq!(v[3].lock_on("w"), Some(AccessExclusiveLock), "{:?}", v[3]);
        assert!(one("DROP FUNCTION f CASCADE;").unknown);
        // ... and locks the tables whose triggers (made by the set) run it.
        let all = plan(
            "CREATE TRIGGER t AFTER DELETE ON public.users FOR EACH ROW EXECUTE FUNCTION public.f();\n\
             ALTER TABLE users RENAME TO person;\n\
             DROP FUNCTION g, f() CASCADE;",
        );
        assert_eq!(all[2].lock_on("person"), Some(AccessExclusiveLock), "{:?}", all[2]);
        assert!(!one("DROP FUNCTION f;").unknown);
    }

    #[test]
    fn lock_mode_names_and_order() {
        assert_eq!(LockMode::parse("ShareRowExclusiveLock"), Some(ShareRowExclusiveLock));
        assert!(AccessExclusiveLock > ShareLock && ShareLock > ShareUpdateExclusiveLock);
        assert!(ShareLock.blocks_writes() && !ShareUpdateExclusiveLock.blocks_writes());
        assert_eq!(one("SELECT 1;").locks, []);
    }
}
