//! # `foreign-key-validated`
//!
//! **What it does:** flags adding a foreign key to an existing table without `NOT VALID`.
//!
//! **Why is this bad?** PostgreSQL scans the whole table to validate it while holding
//! SHARE ROW EXCLUSIVE on both tables: writes to either wait for the scan.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);
//! ```
//! **Use instead:** add it `NOT VALID` (instant), validate in a later migration (SHARE
//! UPDATE EXCLUSIVE: writes continue):
//! ```sql
//! ALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
//! -- next migration:
//! ALTER TABLE posts VALIDATE CONSTRAINT posts_user_fk;
//! ```
//! **PostgreSQL versions:** all. No scan happens when the key is on a column added in the
//! same statement without a default (all NULL): that form is not flagged.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, ConstraintKind, Stmt};

pub static RULE: Rule = Rule {
    id: "foreign-key-validated",
    kind: Kind::Locks,
    why: "validating it scans the whole table under SHARE ROW EXCLUSIVE on both tables: writes to either wait",
    recipe: "add the foreign key `NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        match action {
            Action::AddConstraint(c) if matches!(c.kind, ConstraintKind::ForeignKey { .. }) && !c.not_valid => {
                out.push(Hit::on(table, format!("adds a validated foreign key to `{table}`")));
            }
            // An inline REFERENCES on a new column with a default must check every row.
            Action::AddColumn(col) if col.references.is_some() && col.default.is_some() => {
                out.push(Hit::on(
                    table,
                    format!("adds column `{table}.{}` with a default and a foreign key", col.name),
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
    fn validated_foreign_key_fires() {
        assert!(post("ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);")
            .fires("foreign-key-validated"));
        assert!(pre("ALTER TABLE posts ADD COLUMN editor_id bigint DEFAULT 1 REFERENCES users (id);")
            .fires("foreign-key-validated"));
    }

    #[test]
    fn not_valid_new_column_and_new_table_are_fine() {
        assert!(!pre("ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;")
            .fires("foreign-key-validated"));
        assert!(
            !pre("ALTER TABLE posts ADD COLUMN editor_id bigint REFERENCES users (id);").fires("foreign-key-validated")
        );
        assert!(
            !pre("CREATE TABLE c (id bigint, user_id bigint REFERENCES users (id));").fires("foreign-key-validated")
        );
    }
}
