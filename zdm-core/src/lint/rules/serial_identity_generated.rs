//! # `serial-identity-generated`
//!
//! **What it does:** flags adding a `serial`/`bigserial`, identity or
//! `GENERATED .. STORED` column to an existing table.
//!
//! **Why is this bad?** Every existing row needs a computed value: the table is rewritten
//! under ACCESS EXCLUSIVE.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN seq bigserial;
//! ```
//! **Use instead:** a nullable column, filled by a trigger for new rows and a batched
//! backfill for old ones.
//!
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "serial-identity-generated",
    kind: Kind::Locks,
    why: "every existing row gets a computed value: the table is rewritten under ACCESS EXCLUSIVE",
    recipe: "add a nullable column, fill new rows with a trigger and old rows with a batched backfill",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::AddColumn(c) = action {
            let what = if c.serial {
                "a serial"
            } else if c.identity {
                "an identity"
            } else if c.generated_stored {
                "a stored generated"
            } else {
                continue;
            };
            out.push(Hit::on(table, format!("adds {what} column `{table}.{}`", c.name)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn computed_columns_fire() {
        assert!(pre("ALTER TABLE posts ADD COLUMN seq bigserial;").fires("serial-identity-generated"));
        assert!(
            pre("ALTER TABLE posts ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;").fires("serial-identity-generated")
        );
        assert!(pre("ALTER TABLE posts ADD COLUMN t text GENERATED ALWAYS AS (lower(title)) STORED;")
            .fires("serial-identity-generated"));
    }

    #[test]
    fn plain_columns_and_new_tables_are_fine() {
        assert!(!pre("ALTER TABLE posts ADD COLUMN seq bigint;").fires("serial-identity-generated"));
        assert!(!pre("CREATE TABLE t (id bigserial PRIMARY KEY);").fires("serial-identity-generated"));
    }
}
