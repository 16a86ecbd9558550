//! # `drop-default-of-not-null`
//!
//! **What it does:** flags `ALTER COLUMN .. DROP DEFAULT` on a NOT NULL column, in a
//! pre-deploy migration.
//!
//! **Why is this bad?** The old build's INSERTs that omit the column relied on the default;
//! without it they fail on NOT NULL.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ALTER COLUMN status DROP DEFAULT;
//! ```
//! **Use instead:** keep the default until no live build relies on it:
//! ```sql
//! -- zdm:after_deploy
//! ALTER TABLE posts ALTER COLUMN status DROP DEFAULT;
//! ```
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "drop-default-of-not-null",
    kind: Kind::Breaks,
    why: "the old build's INSERTs that omit this NOT NULL column relied on its default and start failing",
    recipe: "drop the default in an `-- zdm:after_deploy` migration, once no live build relies on it",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::DropDefault { column } = action {
            // Unknown columns count as NOT NULL: the cautious reading.
            let not_null = cx.table(table).and_then(|t| t.column(column)).is_none_or(|c| c.not_null);
            if not_null {
                out.push(Hit::on(table, format!("drops the default of NOT NULL column `{table}.{column}`")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn not_null_column_fires() {
        assert!(pre("ALTER TABLE posts ALTER COLUMN status DROP DEFAULT;").fires("drop-default-of-not-null"));
    }

    #[test]
    fn nullable_column_or_after_deploy_is_fine() {
        assert!(!pre("ALTER TABLE posts ALTER COLUMN body DROP DEFAULT;").fires("drop-default-of-not-null"));
        assert!(!post("ALTER TABLE posts ALTER COLUMN status DROP DEFAULT;").fires("drop-default-of-not-null"));
    }
}
