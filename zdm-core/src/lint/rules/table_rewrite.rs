//! # `table-rewrite`
//!
//! **What it does:** flags statements that rewrite a whole table: `VACUUM FULL`, `CLUSTER`,
//! `ALTER TABLE .. SET LOGGED / SET UNLOGGED / SET TABLESPACE / SET ACCESS METHOD`.
//!
//! **Why is this bad?** The rewrite holds ACCESS EXCLUSIVE from start to end.
//!
//! **Example:**
//! ```sql
//! VACUUM FULL posts;
//! ```
//! **Use instead:** pg_repack (online), or a scheduled window accepted with
//! `-- zdm:safety_assured <reason>`.
//!
//! **PostgreSQL versions:** PostgreSQL 19 adds `REPACK CONCURRENTLY`.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "table-rewrite",
    kind: Kind::Locks,
    why: "the whole table is rewritten under ACCESS EXCLUSIVE: no reads or writes until it ends",
    recipe: "use pg_repack, or schedule a window and accept it with `-- zdm:safety_assured <reason>`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::TableRewrite { what, table } = &stmt.kind {
        out.push(Hit { table: table.clone(), message: format!("{what} rewrites the table"), span: None });
    }
    for (table, action) in alter_actions(stmt) {
        if let Action::Rewrite { what } = action {
            out.push(Hit::on(table, format!("{what} rewrites `{table}`")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn rewrites_fire() {
        assert!(post("VACUUM FULL posts;").no_tx().fires("table-rewrite"));
        assert!(post("CLUSTER posts USING posts_title_idx;").fires("table-rewrite"));
        assert!(post("ALTER TABLE posts SET UNLOGGED;").fires("table-rewrite"));
    }

    #[test]
    fn plain_vacuum_is_fine() {
        assert!(!post("VACUUM posts;").no_tx().fires("table-rewrite"));
        assert!(!pre("ANALYZE posts;").fires("table-rewrite"));
    }
}
