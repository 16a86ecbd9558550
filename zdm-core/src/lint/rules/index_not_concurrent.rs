//! # `index-not-concurrent`
//!
//! **What it does:** flags `CREATE [UNIQUE] INDEX` without `CONCURRENTLY` on an existing
//! table.
//!
//! **Why is this bad?** It holds a SHARE lock on the table for the whole build: every
//! INSERT, UPDATE and DELETE waits.
//!
//! **Example:**
//! ```sql
//! CREATE INDEX posts_user_id_idx ON posts (user_id);
//! ```
//! **Use instead:**
//! ```sql
//! -- zdm:no_transaction
//! CREATE INDEX CONCURRENTLY posts_user_id_idx ON posts (user_id);
//! ```
//! **PostgreSQL versions:** all.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "index-not-concurrent",
    kind: Kind::Locks,
    why: "it holds a SHARE lock for the whole index build: every write to the table waits",
    recipe: "`CREATE INDEX CONCURRENTLY` with a name, in a `-- zdm:no_transaction` migration",
    check,
};

fn check(stmt: &Stmt, _cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let StmtKind::CreateIndex { table, concurrently: false, only: false, .. } = &stmt.kind {
        out.push(Hit::on(table, format!("builds an index on `{table}` without CONCURRENTLY")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn plain_index_on_existing_table_fires() {
        assert!(pre("CREATE INDEX posts_user_idx ON posts (user_id);").fires("index-not-concurrent"));
        assert!(post("CREATE UNIQUE INDEX posts_slug_idx ON posts (legacy_slug);").fires("index-not-concurrent"));
    }

    #[test]
    fn concurrent_or_new_table_is_fine() {
        assert!(!pre("CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);")
            .no_tx()
            .fires("index-not-concurrent"));
        assert!(!pre("CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);").fires("index-not-concurrent"));
    }

    #[test]
    fn a_new_table_in_one_schema_exempts_only_itself() {
        let setup = "CREATE TABLE a.docs (id int); CREATE TABLE docs (id int);";
        let run = pre("CREATE TABLE b.docs (id int);\nCREATE INDEX d ON a.docs (id);").setup(setup);
        let found = run.findings();
        assert!(run.fires("index-not-concurrent"));
        assert!(found[0].message.contains("`a.docs`"), "{}", found[0].message);
        assert!(pre("CREATE TABLE b.docs (id int);\nCREATE INDEX d ON docs (id);")
            .setup(setup)
            .fires("index-not-concurrent"));
        assert!(!pre("CREATE TABLE b.docs (id int);\nCREATE INDEX d ON b.docs (id);")
            .setup(setup)
            .fires("index-not-concurrent"));
        // Unqualified names mean the first schema of the search path.
        assert!(!pre("CREATE TABLE public.t (a int);\nCREATE INDEX t_a ON t (a);").fires("index-not-concurrent"));
        assert!(!pre("SET search_path TO b, public;\nCREATE TABLE docs (id int);\nCREATE INDEX d ON b.docs (id);")
            .setup(setup)
            .fires("index-not-concurrent"));
        assert!(pre("SET search_path TO b, public;\nCREATE TABLE docs (id int);\nCREATE INDEX d ON public.docs (id);")
            .setup(setup)
            .fires("index-not-concurrent"));
    }

    #[test]
    fn if_not_exists_on_an_existing_index_does_nothing() {
        assert!(!pre("CREATE INDEX IF NOT EXISTS posts_title_idx ON posts (title);").fires("index-not-concurrent"));
        assert!(pre("CREATE INDEX IF NOT EXISTS posts_body_idx ON posts (body);").fires("index-not-concurrent"));
    }

    #[test]
    fn a_table_of_the_release_not_yet_deployed_is_new() {
        // The setup (version 1) created posts: deployed at 0, it is part of this release.
        assert!(!pre("CREATE INDEX i ON posts (body);").deployed(0).fires("index-not-concurrent"));
        assert!(pre("CREATE INDEX i ON posts (body);").deployed(1).fires("index-not-concurrent"));
        assert!(pre("CREATE INDEX i ON posts (body);").fires("index-not-concurrent"));
        // A table the release renames stays new; one it only alters does not become new.
        assert!(!pre("ALTER TABLE posts RENAME TO articles;\nCREATE INDEX i ON articles (body);")
            .deployed(0)
            .errors()
            .contains(&"index-not-concurrent"));
        assert!(pre("CREATE INDEX i ON posts (body);")
            .setup("ALTER TABLE posts ADD COLUMN x int;")
            .deployed(0)
            .fires("index-not-concurrent"));
    }
}
