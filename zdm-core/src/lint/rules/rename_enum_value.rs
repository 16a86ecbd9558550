//! # `rename-enum-value`
//!
//! **What it does:** flags `ALTER TYPE .. RENAME VALUE`, in every phase.
//!
//! **Why is this bad?** The old build writes and compares the old label; the new build the
//! new one.
//!
//! **Example:**
//! ```sql
//! ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';
//! ```
//! **Use instead:** add the new value, migrate rows, stop using the old value, and leave it
//! (enum values cannot be dropped).
//!
//! **PostgreSQL versions:** `RENAME VALUE` exists from PostgreSQL 10.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "rename-enum-value",
    kind: Kind::BreaksEveryPhase,
    why: "the old build writes and compares the old label, the new build the new one",
    recipe: "add the new value, migrate rows to it, and stop using the old one",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::RenameEnumValue = stmt.kind {
        out.push(Hit::anywhere("renames an enum value"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn renaming_a_value_fires() {
        assert!(pre("ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';").fires("rename-enum-value"));
    }

    #[test]
    fn adding_a_value_is_not_this_rule() {
        assert!(!pre("ALTER TYPE mood ADD VALUE 'calm';").no_tx().fires("rename-enum-value"));
    }
}
