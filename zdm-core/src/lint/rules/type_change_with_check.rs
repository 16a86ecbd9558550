//! # `type-change-with-check`
//!
//! **What it does:** flags a type change of a column that a CHECK constraint uses.
//!
//! **Why is this bad?** Even a rewrite-free change re-checks the constraint over every row
//! under ACCESS EXCLUSIVE.
//!
//! **Example:**
//! ```sql
//! -- score has CHECK (score >= 0)
//! ALTER TABLE posts ALTER COLUMN score TYPE bigint;
//! ```
//! **Use instead:** drop the check, change the type, re-add the check `NOT VALID`, then
//! `VALIDATE CONSTRAINT` in a later migration.
//!
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "type-change-with-check",
    kind: Kind::Locks,
    why: "the CHECK constraints on the column are re-verified over every row under ACCESS EXCLUSIVE",
    recipe: "drop the check, change the type, re-add the check NOT VALID, and VALIDATE it in a later migration",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::AlterType { column, .. } = action {
            if cx.table(table).is_some_and(|t| t.check_uses(column)) {
                out.push(Hit::on(
                    table,
                    format!("changes the type of `{table}.{column}`, which a CHECK constraint uses"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn checked_column_fires() {
        assert!(post("ALTER TABLE posts ALTER COLUMN score TYPE bigint;").fires("type-change-with-check"));
    }

    #[test]
    fn unchecked_column_does_not() {
        assert!(!post("ALTER TABLE posts ALTER COLUMN title TYPE text;").fires("type-change-with-check"));
    }
}
