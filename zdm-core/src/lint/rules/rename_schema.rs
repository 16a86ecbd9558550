//! # `rename-schema`
//!
//! **What it does:** flags `ALTER SCHEMA .. RENAME TO`, in every phase.
//!
//! **Why is this bad?** Every qualified name the old build uses stops resolving.
//!
//! **Example:**
//! ```sql
//! ALTER SCHEMA billing RENAME TO payments;
//! ```
//! **Use instead:** create the new schema, move objects with compatibility views, drop
//! the old one later.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "rename-schema",
    kind: Kind::BreaksEveryPhase,
    why: "every name the old build qualifies with this schema stops resolving",
    recipe: "create the new schema, move objects with compatibility views, drop the old schema after the deploy",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::RenameSchema = stmt.kind {
        out.push(Hit::anywhere("renames a schema"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn renaming_a_schema_fires() {
        assert!(post("ALTER SCHEMA billing RENAME TO payments;").fires("rename-schema"));
    }

    #[test]
    fn changing_its_owner_does_not() {
        assert!(!pre("ALTER SCHEMA billing OWNER TO admin;").fires("rename-schema"));
    }
}
