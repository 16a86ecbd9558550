//! # `drop-table`
//!
//! **What it does:** flags `DROP TABLE` of an existing table in a pre-deploy migration.
//!
//! **Why is this bad?** The build still serving queries the table.
//!
//! **Example:**
//! ```sql
//! DROP TABLE legacy_sessions;
//! ```
//! **Use instead:** a deferred drop (read-only now, dropped once no build uses it), or:
//! ```sql
//! -- zdm:after_deploy
//! DROP TABLE legacy_sessions;
//! ```
//! **PostgreSQL versions:** all.
//!
//! **SQLite:** the same, for a `DROP TABLE` that is not a step of a table rebuild (a
//! rebuild keeps the table under its name and is judged by what it changes).

use super::SqliteRule;
use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};
use crate::lint::sqlite::model::{Kind as SqliteKind, Stmt as SqliteStmt};
use crate::lint::sqlite::Cx as SqliteCx;

pub static RULE: Rule = Rule {
    id: "drop-table",
    kind: Kind::Breaks,
    why: "the build still serving queries this table; its queries fail once it is gone",
    recipe: "drop it in an `-- zdm:after_deploy` migration (or a deferred drop that makes it read-only first)",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::DropTable { tables, .. } = &stmt.kind {
        for t in tables {
            out.push(Hit::on(t, format!("drops table `{t}` before the deploy")));
        }
    }
}

/// The SQLite check: a live table dropped, not as a step of a rebuild.
pub static SQLITE: SqliteRule = SqliteRule {
    id: "drop-table",
    kind: Kind::Breaks,
    why: "the build still serving queries this table; its queries fail with `no such table` once it is gone",
    recipe: "stop using the table in code, then drop it in an `-- zdm:after_deploy` migration",
    check: check_sqlite,
};

fn check_sqlite(stmt: &SqliteStmt, cx: &SqliteCx<'_>, out: &mut Vec<Hit>) {
    if let SqliteKind::DropTable { table } = &stmt.kind {
        if cx.is_live(table) && !cx.in_rebuild() {
            out.push(Hit::on(table, format!("drops table `{table}` before the deploy")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn pre_deploy_drop_is_an_error() {
        assert!(pre("DROP TABLE users;").fires("drop-table"));
    }

    #[test]
    fn after_deploy_or_same_file_is_fine() {
        assert!(!post("DROP TABLE users;").fires("drop-table"));
        assert!(!pre("CREATE TABLE tmp (a int); DROP TABLE tmp;").fires("drop-table"));
    }

    #[test]
    fn if_exists_judges_only_what_still_exists() {
        let setup = "CREATE TABLE users (id int); CREATE TABLE gone (id int); DROP TABLE gone;";
        assert!(!pre("DROP TABLE IF EXISTS gone;").setup(setup).fires("drop-table"));
        let found = pre("DROP TABLE IF EXISTS gone, users;").setup(setup).findings();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("`users`") && !found[0].message.contains("gone"), "{}", found[0].message);
        // A table the set never made may predate it.
        assert!(pre("DROP TABLE IF EXISTS unknown;").setup(setup).fires("drop-table"));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn dropping_a_live_table_is_an_error_before_the_deploy() {
        assert!(pre("DROP TABLE tags;").fires("drop-table"));
        assert!(!post("DROP TABLE tags;").fires("drop-table"));
        assert!(!pre("CREATE TABLE t (a INTEGER); DROP TABLE t;").fires("drop-table"));
        assert!(!pre("DROP TABLE IF EXISTS never_made;").fires("drop-table"));
    }

    #[test]
    fn the_drop_of_a_rebuild_is_not_a_table_drop() {
        let run = pre("CREATE TABLE new_tags (name TEXT PRIMARY KEY, note TEXT) WITHOUT ROWID;\n\
                       INSERT INTO new_tags SELECT * FROM tags;\nDROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;");
        assert!(!run.fires("drop-table"));
        assert!(!run.fires("rename-table"));
    }
}
