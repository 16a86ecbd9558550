//! # `exclusion-constraint`
//!
//! **What it does:** flags `ADD CONSTRAINT .. EXCLUDE` on an existing table.
//!
//! **Why is this bad?** Its index is built and every row checked under ACCESS EXCLUSIVE,
//! and there is no concurrent way to do it.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&);
//! ```
//! **Use instead:** a maintenance window, accepted explicitly with
//! `-- zdm:safety_assured <reason>` (for example: the table is small).
//!
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, ConstraintKind, Stmt};

pub static RULE: Rule = Rule {
    id: "exclusion-constraint",
    kind: Kind::Locks,
    why: "its index is built and every row checked under ACCESS EXCLUSIVE, and no concurrent form exists",
    recipe: "schedule it and accept it explicitly with `-- zdm:safety_assured <reason>`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if matches!(action, Action::AddConstraint(c) if c.kind == ConstraintKind::Exclude) {
            out.push(Hit::on(table, format!("adds an exclusion constraint to `{table}`")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn exclusion_fires() {
        assert!(post("ALTER TABLE posts ADD CONSTRAINT x EXCLUDE USING gist (user_id WITH =);")
            .fires("exclusion-constraint"));
    }

    #[test]
    fn new_table_is_fine() {
        assert!(!pre("CREATE TABLE b (r int);\nALTER TABLE b ADD CONSTRAINT x EXCLUDE USING gist (r WITH =);")
            .fires("exclusion-constraint"));
    }
}
