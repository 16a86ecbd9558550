//! # `rename-column`
//!
//! **What it does:** flags `ALTER TABLE .. RENAME COLUMN`, in every phase.
//!
//! **Why is this bad?** The old build uses the old name and the new build the new one; in
//! no phase do both work.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts RENAME COLUMN body TO content;
//! ```
//! **Use instead:** add the new column, keep both in sync with a trigger, backfill in
//! batches, switch reads to the new column, then drop the old one after the deploy (zdm's
//! rename-column recipe does all of it).
//!
//! **PostgreSQL versions:** all.
//!
//! **SQLite:** the same, for `ALTER TABLE .. RENAME COLUMN` (SQLite ≥ 3.25); zdm reads the
//! rename from the schema SQLite holds before and after the statement.

use super::SqliteRule;
use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};
use crate::lint::sqlite::model::{Alter, Kind as SqliteKind, Stmt as SqliteStmt};
use crate::lint::sqlite::Cx as SqliteCx;

pub static RULE: Rule = Rule {
    id: "rename-column",
    kind: Kind::BreaksEveryPhase,
    why: "the old build queries the old name and the new build the new one: no phase is safe",
    recipe: "add the new column, sync both with a trigger, backfill in batches, switch reads, then drop the old column after the deploy",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::RenameColumn { from, to } = action {
            out.push(Hit::on(table, format!("renames column `{table}.{from}` to `{to}`")));
        }
    }
}

/// The SQLite check.
pub static SQLITE: SqliteRule = SqliteRule {
    id: "rename-column",
    kind: Kind::BreaksEveryPhase,
    why: "the build still serving uses the old name and the new build the new one: in no phase do both work",
    recipe: "add the new column, write both from the new build, copy the old values over, switch reads, then drop the old column after the deploy",
    check: check_sqlite,
};

fn check_sqlite(stmt: &SqliteStmt, _cx: &SqliteCx<'_>, out: &mut Vec<Hit>) {
    if let SqliteKind::AlterTable { table, change: Alter::RenameColumn { from, to } } = &stmt.kind {
        out.push(Hit::on(table, format!("renames column `{table}.{from}` to `{to}`")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn fires_in_every_phase() {
        assert!(pre("ALTER TABLE posts RENAME COLUMN body TO content;").fires("rename-column"));
        assert!(post("ALTER TABLE posts RENAME COLUMN body TO content;").fires("rename-column"));
    }

    #[test]
    fn a_rename_inside_a_do_block_fires() {
        assert!(pre("DO $$ BEGIN ALTER TABLE posts RENAME COLUMN body TO content; \
                     EXCEPTION WHEN undefined_column THEN NULL; END $$;")
        .fires("rename-column"));
        assert!(post(
            "DO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM posts; \
                      IF n = 0 THEN NULL; ELSE ALTER TABLE posts RENAME COLUMN body TO content; END IF; END $$;"
        )
        .fires("rename-column"));
    }

    #[test]
    fn renaming_on_a_new_table_is_fine() {
        assert!(!pre("CREATE TABLE t (a int); ALTER TABLE t RENAME COLUMN a TO b;").fires("rename-column"));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn a_rename_is_an_error_in_every_phase() {
        assert!(pre("ALTER TABLE posts RENAME COLUMN body TO content;").fires("rename-column"));
        assert!(post("ALTER TABLE posts RENAME body TO content;").fires("rename-column"));
        assert!(!pre("CREATE TABLE t (a INTEGER); ALTER TABLE t RENAME COLUMN a TO b;").fires("rename-column"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN summary TEXT;").fires("rename-column"));
    }
}
