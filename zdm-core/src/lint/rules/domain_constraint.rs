//! # `domain-constraint`
//!
//! **What it does:** flags `ALTER DOMAIN .. ADD CONSTRAINT` without `NOT VALID`.
//!
//! **Why is this bad?** PostgreSQL checks every column of every table that uses the domain,
//! locking them while it scans.
//!
//! **Example:**
//! ```sql
//! ALTER DOMAIN email ADD CONSTRAINT has_at CHECK (VALUE LIKE '%@%');
//! ```
//! **Use instead:**
//! ```sql
//! ALTER DOMAIN email ADD CONSTRAINT has_at CHECK (VALUE LIKE '%@%') NOT VALID;
//! -- next migration:
//! ALTER DOMAIN email VALIDATE CONSTRAINT has_at;
//! ```
//! **PostgreSQL versions:** all. A new `CREATE DOMAIN .. CHECK` scans nothing.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "domain-constraint",
    kind: Kind::Locks,
    why: "it is validated against every column using the domain, scanning those tables under lock",
    recipe: "`ALTER DOMAIN .. ADD CONSTRAINT .. NOT VALID`, then `VALIDATE CONSTRAINT` in a later migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::AlterDomainAddConstraint { not_valid: false } = stmt.kind {
        out.push(Hit::anywhere("adds a validated domain constraint"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn validated_domain_constraint_fires() {
        assert!(post("ALTER DOMAIN email ADD CONSTRAINT has_at CHECK (VALUE LIKE '%@%');").fires("domain-constraint"));
    }

    #[test]
    fn not_valid_and_create_domain_are_fine() {
        assert!(!post("ALTER DOMAIN email ADD CONSTRAINT has_at CHECK (VALUE LIKE '%@%') NOT VALID;")
            .fires("domain-constraint"));
        assert!(!pre("CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');").fires("domain-constraint"));
    }
}
