//! # `type-change`
//!
//! **What it does:** flags a type change that PostgreSQL makes without a rewrite
//! (`varchar(100) → text`, `varchar(100) → varchar(255)`, `numeric(10,2) → numeric(14,2)`),
//! in a pre-deploy migration. Changes that rewrite are `incompatible-type-change`.
//!
//! **Why is this bad?** Cheap for the database, yet every statement the old build has
//! prepared (sqlx caches them per connection) that returns the column fails with `cached
//! plan must not change result type` until its connection is dropped. Measured with sqlx
//! 0.9 on PostgreSQL 15 for all three examples above.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ALTER COLUMN title TYPE text;
//! ```
//! **Use instead:** the same statement after the deploy, when no old build holds cached
//! statements:
//! ```sql
//! -- zdm:after_deploy
//! ALTER TABLE posts ALTER COLUMN title TYPE text;
//! ```
//! **PostgreSQL versions:** `timestamp ↔ timestamptz` is rewrite-free from 12 (session time
//! zone UTC); the others in all supported versions.
//!
//! **SQLite:** `ALTER TABLE` cannot change a type; a table rebuild does. It breaks the old
//! build when the column's type affinity changes (values are stored and compared
//! differently, and an old build's decoding of them fails), or, on a `STRICT` table, when
//! the declared type changes at all (the old build's writes of the old type are refused:
//! `cannot store TEXT value in INTEGER column`), or when the rebuild makes the table
//! `STRICT`.

use super::SqliteRule;
use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};
use crate::lint::sqlite::model::{affinity, Stmt as SqliteStmt};
use crate::lint::sqlite::Cx as SqliteCx;
use crate::lint::types::{judge, Change};

pub static RULE: Rule = Rule {
    id: "type-change",
    kind: Kind::Breaks,
    why: "every statement the old build has cached that returns this column fails with `cached plan must not change result type`",
    recipe: "make the change in an `-- zdm:after_deploy` migration, or add a new column",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::AlterType { column, ty: Some(ty), using } = action {
            let old = cx.table(table).and_then(|t| t.column(column)).and_then(|c| c.ty.as_ref());
            if !using && old.is_some() && judge(old, ty, cx.pg.major) == Change::NoRewrite {
                out.push(Hit::on(
                    table,
                    format!(
                        "changes `{table}.{column}` from {} to {ty} before the deploy",
                        old.map(|t| t.to_string()).unwrap_or_default()
                    ),
                ));
            }
        }
    }
}

/// The SQLite check: a rebuild that changes a kept column's type.
pub static SQLITE: SqliteRule = SqliteRule {
    id: "type-change",
    kind: Kind::Breaks,
    why: "the build still serving reads and writes the old type: a changed affinity changes how its values are stored and decoded, and a STRICT table refuses its writes",
    recipe: "add a new column of the new type, write both from the new build, copy in batches, switch reads; rebuild the table after the deploy (`-- zdm:after_deploy`)",
    check: check_sqlite,
};

fn check_sqlite(_stmt: &SqliteStmt, cx: &SqliteCx<'_>, out: &mut Vec<Hit>) {
    let Some(r) = cx.rebuild_here() else {
        return;
    };
    for new in &r.new.columns {
        let Some(old) = r.old.column(&new.name) else {
            continue;
        };
        let (was, is) = (affinity(&old.ty), affinity(&new.ty));
        if was != is {
            out.push(Hit::on(
                &r.table,
                format!(
                    "rebuilds `{}` with `{}` as {} instead of {} (affinity {was:?} → {is:?})",
                    r.table,
                    new.name,
                    shown(&new.ty),
                    shown(&old.ty)
                ),
            ));
        } else if r.new.strict && !old.ty.eq_ignore_ascii_case(&new.ty) {
            out.push(Hit::on(
                &r.table,
                format!(
                    "rebuilds STRICT table `{}` with `{}` as {} instead of {}",
                    r.table,
                    new.name,
                    shown(&new.ty),
                    shown(&old.ty)
                ),
            ));
        }
    }
    if r.new.strict && !r.old.strict {
        out.push(Hit::on(
            &r.table,
            format!("rebuilds `{}` as a STRICT table: writes of another type than declared start failing", r.table),
        ));
    }
}

fn shown(ty: &str) -> String {
    if ty.is_empty() {
        "no type".to_string()
    } else {
        format!("`{ty}`")
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn rewrite_free_change_fires_before_deploy() {
        assert!(pre("ALTER TABLE posts ALTER COLUMN title TYPE text;").fires("type-change"));
        assert!(pre("ALTER TABLE posts ALTER COLUMN title TYPE varchar(255);").fires("type-change"));
        assert!(pre("ALTER TABLE posts ALTER COLUMN price TYPE numeric(14,2);").fires("type-change"));
    }

    #[test]
    fn after_deploy_it_is_safe() {
        assert!(post("ALTER TABLE posts ALTER COLUMN title TYPE text;").errors().is_empty());
        assert!(post("ALTER TABLE posts ALTER COLUMN price TYPE numeric(14,2);").errors().is_empty());
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn a_rebuild_that_changes_affinity_is_an_error_before_the_deploy() {
        let sql = "CREATE TABLE new_tags (name TEXT PRIMARY KEY, note INTEGER) WITHOUT ROWID;\n\
                   INSERT INTO new_tags SELECT name, note FROM tags;\nDROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;";
        assert!(pre(sql).fires("type-change"));
        assert!(!post(sql).fires("type-change"));
    }

    #[test]
    fn strict_tables_count_every_declared_type() {
        // posts is STRICT: INTEGER → INT keeps the affinity but not the declared type.
        let sql = "CREATE TABLE new_posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), title TEXT NOT NULL, \
                   body TEXT, views INT NOT NULL DEFAULT 0, legacy_slug TEXT) STRICT;\n\
                   INSERT INTO new_posts SELECT * FROM posts;\nDROP TABLE posts;\nALTER TABLE new_posts RENAME TO posts;";
        assert!(pre(sql).fires("type-change"));
        // Becoming STRICT is a change too; VARCHAR → TEXT on a loose table is not.
        assert!(pre(
            "CREATE TABLE new_tags (name TEXT PRIMARY KEY, note TEXT) STRICT, WITHOUT ROWID;\n\
                     INSERT INTO new_tags SELECT * FROM tags;\nDROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;"
        )
        .fires("type-change"));
        assert!(!pre(
            "CREATE TABLE new_tags (name TEXT PRIMARY KEY, note VARCHAR(200)) WITHOUT ROWID;\n\
                      INSERT INTO new_tags SELECT * FROM tags;\nDROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;"
        )
        .fires("type-change"));
    }
}
