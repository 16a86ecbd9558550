//! # `drop-database`
//!
//! **What it does:** flags `DROP DATABASE`, in every phase.
//!
//! **Why is this bad?** Everything in it is gone; a migration is the wrong place for it.
//!
//! **Example:**
//! ```sql
//! DROP DATABASE analytics;
//! ```
//! **Use instead:** an operator's command, or `-- zdm:after_deploy` with
//! `-- zdm:safety_assured <reason>`.
//!
//! **PostgreSQL versions:** all (it also cannot run inside a transaction).

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "drop-database",
    kind: Kind::BreaksEveryPhase,
    why: "it destroys a whole database, whatever code still uses it",
    recipe: "leave it to an operator, or use `-- zdm:after_deploy` with `-- zdm:safety_assured <reason>`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::DropDatabase = stmt.kind {
        out.push(Hit::anywhere("drops a database"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn fires_in_every_phase() {
        assert!(pre("DROP DATABASE analytics;").no_tx().fires("drop-database"));
        assert!(post("DROP DATABASE analytics;").no_tx().fires("drop-database"));
    }

    #[test]
    fn other_drops_are_not_this_rule() {
        assert!(!pre("DROP TABLE users;").fires("drop-database"));
    }
}
