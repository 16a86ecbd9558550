//! # `statements-after-access-exclusive`
//!
//! **What it does:** in a transactional migration, flags a slow statement (data changes,
//! index builds, rewrites, refreshes, explicit locks) that follows a statement holding
//! ACCESS EXCLUSIVE on an existing table. Further metadata-only changes (another `ADD
//! COLUMN`, a trigger) are not flagged: they are brief, and zdm runs them under a
//! lock_timeout.
//!
//! **Why is this bad?** ACCESS EXCLUSIVE is held until commit; everything after it extends
//! the time nobody can read or write that table.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN slug text;
//! UPDATE users SET seen = true WHERE id < 1000;
//! ```
//! **Use instead:** one ACCESS EXCLUSIVE change per migration, at its end.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "statements-after-access-exclusive",
    kind: Kind::Locks,
    why: "ACCESS EXCLUSIVE from an earlier statement is held until commit, so this statement's time and locks add to the outage",
    recipe: "split the migration: one ACCESS EXCLUSIVE change per migration, as its last statement",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let Some(locked) = cx.file.exclusive.as_deref() else {
        return;
    };
    if !cx.transactional {
        return;
    }
    let prolongs = match &stmt.kind {
        // Rows listed in the migration, or an index on a table this file created, are quick.
        StmtKind::Insert { from_select: false, .. } => false,
        StmtKind::CreateIndex { table, .. } if cx.is_new(table) => false,
        StmtKind::Update { .. }
        | StmtKind::Delete { .. }
        | StmtKind::Insert { .. }
        | StmtKind::CreateIndex { .. }
        | StmtKind::TableRewrite { .. }
        | StmtKind::RefreshMatView { .. }
        | StmtKind::Reindex { .. }
        | StmtKind::Lock { .. } => true,
        _ => false,
    };
    if prolongs {
        out.push(Hit::on(locked, format!("runs while this transaction holds ACCESS EXCLUSIVE on `{locked}`")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn work_after_an_exclusive_lock_fires() {
        assert!(pre("ALTER TABLE posts ADD COLUMN slug text;\nUPDATE users SET email = lower(email) WHERE id < 1000;")
            .fires("statements-after-access-exclusive"));
        assert!(pre("ALTER TABLE posts ADD COLUMN slug text;\nCREATE INDEX users_email_idx ON users (email);")
            .fires("statements-after-access-exclusive"));
    }

    #[test]
    fn a_single_change_or_more_changes_to_the_same_table_are_fine() {
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text;").fires("statements-after-access-exclusive"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text;\nALTER TABLE posts ADD COLUMN seo text;")
            .fires("statements-after-access-exclusive"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text;\nALTER TABLE users ADD COLUMN x int;")
            .fires("statements-after-access-exclusive"));
        let new_table = "ALTER TABLE posts ADD COLUMN lang int;\nCREATE TABLE lang (id int);\n\
                         CREATE INDEX lang_id ON lang (id);\nINSERT INTO lang (id) VALUES (1);";
        assert!(!pre(new_table).fires("statements-after-access-exclusive"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text;\nUPDATE users SET email = '' WHERE id = 1;")
            .no_tx()
            .fires("statements-after-access-exclusive"));
    }
}
