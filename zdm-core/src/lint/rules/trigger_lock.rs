//! # `trigger-lock`
//!
//! **What it does:** notes `CREATE TRIGGER` and `ENABLE/DISABLE TRIGGER` on an existing
//! table (a note for tools; it never blocks).
//!
//! **Why is this bad?** It takes SHARE ROW EXCLUSIVE briefly: harmless under a lock_timeout,
//! a queue of stalled queries without one. zdm always runs migrations under a lock_timeout,
//! so this is informational.
//!
//! **Example:**
//! ```sql
//! CREATE TRIGGER posts_sync BEFORE UPDATE ON posts FOR EACH ROW EXECUTE FUNCTION sync();
//! ```
//! **Use instead:** nothing to change when run by zdm; elsewhere set a lock_timeout first.
//!
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "trigger-lock",
    kind: Kind::Info,
    why: "it takes SHARE ROW EXCLUSIVE briefly; fine under zdm's lock_timeout, never without one",
    recipe: "run it under a lock_timeout (zdm does)",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::CreateTrigger { table, .. } = &stmt.kind {
        if !cx.is_new(table) {
            out.push(Hit::on(table, format!("creates a trigger on `{table}`")));
        }
    }
    for (table, action) in alter_actions(stmt) {
        if matches!(action, Action::EnableDisableTrigger) && !cx.is_new(table) {
            out.push(Hit::on(table, format!("enables or disables a trigger on `{table}`")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::lint::Severity;

    #[test]
    fn trigger_on_existing_table_is_a_note() {
        let f = pre("CREATE TRIGGER t BEFORE UPDATE ON posts FOR EACH ROW EXECUTE FUNCTION f();").findings();
        assert!(f.iter().any(|f| f.rule == "trigger-lock" && f.severity == Severity::Info));
        assert!(f.iter().all(|f| !f.blocks()));
    }

    #[test]
    fn trigger_on_new_table_is_silent() {
        assert!(!pre(
            "CREATE TABLE t (a int);\nCREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();"
        )
        .fires("trigger-lock"));
    }
}
