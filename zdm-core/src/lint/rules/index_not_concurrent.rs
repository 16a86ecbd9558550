//! # `index-not-concurrent`
//!
//! **What it does:** flags `CREATE [UNIQUE] INDEX` without `CONCURRENTLY` on an existing
//! table.
//!
//! **Why is this bad?** It holds a SHARE lock on the table for the whole build: every
//! INSERT, UPDATE and DELETE waits.
//!
//! **Example:**
//! ```sql
//! CREATE INDEX posts_user_id_idx ON posts (user_id);
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! CREATE INDEX CONCURRENTLY posts_user_id_idx ON posts (user_id);
//! ```
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "index-not-concurrent",
    kind: Kind::Locks,
    why: "it holds a SHARE lock for the whole index build: every write to the table waits",
    recipe: "`CREATE INDEX CONCURRENTLY` with a name, in a `-- zdm:no_transaction` migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::CreateIndex { table, concurrently: false, only: false, .. } = &stmt.kind {
        out.push(Hit::on(table, format!("builds an index on `{table}` without CONCURRENTLY")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn plain_index_on_existing_table_fires() {
        assert!(pre("CREATE INDEX posts_user_idx ON posts (user_id);").fires("index-not-concurrent"));
        assert!(post("CREATE UNIQUE INDEX posts_slug_idx ON posts (legacy_slug);").fires("index-not-concurrent"));
    }

    #[test]
    fn concurrent_or_new_table_is_fine() {
        assert!(!pre("CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);")
            .no_tx()
            .fires("index-not-concurrent"));
        assert!(!pre("CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);").fires("index-not-concurrent"));
    }
}
