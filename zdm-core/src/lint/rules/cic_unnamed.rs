//! # `cic-unnamed`
//!
//! **What it does:** flags `CREATE INDEX CONCURRENTLY` without an index name on an existing
//! table.
//!
//! **Why is this bad?** A concurrent build that fails (a lock timeout, a deadlock, a
//! duplicate in a unique index, a cancelled deploy) leaves an INVALID index behind, which
//! every write to the table keeps maintaining. zdm drops such a leftover before it retries,
//! and skips an index already built, but it can only find the index by name: without one,
//! PostgreSQL picks `posts_user_id_idx`, then `posts_user_id_idx1` on the retry, and the
//! INVALID copies pile up. `IF NOT EXISTS`, the other way to make a re-run harmless, needs
//! a name too.
//!
//! **Example:**
//! ```sql
//! -- zdm:no_transaction
//! CREATE INDEX CONCURRENTLY ON posts (user_id);
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_user_id_idx ON posts (user_id);
//! ```
//! **PostgreSQL versions:** all (`IF NOT EXISTS` from 9.5, and only with a name).

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "cic-unnamed",
    kind: Kind::Locks,
    why: "a failed concurrent build leaves an INVALID index that every write still maintains; \
          without a name zdm cannot find it to drop it before the retry, and each retry adds another",
    recipe: "name the index: `CREATE INDEX CONCURRENTLY IF NOT EXISTS <table>_<columns>_idx ON ..`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::CreateIndex { name: None, table, concurrently: true, .. } = &stmt.kind {
        out.push(Hit::on(table, format!("builds an unnamed index on `{table}` concurrently")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn unnamed_concurrent_index_fires_in_every_phase() {
        assert!(pre("CREATE INDEX CONCURRENTLY ON posts (user_id);").no_tx().fires("cic-unnamed"));
        assert!(post("CREATE UNIQUE INDEX CONCURRENTLY ON posts (legacy_slug);").no_tx().fires("cic-unnamed"));
        // In a transaction it also fails at run time; both findings are reported.
        let errors = pre("CREATE INDEX CONCURRENTLY ON posts (user_id);").errors();
        assert!(errors.contains(&"cic-unnamed") && errors.contains(&"concurrently-in-transaction"), "{errors:?}");
    }

    #[test]
    fn the_finding_points_at_the_statement() {
        let f = pre("-- zdm:no_transaction\nSELECT 1;\n  CREATE INDEX CONCURRENTLY ON posts (user_id);")
            .no_tx()
            .findings()
            .into_iter()
            .find(|f| f.rule == "cic-unnamed")
            .expect("a finding");
        assert_eq!((f.line, f.column), (3, 3));
        assert!(f.message.contains("`posts`"), "{}", f.message);
    }

    #[test]
    fn named_plain_or_new_table_is_fine() {
        assert!(!pre("CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);").no_tx().fires("cic-unnamed"));
        assert!(!pre("CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_user_idx ON posts (user_id);")
            .no_tx()
            .fires("cic-unnamed"));
        // Not concurrent: a failure rolls back with the transaction (index-not-concurrent
        // judges the lock).
        assert!(!pre("CREATE INDEX ON posts (user_id);").fires("cic-unnamed"));
        assert!(!pre("CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY ON t (a);").no_tx().fires("cic-unnamed"));
    }

    #[test]
    fn safety_assured_silences_it() {
        assert!(!pre(
            "-- zdm:safety_assured rebuilt by hand on failure\nCREATE INDEX CONCURRENTLY ON posts (user_id);"
        )
        .no_tx()
        .fires("cic-unnamed"));
    }
}
