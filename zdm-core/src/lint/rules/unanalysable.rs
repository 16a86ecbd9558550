//! # `unanalysable`
//!
//! **What it does:** reports a statement zdm cannot judge: one the parser cannot read
//! (reported once per statement, at its first bad token), a `DO` block in a language other
//! than PL/pgSQL, or, inside a `DO` block, an `EXECUTE` of SQL built at run time (with
//! `format()` or `||`) or a loop over such a query.
//!
//! A `DO` block is otherwise judged as the statements it runs: every static SQL statement
//! of every branch (`IF`, `CASE`, loops, `BEGIN .. EXCEPTION` blocks) as if it ran, an
//! `EXECUTE` of a string constant as that string's SQL. The body of `CREATE FUNCTION ..
//! LANGUAGE plpgsql` is not judged: it runs when the function is called, not when the
//! migration runs.
//!
//! **Why is this bad?** Nothing is known about what it locks or breaks; passing it silently
//! would make every other rule meaningless.
//!
//! **Example:**
//! ```sql
//! DO $$ BEGIN EXECUTE 'ALTER TABLE ' || tbl || ' DROP COLUMN x'; END $$;
//! ```
//! **Use instead:** plain SQL statements (a `DO` block with static SQL is fine), or accept
//! it with a reason:
//! ```sql
//! -- zdm:safety_assured only touches the empty audit tables
//! DO $$ BEGIN EXECUTE ...; END $$;
//! ```
//! **PostgreSQL versions:** all.
//!
//! **SQLite:** a statement SQLite's own parser (`sqlite3_prepare`) cannot read, reported
//! once, at the first bad token SQLite names. Everything SQLite reads is analysed:
//! `AUTOINCREMENT`, `STRICT`, `WITHOUT ROWID`, `PRAGMA`, `INSERT OR IGNORE`, triggers.

use super::SqliteRule;
use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};
use crate::lint::sqlite::model::{Kind as SqliteKind, Stmt as SqliteStmt};
use crate::lint::sqlite::Cx as SqliteCx;

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

/// The SQLite check: what SQLite's parser cannot read.
pub static SQLITE: SqliteRule = SqliteRule {
    id: "unanalysable",
    kind: Kind::BreaksEveryPhase,
    why: "SQLite cannot read it, so it fails when it runs, and zdm cannot tell what it would change",
    recipe: "fix the statement (SQLite's message names the token), or accept it with `-- zdm:safety_assured <reason>`",
    check: check_sqlite,
};

fn check_sqlite(stmt: &SqliteStmt, _cx: &SqliteCx<'_>, out: &mut Vec<Hit>) {
    if let SqliteKind::Unreadable { message } = &stmt.kind {
        out.push(Hit::anywhere(format!("SQLite cannot read this statement: {message}")));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    fn unanalysable(run: Run) -> Vec<(usize, usize, String)> {
        run.findings().into_iter().filter(|f| f.rule == "unanalysable").map(|f| (f.line, f.column, f.message)).collect()
    }

    #[test]
    fn dynamic_sql_and_garbage_are_unanalysable() {
        assert!(pre("DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'x'; END $$;").fires("unanalysable"));
        assert!(pre("DO $$ BEGIN EXECUTE format('DROP TABLE %I', t); END $$;").fires("unanalysable"));
        assert!(pre("DO $$ BEGIN FOR r IN EXECUTE 'SELECT ' || x LOOP NULL; END LOOP; END $$;").fires("unanalysable"));
        assert!(pre("DO LANGUAGE plv8 $$ plv8.execute('DROP TABLE posts') $$;").fires("unanalysable"));
        assert!(pre("ALTER TABLE posts FROBNICATE;").fires("unanalysable"));
    }

    #[test]
    fn one_finding_per_unreadable_statement_at_its_first_bad_token() {
        let found = unanalysable(pre(
            "SELECT 1;\nINSERT OR IGNORE INTO posts (id) VALUES (1);\nPRAGMA foreign_keys = ON;\nSELECT 2;",
        ));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (2, 8), "{found:?}");
        assert!(found[0].2.ends_with("at `OR`"), "{found:?}");
        assert_eq!((found[1].0, found[1].1), (3, 1), "{found:?}");
        // The readable statements around them are still judged.
        assert!(pre("PRAGMA x;\nALTER TABLE posts DROP COLUMN body;").fires("drop-column"));
    }

    #[test]
    fn plain_sql_and_static_do_blocks_are_analysed() {
        assert!(!pre("SELECT 1; UPDATE posts SET body = 'x' WHERE id = 1;").fires("unanalysable"));
        // A static DO block is judged statement by statement.
        let run = pre("DO $$ BEGIN ALTER TABLE posts DROP COLUMN body; END $$;");
        assert!(!run.fires("unanalysable"));
        assert!(run.fires("drop-column"));
        // Procedural code around static SQL is read, not reported.
        assert!(pre("DO $$ DECLARE n int; BEGIN SELECT 1 INTO n; RAISE NOTICE '%', n; END $$;").errors().is_empty());
    }

    #[test]
    fn dynamic_sql_is_reported_where_it_is() {
        let found = unanalysable(pre("DO $$\nBEGIN\n  PERFORM 1;\n  EXECUTE 'DROP TABLE ' || t;\nEND $$;"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (4, 3), "{found:?}");
        // `safety_assured` before the DO block covers what is inside.
        assert!(!pre(
            "-- zdm:safety_assured audit tables are empty\nDO $$\nBEGIN\n  EXECUTE 'DROP TABLE ' || t;\nEND $$;"
        )
        .fires("unanalysable"));
    }

    #[test]
    fn keywords_in_strings_and_comments_do_not_count() {
        assert!(pre("-- DROP TABLE posts;\nINSERT INTO posts (id, title) VALUES (1, 'DROP TABLE posts; EXECUTE');")
            .errors()
            .is_empty());
        // A function body runs when the function is called, not when the migration runs.
        assert!(pre(
            "CREATE FUNCTION f() RETURNS void AS $$ BEGIN EXECUTE 'DROP TABLE posts'; END $$ LANGUAGE plpgsql;"
        )
        .errors()
        .is_empty());
        assert!(pre("DO $$ BEGIN RAISE NOTICE 'EXECUTE this; DROP TABLE posts;'; /* EXECUTE x */ END $$;")
            .errors()
            .is_empty());
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn one_finding_per_unreadable_statement_at_its_first_bad_token() {
        let found: Vec<_> =
            pre("SELECT 1;\nALTER TABLE posts FROBNICATE title;\nCREATE TABLE t (a INTEGER,);\nSELECT 2;")
                .findings()
                .into_iter()
                .filter(|f| f.rule == "unanalysable")
                .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].line, found[0].column), (2, 19), "{found:?}");
        assert!(found[0].message.contains("FROBNICATE"), "{}", found[0].message);
        assert_eq!((found[1].line, found[1].column), (3, 27), "{found:?}");
    }

    #[test]
    fn sqlite_syntax_is_read() {
        let run = pre("CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, n TEXT) STRICT;\n\
                       CREATE TABLE b (k TEXT PRIMARY KEY) WITHOUT ROWID;\n\
                       INSERT OR IGNORE INTO b (k) VALUES ('x') ON CONFLICT DO NOTHING;\n\
                       PRAGMA user_version = 3;\n\
                       CREATE TRIGGER b_touch AFTER INSERT ON b BEGIN UPDATE a SET n = 'y'; END;");
        assert!(run.errors().is_empty(), "{:?}", run.findings());
    }
}
