//! # `explicit-lock`
//!
//! **What it does:** flags `LOCK TABLE` on an existing table.
//!
//! **Why is this bad?** It takes the requested lock (ACCESS EXCLUSIVE by default) until the
//! migration commits; traffic queues behind it.
//!
//! **Example:**
//! ```sql
//! LOCK TABLE posts IN ACCESS EXCLUSIVE MODE;
//! ```
//! **Use instead:** let each statement take only the lock it needs, under zdm's
//! lock_timeout.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "explicit-lock",
    kind: Kind::Locks,
    why: "it holds the requested lock (ACCESS EXCLUSIVE by default) until commit: traffic queues behind it",
    recipe: "don't lock explicitly; each statement takes the lock it needs under zdm's lock_timeout",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::Lock { tables } = &stmt.kind {
        for t in tables {
            out.push(Hit::on(t, format!("locks `{t}` explicitly")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn lock_table_fires() {
        assert!(post("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE;").fires("explicit-lock"));
    }

    #[test]
    fn locking_a_new_table_is_fine() {
        assert!(!pre("CREATE TABLE t (a int);\nLOCK TABLE t;").fires("explicit-lock"));
    }
}
