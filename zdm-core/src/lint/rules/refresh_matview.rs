//! # `refresh-matview`
//!
//! **What it does:** flags `REFRESH MATERIALIZED VIEW` without `CONCURRENTLY`.
//!
//! **Why is this bad?** It holds ACCESS EXCLUSIVE on the view for the whole refresh: every
//! reader waits.
//!
//! **Example:**
//! ```sql
//! REFRESH MATERIALIZED VIEW post_stats;
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! REFRESH MATERIALIZED VIEW CONCURRENTLY post_stats;
//! ```
//! **PostgreSQL versions:** `CONCURRENTLY` needs a unique index on the view.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "refresh-matview",
    kind: Kind::Locks,
    why: "it holds ACCESS EXCLUSIVE on the view for the whole refresh: its readers wait",
    recipe: "`REFRESH MATERIALIZED VIEW CONCURRENTLY` (needs a unique index on the view)",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::RefreshMatView { concurrently: false, .. } = stmt.kind {
        out.push(Hit::anywhere("refreshes a materialized view without CONCURRENTLY"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn blocking_refresh_fires() {
        assert!(post("REFRESH MATERIALIZED VIEW stats;").fires("refresh-matview"));
    }

    #[test]
    fn concurrent_refresh_is_fine() {
        assert!(!post("REFRESH MATERIALIZED VIEW CONCURRENTLY stats;").fires("refresh-matview"));
    }
}
