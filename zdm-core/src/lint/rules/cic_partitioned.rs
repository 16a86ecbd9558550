//! # `cic-partitioned`
//!
//! **What it does:** flags `CREATE INDEX CONCURRENTLY` on a partitioned table.
//!
//! **Why is this bad?** PostgreSQL refuses it: the migration fails when it runs.
//!
//! **Example:**
//! ```sql
//! CREATE INDEX CONCURRENTLY events_at_idx ON events (at);
//! ```
//! **Use instead:** an index on the parent only, concurrent indexes on each partition, then
//! attach them:
//! ```sql
//! CREATE INDEX events_at_idx ON ONLY events (at);
//! CREATE INDEX CONCURRENTLY events_2024_at_idx ON events_2024 (at);
//! ALTER INDEX events_at_idx ATTACH PARTITION events_2024_at_idx;
//! ```
//! **PostgreSQL versions:** all up to at least 18.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "cic-partitioned",
    kind: Kind::RunTimeError,
    why: "PostgreSQL cannot build an index concurrently on a partitioned table: the migration fails",
    recipe: "`CREATE INDEX .. ON ONLY parent`, then `CREATE INDEX CONCURRENTLY` on each partition, then `ALTER INDEX .. ATTACH PARTITION`",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::CreateIndex { table, concurrently: true, .. } = &stmt.kind {
        if cx.table(table).is_some_and(|t| t.partitioned) {
            out.push(Hit::on(table, format!("builds an index concurrently on partitioned table `{table}`")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn partitioned_parent_fires() {
        assert!(pre("CREATE INDEX CONCURRENTLY events_at_idx ON events (at);").no_tx().fires("cic-partitioned"));
    }

    #[test]
    fn plain_table_does_not() {
        assert!(!pre("CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);").no_tx().fires("cic-partitioned"));
    }
}
