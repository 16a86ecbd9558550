//! # `drop-function`
//!
//! **What it does:** flags `DROP FUNCTION` / `PROCEDURE` / `ROUTINE` / `AGGREGATE` in a
//! pre-deploy migration.
//!
//! **Why is this bad?** The build still serving (or a trigger it relies on) may call it.
//!
//! **Example:**
//! ```sql
//! DROP FUNCTION slugify(text);
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:after_deploy
//! DROP FUNCTION slugify(text);
//! ```
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "drop-function",
    kind: Kind::Breaks,
    why: "the build still serving, or a trigger, may call this function",
    recipe: "drop it in an `-- zdm:after_deploy` migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::DropRoutine { .. } = stmt.kind {
        out.push(Hit::anywhere("drops a function before the deploy"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn pre_deploy_drop_function_fires() {
        assert!(pre("DROP FUNCTION slugify(text);").fires("drop-function"));
    }

    #[test]
    fn after_deploy_and_create_are_fine() {
        assert!(!post("DROP FUNCTION slugify(text);").fires("drop-function"));
        assert!(!pre("CREATE FUNCTION one() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;").fires("drop-function"));
    }
}
