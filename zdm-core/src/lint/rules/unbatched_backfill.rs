//! # `unbatched-backfill`
//!
//! **What it does:** flags `UPDATE` or `DELETE` without a `WHERE` clause on an existing
//! table.
//!
//! **Why is this bad?** One statement locks every row it touches until the migration
//! commits and writes WAL for the whole table at once: concurrent writers to those rows
//! wait, replicas lag.
//!
//! **Example:**
//! ```sql
//! UPDATE posts SET status = 'draft';
//! ```
//! **Use instead:** zdm's batched backfill (key ranges, each batch its own short
//! transaction). zdm does not judge whether a `WHERE` clause is selective enough.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "unbatched-backfill",
    kind: Kind::Locks,
    why: "it locks every row of the table until commit and writes WAL for all of it at once",
    recipe: "use zdm's batched backfill: key ranges, each batch its own short transaction",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    match &stmt.kind {
        StmtKind::Update { table, has_where: false } => {
            out.push(Hit::on(table, format!("updates every row of `{table}` at once")))
        }
        StmtKind::Delete { table, has_where: false } => {
            out.push(Hit::on(table, format!("deletes every row of `{table}` at once")))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn whole_table_update_fires() {
        assert!(pre("UPDATE posts SET status = 'draft';").fires("unbatched-backfill"));
        assert!(post("DELETE FROM posts;").fires("unbatched-backfill"));
    }

    #[test]
    fn scoped_update_or_new_table_is_fine() {
        assert!(!pre("UPDATE posts SET status = 'draft' WHERE id BETWEEN 1 AND 1000;").fires("unbatched-backfill"));
        assert!(!pre("CREATE TABLE t AS SELECT id FROM posts;\nUPDATE t SET id = id + 1;").fires("unbatched-backfill"));
    }
}
