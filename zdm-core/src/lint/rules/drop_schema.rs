//! # `drop-schema`
//!
//! **What it does:** flags `DROP SCHEMA`, in every phase.
//!
//! **Why is this bad?** It removes every table, view and function in the schema at once,
//! usually more than anyone reviewed.
//!
//! **Example:**
//! ```sql
//! DROP SCHEMA reporting CASCADE;
//! ```
//! **Use instead:** drop the objects one by one after the deploy, or, when it is really
//! meant, an `-- zdm:after_deploy` migration with `-- zdm:safety_assured <reason>`.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "drop-schema",
    kind: Kind::BreaksEveryPhase,
    why: "it removes everything in the schema at once, whatever code still uses it",
    recipe: "drop the objects one by one after the deploy, or use `-- zdm:after_deploy` with `-- zdm:safety_assured <reason>`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::DropSchema { .. } = stmt.kind {
        out.push(Hit::anywhere("drops a whole schema"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn fires_in_every_phase() {
        assert!(pre("DROP SCHEMA reporting CASCADE;").fires("drop-schema"));
        assert!(post("DROP SCHEMA reporting;").fires("drop-schema"));
    }

    #[test]
    fn creating_a_schema_is_fine() {
        assert!(!pre("CREATE SCHEMA reporting;").fires("drop-schema"));
    }
}
