//! # `rename-table`
//!
//! **What it does:** flags `ALTER TABLE .. RENAME TO`, in every phase.
//!
//! **Why is this bad?** The old build queries the old name, the new build the new one.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts RENAME TO articles;
//! ```
//! **Use instead:** rename and create an updatable view with the old name in the same
//! transaction; drop the view after the deploy:
//! ```sql
//! ALTER TABLE posts RENAME TO articles;
//! CREATE VIEW posts AS SELECT * FROM articles;
//! ```
//! **PostgreSQL versions:** all.
//!
//! **SQLite:** the same, for an `ALTER TABLE .. RENAME TO` that is not a step of a table
//! rebuild. SQLite's views are read-only, so the view recipe needs `INSTEAD OF` triggers
//! for the old build's writes; a new table and a copy after the deploy is usually simpler.

use super::SqliteRule;
use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};
use crate::lint::sqlite::model::{Alter, Kind as SqliteKind, Stmt as SqliteStmt};
use crate::lint::sqlite::Cx as SqliteCx;

pub static RULE: Rule = Rule {
    id: "rename-table",
    kind: Kind::BreaksEveryPhase,
    why: "the old build queries the old name and the new build the new one: no phase is safe",
    recipe: "rename and create an updatable view under the old name in the same transaction, then drop the view after the deploy",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::RenameTo { to } = action {
            // The recipe itself: a view with the old name follows in the same file.
            let view_follows = cx.later().iter().any(|s| {
                let text = cx.text(s).to_ascii_lowercase();
                text.starts_with("create") && text.contains(" view ") && text.contains(&table.to_ascii_lowercase())
            });
            if !view_follows {
                out.push(Hit::on(table, format!("renames table `{table}` to `{to}`")));
            }
        }
    }
}

/// The SQLite check: a live table renamed, not as a step of a rebuild.
pub static SQLITE: SqliteRule = SqliteRule {
    id: "rename-table",
    kind: Kind::BreaksEveryPhase,
    why: "the build still serving queries the old name, the new build the new one",
    recipe: "keep the name; or rename and create a view with the old name (with `INSTEAD OF` triggers for the old build's writes), dropped after the deploy",
    check: check_sqlite,
};

fn check_sqlite(stmt: &SqliteStmt, cx: &SqliteCx<'_>, out: &mut Vec<Hit>) {
    if let SqliteKind::AlterTable { table, change: Alter::RenameTo { to } } = &stmt.kind {
        if cx.is_live(table) && !cx.in_rebuild() {
            out.push(Hit::on(table, format!("renames table `{table}` to `{to}`")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn plain_rename_fires() {
        assert!(pre("ALTER TABLE posts RENAME TO articles;").fires("rename-table"));
        assert!(post("ALTER TABLE posts RENAME TO articles;").fires("rename-table"));
    }

    #[test]
    fn rename_with_a_compatibility_view_is_the_recipe() {
        assert!(!pre("ALTER TABLE posts RENAME TO articles;\nCREATE VIEW posts AS SELECT * FROM articles;")
            .fires("rename-table"));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn renaming_a_live_table_is_an_error() {
        assert!(pre("ALTER TABLE tags RENAME TO labels;").fires("rename-table"));
        assert!(post("ALTER TABLE tags RENAME TO labels;").fires("rename-table"));
        assert!(!pre("CREATE TABLE t (a INTEGER); ALTER TABLE t RENAME TO u;").fires("rename-table"));
    }
}
