//! # `sqlite-create-index-blocks-writer`
//!
//! **What it does:** warns about `CREATE INDEX` on a table that existed before the
//! migration.
//!
//! **Why is this bad?** SQLite builds the index in one pass over the table while the
//! migration holds the database's only write lock: every writer waits for the whole build
//! and fails with `database is locked` once its busy timeout runs out. SQLite has no
//! concurrent index build. How long it takes depends on the table's rows, which the replay
//! at compile time does not have, so this is a warning, not an error.
//!
//! **Example:**
//! ```sql
//! CREATE INDEX posts_user_id_idx ON posts (user_id);
//! ```
//! **Use instead:** build it on a table known to be small, in a quiet window for a large
//! one, or together with the table in the migration that creates it. Accept it with
//! `-- zdm:safety_assured <reason>` once the size is known.

use super::{Hit, Kind, SqliteRule};
use crate::lint::sqlite::model::{Kind as StmtKind, Stmt};
use crate::lint::sqlite::Cx;

pub static RULE: SqliteRule = SqliteRule {
    id: "sqlite-create-index-blocks-writer",
    kind: Kind::Warning,
    why: "SQLite builds the index under its only write lock: every writer of the app waits for the whole build",
    recipe: "build it while the table is small, or in a quiet window; SQLite has no concurrent index build",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::CreateIndex { index, table } = &stmt.kind {
        let made = cx.after().indexes.contains_key(&index.to_ascii_lowercase())
            && !cx.before().indexes.contains_key(&index.to_ascii_lowercase());
        if made && cx.is_live(table) {
            out.push(Hit::on(
                table,
                format!("builds index `{index}` on `{table}` under SQLite's write lock; the table's size is unknown at compile time"),
            ));
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn an_index_on_a_live_table_warns() {
        let found = pre("CREATE INDEX posts_user_idx ON posts (user_id);").findings();
        let f = found.iter().find(|f| f.rule == "sqlite-create-index-blocks-writer").expect("warned");
        assert!(!f.blocks());
        // No PostgreSQL advice for SQLite.
        assert!(found.iter().all(|f| !f.message.contains("CONCURRENTLY") && !f.recipe.contains("CONCURRENTLY")));
    }

    #[test]
    fn an_index_on_a_new_table_or_an_existing_index_is_fine() {
        assert!(
            !pre("CREATE TABLE t (a INTEGER);\nCREATE INDEX t_a ON t (a);").fires("sqlite-create-index-blocks-writer")
        );
        assert!(!pre("CREATE INDEX IF NOT EXISTS posts_title_idx ON posts (title);")
            .fires("sqlite-create-index-blocks-writer"));
    }
}
