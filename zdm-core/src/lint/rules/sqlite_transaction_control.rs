//! # `sqlite-transaction-control`
//!
//! **What it does:** flags `BEGIN`, `COMMIT`, `END` and `ROLLBACK` in a migration zdm runs
//! in a transaction (one without `-- zdm:no_transaction`).
//!
//! **Why is this bad?** zdm already runs the file in a transaction: SQLite refuses the
//! nested `BEGIN` (`cannot start a transaction within a transaction`), and a `COMMIT` in the
//! file would commit half of the migration before zdm records it in its ledger.
//!
//! **Example:**
//! ```sql
//! BEGIN;
//! ALTER TABLE posts ADD COLUMN summary TEXT;
//! COMMIT;
//! ```
//! **Use instead:** leave the transaction to zdm; a file that must manage its own (to turn
//! foreign keys off around it) says so:
//! ```sql
//! -- zdm:no_transaction
//! PRAGMA foreign_keys = OFF;
//! BEGIN;
//! ..
//! COMMIT;
//! PRAGMA foreign_keys = ON;
//! ```

use super::{Hit, Kind, SqliteRule};
use crate::lint::sqlite::model::{Kind as StmtKind, Stmt};
use crate::lint::sqlite::Cx;

pub static RULE: SqliteRule = SqliteRule {
    id: "sqlite-transaction-control",
    kind: Kind::RunTimeError,
    why: "zdm runs this migration in a transaction: SQLite refuses a nested `BEGIN`, and a `COMMIT` would commit it before zdm's ledger row",
    recipe: "remove the transaction statements, or mark the file `-- zdm:no_transaction` if it manages its own transaction",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::Transaction { op } = &stmt.kind {
        if cx.transactional {
            out.push(Hit::anywhere(format!("`{op}` in a migration zdm already runs in a transaction")));
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn transaction_statements_need_no_transaction() {
        let found: Vec<_> = pre("BEGIN;\nALTER TABLE posts ADD COLUMN summary TEXT;\nCOMMIT;")
            .findings()
            .into_iter()
            .filter(|f| f.rule == "sqlite-transaction-control")
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(!pre("BEGIN;\nALTER TABLE posts ADD COLUMN summary TEXT;\nCOMMIT;")
            .no_tx()
            .fires("sqlite-transaction-control"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN summary TEXT;").fires("sqlite-transaction-control"));
    }
}
