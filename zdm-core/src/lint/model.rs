//! The analyzer's own small model of a statement: just what the rules and the schema
//! replay need, independent of the parser that produced it (see [`super::parse`]).
//!
//! Table and index names are kept as the statement writes them, identifier case folded as
//! PostgreSQL folds it: `posts`, or `app.posts` when qualified (a part that holds a `.` or
//! a `"` is shown quoted, so [`split_qualified`] reads it back). Which table an unqualified
//! name means depends on the search path at that point of the set: the schema replay
//! resolves it ([`super::schema::Schema::resolve`]); messages show the name as written.

use std::ops::Range;

use super::types::TypeName;

/// One statement of a migration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// Byte range in the file (without the trailing `;`).
    pub range: Range<usize>,
    /// Where a finding about it points: the start of `range`, or for a statement the parser
    /// cannot read, its first bad token.
    pub focus: usize,
    /// The statement as the file sends it to the server: `range` itself, or the `DO` block
    /// (or the `WITH` statement) this one runs inside. A `safety_assured` comment before
    /// that statement covers this one too.
    pub unit: Range<usize>,
    pub kind: StmtKind,
}

/// How a column default behaves when a column is added (PostgreSQL ≥ 11 stores a
/// non-volatile default without rewriting the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultKind {
    /// A literal or a cast of one.
    Constant,
    /// Stable or immutable functions such as `now()`: evaluated once.
    Stable,
    /// `random()`, `gen_random_uuid()`, `nextval()`, or a function zdm cannot judge.
    Volatile,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnDef {
    pub name: String,
    pub ty: Option<TypeName>,
    pub not_null: bool,
    pub default: Option<DefaultKind>,
    /// The functions the default calls, unqualified: one the set itself creates without
    /// `IMMUTABLE`/`STABLE` is volatile ([`super::schema::Schema::effective`] says so).
    pub default_calls: Vec<String>,
    /// `GENERATED ALWAYS AS (..) STORED`.
    pub generated_stored: bool,
    /// `GENERATED .. AS IDENTITY`.
    pub identity: bool,
    /// `serial` / `bigserial` / `smallserial`.
    pub serial: bool,
    /// An inline `REFERENCES` (with `NOT VALID` never possible inline): the table as
    /// written.
    pub references: Option<String>,
    /// The columns an inline `REFERENCES` names (empty: the referenced table's primary key).
    pub references_columns: Vec<String>,
    pub primary_key: bool,
    pub unique: bool,
    pub check: bool,
    /// `ADD COLUMN IF NOT EXISTS`: on an existing column the server does nothing.
    pub if_not_exists: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintKind {
    /// `CHECK (..)`; `not_null_of` is set for `CHECK (col IS NOT NULL)`.
    Check {
        columns: Vec<String>,
        not_null_of: Option<String>,
    },
    ForeignKey {
        /// The referencing columns (`FOREIGN KEY (a, b)`; an inline `REFERENCES`: its column).
        local: Vec<String>,
        /// The referenced table as written.
        references: Option<String>,
        /// The referenced columns (empty: its primary key).
        columns: Vec<String>,
    },
    Unique,
    PrimaryKey,
    Exclude,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConstraintDef {
    pub name: Option<String>,
    pub kind: ConstraintKind,
    pub not_valid: bool,
    /// `.. USING INDEX name`: adopts an index built beforehand.
    pub using_index: bool,
}

/// One action of `ALTER TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    AddColumn(ColumnDef),
    DropColumn {
        column: String,
    },
    AlterType {
        column: String,
        ty: Option<TypeName>,
        using: bool,
    },
    SetNotNull {
        column: String,
    },
    DropNotNull {
        column: String,
    },
    SetDefault {
        column: String,
        default: DefaultKind,
    },
    DropDefault {
        column: String,
    },
    AddConstraint(ConstraintDef),
    ValidateConstraint {
        name: String,
    },
    DropConstraint {
        name: String,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTo {
        to: String,
    },
    /// `SET LOGGED/UNLOGGED`, `SET TABLESPACE`, `SET ACCESS METHOD`: rewrites.
    Rewrite {
        what: &'static str,
    },
    AttachPartition {
        partition: String,
    },
    DetachPartition {
        partition: String,
        concurrently: bool,
    },
    EnableDisableTrigger,
    Other,
}

/// Which rows an `UPDATE` or `DELETE` touches, as far as its text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowScope {
    /// No `WHERE`: every row.
    All,
    /// A `WHERE` that does not bound the batch (`WHERE body IS NULL`): possibly every row.
    Unbounded,
    /// A key range (`id BETWEEN 1 AND 1000`, `id < 5000`), a single key (`id = 1`,
    /// `id IN (1, 2)`), a `LIMIT`ed subquery or `WHERE CURRENT OF`: one batch.
    Batch,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    CreateTable {
        table: String,
        columns: Vec<ColumnDef>,
        constraints: Vec<ConstraintDef>,
        partitioned: bool,
        /// `IF NOT EXISTS`: on an existing table the server does nothing.
        if_not_exists: bool,
    },
    /// `CREATE TABLE .. AS` / `SELECT .. INTO` / `CREATE MATERIALIZED VIEW`: a new
    /// relation, filled.
    CreateTableAs {
        table: String,
        /// The relations its query reads (unqualified): dropping one with `CASCADE` drops
        /// it (a materialized view).
        reads: Vec<String>,
    },
    AlterTable {
        table: String,
        actions: Vec<Action>,
    },
    CreateIndex {
        name: Option<String>,
        table: String,
        unique: bool,
        concurrently: bool,
        only: bool,
        if_not_exists: bool,
        /// The columns it indexes as they are.
        columns: Vec<String>,
        /// The columns its expressions or its `WHERE` use: a type change of one rebuilds it.
        expression_columns: Vec<String>,
        /// The name PostgreSQL gives it when `name` is `None` (`t_col_idx`, `t_lower_idx`).
        implicit_name: String,
    },
    DropIndex {
        names: Vec<String>,
        concurrently: bool,
        /// `IF EXISTS`: an index that is gone is skipped.
        if_exists: bool,
    },
    DropTable {
        tables: Vec<String>,
        cascade: bool,
        /// `IF EXISTS`: a table that is gone is skipped.
        if_exists: bool,
    },
    DropSchema {
        cascade: bool,
    },
    DropDatabase,
    DropView {
        names: Vec<String>,
        /// `CASCADE`: dependent views (and materialized views) go too.
        cascade: bool,
    },
    DropRoutine {
        /// The routines, unqualified.
        names: Vec<String>,
        /// `CASCADE`: the triggers that run it go too, each locking its table.
        cascade: bool,
    },
    Truncate {
        tables: Vec<String>,
        cascade: bool,
    },
    RenameSchema,
    RenameEnumValue,
    AddEnumValue {
        value: String,
    },
    Reindex {
        concurrently: bool,
        /// `REINDEX TABLE t`.
        table: Option<String>,
        /// `REINDEX INDEX i`.
        index: Option<String>,
    },
    RefreshMatView {
        concurrently: bool,
        view: Option<String>,
    },
    /// `VACUUM FULL`, `CLUSTER`.
    TableRewrite {
        what: &'static str,
        table: Option<String>,
    },
    Lock {
        tables: Vec<String>,
    },
    Update {
        table: String,
        rows: RowScope,
    },
    Delete {
        table: String,
        rows: RowScope,
    },
    /// `from_select`: `INSERT .. SELECT` (can be slow), not `VALUES`.
    Insert {
        table: String,
        from_select: bool,
    },
    AlterDomainAddConstraint {
        not_valid: bool,
    },
    CreateTrigger {
        table: String,
        /// The function it executes, unqualified.
        function: String,
    },
    DropTrigger {
        table: String,
    },
    /// `COMMENT ON TABLE` / `COMMENT ON COLUMN` (SHARE UPDATE EXCLUSIVE on the table).
    Comment {
        table: String,
    },
    /// `DO` block; `dynamic` when it runs `EXECUTE`.
    Do {
        dynamic: bool,
    },
    /// `SET [LOCAL] search_path ..` or `RESET search_path`: which schema unqualified names
    /// mean from here on. `schemas` is `None` for the default (`"$user", public`).
    SetSearchPath {
        schemas: Option<Vec<String>>,
        /// `SET LOCAL`: until the end of the migration's transaction.
        local: bool,
    },
    /// `CREATE [OR REPLACE] VIEW`: no storage, but `DROP .. CASCADE` of what it reads
    /// drops it, and with it what is built on it.
    CreateView {
        name: String,
        reads: Vec<String>,
    },
    /// A function or procedure definition: its body is not executed now, so not judged.
    /// `volatile` unless declared `IMMUTABLE` or `STABLE` (PostgreSQL's default).
    CreateRoutine {
        name: String,
        volatile: bool,
        /// The materialized views its PL/pgSQL body refreshes, and whether `CONCURRENTLY`.
        refreshes: Vec<(String, bool)>,
    },
    /// `ANALYZE` or `VACUUM` without `FULL`: SHARE UPDATE EXCLUSIVE on each table (none
    /// listed: every table).
    Analyze {
        tables: Vec<String>,
    },
    /// Anything else the rules have no opinion about (SELECT, COMMENT, GRANT, CREATE TYPE, ..).
    Other,
    /// The parser could not read it: never silently passed.
    Unparsable {
        message: String,
    },
}

impl Stmt {
    /// A statement of its own, reported at its start.
    pub fn new(range: Range<usize>, kind: StmtKind) -> Stmt {
        Stmt { focus: range.start, unit: range.clone(), range, kind }
    }

    /// Part of a larger statement (a `DO` block's body, a data-modifying `WITH` query).
    pub fn is_nested(&self) -> bool {
        self.unit != self.range
    }

    /// The tables this statement writes or locks, for "touches an object" checks.
    pub fn tables(&self) -> Vec<&str> {
        match &self.kind {
            StmtKind::CreateTable { table, .. }
            | StmtKind::CreateTableAs { table, .. }
            | StmtKind::AlterTable { table, .. }
            | StmtKind::CreateIndex { table, .. }
            | StmtKind::Update { table, .. }
            | StmtKind::Delete { table, .. }
            | StmtKind::Insert { table, .. }
            | StmtKind::CreateTrigger { table, .. } => vec![table.as_str()],
            StmtKind::DropTable { tables, .. } | StmtKind::Truncate { tables, .. } | StmtKind::Lock { tables } => {
                tables.iter().map(String::as_str).collect()
            }
            StmtKind::Reindex { table: Some(t), .. } | StmtKind::TableRewrite { table: Some(t), .. } => {
                vec![t.as_str()]
            }
            _ => Vec::new(),
        }
    }
}

/// Writes a table name as [`split_qualified`] reads it: `app.posts`, or `posts` without a
/// schema. A part holding a `.` or a `"` is quoted.
pub fn qualify(schema: Option<&str>, name: &str) -> String {
    let part = |p: &str| {
        if p.contains(['.', '"']) {
            format!("\"{}\"", p.replace('"', "\"\""))
        } else {
            p.to_string()
        }
    };
    match schema {
        Some(s) => format!("{}.{}", part(s), part(name)),
        None => part(name),
    }
}

/// Reads a name written by [`qualify`] into its schema (if qualified) and its name.
pub fn split_qualified(written: &str) -> (Option<String>, String) {
    let mut parts = Vec::new();
    let mut rest = written;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            // `""` inside a quoted part is one quote.
            let mut end = 0;
            let bytes = quoted.as_bytes();
            while end < bytes.len() {
                if bytes[end] == b'"' {
                    if bytes.get(end + 1) == Some(&b'"') {
                        end += 2;
                        continue;
                    }
                    break;
                }
                end += 1;
            }
            parts.push(quoted[..end.min(quoted.len())].replace("\"\"", "\""));
            rest = quoted.get(end + 1..).unwrap_or_default();
            rest = rest.strip_prefix('.').unwrap_or(rest);
        } else {
            let (part, tail) = rest.split_once('.').unwrap_or((rest, ""));
            parts.push(part.to_string());
            rest = tail;
        }
    }
    let name = parts.pop().unwrap_or_default();
    (parts.pop(), name)
}

#[cfg(test)]
mod tests {
    use super::{qualify, split_qualified};

    #[test]
    fn qualified_names_read_back() {
        for (schema, name) in [(None, "posts"), (Some("app"), "posts"), (Some("a.b"), "c\"d"), (None, "x.y")] {
            let written = qualify(schema, name);
            assert_eq!(split_qualified(&written), (schema.map(str::to_string), name.to_string()), "{written}");
        }
        assert_eq!(qualify(Some("app"), "posts"), "app.posts");
        assert_eq!(split_qualified(""), (None, String::new()));
    }
}
