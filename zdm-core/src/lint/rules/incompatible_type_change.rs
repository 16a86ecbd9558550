//! # `incompatible-type-change`
//!
//! **What it does:** flags `ALTER COLUMN .. TYPE` that rewrites the table (`int → bigint`,
//! `text → jsonb`, narrowing, `USING ..`, or a column whose current type zdm does not know).
//!
//! **Why is this bad?** The table and its indexes are rewritten under ACCESS EXCLUSIVE:
//! nothing reads or writes it meanwhile. A key column takes its referencing tables along:
//! their foreign keys are rebuilt and re-checked under ACCESS EXCLUSIVE on each of them
//! (`users.id` to `bigint` locks `posts` when `posts.user_id` references it). Before the
//! deploy the old build also breaks on the new type.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ALTER COLUMN id TYPE bigint;
//! ```
//! **Use instead:** a new column of the new type, a sync trigger, a batched backfill, and a
//! swap after the deploy (zdm's change-type recipe).
//!
//! **PostgreSQL versions:** see `type-change` for the changes that do not rewrite.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};
use crate::lint::types::{judge, Change};

pub static RULE: Rule = Rule {
    id: "incompatible-type-change",
    kind: Kind::BreaksAndLocks,
    why: "it rewrites the table and its indexes under ACCESS EXCLUSIVE (no reads or writes meanwhile), and the old build breaks on the new type",
    recipe: "add a new column of the new type, sync it with a trigger, backfill in batches, swap after the deploy",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::AlterType { column, ty, using } = action {
            let old = cx.table(table).and_then(|t| t.column(column)).and_then(|c| c.ty.as_ref());
            let change = match ty {
                Some(ty) if !using => judge(old, ty, cx.pg.major),
                _ => Change::Rewrite,
            };
            if change == Change::Rewrite {
                let from = old.map_or("an unknown type".to_string(), |t| t.to_string());
                let to = ty.as_ref().map_or("?".to_string(), |t| t.to_string());
                let referencing = cx.schema.referencing(table, column);
                let also = match referencing.is_empty() {
                    true => String::new(),
                    false => format!(
                        "; the foreign keys referencing it are re-checked under ACCESS EXCLUSIVE on {}",
                        referencing.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                    ),
                };
                out.push(Hit::on(
                    table,
                    format!("changes `{table}.{column}` from {from} to {to}, which rewrites the table{also}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn rewriting_changes_fire_in_every_phase() {
        assert!(pre("ALTER TABLE posts ALTER COLUMN id TYPE int;").fires("incompatible-type-change"));
        assert!(post("ALTER TABLE posts ALTER COLUMN user_id TYPE int;").fires("incompatible-type-change"));
        assert!(
            post("ALTER TABLE posts ALTER COLUMN body TYPE jsonb USING body::jsonb;").fires("incompatible-type-change")
        );
    }

    #[test]
    fn a_key_change_names_the_referencing_tables() {
        let setup = "CREATE TABLE users (id int PRIMARY KEY, email text);\n\
                     CREATE TABLE posts (id int, user_id int REFERENCES users);\n\
                     CREATE TABLE app.notes (owner int, FOREIGN KEY (owner) REFERENCES users (id));";
        let found = post("ALTER TABLE users ALTER COLUMN id TYPE bigint;").setup(setup).findings();
        let m = &found.iter().find(|f| f.rule == "incompatible-type-change").unwrap().message;
        assert!(m.ends_with("under ACCESS EXCLUSIVE on `app.notes`, `posts`"), "{m}");
        let found = post("ALTER TABLE users ALTER COLUMN email TYPE int USING 0;").setup(setup).findings();
        let m = &found.iter().find(|f| f.rule == "incompatible-type-change").unwrap().message;
        assert!(!m.contains("foreign keys"), "{m}");
    }

    #[test]
    fn widening_is_not_a_rewrite() {
        assert!(!post("ALTER TABLE posts ALTER COLUMN title TYPE varchar(200);").fires("incompatible-type-change"));
        assert!(!post("ALTER TABLE posts ALTER COLUMN title TYPE text USING title;").fires("incompatible-type-change"));
        assert!(
            !pre("CREATE TABLE t (a int); ALTER TABLE t ALTER COLUMN a TYPE bigint;").fires("incompatible-type-change")
        );
    }
}
