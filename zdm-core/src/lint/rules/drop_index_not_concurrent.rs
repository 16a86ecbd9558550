//! # `drop-index-not-concurrent`
//!
//! **What it does:** flags `DROP INDEX` without `CONCURRENTLY`.
//!
//! **Why is this bad?** It takes ACCESS EXCLUSIVE on the index's table: reads and writes
//! queue behind it, and behind any long transaction it waits for.
//!
//! **Example:**
//! ```sql
//! DROP INDEX posts_title_idx;
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! DROP INDEX CONCURRENTLY posts_title_idx;
//! ```
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "drop-index-not-concurrent",
    kind: Kind::Locks,
    why: "it takes ACCESS EXCLUSIVE on the table: every query on it queues behind the drop",
    recipe: "`DROP INDEX CONCURRENTLY` in a `-- zdm:no_transaction` migration",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::DropIndex { names, concurrently: false, .. } = &stmt.kind {
        for n in names {
            let table = cx.schema.index_table(n);
            out.push(Hit { table, message: format!("drops index `{n}` without CONCURRENTLY"), span: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn plain_drop_fires() {
        assert!(post("DROP INDEX posts_title_idx;").fires("drop-index-not-concurrent"));
        assert!(post("DROP INDEX IF EXISTS posts_title_idx;").fires("drop-index-not-concurrent"));
    }

    #[test]
    fn if_exists_on_an_index_already_dropped_does_nothing() {
        let found = post("DROP INDEX posts_title_idx;\nDROP INDEX IF EXISTS posts_title_idx;").findings();
        let lines: Vec<usize> =
            found.iter().filter(|f| f.rule == "drop-index-not-concurrent").map(|f| f.line).collect();
        assert_eq!(lines, [1]);
    }

    #[test]
    fn concurrent_or_same_file_is_fine() {
        assert!(!post("DROP INDEX CONCURRENTLY posts_title_idx;").no_tx().fires("drop-index-not-concurrent"));
        assert!(!pre("CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\nDROP INDEX t_a;")
            .fires("drop-index-not-concurrent"));
    }
}
