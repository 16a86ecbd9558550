//! # `validate-in-same-txn`
//!
//! **What it does:** flags `VALIDATE CONSTRAINT` in a transactional migration that also
//! added that constraint `NOT VALID`, or that earlier took ACCESS EXCLUSIVE on a table.
//!
//! **Why is this bad?** The lock of the earlier statement is held until commit, so the
//! validation scan runs under it, exactly what `NOT VALID` was meant to avoid.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
//! ALTER TABLE posts VALIDATE CONSTRAINT fk;
//! ```
//! **Use instead:** `VALIDATE CONSTRAINT` in a migration of its own.
//!
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "validate-in-same-txn",
    kind: Kind::Locks,
    why: "the lock an earlier statement of this transaction took is held through the validation scan",
    recipe: "run `VALIDATE CONSTRAINT` in a migration of its own",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if !cx.transactional {
        return;
    }
    for (table, action) in alter_actions(stmt) {
        if let Action::ValidateConstraint { name } = action {
            if cx.file.not_valid.contains(name) {
                out.push(Hit::on(table, format!("validates `{name}` in the transaction that added it")));
            } else if let Some(locked) = &cx.file.exclusive {
                out.push(Hit::on(
                    table,
                    format!("validates `{name}` while this transaction holds ACCESS EXCLUSIVE on `{locked}`"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn add_and_validate_together_fires() {
        let sql = "ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE posts VALIDATE CONSTRAINT fk;";
        assert!(pre(sql).fires("validate-in-same-txn"));
        let after_lock = "ALTER TABLE users ADD COLUMN x int;\nALTER TABLE posts VALIDATE CONSTRAINT fk;";
        assert!(pre(after_lock).fires("validate-in-same-txn"));
    }

    #[test]
    fn validate_alone_is_fine() {
        assert!(!pre("ALTER TABLE posts VALIDATE CONSTRAINT fk;").fires("validate-in-same-txn"));
    }
}
