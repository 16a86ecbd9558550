//! # `add-required-column`
//!
//! **What it does:** flags `ADD COLUMN .. NOT NULL` without a default on an existing table,
//! in a pre-deploy migration.
//!
//! **Why is this bad?** The old build's INSERTs do not name the column and start failing
//! (and on a non-empty table the statement itself fails).
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN slug text NOT NULL;
//! ```
//! **Use instead:** add it nullable or with a default; make it NOT NULL after the backfill.
//! ```sql
//! ALTER TABLE posts ADD COLUMN slug text NOT NULL DEFAULT '';
//! ```
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "add-required-column",
    kind: Kind::Breaks,
    why: "the old build's INSERTs omit the new column and fail on NOT NULL (and the ALTER fails on a non-empty table)",
    recipe: "add the column nullable or with a default; add NOT NULL later (check NOT VALID, validate, set not null)",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::AddColumn(c) = action {
            if c.not_null && c.default.is_none() && !c.serial && !c.identity && !c.generated_stored {
                out.push(Hit::on(table, format!("adds required column `{table}.{}` without a default", c.name)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn not_null_without_default_fires() {
        assert!(pre("ALTER TABLE posts ADD COLUMN slug text NOT NULL;").fires("add-required-column"));
    }

    #[test]
    fn guarded_idioms_in_do_blocks_are_judged_as_their_statements() {
        // Not an error in itself: the guarded statements are harmless.
        let guarded = "DO $$ BEGIN CREATE TYPE colour AS ENUM ('red'); \
                       EXCEPTION WHEN duplicate_object THEN null; END $$;\n\
                       DO $$ BEGIN\n\
                         IF NOT EXISTS (SELECT 1 FROM information_schema.columns\n\
                                        WHERE table_name = 'posts' AND column_name = 'slug') THEN\n\
                           ALTER TABLE posts ADD COLUMN slug text;\n\
                         END IF;\n\
                       END $$;";
        assert!(pre(guarded).errors().is_empty(), "{:?}", pre(guarded).errors());
        // The same guard around a required column is the required column.
        assert!(pre("DO $$ BEGIN IF NOT EXISTS (SELECT 1) THEN ALTER TABLE posts ADD COLUMN slug text NOT NULL; \
                     END IF; END $$;")
        .fires("add-required-column"));
    }

    #[test]
    fn nullable_or_defaulted_is_fine() {
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text;").fires("add-required-column"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug text NOT NULL DEFAULT '';").fires("add-required-column"));
    }
}
