//! # `sqlite-table-rebuild`
//!
//! **What it does:** recognises SQLite's table rebuild (create the new table, copy the rows,
//! drop the old table, rename the new one into its place, in either order; see
//! `lint::sqlite::rebuild`) of a table that existed before the migration, and warns.
//!
//! The rebuild is judged as the change it makes: a column it leaves out is `drop-column`, a
//! changed type `type-change`, a new `NOT NULL` column without a default
//! `add-required-column`; its `DROP TABLE` and `RENAME TO` steps are not reported as a drop
//! or a rename of the table. When other tables reference the rebuilt one while foreign keys
//! are enforced, `sqlite-foreign-keys-in-transaction` reports it.
//!
//! **Why is this bad?** The copy rewrites every row while the migration holds SQLite's only
//! write lock: every writer of the app waits for the whole copy, and after the busy timeout
//! fails with `database is locked`. The replay at compile time has the schema, not the
//! production rows, so zdm cannot tell a small table from a large one: a warning, not an
//! error.
//!
//! **Example:**
//! ```sql
//! CREATE TABLE new_posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL, views INTEGER NOT NULL DEFAULT 0) STRICT;
//! INSERT INTO new_posts (id, title, views) SELECT id, title, views FROM posts;
//! DROP TABLE posts;
//! ALTER TABLE new_posts RENAME TO posts;
//! ```
//! **Use instead:** `ALTER TABLE .. ADD COLUMN`, `RENAME COLUMN` or `DROP COLUMN` where they
//! do the job (they change the schema, not the rows); a rebuild of a large table in a quiet
//! window, with `-- zdm:safety_assured <reason>` once its size is known to be small.

use super::{Hit, Kind, SqliteRule};
use crate::lint::sqlite::model::Stmt;
use crate::lint::sqlite::Cx;

pub static RULE: SqliteRule = SqliteRule {
    id: "sqlite-table-rebuild",
    kind: Kind::Warning,
    why: "the copy rewrites every row while the migration holds SQLite's only write lock: every writer waits for it, then fails with `database is locked`",
    recipe: "use `ALTER TABLE .. ADD/RENAME/DROP COLUMN` where they do the job; rebuild a large table in a quiet window",
    check,
};

fn check(_stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let Some(r) = cx.rebuild_here() {
        out.push(Hit::anywhere(format!(
            "rebuilds table `{}` (create, copy, drop, rename): every row is copied under SQLite's write lock; \
             its size is unknown at compile time",
            r.table
        )));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn a_rebuild_of_an_existing_table_warns_once() {
        let found: Vec<_> = pre("CREATE TABLE new_tags (name TEXT PRIMARY KEY, note TEXT, n INTEGER) WITHOUT ROWID;\n\
                                 INSERT INTO new_tags (name, note) SELECT name, note FROM tags;\n\
                                 DROP TABLE tags;\n\
                                 ALTER TABLE new_tags RENAME TO tags;")
        .findings();
        let rebuilds: Vec<_> = found.iter().filter(|f| f.rule == "sqlite-table-rebuild").collect();
        assert_eq!(rebuilds.len(), 1, "{found:?}");
        assert!(!rebuilds[0].blocks());
        // Adding a nullable column by rebuild breaks nothing else.
        assert!(found.iter().all(|f| !f.blocks()), "{found:?}");
    }

    #[test]
    fn building_a_new_table_is_no_rebuild() {
        assert!(!pre("CREATE TABLE a (x INTEGER);\nINSERT INTO a SELECT id FROM posts;").fires("sqlite-table-rebuild"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN summary TEXT;").fires("sqlite-table-rebuild"));
    }
}
