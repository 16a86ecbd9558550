//! # `truncate-cascade`
//!
//! **What it does:** flags `TRUNCATE .. CASCADE`, in every phase.
//!
//! **Why is this bad?** It also empties every table with a foreign key to the truncated
//! ones, tables the migration never names.
//!
//! **Example:**
//! ```sql
//! TRUNCATE users CASCADE;
//! ```
//! **Use instead:** list every table to empty explicitly.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "truncate-cascade",
    kind: Kind::BreaksEveryPhase,
    why: "CASCADE also empties every table that references these, tables the migration never names",
    recipe: "name every table to empty in the TRUNCATE, without CASCADE",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::Truncate { tables, cascade: true } = &stmt.kind {
        out.push(Hit {
            table: tables.first().cloned(),
            message: format!("truncates `{}` with CASCADE", tables.join(", ")),
            span: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn cascade_fires_even_after_deploy() {
        assert!(post("TRUNCATE users CASCADE;").fires("truncate-cascade"));
    }

    #[test]
    fn plain_truncate_is_not_this_rule() {
        assert!(!post("TRUNCATE users, posts;").fires("truncate-cascade"));
    }
}
