//! # `drop-column`
//!
//! **What it does:** flags `ALTER TABLE .. DROP COLUMN` in a pre-deploy migration.
//!
//! **Why is this bad?** The build still serving selects and inserts the column by name;
//! once it is gone every such query fails until the new build has replaced it.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts DROP COLUMN legacy_slug;
//! ```
//! **Use instead:** stop using the column in code (`#[zdm::ignored_columns]`), then drop it
//! after the deploy:
//! ```sql
//! -- zdm:after_deploy
//! ALTER TABLE posts DROP COLUMN legacy_slug;
//! ```
//! **PostgreSQL versions:** all.
//!
//! **SQLite:** the same hazard, from `ALTER TABLE .. DROP COLUMN` (SQLite ≥ 3.35) or from a
//! table rebuild whose new table leaves the column out (see `sqlite-table-rebuild`):
//! ```sql
//! CREATE TABLE new_posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
//! INSERT INTO new_posts (id, title) SELECT id, title FROM posts;
//! DROP TABLE posts;                                  -- drop-column: posts.legacy_slug
//! ALTER TABLE new_posts RENAME TO posts;
//! ```
//! **Use instead:** the same after the deploy (`-- zdm:after_deploy`), once the code has
//! stopped using the column.

use super::SqliteRule;
use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};
use crate::lint::sqlite::model::{Alter, Kind as SqliteKind, Stmt as SqliteStmt};
use crate::lint::sqlite::Cx as SqliteCx;

pub static RULE: Rule = Rule {
    id: "drop-column",
    kind: Kind::Breaks,
    why: "the build still serving reads and writes this column; its queries fail once it is gone",
    recipe: "stop using the column in code (`#[zdm::ignored_columns]`), then drop it in an `-- zdm:after_deploy` migration (or a deferred drop)",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::DropColumn { column } = action {
            out.push(Hit::on(table, format!("drops column `{table}.{column}` before the deploy")));
        }
    }
}

/// The SQLite check: a dropped column, directly or through a rebuild.
pub static SQLITE: SqliteRule = SqliteRule {
    id: "drop-column",
    kind: Kind::Breaks,
    why: "the build still serving reads and writes this column; its queries fail with `no such column` once it is gone",
    recipe: "stop using the column in code (`#[zdm::ignored_columns]`), then drop it (or rebuild the table without it) in an `-- zdm:after_deploy` migration",
    check: check_sqlite,
};

fn check_sqlite(stmt: &SqliteStmt, cx: &SqliteCx<'_>, out: &mut Vec<Hit>) {
    if let SqliteKind::AlterTable { table, change: Alter::DropColumn { column } } = &stmt.kind {
        out.push(Hit::on(table, format!("drops column `{table}.{column}` before the deploy")));
    }
    if let Some(r) = cx.rebuild_here() {
        for c in r.old.columns.iter().filter(|c| r.new.column(&c.name).is_none()) {
            out.push(Hit::on(
                &r.table,
                format!("rebuilds `{}` without column `{}`: the column is dropped before the deploy", r.table, c.name),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn pre_deploy_drop_is_an_error() {
        assert!(pre("ALTER TABLE posts DROP COLUMN legacy_slug;").fires("drop-column"));
    }

    #[test]
    fn after_deploy_or_new_table_is_fine() {
        assert!(!post("ALTER TABLE posts DROP COLUMN legacy_slug;").fires("drop-column"));
        assert!(!pre("CREATE TABLE t (a int, b int); ALTER TABLE t DROP COLUMN b;").fires("drop-column"));
    }

    #[test]
    fn a_table_of_the_release_not_yet_deployed_has_no_old_readers() {
        assert!(!pre("ALTER TABLE posts DROP COLUMN legacy_slug;").deployed(0).fires("drop-column"));
        assert!(pre("ALTER TABLE posts DROP COLUMN legacy_slug;").deployed(1).fires("drop-column"));
    }

    #[test]
    fn a_new_table_of_another_schema_exempts_nothing() {
        assert!(pre("CREATE TABLE app.posts (a int, b int);\nALTER TABLE posts DROP COLUMN legacy_slug;")
            .fires("drop-column"));
        assert!(
            !pre("CREATE TABLE app.posts (a int, b int);\nALTER TABLE app.posts DROP COLUMN b;").fires("drop-column")
        );
    }

    #[test]
    fn a_drop_hidden_in_a_do_block_fires_where_it_is() {
        let sql = "DO $$\nBEGIN\n  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE column_name = 'legacy_slug') THEN\n    \
                   ALTER TABLE posts DROP COLUMN legacy_slug;\n  END IF;\nEND $$;";
        let found: Vec<_> = pre(sql).findings().into_iter().filter(|f| f.rule == "drop-column").collect();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].column), (4, 5));
        // EXECUTE of a constant is that SQL.
        assert!(pre("DO $$ BEGIN EXECUTE 'ALTER TABLE posts DROP COLUMN legacy_slug'; END $$;").fires("drop-column"));
        assert!(pre("DO 'BEGIN EXECUTE ''ALTER TABLE posts DROP COLUMN legacy_slug''; END';").fires("drop-column"));
    }

    #[test]
    fn a_do_block_on_a_table_of_the_same_file_is_fine() {
        assert!(!pre("DO $$ BEGIN CREATE TABLE t (a int, b int); EXCEPTION WHEN duplicate_table THEN NULL; END $$;\n\
                      DO $$ BEGIN ALTER TABLE t DROP COLUMN b; END $$;")
        .fires("drop-column"));
        assert!(!post("DO $$ BEGIN ALTER TABLE posts DROP COLUMN legacy_slug; END $$;").fires("drop-column"));
    }

    #[test]
    fn create_table_if_not_exists_on_an_existing_table_makes_nothing_new() {
        let sql = "CREATE TABLE IF NOT EXISTS posts (id bigint);\nALTER TABLE posts DROP COLUMN legacy_slug;";
        assert!(pre(sql).fires("drop-column"));
        // The table keeps the columns it had.
        assert!(pre("CREATE TABLE IF NOT EXISTS posts (id bigint);\nALTER TABLE posts ALTER COLUMN title TYPE text;")
            .fires("type-change"));
        assert!(!pre("CREATE TABLE IF NOT EXISTS fresh (a int, b int);\nALTER TABLE fresh DROP COLUMN b;")
            .fires("drop-column"));
    }

    #[test]
    fn safety_assured_silences_it() {
        assert!(!pre("-- zdm:safety_assured nothing reads it since v2\nALTER TABLE posts DROP COLUMN legacy_slug;")
            .fires("drop-column"));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn a_dropped_column_is_an_error_before_the_deploy() {
        assert!(pre("ALTER TABLE posts DROP COLUMN legacy_slug;").fires("drop-column"));
        assert!(!post("ALTER TABLE posts DROP COLUMN legacy_slug;").fires("drop-column"));
        assert!(!pre("CREATE TABLE t (a INTEGER, b INTEGER); ALTER TABLE t DROP COLUMN b;").fires("drop-column"));
    }

    #[test]
    fn a_rebuild_that_leaves_a_column_out_drops_it() {
        let sql = "CREATE TABLE new_tags (name TEXT PRIMARY KEY) WITHOUT ROWID;\n\
                   INSERT INTO new_tags (name) SELECT name FROM tags;\n\
                   DROP TABLE tags;\n\
                   ALTER TABLE new_tags RENAME TO tags;";
        let found: Vec<_> = pre(sql).findings().into_iter().filter(|f| f.rule == "drop-column").collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 3);
        assert!(found[0].message.contains("`note`"), "{}", found[0].message);
        // Keeping every column is no drop.
        assert!(!pre("CREATE TABLE new_tags (name TEXT PRIMARY KEY, note TEXT, extra TEXT) WITHOUT ROWID;\n\
                      INSERT INTO new_tags (name, note) SELECT name, note FROM tags;\n\
                      DROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;")
        .fires("drop-column"));
    }
}
