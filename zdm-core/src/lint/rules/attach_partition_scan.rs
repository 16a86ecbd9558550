//! # `attach-partition-scan`
//!
//! **What it does:** flags `ALTER TABLE .. ATTACH PARTITION` when the partition has no
//! VALID CHECK constraint that could prove its bound.
//!
//! **Why is this bad?** PostgreSQL scans the partition to prove every row fits the bound,
//! holding ACCESS EXCLUSIVE on the partition (and SHARE UPDATE EXCLUSIVE on the parent).
//!
//! **Example:**
//! ```sql
//! ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
//! ```
//! **Use instead:** add a CHECK matching the bound `NOT VALID`, validate it, then attach
//! (the scan is skipped).
//!
//! **PostgreSQL versions:** all. zdm does not compare the check with the bound; any valid
//! check on the partition is taken as the proof.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "attach-partition-scan",
    kind: Kind::Locks,
    why: "it scans the partition under ACCESS EXCLUSIVE to prove its rows fit the bound",
    recipe: "add a CHECK matching the bound NOT VALID, VALIDATE it, then ATTACH PARTITION (no scan)",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (_, action) in alter_actions(stmt) {
        if let Action::AttachPartition { partition } = action {
            if !cx.table(partition).is_some_and(|t| t.has_valid_check()) {
                out.push(Hit::on(partition, format!("attaches `{partition}` by scanning it")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    const ATTACH: &str =
        "ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');";

    #[test]
    fn attaching_without_a_check_fires() {
        assert!(post(ATTACH).fires("attach-partition-scan"));
    }

    #[test]
    fn a_validated_check_or_a_new_partition_is_fine() {
        let setup = "CREATE TABLE events (id bigint, at timestamptz) PARTITION BY RANGE (at);\n\
                     CREATE TABLE events_2024 (id bigint, at timestamptz, CONSTRAINT b CHECK (at >= '2024-01-01' AND at < '2025-01-01'));";
        assert!(!post(ATTACH).setup(setup).fires("attach-partition-scan"));
        let fresh = "CREATE TABLE events_2024 (id bigint, at timestamptz);\nALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');";
        assert!(!post(fresh).fires("attach-partition-scan"));
    }
}
