//! # `detach-partition`
//!
//! **What it does:** flags `ALTER TABLE .. DETACH PARTITION` without `CONCURRENTLY`.
//!
//! **Why is this bad?** It takes ACCESS EXCLUSIVE on the parent: every query on the
//! partitioned table waits.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE events DETACH PARTITION events_2019;
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! ALTER TABLE events DETACH PARTITION events_2019 CONCURRENTLY;
//! ```
//! With `CONCURRENTLY` the parent is held only SHARE UPDATE EXCLUSIVE; the partition
//! itself still ends under ACCESS EXCLUSIVE (a lock trace, `zdm plan --trace`, shows it),
//! so queries that name the partition directly wait for that moment.
//!
//! **PostgreSQL versions:** `CONCURRENTLY` exists from PostgreSQL 14.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "detach-partition",
    kind: Kind::Locks,
    why: "it takes ACCESS EXCLUSIVE on the parent: every query on the partitioned table waits",
    recipe: "`DETACH PARTITION .. CONCURRENTLY` (PostgreSQL 14+) in a `-- zdm:no_transaction` migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::DetachPartition { partition, concurrently: false } = action {
            out.push(Hit::on(table, format!("detaches `{partition}` from `{table}` without CONCURRENTLY")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn blocking_detach_fires() {
        assert!(post("ALTER TABLE events DETACH PARTITION events_2019;").fires("detach-partition"));
    }

    #[test]
    fn concurrent_detach_is_fine() {
        assert!(!post("ALTER TABLE events DETACH PARTITION events_2019 CONCURRENTLY;")
            .no_tx()
            .fires("detach-partition"));
    }
}
