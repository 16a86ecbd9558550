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

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};
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
