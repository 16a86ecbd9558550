//! # `drop-table`
//!
//! **What it does:** flags `DROP TABLE` of an existing table in a pre-deploy migration.
//!
//! **Why is this bad?** The build still serving queries the table.
//!
//! **Example:**
//! ```sql
//! DROP TABLE legacy_sessions;
//! ```
//! **Use instead:** a deferred drop (read-only now, dropped once no build uses it), or:
//! ```sql
//! -- zdm:after_deploy
//! DROP TABLE legacy_sessions;
//! ```
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "drop-table",
    kind: Kind::Breaks,
    why: "the build still serving queries this table; its queries fail once it is gone",
    recipe: "drop it in an `-- zdm:after_deploy` migration (or a deferred drop that makes it read-only first)",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::DropTable { tables, .. } = &stmt.kind {
        for t in tables {
            out.push(Hit::on(t, format!("drops table `{t}` before the deploy")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn pre_deploy_drop_is_an_error() {
        assert!(pre("DROP TABLE users;").fires("drop-table"));
    }

    #[test]
    fn after_deploy_or_same_file_is_fine() {
        assert!(!post("DROP TABLE users;").fires("drop-table"));
        assert!(!pre("CREATE TABLE tmp (a int); DROP TABLE tmp;").fires("drop-table"));
    }
}
