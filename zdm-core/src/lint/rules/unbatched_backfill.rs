//! # `unbatched-backfill`
//!
//! **What it does:** flags `UPDATE` or `DELETE` on an existing table that is not bounded to
//! one batch: no `WHERE`, or a `WHERE` without a key range (`WHERE body IS NULL`,
//! `WHERE status = 'draft'`). Also inside a data-modifying `WITH` query or a `DO` block.
//! A key range (`id BETWEEN 1 AND 1000`, `id < 5000`), single keys (`id = 1`,
//! `id IN (1, 2)`), a `LIMIT`ed subquery (`id IN (SELECT id .. LIMIT 1000)`) or
//! `WHERE CURRENT OF` bound the batch and pass.
//!
//! **Why is this bad?** One statement locks every row it touches until the migration
//! commits and writes WAL for the whole table at once: concurrent writers to those rows
//! wait, replicas lag.
//!
//! **Example:**
//! ```sql
//! UPDATE posts SET status = 'draft' WHERE status IS NULL;
//! ```
//! **Use instead:** zdm's batched backfill (key ranges, each batch its own short
//! transaction). zdm does not judge how wide a key range the author chose.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{RowScope, Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "unbatched-backfill",
    kind: Kind::Locks,
    why: "it locks every row of the table until commit and writes WAL for all of it at once",
    recipe: "use zdm's batched backfill: key ranges, each batch its own short transaction",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let (verb, table, rows) = match &stmt.kind {
        StmtKind::Update { table, rows } => ("updates", table, rows),
        StmtKind::Delete { table, rows } => ("deletes", table, rows),
        _ => return,
    };
    match rows {
        RowScope::All => out.push(Hit::on(table, format!("{verb} every row of `{table}` at once"))),
        RowScope::Unbounded => out.push(Hit::on(
            table,
            format!("{verb} rows of `{table}` without a key range or LIMIT: possibly every row at once"),
        )),
        RowScope::Batch => {}
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
    fn a_filter_without_a_key_range_fires() {
        assert!(pre("UPDATE posts SET score = 0 WHERE score IS NULL;").fires("unbatched-backfill"));
        assert!(post("DELETE FROM posts WHERE status = 'draft';").fires("unbatched-backfill"));
        assert!(pre("UPDATE posts SET score = 0 WHERE id < 100 OR body IS NULL;").fires("unbatched-backfill"));
        assert!(pre("UPDATE posts SET score = 0 WHERE id NOT BETWEEN 1 AND 10;").fires("unbatched-backfill"));
        assert!(pre("UPDATE posts SET score = 0 WHERE id < (SELECT max(id) FROM posts);").fires("unbatched-backfill"));
        assert!(pre("UPDATE posts SET score = 0 WHERE id IN (SELECT id FROM posts WHERE score IS NULL);")
            .fires("unbatched-backfill"));
    }

    #[test]
    fn hidden_in_a_with_query_or_a_do_block_fires() {
        assert!(pre("WITH u AS (UPDATE posts SET score = 0 WHERE score IS NULL RETURNING id) SELECT count(*) FROM u;")
            .fires("unbatched-backfill"));
        assert!(pre("DO $$ BEGIN IF true THEN UPDATE posts SET score = 0 WHERE score IS NULL; END IF; END $$;")
            .fires("unbatched-backfill"));
        assert!(!pre("WITH u AS (UPDATE posts SET score = 0 WHERE id <= 500 RETURNING id) SELECT count(*) FROM u;")
            .fires("unbatched-backfill"));
    }

    #[test]
    fn a_batch_or_a_new_table_is_fine() {
        assert!(!pre("UPDATE posts SET status = 'draft' WHERE id BETWEEN 1 AND 1000;").fires("unbatched-backfill"));
        assert!(!pre("UPDATE posts SET score = 0 WHERE score IS NULL AND id < 5000;").fires("unbatched-backfill"));
        assert!(!pre("UPDATE posts SET score = 0 WHERE id >= $1 AND id < $2;").fires("unbatched-backfill"));
        assert!(!pre("UPDATE posts SET body = 'x' WHERE id = 1;").fires("unbatched-backfill"));
        assert!(!post("DELETE FROM posts WHERE posts.id IN (1, 2, 3);").fires("unbatched-backfill"));
        assert!(!pre(
            "UPDATE posts SET score = 0 WHERE id IN (SELECT id FROM posts WHERE score IS NULL ORDER BY id LIMIT 1000);"
        )
        .fires("unbatched-backfill"));
        assert!(!pre("CREATE TABLE t AS SELECT id FROM posts;\nUPDATE t SET id = id + 1;").fires("unbatched-backfill"));
    }
}
