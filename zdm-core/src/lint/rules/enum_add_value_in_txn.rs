//! # `enum-add-value-in-txn`
//!
//! **What it does:** flags `ALTER TYPE .. ADD VALUE` in a transactional migration when the
//! target is before PostgreSQL 12, or when a later statement of the same migration uses the
//! new value.
//!
//! **Why is this bad?** Before 12 PostgreSQL refuses it inside a transaction block; from 12
//! the new value cannot be used until the transaction commits. Either way the migration
//! fails when it runs.
//!
//! **Example:**
//! ```sql
//! ALTER TYPE mood ADD VALUE 'calm';
//! UPDATE posts SET mood = 'calm' WHERE mood IS NULL;
//! ```
//! **Use instead:** the `ADD VALUE` in a migration of its own.
//!
//! **PostgreSQL versions:** allowed in a transaction (but unusable until commit) from 12.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};
use crate::lint::parse::string_literals;

pub static RULE: Rule = Rule {
    id: "enum-add-value-in-txn",
    kind: Kind::RunTimeError,
    why: "the new value cannot be used in the transaction that adds it (and before PostgreSQL 12 ADD VALUE is refused in a transaction)",
    recipe: "put the `ALTER TYPE .. ADD VALUE` in a migration of its own",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let StmtKind::AddEnumValue { value } = &stmt.kind else {
        return;
    };
    if !cx.transactional {
        return;
    }
    if cx.pg.major < 12 {
        out.push(Hit::anywhere(format!(
            "adds enum value '{value}' inside a transaction (refused before PostgreSQL 12)"
        )));
    } else if cx.later().iter().any(|s| string_literals(cx.text(s)).contains(value)) {
        out.push(Hit::anywhere(format!("adds enum value '{value}' and uses it in the same transaction")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn using_the_value_in_the_same_transaction_fires() {
        assert!(pre("ALTER TYPE mood ADD VALUE 'calm';\nUPDATE posts SET status = 'calm' WHERE id = 1;")
            .fires("enum-add-value-in-txn"));
        assert!(pre("ALTER TYPE mood ADD VALUE 'calm';").pg(11).fires("enum-add-value-in-txn"));
    }

    #[test]
    fn the_value_is_matched_as_a_literal() {
        assert!(pre("ALTER TYPE mood ADD VALUE 'it''s';\nUPDATE posts SET status = 'it''s'::mood WHERE id = 1;")
            .fires("enum-add-value-in-txn"));
        assert!(pre(
            "ALTER TYPE mood ADD VALUE 'calm';\nDO $$ BEGIN UPDATE posts SET status = 'calm' WHERE id = 1; END $$;"
        )
        .fires("enum-add-value-in-txn"));
        // In a comment, an identifier or a longer string it is not the value.
        assert!(!pre(
            "ALTER TYPE mood ADD VALUE 'calm';\nUPDATE posts /* not 'calm' yet */ SET status = 'calmer' WHERE id = 1;\n\
             COMMENT ON TYPE mood IS 'adds ''calm''';\nSELECT 1 AS \"'calm'\";"
        )
        .fires("enum-add-value-in-txn"));
    }

    #[test]
    fn alone_on_12_plus_or_outside_a_transaction_is_fine() {
        assert!(!pre("ALTER TYPE mood ADD VALUE 'calm';").fires("enum-add-value-in-txn"));
        assert!(!pre("ALTER TYPE mood ADD VALUE 'calm';").pg(11).no_tx().fires("enum-add-value-in-txn"));
    }
}
