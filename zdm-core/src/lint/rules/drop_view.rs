//! # `drop-view`
//!
//! **What it does:** flags `DROP VIEW` / `DROP MATERIALIZED VIEW` in a pre-deploy migration.
//!
//! **Why is this bad?** The build still serving may query the view.
//!
//! **Example:**
//! ```sql
//! DROP VIEW active_posts;
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:after_deploy
//! DROP VIEW active_posts;
//! ```
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "drop-view",
    kind: Kind::Breaks,
    why: "the build still serving may query this view; its queries fail once it is gone",
    recipe: "drop it in an `-- zdm:after_deploy` migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::DropView { names, .. } = &stmt.kind {
        out.push(Hit::anywhere(format!("drops view `{}` before the deploy", names.join(", "))));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn pre_deploy_drop_view_fires() {
        assert!(pre("DROP VIEW active_posts;").fires("drop-view"));
        assert!(pre("DROP MATERIALIZED VIEW IF EXISTS stats;").fires("drop-view"));
    }

    #[test]
    fn after_deploy_is_fine() {
        assert!(!post("DROP VIEW active_posts;").fires("drop-view"));
    }
}
