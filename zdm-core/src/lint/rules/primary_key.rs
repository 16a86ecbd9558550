//! # `primary-key`
//!
//! **What it does:** flags `ADD PRIMARY KEY` on an existing table that does not adopt an
//! existing unique index (`USING INDEX`).
//!
//! **Why is this bad?** It builds the index under ACCESS EXCLUSIVE and also sets NOT NULL
//! on its columns, which scans the table.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE events_archive ADD PRIMARY KEY (id);
//! ```
//! **Use instead:** a unique index built concurrently, NOT NULL through a validated check,
//! then `ADD CONSTRAINT .. PRIMARY KEY USING INDEX ..`. (`NOT VALID` is not accepted for
//! primary keys.)
//!
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, ConstraintKind, Stmt};

pub static RULE: Rule = Rule {
    id: "primary-key",
    kind: Kind::Locks,
    why: "it builds the index under ACCESS EXCLUSIVE and scans the table to set NOT NULL",
    recipe: "`CREATE UNIQUE INDEX CONCURRENTLY`, NOT NULL via a validated CHECK, then `ADD CONSTRAINT .. PRIMARY KEY USING INDEX ..`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        match action {
            Action::AddConstraint(c) if c.kind == ConstraintKind::PrimaryKey && !c.using_index => {
                out.push(Hit::on(table, format!("adds a primary key to `{table}` by building its index")));
            }
            Action::AddColumn(col) if col.primary_key => {
                out.push(Hit::on(table, format!("adds primary key column `{table}.{}`", col.name)));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn building_primary_key_fires() {
        assert!(post("ALTER TABLE users ADD PRIMARY KEY (id);").fires("primary-key"));
    }

    #[test]
    fn using_index_and_new_table_are_fine() {
        assert!(!post("ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;")
            .fires("primary-key"));
        assert!(!pre("CREATE TABLE t (id int); ALTER TABLE t ADD PRIMARY KEY (id);").fires("primary-key"));
    }
}
