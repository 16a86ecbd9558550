//! # `check-validated`
//!
//! **What it does:** flags `ADD CONSTRAINT .. CHECK` on an existing table without
//! `NOT VALID`.
//!
//! **Why is this bad?** PostgreSQL scans every row while holding ACCESS EXCLUSIVE: nothing
//! reads or writes the table meanwhile.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD CONSTRAINT price_positive CHECK (price > 0);
//! ```
//! **Use instead:**
//! ```sql
//! ALTER TABLE posts ADD CONSTRAINT price_positive CHECK (price > 0) NOT VALID;
//! -- next migration:
//! ALTER TABLE posts VALIDATE CONSTRAINT price_positive;
//! ```
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, ConstraintKind, Stmt};

pub static RULE: Rule = Rule {
    id: "check-validated",
    kind: Kind::Locks,
    why: "it scans every row under ACCESS EXCLUSIVE: no reads or writes meanwhile",
    recipe: "add the check `NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        match action {
            Action::AddConstraint(c) if matches!(c.kind, ConstraintKind::Check { .. }) && !c.not_valid => {
                out.push(Hit::on(table, format!("adds a validated CHECK constraint to `{table}`")));
            }
            // An inline CHECK is checked against every existing row too, default or not
            // (measured on PostgreSQL 15: `ADD COLUMN n int CHECK (n IS NOT NULL)` on a
            // filled table fails with "violated by some row").
            Action::AddColumn(col) if col.check => {
                out.push(Hit::on(
                    table,
                    format!(
                        "adds column `{table}.{}` with a CHECK: every row of `{table}` is checked under ACCESS EXCLUSIVE",
                        col.name
                    ),
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn validated_check_fires() {
        assert!(post("ALTER TABLE posts ADD CONSTRAINT p CHECK (price > 0);").fires("check-validated"));
    }

    #[test]
    fn not_valid_check_is_fine() {
        assert!(!pre("ALTER TABLE posts ADD CONSTRAINT p CHECK (price > 0) NOT VALID;").fires("check-validated"));
    }

    #[test]
    fn an_inline_check_on_a_new_column_scans_the_table() {
        assert!(pre("ALTER TABLE posts ADD COLUMN n int CHECK (n > 0);").fires("check-validated"));
        assert!(post("ALTER TABLE posts ADD COLUMN n int DEFAULT 1 CHECK (n > 0);").fires("check-validated"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN n int;").fires("check-validated"));
        assert!(!pre("CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN n int CHECK (n > 0);").fires("check-validated"));
    }
}
