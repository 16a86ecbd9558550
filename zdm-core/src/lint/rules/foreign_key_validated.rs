//! # `foreign-key-validated`
//!
//! **What it does:** flags adding a foreign key to an existing table without `NOT VALID`.
//!
//! **Why is this bad?** PostgreSQL scans the whole table to validate it while holding
//! SHARE ROW EXCLUSIVE on both tables: writes to either wait for the scan. A key that comes
//! with `ADD COLUMN .. DEFAULT .. REFERENCES` is worse: the table is locked ACCESS
//! EXCLUSIVE (reads wait too) for the scan, the referenced table SHARE ROW EXCLUSIVE.
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
    why: "validating it scans the whole table while writes to both tables wait (SHARE ROW EXCLUSIVE on both; with ADD COLUMN, ACCESS EXCLUSIVE on the table: reads wait too)",
    recipe: "add the foreign key `NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        match action {
            Action::AddConstraint(c) if !c.not_valid => {
                if let ConstraintKind::ForeignKey { references, .. } = &c.kind {
                    let to = references.as_deref().unwrap_or("?");
                    out.push(Hit::on(
                        table,
                        format!(
                            "adds a validated foreign key to `{table}`: every row is checked under SHARE ROW \
                             EXCLUSIVE on `{table}` and `{to}`"
                        ),
                    ));
                }
            }
            // An inline REFERENCES on a new column with a default must check every row, and
            // ADD COLUMN holds ACCESS EXCLUSIVE on the table while it does (measured on
            // PostgreSQL 15 in pg_locks).
            Action::AddColumn(col) if col.default.is_some() => {
                if let Some(to) = &col.references {
                    out.push(Hit::on(
                        table,
                        format!(
                            "adds column `{table}.{}` with a default and a foreign key: every row is checked under \
                             ACCESS EXCLUSIVE on `{table}` (and SHARE ROW EXCLUSIVE on `{to}`)",
                            col.name
                        ),
                    ));
                }
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
    fn messages_name_the_lock_taken() {
        let fk = pre("ALTER TABLE posts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);").findings();
        assert!(fk[0].message.contains("SHARE ROW EXCLUSIVE on `posts` and `users`"), "{}", fk[0].message);
        let col = pre("ALTER TABLE posts ADD COLUMN editor_id bigint DEFAULT 1 REFERENCES app.users (id);").findings();
        let m = &col.iter().find(|f| f.rule == "foreign-key-validated").unwrap().message;
        assert!(m.contains("ACCESS EXCLUSIVE on `posts`") && m.contains("SHARE ROW EXCLUSIVE on `app.users`"), "{m}");
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
