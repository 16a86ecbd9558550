//! # `sqlite-foreign-keys-in-transaction`
//!
//! **What it does:** flags a `PRAGMA foreign_keys = OFF` that runs inside a transaction
//! (zdm's, in a migration without `-- zdm:no_transaction`, or a `BEGIN` of the file's own),
//! and a table rebuild of a table other tables reference while foreign keys are enforced.
//!
//! **Why is this bad?** SQLite ignores `PRAGMA foreign_keys` inside a transaction, without
//! an error. The rebuild that relied on it then runs with foreign keys on, and its
//! `DROP TABLE` of the old table deletes every row first: rows of referencing tables are
//! deleted with them (`ON DELETE CASCADE`), set to NULL, or the migration fails with
//! `FOREIGN KEY constraint failed`. zdm's connections (sqlx's defaults) enforce foreign
//! keys.
//!
//! **Example:**
//! ```sql
//! PRAGMA foreign_keys = OFF;          -- in a transactional migration: does nothing
//! CREATE TABLE new_users (..);
//! INSERT INTO new_users SELECT .. FROM users;
//! DROP TABLE users;                   -- posts.user_id references users
//! ALTER TABLE new_users RENAME TO users;
//! ```
//! **Use instead:** a `no_transaction` migration that turns foreign keys off outside the
//! transaction, checks them before committing, and turns them back on (the connection goes
//! back to the pool):
//! ```sql
//! -- zdm:no_transaction
//! PRAGMA foreign_keys = OFF;
//! BEGIN;
//! CREATE TABLE new_users (..);
//! INSERT INTO new_users SELECT .. FROM users;
//! DROP TABLE users;
//! ALTER TABLE new_users RENAME TO users;
//! PRAGMA foreign_key_check;
//! COMMIT;
//! PRAGMA foreign_keys = ON;
//! ```

use super::{Hit, Kind, SqliteRule};
use crate::lint::sqlite::model::Stmt;
use crate::lint::sqlite::Cx;

pub static RULE: SqliteRule = SqliteRule {
    id: "sqlite-foreign-keys-in-transaction",
    kind: Kind::RunTimeError,
    why: "SQLite ignores `PRAGMA foreign_keys` inside a transaction: the rebuild's `DROP TABLE` deletes the old rows with foreign keys on, cascading into (or failing on) every referencing table",
    recipe: "`-- zdm:no_transaction`, then `PRAGMA foreign_keys = OFF; BEGIN; ..rebuild..; PRAGMA foreign_key_check; COMMIT; PRAGMA foreign_keys = ON;`",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if stmt.turns_foreign_keys_off() && cx.in_transaction() {
        let whose = if cx.transactional {
            "zdm's transaction (the migration is not `no_transaction`)"
        } else {
            "the file's own `BEGIN`"
        };
        out.push(Hit::anywhere(format!("`PRAGMA foreign_keys = OFF` inside {whose} does nothing")));
    }
    if let Some(r) = cx.rebuild_here() {
        if cx.foreign_keys_on() && !r.referenced_by.is_empty() {
            out.push(Hit::anywhere(format!(
                "rebuilds `{}` with foreign keys on while {} reference it: dropping the old table deletes its rows first",
                r.table,
                r.referenced_by.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
            )));
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::lint::sqlite::test_util::*;

    const REBUILD_USERS: &str =
        "CREATE TABLE new_users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, name TEXT);\n\
        INSERT INTO new_users (id, email) SELECT id, email FROM users;\n\
        DROP TABLE users;\n\
        ALTER TABLE new_users RENAME TO users;\n";

    #[test]
    fn the_pragma_inside_a_transaction_does_nothing() {
        assert!(pre("PRAGMA foreign_keys = OFF;").fires("sqlite-foreign-keys-in-transaction"));
        assert!(!pre("PRAGMA foreign_keys=0;").no_tx().fires("sqlite-foreign-keys-in-transaction"));
        assert!(pre("BEGIN;\nPRAGMA foreign_keys = false;\nCOMMIT;")
            .no_tx()
            .fires("sqlite-foreign-keys-in-transaction"));
        assert!(!pre("PRAGMA foreign_keys = ON;").fires("sqlite-foreign-keys-in-transaction"));
    }

    #[test]
    fn a_rebuild_of_a_referenced_table_needs_foreign_keys_off() {
        let in_tx = format!("PRAGMA foreign_keys = OFF;\n{REBUILD_USERS}");
        let found = pre(Box::leak(in_tx.into_boxed_str())).findings();
        let fk: Vec<_> = found.iter().filter(|f| f.rule == "sqlite-foreign-keys-in-transaction").collect();
        assert_eq!(fk.len(), 2, "{found:?}");
        assert!(fk[1].message.contains("`posts`"), "{}", fk[1].message);
        let right = format!("PRAGMA foreign_keys = OFF;\nBEGIN;\n{REBUILD_USERS}PRAGMA foreign_key_check;\nCOMMIT;\nPRAGMA foreign_keys = ON;");
        let run = pre(Box::leak(right.into_boxed_str())).no_tx();
        assert!(!run.fires("sqlite-foreign-keys-in-transaction"), "{:?}", run.findings());
        // Nobody references tags: nothing to cascade.
        assert!(!pre(
            "CREATE TABLE new_tags (name TEXT PRIMARY KEY, note TEXT) WITHOUT ROWID;\n\
                      INSERT INTO new_tags SELECT * FROM tags;\nDROP TABLE tags;\nALTER TABLE new_tags RENAME TO tags;"
        )
        .fires("sqlite-foreign-keys-in-transaction"));
    }
}
