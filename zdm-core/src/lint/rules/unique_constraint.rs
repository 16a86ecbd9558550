//! # `unique-constraint`
//!
//! **What it does:** flags `ADD CONSTRAINT .. UNIQUE` on an existing table that does not
//! adopt an existing index (`USING INDEX`).
//!
//! **Why is this bad?** The unique index is built while ACCESS EXCLUSIVE is held: nothing
//! reads or writes the table for the whole build.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);
//! -- next migration:
//! ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;
//! ```
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, ConstraintKind, Stmt};

pub static RULE: Rule = Rule {
    id: "unique-constraint",
    kind: Kind::Locks,
    why: "it builds the unique index under ACCESS EXCLUSIVE: no reads or writes for the whole build",
    recipe: "`CREATE UNIQUE INDEX CONCURRENTLY` first, then `ADD CONSTRAINT .. UNIQUE USING INDEX ..`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        match action {
            Action::AddConstraint(c) if c.kind == ConstraintKind::Unique && !c.using_index => {
                out.push(Hit::on(table, format!("adds a UNIQUE constraint to `{table}` by building its index")));
            }
            Action::AddColumn(col) if col.unique => {
                out.push(Hit::on(table, format!("adds UNIQUE column `{table}.{}`, building its index", col.name)));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn building_unique_constraint_fires() {
        assert!(post("ALTER TABLE users ADD CONSTRAINT k UNIQUE (email);").fires("unique-constraint"));
    }

    #[test]
    fn using_index_is_fine() {
        assert!(
            !post("ALTER TABLE users ADD CONSTRAINT k UNIQUE USING INDEX users_email_idx;").fires("unique-constraint")
        );
    }
}
