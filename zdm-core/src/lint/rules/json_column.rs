//! # `json-column`
//!
//! **What it does:** warns about a new column of type `json`.
//!
//! **Why is this bad?** `json` has no equality operator: `DISTINCT`, `UNION`, `GROUP BY` and
//! comparisons on it fail, and it is re-parsed on every access.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN meta json;
//! ```
//! **Use instead:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN meta jsonb;
//! ```
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "json-column",
    kind: Kind::Warning,
    why: "`json` has no equality operator: DISTINCT, UNION and GROUP BY on it fail",
    recipe: "use `jsonb`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let is_json = |c: &crate::lint::model::ColumnDef| c.ty.as_ref().is_some_and(|t| t.name == "json");
    if let StmtKind::CreateTable { table, columns, .. } = &stmt.kind {
        for c in columns.iter().filter(|c| is_json(c)) {
            out.push(Hit::on(table, format!("column `{table}.{}` is `json`", c.name)));
        }
    }
    for (table, action) in alter_actions(stmt) {
        if let Action::AddColumn(c) = action {
            if is_json(c) {
                out.push(Hit::on(table, format!("column `{table}.{}` is `json`", c.name)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn json_warns() {
        assert!(pre("ALTER TABLE posts ADD COLUMN meta json;").fires("json-column"));
        assert!(pre("CREATE TABLE t (meta json);").fires("json-column"));
        assert!(pre("ALTER TABLE posts ADD COLUMN meta json;").errors().is_empty(), "a warning, not an error");
    }

    #[test]
    fn jsonb_is_fine() {
        assert!(!pre("ALTER TABLE posts ADD COLUMN meta jsonb;").fires("json-column"));
    }
}
