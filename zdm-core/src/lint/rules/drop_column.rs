//! # `drop-column`
//!
//! **What it does:** flags `ALTER TABLE .. DROP COLUMN` in a pre-deploy migration.
//!
//! **Why is this bad?** The build still serving selects and inserts the column by name;
//! once it is gone every such query fails until the new build has replaced it.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts DROP COLUMN legacy_slug;
//! ```
//! **Use instead:** stop using the column in code (`#[zdm::ignored_columns]`), then drop it
//! after the deploy:
//! ```sql
//! -- zdm:after_deploy
//! ALTER TABLE posts DROP COLUMN legacy_slug;
//! ```
//! **PostgreSQL versions:** all.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "drop-column",
    kind: Kind::Breaks,
    why: "the build still serving reads and writes this column; its queries fail once it is gone",
    recipe: "stop using the column in code (`#[zdm::ignored_columns]`), then drop it in an `-- zdm:after_deploy` migration (or a deferred drop)",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::DropColumn { column } = action {
            out.push(Hit::on(table, format!("drops column `{table}.{column}` before the deploy")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn pre_deploy_drop_is_an_error() {
        assert!(pre("ALTER TABLE posts DROP COLUMN legacy_slug;").fires("drop-column"));
    }

    #[test]
    fn after_deploy_or_new_table_is_fine() {
        assert!(!post("ALTER TABLE posts DROP COLUMN legacy_slug;").fires("drop-column"));
        assert!(!pre("CREATE TABLE t (a int, b int); ALTER TABLE t DROP COLUMN b;").fires("drop-column"));
    }

    #[test]
    fn a_drop_hidden_in_a_do_block_fires_where_it_is() {
        let sql = "DO $$\nBEGIN\n  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE column_name = 'legacy_slug') THEN\n    \
                   ALTER TABLE posts DROP COLUMN legacy_slug;\n  END IF;\nEND $$;";
        let found: Vec<_> = pre(sql).findings().into_iter().filter(|f| f.rule == "drop-column").collect();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].column), (4, 5));
        // EXECUTE of a constant is that SQL.
        assert!(pre("DO $$ BEGIN EXECUTE 'ALTER TABLE posts DROP COLUMN legacy_slug'; END $$;").fires("drop-column"));
        assert!(pre("DO 'BEGIN EXECUTE ''ALTER TABLE posts DROP COLUMN legacy_slug''; END';").fires("drop-column"));
    }

    #[test]
    fn a_do_block_on_a_table_of_the_same_file_is_fine() {
        assert!(!pre("DO $$ BEGIN CREATE TABLE t (a int, b int); EXCEPTION WHEN duplicate_table THEN NULL; END $$;\n\
                      DO $$ BEGIN ALTER TABLE t DROP COLUMN b; END $$;")
        .fires("drop-column"));
        assert!(!post("DO $$ BEGIN ALTER TABLE posts DROP COLUMN legacy_slug; END $$;").fires("drop-column"));
    }

    #[test]
    fn create_table_if_not_exists_on_an_existing_table_makes_nothing_new() {
        let sql = "CREATE TABLE IF NOT EXISTS posts (id bigint);\nALTER TABLE posts DROP COLUMN legacy_slug;";
        assert!(pre(sql).fires("drop-column"));
        // The table keeps the columns it had.
        assert!(pre("CREATE TABLE IF NOT EXISTS posts (id bigint);\nALTER TABLE posts ALTER COLUMN title TYPE text;")
            .fires("type-change"));
        assert!(!pre("CREATE TABLE IF NOT EXISTS fresh (a int, b int);\nALTER TABLE fresh DROP COLUMN b;")
            .fires("drop-column"));
    }

    #[test]
    fn safety_assured_silences_it() {
        assert!(!pre("-- zdm:safety_assured nothing reads it since v2\nALTER TABLE posts DROP COLUMN legacy_slug;")
            .fires("drop-column"));
    }
}
