//! # `enum-add-value`
//!
//! **What it does:** warns about `ALTER TYPE .. ADD VALUE`.
//!
//! **Why is this bad?** The schema change is safe, but once new code writes the new value,
//! an old build that decodes the enum strictly (`#[derive(sqlx::Type)]`) fails on those
//! rows.
//!
//! **Example:**
//! ```sql
//! ALTER TYPE mood ADD VALUE 'calm';
//! ```
//! **Use instead:** ship code that can decode the new value one release before code that
//! writes it.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "enum-add-value",
    kind: Kind::Warning,
    why: "old builds that decode this enum strictly fail on rows with the new value once new code writes it",
    recipe: "release code that decodes the new value one release before code that writes it",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::AddEnumValue { value } = &stmt.kind {
        out.push(Hit::anywhere(format!("adds enum value '{value}'")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn adding_a_value_warns() {
        assert!(pre("ALTER TYPE mood ADD VALUE 'calm';").no_tx().fires("enum-add-value"));
    }

    #[test]
    fn creating_a_type_does_not() {
        assert!(!pre("CREATE TYPE color AS ENUM ('red');").fires("enum-add-value"));
    }
}
