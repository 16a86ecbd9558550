//! # `volatile-default`
//!
//! **What it does:** flags `ADD COLUMN .. DEFAULT f()` on an existing table when `f` is
//! volatile (`random()`, `gen_random_uuid()`, `clock_timestamp()`, `nextval()`, ...), and on
//! targets before PostgreSQL 11 any default.
//!
//! **Why is this bad?** Each row needs its own value, so PostgreSQL rewrites the table under
//! ACCESS EXCLUSIVE.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN token uuid DEFAULT gen_random_uuid();
//! ```
//! **Use instead:** add the column without a default, set the default, backfill in batches:
//! ```sql
//! ALTER TABLE posts ADD COLUMN token uuid;
//! ALTER TABLE posts ALTER COLUMN token SET DEFAULT gen_random_uuid();
//! -- then zdm's batched backfill
//! ```
//! **PostgreSQL versions:** from 11, constant and stable defaults (such as `now()`) are
//! stored without a rewrite; before 11 every default rewrites. A function the set itself
//! creates is volatile unless declared `IMMUTABLE` or `STABLE` (PostgreSQL's default); a
//! function created outside the set is judged by zdm's list of built-ins.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, DefaultKind, Stmt};

pub static RULE: Rule = Rule {
    id: "volatile-default",
    kind: Kind::Locks,
    why: "every row gets its own value, so the table is rewritten under ACCESS EXCLUSIVE",
    recipe: "add the column without a default, then SET DEFAULT, then backfill existing rows in batches",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::AddColumn(c) = action {
            let rewrites = match c.default {
                Some(DefaultKind::Volatile) => true,
                Some(_) => cx.pg.major < 11,
                None => false,
            };
            if rewrites {
                out.push(Hit::on(table, format!("adds `{table}.{}` with a default that rewrites the table", c.name)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn volatile_default_fires() {
        assert!(pre("ALTER TABLE posts ADD COLUMN token uuid DEFAULT gen_random_uuid();").fires("volatile-default"));
        assert!(pre("ALTER TABLE posts ADD COLUMN seen boolean DEFAULT false;").pg(10).fires("volatile-default"));
    }

    #[test]
    fn a_function_of_the_set_is_volatile_unless_declared_otherwise() {
        let f = |opt: &str| {
            format!(
                "CREATE FUNCTION random_string(n int) RETURNS text LANGUAGE sql {opt} AS $$ SELECT 'x' $$;\n\
                 ALTER TABLE posts ADD COLUMN token text NOT NULL DEFAULT random_string(26);"
            )
        };
        let sql = f("");
        assert!(pre(Box::leak(sql.into_boxed_str())).fires("volatile-default"));
        let sql = f("VOLATILE");
        assert!(pre(Box::leak(sql.into_boxed_str())).fires("volatile-default"));
        let sql = f("IMMUTABLE");
        assert!(!pre(Box::leak(sql.into_boxed_str())).fires("volatile-default"));
        let sql = f("STABLE");
        assert!(!pre(Box::leak(sql.into_boxed_str())).fires("volatile-default"));
    }

    #[test]
    fn constant_and_stable_defaults_are_fine_on_11_plus() {
        assert!(!pre("ALTER TABLE posts ADD COLUMN seen boolean DEFAULT false;").fires("volatile-default"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN created_at timestamptz DEFAULT now();").fires("volatile-default"));
        assert!(!pre("ALTER TABLE posts ADD COLUMN created_at timestamptz DEFAULT CURRENT_TIMESTAMP;")
            .fires("volatile-default"));
    }
}
