//! The schema as the migration set builds it: replaying every statement in order, the
//! analyzer knows each table's columns, types, constraints and indexes as of each file.
//! Tables the set never created (made before the set, or by tools) are unknown, and rules
//! treat unknown as "existing, shape unknown" — the cautious reading.
//!
//! Tables and indexes are keyed by schema and name, as the server keys them: `a.posts` and
//! `b.posts` are two tables. An unqualified name means what it would mean to the server at
//! that point of the set: the first schema of the search path that has it, else the first
//! schema of the path (`public`, unless a `SET search_path` earlier in the set says
//! otherwise; a `SET LOCAL` lasts until the end of its file).
//!
//! The replay follows what the server would do: a `CREATE .. IF NOT EXISTS` of an object
//! that exists, a `DROP .. IF EXISTS` of one the set already dropped, an `ADD COLUMN IF NOT
//! EXISTS` of a column the table has are skipped ([`Schema::effective`]), so no rule judges
//! them as if they ran. An object the set never mentioned may predate the set: it is not
//! assumed absent.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use super::model::{
    qualify, split_qualified, Action, ColumnDef, ConstraintDef, ConstraintKind, DefaultKind, Stmt, StmtKind,
};
use super::types::TypeName;

/// The schema a server starts with when nothing sets `search_path` (`"$user"` comes first,
/// but a schema named after the role is rare: zdm assumes none).
pub const DEFAULT_SCHEMA: &str = "public";

/// A table or index as the server identifies it: its schema and its name (identifier case
/// folded as PostgreSQL folds it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub schema: String,
    pub name: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&qualify(Some(&self.schema), &self.name))
    }
}

#[derive(Debug, Clone)]
pub struct Schema {
    pub tables: HashMap<Key, Table>,
    /// Index → its table (an index lives in its table's schema).
    pub indexes: HashMap<Key, Key>,
    /// Tables and indexes the set dropped and did not make again: a `DROP .. IF EXISTS` of
    /// one does nothing.
    pub dropped: HashSet<Key>,
    /// Objects (a table, or one column of it) that an after_deploy migration changes, with
    /// its version: a later pre-deploy migration touching them depends on pending work.
    pub post_touched: HashMap<(Key, Option<String>), i64>,
    /// The session's search path (`SET search_path`): the rest of the set.
    pub search_path: Vec<String>,
    /// A `SET LOCAL search_path` of the current file.
    pub local_search_path: Option<Vec<String>>,
    /// Tables created by migrations not yet deployed (`LintConfig::deployed`): empty and
    /// unused by every deployed build, so new for the whole release.
    pub unreleased: HashSet<Key>,
    /// Functions the set creates (unqualified name) and whether each is volatile (declared
    /// neither `IMMUTABLE` nor `STABLE`). A function the set does not create is judged by
    /// the parser's list of built-ins.
    pub functions: HashMap<String, bool>,
    /// Per index the columns it holds as they are, and those its expressions or `WHERE`
    /// use (indexes of `CREATE INDEX`; a constraint's index is not recorded).
    pub index_columns: HashMap<Key, (Vec<String>, Vec<String>)>,
    /// Tables the set put a trigger on: what the trigger's function touches is not known,
    /// so a write to one is predicted as a lower bound (`StatementPlan::unknown`).
    pub triggered: HashSet<Key>,
    /// Per function the tables whose triggers (made by the set) execute it.
    pub trigger_functions: HashMap<String, Vec<Key>>,
    /// Per function of the set the materialized views its body refreshes (`CONCURRENTLY`?).
    pub refreshes: HashMap<String, Vec<(String, bool)>>,
    /// Views and materialized views of the set (unqualified) and the relations each reads:
    /// `DROP .. CASCADE` of one of those drops them.
    pub views: HashMap<String, Vec<String>>,
}

impl Default for Schema {
    fn default() -> Self {
        Schema {
            tables: HashMap::new(),
            indexes: HashMap::new(),
            dropped: HashSet::new(),
            post_touched: HashMap::new(),
            search_path: vec![DEFAULT_SCHEMA.to_string()],
            local_search_path: None,
            unreleased: HashSet::new(),
            functions: HashMap::new(),
            index_columns: HashMap::new(),
            triggered: HashSet::new(),
            trigger_functions: HashMap::new(),
            refreshes: HashMap::new(),
            views: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub partitioned: bool,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// Declared `PRIMARY KEY` inline.
    pub primary_key: bool,
    pub ty: Option<TypeName>,
    pub not_null: bool,
    pub has_default: bool,
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub name: Option<String>,
    pub kind: ConstraintKind,
    pub valid: bool,
    /// For a foreign key: the table it references, resolved when it was added.
    pub references: Option<Key>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A VALID `CHECK (column IS NOT NULL)` exists (PostgreSQL 12+ then skips the
    /// `SET NOT NULL` scan).
    pub fn has_valid_not_null_check(&self, column: &str) -> bool {
        self.constraints.iter().any(|c| {
            c.valid && matches!(&c.kind, ConstraintKind::Check { not_null_of: Some(col), .. } if col == column)
        })
    }

    /// A CHECK constraint mentions `column`.
    pub fn check_uses(&self, column: &str) -> bool {
        self.constraints
            .iter()
            .any(|c| matches!(&c.kind, ConstraintKind::Check { columns, .. } if columns.iter().any(|x| x == column)))
    }

    pub fn has_valid_check(&self) -> bool {
        self.constraints.iter().any(|c| c.valid && matches!(c.kind, ConstraintKind::Check { .. }))
    }
}

fn column(def: &ColumnDef) -> Column {
    Column {
        name: def.name.clone(),
        primary_key: def.primary_key,
        ty: def.ty.clone(),
        // serial and identity columns are NOT NULL without saying so.
        not_null: def.not_null || def.primary_key || def.serial || def.identity,
        has_default: def.default.is_some() || def.serial || def.identity || def.generated_stored,
    }
}

/// The constraints a column definition carries inline: a `CHECK`, and a `REFERENCES` as
/// the foreign key PostgreSQL makes of it, under the name it gives it
/// (`<table>_<column>_fkey`, the table's bare name).
fn inline_constraints(table: &str, def: &ColumnDef, references: Option<Key>) -> Vec<Constraint> {
    let mut out = Vec::new();
    if def.check {
        out.push(Constraint {
            name: None,
            kind: ConstraintKind::Check { columns: vec![def.name.clone()], not_null_of: None },
            valid: true,
            references: None,
        });
    }
    if def.references.is_some() {
        let bare = crate::lint::model::split_qualified(table).1;
        out.push(Constraint {
            name: Some(format!("{bare}_{}_fkey", def.name)),
            kind: ConstraintKind::ForeignKey {
                local: vec![def.name.clone()],
                references: def.references.clone(),
                columns: def.references_columns.clone(),
            },
            valid: true,
            references,
        });
    }
    out
}

impl Schema {
    /// The search path in force: a `SET LOCAL` of this file, else the session's.
    fn path(&self) -> &[String] {
        self.local_search_path.as_deref().unwrap_or(&self.search_path)
    }

    /// The schema an unqualified new object goes to: the first of the path.
    fn creation_schema(&self) -> String {
        self.path().first().cloned().unwrap_or_else(|| DEFAULT_SCHEMA.to_string())
    }

    /// The table a name, as a statement writes it, means at this point of the set.
    pub fn resolve(&self, written: &str) -> Key {
        self.resolve_in(written, |k| self.tables.contains_key(k))
    }

    /// The table a `CREATE TABLE` of this name makes: always in the first schema of the
    /// path when unqualified, whatever the later schemas hold.
    pub fn resolve_new(&self, written: &str) -> Key {
        match split_qualified(written) {
            (Some(schema), name) => Key { schema, name },
            (None, name) => Key { schema: self.creation_schema(), name },
        }
    }

    /// The index a name means at this point of the set.
    pub fn resolve_index(&self, written: &str) -> Key {
        self.resolve_in(written, |k| self.indexes.contains_key(k))
    }

    fn resolve_in(&self, written: &str, exists: impl Fn(&Key) -> bool) -> Key {
        let (schema, name) = split_qualified(written);
        if let Some(schema) = schema {
            return Key { schema, name };
        }
        self.path()
            .iter()
            .map(|s| Key { schema: s.clone(), name: name.clone() })
            .find(|k| exists(k))
            .unwrap_or_else(|| Key { schema: self.creation_schema(), name })
    }

    /// How a message names `key` now: unqualified when that name resolves to it.
    pub fn shown(&self, key: &Key) -> String {
        if self.resolve(&qualify(None, &key.name)) == *key {
            qualify(None, &key.name)
        } else {
            key.to_string()
        }
    }

    pub fn table(&self, written: &str) -> Option<&Table> {
        self.tables.get(&self.resolve(written))
    }

    /// The table an index (as written) belongs to, named as a message would name it.
    pub fn index_table(&self, written: &str) -> Option<String> {
        self.indexes.get(&self.resolve_index(written)).map(|t| self.shown(t))
    }

    /// Created by a migration of the release not yet deployed.
    pub fn is_unreleased(&self, written: &str) -> bool {
        self.unreleased.contains(&self.resolve(written))
    }

    /// The tables (named as a message would) whose foreign keys reference `column` of
    /// `table`: changing that column's type re-checks them under ACCESS EXCLUSIVE on the
    /// referencing table.
    pub fn referencing(&self, table: &str, column: &str) -> Vec<String> {
        let target = self.resolve(table);
        let is_key = self.tables.get(&target).and_then(|t| t.column(column)).is_none_or(|c| c.primary_key);
        let mut out: Vec<String> = self
            .tables
            .iter()
            .filter(|(key, t)| {
                **key != target
                    && t.constraints.iter().any(|c| {
                        c.references.as_ref() == Some(&target)
                            && matches!(&c.kind, ConstraintKind::ForeignKey { columns, .. }
                                if columns.iter().any(|x| x == column) || (columns.is_empty() && is_key))
                    })
            })
            .map(|(key, _)| self.shown(key))
            .collect();
        out.sort();
        out
    }

    /// A `CREATE TABLE IF NOT EXISTS` of this name finds the table there already.
    pub fn creates_nothing(&self, written: &str) -> bool {
        self.tables.contains_key(&self.resolve_new(written))
    }

    /// Called at the start of each file: a `SET LOCAL` ends with its transaction.
    pub fn begin_file(&mut self) {
        self.local_search_path = None;
    }

    /// What the server would run of `stmt`: `None` when it skips all of it (an `IF NOT
    /// EXISTS` of what exists, an `IF EXISTS` of what the set dropped), else the statement
    /// without the parts it skips.
    pub fn effective<'s>(&self, stmt: &'s Stmt) -> Option<Cow<'s, Stmt>> {
        let with = |kind: StmtKind| Some(Cow::Owned(Stmt { kind, ..stmt.clone() }));
        match &stmt.kind {
            StmtKind::CreateTable { table, if_not_exists: true, .. } if self.creates_nothing(table) => None,
            StmtKind::CreateIndex { name: Some(name), table, if_not_exists: true, .. } => {
                let schema = self.resolve(table).schema;
                let key = Key { schema, name: name.clone() };
                (!self.indexes.contains_key(&key) && !self.tables.contains_key(&key)).then_some(Cow::Borrowed(stmt))
            }
            StmtKind::DropIndex { names, concurrently, if_exists: true } => {
                let kept: Vec<String> =
                    names.iter().filter(|n| !self.dropped.contains(&self.resolve_index(n))).cloned().collect();
                match kept.len() {
                    0 => None,
                    n if n == names.len() => Some(Cow::Borrowed(stmt)),
                    _ => with(StmtKind::DropIndex { names: kept, concurrently: *concurrently, if_exists: true }),
                }
            }
            StmtKind::DropTable { tables, cascade, if_exists: true } => {
                let kept: Vec<String> = tables
                    .iter()
                    .filter(|t| {
                        let key = self.resolve(t);
                        !self.dropped.contains(&key) || self.tables.contains_key(&key)
                    })
                    .cloned()
                    .collect();
                match kept.len() {
                    0 => None,
                    n if n == tables.len() => Some(Cow::Borrowed(stmt)),
                    _ => with(StmtKind::DropTable { tables: kept, cascade: *cascade, if_exists: true }),
                }
            }
            StmtKind::AlterTable { table, actions } => {
                let t = self.table(table);
                let runs = |a: &Action| match a {
                    Action::AddColumn(c) if c.if_not_exists => t.is_none_or(|t| t.column(&c.name).is_none()),
                    _ => true,
                };
                if actions.iter().all(|a| runs(a) && !self.volatile_by_set(a)) {
                    return Some(Cow::Borrowed(stmt));
                }
                let kept: Vec<Action> = actions
                    .iter()
                    .filter(|a| runs(a))
                    .map(|a| match a {
                        Action::AddColumn(c) if self.volatile_by_set(a) => {
                            Action::AddColumn(ColumnDef { default: Some(DefaultKind::Volatile), ..c.clone() })
                        }
                        _ => a.clone(),
                    })
                    .collect();
                if kept.is_empty() {
                    return None;
                }
                with(StmtKind::AlterTable { table: table.clone(), actions: kept })
            }
            _ => Some(Cow::Borrowed(stmt)),
        }
    }

    /// Whether changing `column` of `table` from `old` to `new` (a change that keeps the
    /// rows) rebuilds one of its indexes, reading the table: an index whose expression or
    /// `WHERE` uses the column always, one holding it as it is when the operator class
    /// changes (`timestamp` → `timestamptz`; `varchar` → `text` keeps `text_ops`).
    pub fn rebuilds_index(&self, table: &str, column: &str, old: Option<&TypeName>, new: &TypeName) -> bool {
        let key = self.resolve(table);
        let family = |t: &TypeName| match t.name.as_str() {
            "varchar" | "text" => "text".to_string(),
            other => other.to_string(),
        };
        let same_class = old.is_some_and(|o| family(o) == family(new) && o.array == new.array);
        self.indexes.iter().filter(|(_, t)| **t == key).any(|(i, _)| {
            self.index_columns.get(i).is_some_and(|(plain, expr)| {
                expr.iter().any(|c| c == column) || (!same_class && plain.iter().any(|c| c == column))
            })
        })
    }

    /// The tables (named as a message would) whose triggers of the set execute `function`.
    pub fn trigger_tables(&self, function: &str) -> Vec<String> {
        self.trigger_functions.get(function).into_iter().flatten().map(|k| self.shown(k)).collect()
    }

    /// The materialized views the set's triggers on `table` refresh (`CONCURRENTLY`?), as
    /// far as their functions' bodies say (whichever event fires them).
    pub fn trigger_refreshes(&self, table: &str) -> Vec<(String, bool)> {
        let key = self.resolve(table);
        let mut out: Vec<(String, bool)> = self
            .trigger_functions
            .iter()
            .filter(|(_, tables)| tables.contains(&key))
            .flat_map(|(f, _)| self.refreshes.get(f).into_iter().flatten().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The views and materialized views built (directly or through other views) on the
    /// relations `names`: what `DROP .. CASCADE` of them drops too.
    pub fn dependent_views(&self, names: &[String]) -> Vec<String> {
        let mut todo: Vec<String> = names.iter().map(|n| split_qualified(n).1).collect();
        let mut out: Vec<String> = Vec::new();
        while let Some(n) = todo.pop() {
            let mut next: Vec<&String> =
                self.views.iter().filter(|(v, reads)| reads.contains(&n) && !out.contains(v)).map(|(v, _)| v).collect();
            next.sort();
            for v in next {
                out.push(v.clone());
                todo.push(v.clone());
            }
        }
        out
    }

    /// The set put a trigger on this table.
    pub fn has_trigger(&self, table: &str) -> bool {
        self.triggered.contains(&self.resolve(table))
    }

    /// An `ADD COLUMN` whose default the parser judged stable but which calls a function the
    /// set created volatile (PostgreSQL's default when neither `IMMUTABLE` nor `STABLE` is
    /// declared): each row gets its own value, the table is rewritten.
    fn volatile_by_set(&self, action: &Action) -> bool {
        match action {
            Action::AddColumn(c) => {
                c.default == Some(DefaultKind::Stable)
                    && c.default_calls.iter().any(|f| self.functions.get(f).copied().unwrap_or(false))
            }
            _ => false,
        }
    }

    /// Applies one statement (as [`Schema::effective`] returns it). `post_version` is set
    /// for statements of after_deploy migrations.
    pub fn apply(&mut self, stmt: &Stmt, post_version: Option<i64>) {
        if let Some(v) = post_version {
            let creates = matches!(stmt.kind, StmtKind::CreateTable { .. } | StmtKind::CreateTableAs { .. });
            for (table, column) in touched(stmt) {
                let key = if creates { self.resolve_new(&table) } else { self.resolve(&table) };
                self.post_touched.insert((key, column), v);
            }
        }
        match &stmt.kind {
            // The server skips it: the table keeps the shape it has.
            StmtKind::CreateTable { table, if_not_exists: true, .. } if self.creates_nothing(table) => {}
            StmtKind::CreateTable { table, columns, constraints, partitioned, .. } => {
                let key = self.resolve_new(table);
                let mut t = Table { partitioned: *partitioned, ..Table::default() };
                t.columns = columns.iter().map(column).collect();
                t.constraints = constraints.iter().map(|c| self.constraint(c)).collect();
                for c in columns {
                    let references = c.references.as_deref().map(|r| self.resolve(r));
                    t.constraints.extend(inline_constraints(table, c, references));
                }
                self.dropped.remove(&key);
                self.tables.insert(key, t);
            }
            StmtKind::CreateView { name, reads } => {
                self.views.insert(name.clone(), reads.clone());
            }
            StmtKind::DropView { names, .. } => {
                for n in names {
                    self.views.remove(&split_qualified(n).1);
                }
            }
            StmtKind::CreateTableAs { table, reads } => {
                self.views.insert(split_qualified(table).1, reads.clone());
                let key = self.resolve_new(table);
                self.dropped.remove(&key);
                self.tables.insert(key, Table::default());
            }
            StmtKind::DropTable { tables, .. } => {
                for t in tables {
                    let key = self.resolve(t);
                    self.tables.remove(&key);
                    self.unreleased.remove(&key);
                    let gone: Vec<Key> =
                        self.indexes.iter().filter(|(_, t)| **t == key).map(|(i, _)| i.clone()).collect();
                    for i in gone {
                        self.indexes.remove(&i);
                        self.dropped.insert(i);
                    }
                    self.dropped.insert(key);
                }
            }
            StmtKind::CreateIndex { name, table, columns, expression_columns, implicit_name, .. } => {
                let name = name.as_ref().unwrap_or(implicit_name);
                let table = self.resolve(table);
                let key = Key { schema: table.schema.clone(), name: name.clone() };
                self.dropped.remove(&key);
                if !self.indexes.contains_key(&key) {
                    self.index_columns.insert(key.clone(), (columns.clone(), expression_columns.clone()));
                }
                self.indexes.entry(key).or_insert(table);
            }
            StmtKind::DropIndex { names, .. } => {
                for n in names {
                    let key = self.resolve_index(n);
                    self.indexes.remove(&key);
                    self.index_columns.remove(&key);
                    self.dropped.insert(key);
                }
            }
            StmtKind::AlterTable { table, actions } => self.alter(table, actions),
            StmtKind::CreateTrigger { table, function } if !table.is_empty() => {
                let key = self.resolve(table);
                let tables = self.trigger_functions.entry(function.clone()).or_default();
                if !tables.contains(&key) {
                    tables.push(key.clone());
                }
                self.triggered.insert(key);
            }
            StmtKind::CreateRoutine { name, volatile, refreshes } if !name.is_empty() => {
                self.functions.insert(name.clone(), *volatile);
                self.refreshes.insert(name.clone(), refreshes.clone());
            }
            StmtKind::SetSearchPath { schemas, local } => {
                let path = schemas.clone().unwrap_or_else(|| vec![DEFAULT_SCHEMA.to_string()]);
                if *local {
                    self.local_search_path = Some(path);
                } else {
                    self.search_path = path;
                    self.local_search_path = None;
                }
            }
            _ => {}
        }
    }

    fn constraint(&self, def: &ConstraintDef) -> Constraint {
        let references = match &def.kind {
            ConstraintKind::ForeignKey { references: Some(r), .. } => Some(self.resolve(r)),
            _ => None,
        };
        Constraint { name: def.name.clone(), kind: def.kind.clone(), valid: !def.not_valid, references }
    }

    fn alter(&mut self, table: &str, actions: &[Action]) {
        let key = self.resolve(table);
        for action in actions {
            if let Action::RenameTo { to } = action {
                // A renamed table stays in its schema.
                let new = Key { schema: key.schema.clone(), name: to.clone() };
                if let Some(t) = self.tables.remove(&key) {
                    self.tables.insert(new.clone(), t);
                }
                if self.unreleased.remove(&key) {
                    self.unreleased.insert(new.clone());
                }
                if self.triggered.remove(&key) {
                    self.triggered.insert(new.clone());
                }
                for k in self.trigger_functions.values_mut().flatten().filter(|k| **k == key) {
                    *k = new.clone();
                }
                for idx_table in self.indexes.values_mut().filter(|t| **t == key) {
                    *idx_table = new.clone();
                }
                for t in self.tables.values_mut() {
                    for c in t.constraints.iter_mut().filter(|c| c.references.as_ref() == Some(&key)) {
                        c.references = Some(new.clone());
                    }
                }
                return;
            }
            let inline = match action {
                Action::AddColumn(def) => {
                    inline_constraints(table, def, def.references.as_deref().map(|r| self.resolve(r)))
                }
                _ => Vec::new(),
            };
            let added = match action {
                Action::AddConstraint(def) => Some(self.constraint(def)),
                _ => None,
            };
            // A table made before the set: learn what this migration tells about it.
            let t = self.tables.entry(key.clone()).or_default();
            match action {
                Action::AddColumn(def) => {
                    t.columns.retain(|c| c.name != def.name);
                    t.columns.push(column(def));
                    t.constraints.extend(inline);
                }
                Action::DropColumn { column } => t.columns.retain(|c| &c.name != column),
                Action::AlterType { column, ty, .. } => {
                    if let Some(c) = t.columns.iter_mut().find(|c| &c.name == column) {
                        c.ty = ty.clone();
                    }
                }
                Action::SetNotNull { column } => set(t, column, |c| c.not_null = true),
                Action::DropNotNull { column } => set(t, column, |c| c.not_null = false),
                Action::SetDefault { column, .. } => set(t, column, |c| c.has_default = true),
                Action::DropDefault { column } => set(t, column, |c| c.has_default = false),
                Action::AddConstraint(_) => t.constraints.extend(added),
                Action::ValidateConstraint { name } => {
                    for c in t.constraints.iter_mut().filter(|c| c.name.as_deref() == Some(name)) {
                        c.valid = true;
                    }
                }
                Action::DropConstraint { name } => t.constraints.retain(|c| c.name.as_deref() != Some(name)),
                Action::RenameColumn { from, to } => set(t, from, |c| c.name = to.clone()),
                _ => {}
            }
        }
    }
}

fn set(t: &mut Table, column: &str, f: impl FnOnce(&mut Column)) {
    if let Some(c) = t.columns.iter_mut().find(|c| c.name == column) {
        f(c);
    }
}

/// The objects a statement changes: a table as written, with the column a column action
/// names, or `None` for a table-level change (create, drop, rename).
pub fn touched(stmt: &Stmt) -> Vec<(String, Option<String>)> {
    match &stmt.kind {
        StmtKind::CreateTable { table, .. } | StmtKind::CreateTableAs { table, .. } => {
            vec![(table.clone(), None)]
        }
        StmtKind::DropTable { tables, .. } => tables.iter().map(|t| (t.clone(), None)).collect(),
        StmtKind::AlterTable { table, actions } => actions
            .iter()
            .filter_map(|a| match a {
                Action::AddColumn(def) => Some((table.clone(), Some(def.name.clone()))),
                Action::DropColumn { column }
                | Action::AlterType { column, .. }
                | Action::SetNotNull { column }
                | Action::DropNotNull { column }
                | Action::SetDefault { column, .. }
                | Action::DropDefault { column }
                | Action::RenameColumn { from: column, .. } => Some((table.clone(), Some(column.clone()))),
                Action::RenameTo { .. } => Some((table.clone(), None)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::{Key, Schema};

    fn replay(sql: &str) -> Schema {
        let mut s = Schema::default();
        for stmt in parse(sql) {
            if let Some(stmt) = s.effective(&stmt) {
                s.apply(&stmt, None);
            }
        }
        s
    }

    fn key(schema: &str, name: &str) -> Key {
        Key { schema: schema.into(), name: name.into() }
    }

    #[test]
    fn schemas_keep_tables_apart() {
        let s = replay(
            "CREATE TABLE a.posts (id int); CREATE TABLE b.posts (id bigint, x text); CREATE TABLE posts (y int);",
        );
        assert_eq!(s.tables.len(), 3);
        assert!(s.table("b.posts").unwrap().column("x").is_some());
        assert!(s.table("a.posts").unwrap().column("x").is_none());
        assert!(s.table("posts").unwrap().column("y").is_some());
        assert_eq!(s.resolve("posts"), key("public", "posts"));
        // Names arrive as the parser folds them.
        let qualified = &parse("ALTER TABLE Public.\"Posts\" ADD COLUMN x int;")[0];
        assert_eq!(s.resolve(qualified.tables()[0]), key("public", "Posts"));
        assert_eq!(s.shown(&key("a", "posts")), "a.posts");
        assert_eq!(s.shown(&key("public", "posts")), "posts");
    }

    #[test]
    fn the_search_path_decides_what_an_unqualified_name_means() {
        let s = replay("CREATE TABLE public.t (id int); SET search_path TO app, public; CREATE TABLE posts (id int);");
        assert_eq!(s.resolve("posts"), key("app", "posts"));
        // Not in app: found further along the path.
        assert_eq!(s.resolve("t"), key("public", "t"));
        assert_eq!(s.shown(&key("app", "posts")), "posts");
        assert_eq!(replay("SET search_path = 'x'; RESET search_path;").resolve("p"), key("public", "p"));
        assert_eq!(replay("SET search_path TO x; SET search_path TO DEFAULT;").resolve("p"), key("public", "p"));
        // Other settings are not the search path.
        assert_eq!(replay("SET lock_timeout TO '1s';").resolve("p"), key("public", "p"));
        // SET LOCAL lasts until the end of its file.
        let mut s = replay("SET LOCAL search_path TO app;");
        assert_eq!(s.resolve("p"), key("app", "p"));
        s.begin_file();
        assert_eq!(s.resolve("p"), key("public", "p"));
    }

    #[test]
    fn indexes_live_in_their_tables_schema() {
        let s = replay(
            "CREATE TABLE a.t (id int); CREATE INDEX i ON a.t (id); CREATE TABLE t (id int); CREATE INDEX j ON t (id);",
        );
        assert_eq!(s.index_table("a.i").as_deref(), Some("a.t"));
        assert_eq!(s.index_table("j").as_deref(), Some("t"));
        assert_eq!(s.index_table("i"), None);
    }

    #[test]
    fn what_the_server_skips_is_skipped() {
        let s = replay(
            "CREATE TABLE t (id int, c int); CREATE INDEX i ON t (id); CREATE TABLE gone (id int); DROP TABLE gone; \
             CREATE INDEX k ON t (c); DROP INDEX k;",
        );
        let skipped = |sql: &str| parse(sql).iter().all(|st| s.effective(st).is_none());
        assert!(skipped("CREATE INDEX IF NOT EXISTS i ON t (c);"));
        assert!(!skipped("CREATE INDEX IF NOT EXISTS i2 ON t (c);"));
        assert!(!skipped("CREATE INDEX i ON t (c);"), "without IF NOT EXISTS it runs (and fails)");
        assert!(skipped("DROP TABLE IF EXISTS gone;"));
        assert!(!skipped("DROP TABLE IF EXISTS never_seen;"), "may predate the set");
        assert!(skipped("DROP INDEX IF EXISTS k;"));
        assert!(!skipped("DROP INDEX IF EXISTS i;"));
        assert!(skipped("ALTER TABLE t ADD COLUMN IF NOT EXISTS c int;"));
        assert!(!skipped("ALTER TABLE t ADD COLUMN IF NOT EXISTS d int;"));
        assert!(skipped("CREATE TABLE IF NOT EXISTS t (x int);"));
        // Part of a statement: the rest still runs.
        let stmt = &parse("DROP TABLE IF EXISTS gone, t;")[0];
        assert_eq!(s.effective(stmt).unwrap().tables(), ["t"]);
        let stmt = &parse("ALTER TABLE t ADD COLUMN IF NOT EXISTS c int, ADD COLUMN e int;")[0];
        assert_eq!(s.effective(stmt).unwrap().into_owned().kind, parse("ALTER TABLE t ADD COLUMN e int;")[0].kind);
    }

    #[test]
    fn foreign_keys_know_what_they_reference() {
        let s = replay(
            "CREATE TABLE users (id int PRIMARY KEY, email text); \
             CREATE TABLE posts (id int, user_id int REFERENCES users); \
             CREATE TABLE a.notes (id int, owner int, FOREIGN KEY (owner) REFERENCES public.users (id)); \
             CREATE TABLE mails (id int, email text REFERENCES users (email)); \
             CREATE TABLE b.users (id int PRIMARY KEY); CREATE TABLE b.x (u int REFERENCES b.users);",
        );
        assert_eq!(s.referencing("users", "id"), ["a.notes", "posts"]);
        assert_eq!(s.referencing("users", "email"), ["mails"]);
        assert_eq!(s.referencing("b.users", "id"), ["b.x"]);
        let s = replay(
            "CREATE TABLE users (id int PRIMARY KEY); ALTER TABLE posts ADD COLUMN u int REFERENCES users (id);",
        );
        assert_eq!(s.referencing("users", "id"), ["posts"]);
    }
}
