//! # `add-required-column`
//!
//! **What it does:** flags `ADD COLUMN .. NOT NULL` without a default on an existing table,
//! in a pre-deploy migration.
//!
//! **Why is this bad?** The old build's INSERTs do not name the column and start failing
//! (and on a non-empty table the statement itself fails).
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN slug text NOT NULL;
//! ```
//! **Use instead:** add it nullable or with a default; make it NOT NULL after the backfill.
//! ```sql
//! ALTER TABLE posts ADD COLUMN slug text NOT NULL DEFAULT '';
//! ```
//! **PostgreSQL versions:** all.
//!
//! **SQLite:** the same for `ADD COLUMN .. NOT NULL` without a default (SQLite accepts it
//! on an empty table only, so it passes on a developer's database and fails in
//! production), and for a table rebuild whose new table has a `NOT NULL` column without a
//! default that the old table lacked:
//! ```sql
//! CREATE TABLE new_posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL, slug TEXT NOT NULL);
//! INSERT INTO new_posts (id, title, slug) SELECT id, title, id FROM posts;
//! DROP TABLE posts;
//! ALTER TABLE new_posts RENAME TO posts;
//! ```
//! **Use instead:** give the new column a default (`slug TEXT NOT NULL DEFAULT ''`).

use super::SqliteRule;
use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};
use crate::lint::sqlite::model::{Alter, Kind as SqliteKind, Stmt as SqliteStmt};
use crate::lint::sqlite::Cx as SqliteCx;

pub static RULE: Rule = Rule {
    id: "add-required-column",
    kind: Kind::Breaks,
    why: "the old build's INSERTs omit the new column and fail on NOT NULL (and the ALTER fails on a non-empty table)",
    recipe: "add the column nullable or with a default; add NOT NULL later (check NOT VALID, validate, set not null)",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::AddColumn(c) = action {
            if c.not_null && c.default.is_none() && !c.serial && !c.identity && !c.generated_stored {
                out.push(Hit::on(table, format!("adds required column `{table}.{}` without a default", c.name)));
            }
        }
    }
}

/// The SQLite check: a rebuild that adds a required column.
pub static SQLITE: SqliteRule = SqliteRule {
    id: "add-required-column",
    kind: Kind::Breaks,
    why: "the build still serving inserts rows without this column; each such INSERT fails with `NOT NULL constraint failed`",
    recipe: "give the new column a default (`.. NOT NULL DEFAULT ''`), or add it nullable and require it after the deploy",
    check: check_sqlite,
};

fn check_sqlite(stmt: &SqliteStmt, cx: &SqliteCx<'_>, out: &mut Vec<Hit>) {
    if let SqliteKind::AlterTable { table, change: Alter::AddColumn { column } } = &stmt.kind {
        let added = cx.after().table(table).and_then(|t| t.column(column));
        if added.is_some_and(|c| !c.optional_on_insert()) {
            out.push(Hit::on(
                table,
                format!(
                    "adds `{table}.{column}` NOT NULL without a default (SQLite refuses it once the table has rows)"
                ),
            ));
        }
    }
    if let Some(r) = cx.rebuild_here() {
        for c in r.new.columns.iter().filter(|c| r.old.column(&c.name).is_none() && !c.optional_on_insert()) {
            out.push(Hit::on(
                &r.table,
                format!("rebuilds `{}` with a new required column `{}` (NOT NULL, no default)", r.table, c.name),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn not_null_without_default_fires() {
        assert!(pre("ALTER TABLE posts ADD COLUMN slug text NOT NULL;").fires("add-required-column"));
    }

    #[test]
    fn guarded_idioms_in_do_blocks_are_judged_as_their_statements() {
        // Not an error in itself: the guarded statements are harmless.
        let guarded = "DO $$ BEGIN CREATE TYPE colour AS ENUM ('red'); \
                       EXCEPTION WHEN duplicate_object THEN null; END $$;\n\
                       DO $$ BEGIN\n\
                         IF NOT EXISTS (SELECT 1 FROM information_schema.columns\n\
                                        WHERE table_name = 'posts' AND column_name = 'slug') THEN\n\
                           ALTER TABLE posts ADD COLUMN slug text;\n\
                         END IF;\n\
                       END $$;";
        assert!(pre(guarded).errors().is_empty(), "{:?}", pre(guarded).errors());
        // The same guard around a required column is the required column.
        assert!(pre("DO $$ BEGIN IF NOT EXISTS (SELECT 1) THEN ALTER TABLE posts ADD COLUMN slug text NOT NULL; \
                     END IF; END $$;")
        .fires("add-required-column"));
    }

    #[test]
    fn nullable_or_defaulted_is_fine() {
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text;").fires("add-required-column"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text NOT NULL DEFAULT '';").fires("add-required-column"));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn a_rebuild_that_adds_a_required_column_is_an_error() {
        assert!(pre(concat!("CREATE TABLE new_tags (name TEXT PRIMARY KEY, note TEXT, rank INTEGER NOT NULL) WITHOUT ROWID;\n",
            "INSERT INTO new_tags (name, note, rank) SELECT name, note, 0 FROM tags;\nDROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;"))
        .fires("add-required-column"));
    }

    #[test]
    fn a_default_or_a_nullable_column_is_fine() {
        assert!(!pre(concat!("CREATE TABLE new_tags (name TEXT PRIMARY KEY, note TEXT, rank INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;\n",
            "INSERT INTO new_tags (name, note, rank) SELECT name, note, 0 FROM tags;\nDROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;"))
        .fires("add-required-column"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN rank INTEGER NOT NULL DEFAULT 0;").fires("add-required-column"));
        assert!(!pre("CREATE TABLE t (a INTEGER);\nALTER TABLE t ADD COLUMN b INTEGER NOT NULL;")
            .fires("add-required-column"));
    }

    #[test]
    fn adding_a_required_column_is_an_error_though_the_replayed_table_is_empty() {
        assert!(pre("ALTER TABLE posts ADD COLUMN slug TEXT NOT NULL;").fires("add-required-column"));
        assert!(!post("ALTER TABLE posts ADD COLUMN slug TEXT NOT NULL;").fires("add-required-column"));
    }
}
