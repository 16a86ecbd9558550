//! # `unanalysable`
//!
//! **What it does:** reports a statement zdm cannot judge: one the parser cannot read, a
//! `DO` block that builds SQL at run time with `EXECUTE`, or a `DO` block with procedural
//! code.
//!
//! **Why is this bad?** Nothing is known about what it locks or breaks; passing it silently
//! would make every other rule meaningless.
//!
//! **Example:**
//! ```sql
//! DO $$ BEGIN EXECUTE 'ALTER TABLE ' || tbl || ' DROP COLUMN x'; END $$;
//! ```
//! **Use instead:** plain SQL statements, or accept it with a reason:
//! ```sql
//! -- zdm:safety_assured only touches the empty audit tables
//! DO $$ BEGIN EXECUTE ...; END $$;
//! ```
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "unanalysable",
    kind: Kind::BreaksEveryPhase,
    why: "zdm cannot tell which locks it takes or what it breaks, and never passes a statement silently",
    recipe: "write it as plain SQL statements, or accept it with `-- zdm:safety_assured <reason>`",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::Unparsable { message } = &stmt.kind {
        out.push(Hit::anywhere(format!("statement cannot be analysed: {message}")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn dynamic_do_and_garbage_are_unanalysable() {
        assert!(pre("DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'x'; END $$;").fires("unanalysable"));
        assert!(pre("ALTER TABLE posts FROBNICATE;").fires("unanalysable"));
        assert!(pre("DO $$ DECLARE n int; BEGIN SELECT 1 INTO n; END $$;").fires("unanalysable"));
    }

    #[test]
    fn plain_sql_and_static_do_blocks_are_analysed() {
        assert!(!pre("SELECT 1; UPDATE posts SET body = 'x' WHERE id = 1;").fires("unanalysable"));
        // A static DO block is judged statement by statement.
        let run = pre("DO $$ BEGIN ALTER TABLE posts DROP COLUMN body; END $$;");
        assert!(!run.fires("unanalysable"));
        assert!(run.fires("drop-column"));
    }

    #[test]
    fn keywords_in_strings_and_comments_do_not_count() {
        assert!(pre("-- DROP TABLE posts;\nINSERT INTO posts (id, title) VALUES (1, 'DROP TABLE posts; EXECUTE');")
            .errors()
            .is_empty());
        assert!(pre(
            "CREATE FUNCTION f() RETURNS void AS $$ BEGIN EXECUTE 'DROP TABLE posts'; END $$ LANGUAGE plpgsql;"
        )
        .errors()
        .is_empty());
    }
}
