//! # `sqlite-statement-fails`
//!
//! **What it does:** warns about a statement SQLite reads but refuses against the schema
//! the migration set builds (`no such table`, `no such column`, `table .. already
//! exists`, a constraint the set's own rows violate). Refusals another rule explains
//! (`sqlite-add-column-limits`, `sqlite-transaction-control`) are left to it.
//!
//! **Why is this bad?** Unless something outside the set (a Rust-coded migration, another
//! tool) makes the schema it expects, the migration fails when it runs, and zdm judges
//! the statements after it against a schema without its change.
//!
//! **Example:**
//! ```sql
//! INSERT INTO settings (key, value) VALUES ('theme', 'dark');  -- no migration creates settings
//! ```
//! **Use instead:** create what the statement needs in an earlier migration, or fix its
//! names.

use super::{Hit, Kind, SqliteRule};
use crate::lint::sqlite::model::{Kind as StmtKind, Stmt};
use crate::lint::sqlite::Cx;

pub static RULE: SqliteRule = SqliteRule {
    id: "sqlite-statement-fails",
    kind: Kind::Warning,
    why: "SQLite refuses it against the schema the migration set builds: the migration fails when it runs unless something outside the set makes that schema",
    recipe: "create what it needs in an earlier migration, or fix the names it uses",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let Some(message) = &stmt.refused else {
        return;
    };
    let explained =
        super::sqlite_add_column_limits::is_limit(message) || matches!(stmt.kind, StmtKind::Transaction { .. });
    if !explained {
        out.push(Hit::anywhere(format!("SQLite refuses it on the replayed schema: {message}")));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn a_statement_the_schema_refuses_warns() {
        let found = pre("INSERT INTO settings (key) VALUES ('x');").findings();
        let f = found.iter().find(|f| f.rule == "sqlite-statement-fails").expect("warned");
        assert!(f.message.contains("no such table: settings"), "{}", f.message);
        assert!(!f.blocks());
    }

    #[test]
    fn what_runs_or_what_another_rule_explains_is_silent() {
        assert!(!pre("INSERT INTO tags (name) VALUES ('x');").fires("sqlite-statement-fails"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug TEXT UNIQUE;").fires("sqlite-statement-fails"));
        assert!(!pre("BEGIN;").fires("sqlite-statement-fails"));
    }
}
