//! # `truncate`
//!
//! **What it does:** flags `TRUNCATE` of an existing table in a pre-deploy migration.
//!
//! **Why is this bad?** The build still serving reads and writes that data; emptying it
//! under live traffic loses writes made meanwhile, and `TRUNCATE` takes ACCESS EXCLUSIVE.
//!
//! **Example:**
//! ```sql
//! TRUNCATE sessions;
//! ```
//! **Use instead:** an `-- zdm:after_deploy` migration, or batched deletes.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "truncate",
    kind: Kind::Breaks,
    why:
        "the build still serving uses this data; TRUNCATE empties it under ACCESS EXCLUSIVE and loses concurrent writes",
    recipe: "truncate in an `-- zdm:after_deploy` migration, or delete in batches",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::Truncate { tables, .. } = &stmt.kind {
        for t in tables {
            out.push(Hit::on(t, format!("truncates `{t}` before the deploy")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn pre_deploy_truncate_fires() {
        assert!(pre("TRUNCATE posts;").fires("truncate"));
    }

    #[test]
    fn after_deploy_or_new_table_is_fine() {
        assert!(!post("TRUNCATE posts;").fires("truncate"));
        assert!(!pre("CREATE TABLE t (a int); TRUNCATE t;").fires("truncate"));
    }
}
