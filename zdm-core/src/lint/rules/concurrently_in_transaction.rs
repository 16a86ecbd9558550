//! # `concurrently-in-transaction`
//!
//! **What it does:** flags `CONCURRENTLY` (index builds and drops, `REINDEX`, `DETACH
//! PARTITION`, `REFRESH MATERIALIZED VIEW` is fine) in a migration that runs in a
//! transaction, or inside a `DO` block in any migration.
//!
//! **Why is this bad?** PostgreSQL refuses `CREATE/DROP INDEX CONCURRENTLY` inside a
//! transaction block, and a `DO` block always runs as one: the migration fails when it
//! runs.
//!
//! **Example:**
//! ```sql
//! CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);
//! ```
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "concurrently-in-transaction",
    kind: Kind::RunTimeError,
    why: "PostgreSQL refuses CONCURRENTLY inside a transaction block: the migration fails when it runs",
    recipe: "put `-- zdm:no_transaction` at the top of the file (one concurrent statement per migration is easiest to retry)",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    // A DO block runs as one statement, inside a transaction of its own at least.
    if !cx.transactional && !stmt.is_nested() {
        return;
    }
    let concurrent = match &stmt.kind {
        StmtKind::CreateIndex { concurrently, .. }
        | StmtKind::DropIndex { concurrently, .. }
        | StmtKind::Reindex { concurrently, .. } => *concurrently,
        _ => alter_actions(stmt).any(|(_, a)| matches!(a, Action::DetachPartition { concurrently: true, .. })),
    };
    if concurrent && stmt.is_nested() {
        out.push(Hit::anywhere("uses CONCURRENTLY inside a DO block, which PostgreSQL runs in a transaction"));
    } else if concurrent {
        out.push(Hit::anywhere("uses CONCURRENTLY in a migration that runs inside a transaction"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn concurrent_index_in_a_transaction_fires() {
        assert!(
            pre("CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);").fires("concurrently-in-transaction")
        );
        assert!(post("DROP INDEX CONCURRENTLY posts_title_idx;").fires("concurrently-in-transaction"));
    }

    #[test]
    fn no_transaction_migration_is_fine() {
        assert!(!pre("-- zdm:no_transaction\nCREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);")
            .no_tx()
            .fires("concurrently-in-transaction"));
    }

    #[test]
    fn concurrently_inside_a_do_block_fires_even_without_a_transaction() {
        let sql = "-- zdm:no_transaction\nDO $$ BEGIN IF true THEN CREATE INDEX CONCURRENTLY i ON posts (user_id); END IF; END $$;";
        assert!(pre(sql).no_tx().fires("concurrently-in-transaction"));
        assert!(!pre("DO $$ BEGIN CREATE INDEX i ON posts (user_id); END $$;").fires("concurrently-in-transaction"));
    }
}
