//! # `depends-on-pending-post`
//!
//! **What it does:** flags a pre-deploy migration that touches a column or table an
//! earlier `after_deploy` migration changes (for example re-adds a column it drops).
//!
//! **Why is this bad?** Post-deploy work can lag behind by a release or more (self-hosters
//! skip steps), so the next release's pre-deploy migrations may run *before* the earlier
//! after_deploy one. The pre-deploy migration then meets a schema it was not written for,
//! and the after_deploy migration later undoes its work.
//!
//! **Example:**
//! ```sql
//! -- 0005 (after_deploy): ALTER TABLE posts DROP COLUMN slug;
//! -- 0006 (pre-deploy):
//! ALTER TABLE posts ADD COLUMN slug text;
//! ```
//! **Use instead:** make the later migration after_deploy too, or give the new object a
//! new name.
//!
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::Stmt;
use crate::lint::schema::touched;
use crate::migration::Phase;

pub static RULE: Rule = Rule {
    id: "depends-on-pending-post",
    kind: Kind::Breaks,
    why: "after_deploy work may still be pending when this pre-deploy migration runs (post-deploy steps can lag by releases), so it meets a schema it was not written for",
    recipe: "mark this migration `-- zdm:after_deploy` as well, or use a new name for the object",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if cx.phase != Phase::PreDeploy {
        return;
    }
    for (table, column) in touched(stmt) {
        let key = cx.schema.resolve(&table);
        let version = cx
            .schema
            .post_touched
            .get(&(key.clone(), column.clone()))
            .or_else(|| cx.schema.post_touched.get(&(key, None)));
        if let Some(v) = version {
            let object = match &column {
                Some(c) => format!("{table}.{c}"),
                None => table.clone(),
            };
            out.push(Hit::on(&table, format!("touches `{object}`, which after_deploy migration {v} changes")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    const DROPS_SLUG: &str = "CREATE TABLE posts (id bigint, slug text);";

    #[test]
    fn readding_a_column_an_after_deploy_migration_drops() {
        // The setup runs pre-deploy; emulate the after_deploy drop in the same setup via the
        // schema replay of a post-phase file in `lint` itself.
        let files = [
            crate::lint::LintInput {
                version: 1,
                path: "a.sql",
                sql: DROPS_SLUG,
                phase: crate::Phase::PreDeploy,
                no_transaction: false,
                safety_assured: &[],
            },
            crate::lint::LintInput {
                version: 2,
                path: "b.sql",
                sql: "ALTER TABLE posts DROP COLUMN slug;",
                phase: crate::Phase::PostDeploy,
                no_transaction: false,
                safety_assured: &[],
            },
            crate::lint::LintInput {
                version: 3,
                path: "c.sql",
                sql: "ALTER TABLE posts ADD COLUMN slug text;",
                phase: crate::Phase::PreDeploy,
                no_transaction: false,
                safety_assured: &[],
            },
            crate::lint::LintInput {
                version: 4,
                path: "d.sql",
                sql: "ALTER TABLE posts ADD COLUMN other text;",
                phase: crate::Phase::PreDeploy,
                no_transaction: false,
                safety_assured: &[],
            },
        ];
        let found = crate::lint::lint(&files, &Default::default());
        let hits: Vec<_> = found.iter().filter(|f| f.rule == "depends-on-pending-post").collect();
        assert_eq!(hits.len(), 1, "{found:?}");
        assert_eq!(hits[0].version, 3);
        assert!(!pre("ALTER TABLE posts ADD COLUMN slug2 text;").fires("depends-on-pending-post"));
    }
}
