//! What the SQLite rules see: a statement's kind as SQLite's authorizer described it, and
//! the schema SQLite held before and after it. Plain data, no pointers: the rules are pure
//! functions of these, tested with the SQL they judge.

use std::collections::BTreeMap;
use std::ops::Range;

/// The schema of the replayed database at one point of the set. Keys are lowercase (SQLite
/// names are case-insensitive); [`Table::name`] keeps the spelling.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub tables: BTreeMap<String, Table>,
    /// Index name → table.
    pub indexes: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(&name.to_ascii_lowercase())
    }

    /// The tables whose foreign keys reference `table` (itself excluded).
    pub fn referenced_by(&self, table: &str) -> Vec<&str> {
        let key = table.to_ascii_lowercase();
        self.tables
            .iter()
            .filter(|(k, t)| **k != key && t.references.contains(&key))
            .map(|(_, t)| t.name.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// `STRICT`: values must match the declared type exactly.
    pub strict: bool,
    /// `WITHOUT ROWID`.
    pub without_rowid: bool,
    /// The tables its foreign keys reference (lowercase).
    pub references: Vec<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Column {
    pub name: String,
    /// The declared type as written (`INTEGER`, `VARCHAR(40)`, empty).
    pub ty: String,
    pub not_null: bool,
    /// The default's text as SQLite stores it.
    pub default: Option<String>,
    pub pk: bool,
    pub generated: bool,
}

impl Column {
    /// Whether an `INSERT` that omits this column still works: a default, a generated
    /// value, or a nullable column (an `INTEGER PRIMARY KEY` is the rowid and fills itself).
    pub fn optional_on_insert(&self) -> bool {
        !self.not_null
            || self.default.is_some()
            || self.generated
            || (self.pk && affinity(&self.ty) == Affinity::Integer)
    }
}

/// SQLite's type affinity of a declared type (the five rules of "Determination Of Column
/// Affinity", in their order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

pub fn affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// What one `ALTER TABLE` did, read from the schema before and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alter {
    AddColumn {
        column: String,
    },
    DropColumn {
        column: String,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTo {
        to: String,
    },
    /// SQLite refused it, or it changed nothing zdm can name.
    Unknown,
}

/// A statement, as SQLite's authorizer described it while preparing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    CreateTable {
        table: String,
    },
    CreateIndex {
        index: String,
        table: String,
    },
    CreateView,
    CreateTrigger {
        table: String,
    },
    DropTable {
        table: String,
    },
    DropIndex {
        index: String,
        table: String,
    },
    DropView,
    DropTrigger,
    AlterTable {
        table: String,
        change: Alter,
    },
    /// `reads`: the tables its `SELECT` reads (`INSERT INTO new_posts SELECT .. FROM posts`).
    Insert {
        table: String,
        reads: Vec<String>,
    },
    Update {
        table: String,
    },
    Delete {
        table: String,
    },
    /// `PRAGMA name = value`.
    Pragma {
        name: String,
        value: Option<String>,
    },
    /// `BEGIN`, `COMMIT` (also `END`) or `ROLLBACK`.
    Transaction {
        op: String,
    },
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`.
    Savepoint,
    /// A query, `VACUUM`, `ANALYZE`, `REINDEX`, `ATTACH`: nothing the rules judge.
    Other,
    /// SQLite cannot read it.
    Unreadable {
        message: String,
    },
}

/// One statement of a SQLite migration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// Byte range in the file (without the trailing `;`).
    pub range: Range<usize>,
    /// Where a finding points: the statement's start, or its first bad token.
    pub focus: usize,
    pub kind: Kind,
    /// SQLite refused it against the replayed schema (the message SQLite gave).
    pub refused: Option<String>,
}

impl Stmt {
    /// The table it changes, for the same-file exemption.
    pub fn table(&self) -> Option<&str> {
        match &self.kind {
            Kind::CreateTable { table }
            | Kind::CreateIndex { table, .. }
            | Kind::CreateTrigger { table }
            | Kind::DropTable { table }
            | Kind::DropIndex { table, .. }
            | Kind::AlterTable { table, .. }
            | Kind::Insert { table, .. }
            | Kind::Update { table }
            | Kind::Delete { table } => Some(table),
            _ => None,
        }
    }

    /// `PRAGMA foreign_keys = OFF` (or `0`, `false`, `no`).
    pub fn turns_foreign_keys_off(&self) -> bool {
        matches!(&self.kind, Kind::Pragma { name, value: Some(v) }
            if name.eq_ignore_ascii_case("foreign_keys")
                && ["off", "0", "false", "no"].contains(&v.trim_matches(|c| c == '\'' || c == '"').to_ascii_lowercase().as_str()))
    }
}

/// One authorizer call: the action code and its two arguments (see SQLite's "Authorizer
/// Action Codes": e.g. `SQLITE_CREATE_INDEX` with the index and the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub code: i32,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// How one statement of the file fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Prepared and ran.
    Ran,
    /// SQLite cannot read it; `at` is the file offset of its first bad token.
    Syntax { at: usize, message: String },
    /// SQLite read it but refused it against the replayed schema (`no such table`,
    /// `Cannot add a NOT NULL column with default value NULL`, ...), when preparing or
    /// running it.
    Refused { message: String },
}

/// One statement as replayed.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Byte range in the file, without the trailing `;`.
    pub range: Range<usize>,
    pub outcome: Outcome,
    /// What the authorizer reported while SQLite prepared it.
    pub actions: Vec<Auth>,
}

/// The statements of one file, and the schema before each one and after the last.
#[derive(Debug, Clone)]
pub struct ReplayedFile {
    pub stmts: Vec<Replayed>,
    /// `states[i]`: the schema before statement `i`; `states[len]`: after the file.
    pub states: Vec<Snapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_follows_sqlites_rules_in_order() {
        assert_eq!(affinity("INTEGER"), Affinity::Integer);
        assert_eq!(affinity("BIGINT"), Affinity::Integer);
        assert_eq!(affinity("VARCHAR(40)"), Affinity::Text);
        assert_eq!(affinity("CHARINT"), Affinity::Integer);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(affinity("DOUBLE PRECISION"), Affinity::Real);
        assert_eq!(affinity("DATETIME"), Affinity::Numeric);
        assert_eq!(affinity("BOOLEAN"), Affinity::Numeric);
    }
}
