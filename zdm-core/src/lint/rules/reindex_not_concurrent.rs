//! # `reindex-not-concurrent`
//!
//! **What it does:** flags `REINDEX` without `CONCURRENTLY`.
//!
//! **Why is this bad?** It blocks writes to the table and reads that would use the index
//! for the whole rebuild.
//!
//! **Example:**
//! ```sql
//! REINDEX INDEX posts_title_idx;
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! REINDEX INDEX CONCURRENTLY posts_title_idx;
//! ```
//! **PostgreSQL versions:** `REINDEX CONCURRENTLY` needs PostgreSQL 12; before that, build
//! a new index concurrently and drop the old one.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "reindex-not-concurrent",
    kind: Kind::Locks,
    why: "it blocks writes to the table, and reads through the index, for the whole rebuild",
    recipe: "`REINDEX .. CONCURRENTLY` (PostgreSQL 12+) in a `-- zdm:no_transaction` migration; before 12, create a new index concurrently and drop the old one",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::Reindex { concurrently: false, table, .. } = &stmt.kind {
        out.push(Hit { table: table.clone(), message: "rebuilds an index without CONCURRENTLY".into(), span: None });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn plain_reindex_fires() {
        assert!(post("REINDEX INDEX posts_title_idx;").fires("reindex-not-concurrent"));
        assert!(post("REINDEX TABLE posts;").fires("reindex-not-concurrent"));
    }

    #[test]
    fn concurrent_reindex_is_fine() {
        assert!(!post("REINDEX INDEX CONCURRENTLY posts_title_idx;").no_tx().fires("reindex-not-concurrent"));
    }
}
