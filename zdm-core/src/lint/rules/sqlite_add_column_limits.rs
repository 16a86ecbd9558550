//! # `sqlite-add-column-limits`
//!
//! **What it does:** flags an `ALTER TABLE .. ADD COLUMN` that SQLite refuses: a `PRIMARY
//! KEY` or `UNIQUE` column, a default that is not a constant (`CURRENT_TIMESTAMP`, an
//! expression in parentheses). The first are refused by SQLite's parser, and the replay
//! reports SQLite's own message; a non-constant default SQLite refuses only when the table
//! has rows, which the replayed tables do not, so zdm reads the added column's default. (A `NOT NULL` column without a default,
//! which SQLite refuses only on a table with rows, is `add-required-column`.)
//!
//! **Why is this bad?** The migration fails when it runs. (On PostgreSQL these are
//! ordinary statements; on SQLite they need a table rebuild.)
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ADD COLUMN created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP;
//! ```
//! **Use instead:** a constant default (`DEFAULT '1970-01-01 00:00:00'`, filled by the app),
//! a nullable column, a `CREATE UNIQUE INDEX` for uniqueness, or a table rebuild after the
//! deploy.

use super::{Hit, Kind, SqliteRule};
use crate::lint::sqlite::model::{Alter, Kind as StmtKind, Stmt};
use crate::lint::sqlite::Cx;

pub static RULE: SqliteRule = SqliteRule {
    id: "sqlite-add-column-limits",
    kind: Kind::RunTimeError,
    why: "SQLite refuses this `ADD COLUMN`: the migration fails when it runs",
    recipe: "add the column nullable or with a constant default, enforce uniqueness with `CREATE UNIQUE INDEX`, or rebuild the table",
    check,
};

/// Whether SQLite's refusal is one of its `ADD COLUMN` limits. SQLite refuses these while
/// parsing, before its authorizer hears of the `ALTER TABLE`, so the message is what says so.
pub fn is_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.starts_with("cannot add a") || m.contains("non-constant default")
}

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if let Some(message) = stmt.refused.as_deref().filter(|m| is_limit(m)) {
        out.push(Hit::anywhere(format!("SQLite refuses this `ADD COLUMN`: {message}")));
    }
    if let StmtKind::AlterTable { table, change: Alter::AddColumn { column } } = &stmt.kind {
        let default = cx.after().table(table).and_then(|t| t.column(column)).and_then(|c| c.default.as_deref());
        if default.is_some_and(is_non_constant) {
            out.push(Hit::on(
                table,
                format!(
                    "adds `{table}.{column}` with a non-constant default: SQLite refuses it once the table has rows"
                ),
            ));
        }
    }
}

/// SQLite's documented limit: no `CURRENT_TIME`, `CURRENT_DATE`, `CURRENT_TIMESTAMP` and no
/// expression in parentheses as the default of an added column.
/// SQLite keeps the default's text; a literal (string, blob, number, `NULL`, `TRUE`, `FALSE`)
/// is constant, anything else (a keyword like those, a function call) is not.
fn is_non_constant(default: &str) -> bool {
    let d = default.trim().trim_start_matches(['-', '+']);
    let literal = d.starts_with(['\'', '"'])
        || d.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || (d.len() > 1 && d[..2].eq_ignore_ascii_case("x'"))
        || ["NULL", "TRUE", "FALSE"].iter().any(|k| d.eq_ignore_ascii_case(k));
    !literal
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::lint::sqlite::test_util::*;

    #[test]
    fn what_sqlite_refuses_is_an_error() {
        assert!(pre("ALTER TABLE posts ADD COLUMN token TEXT DEFAULT (random());").fires("sqlite-add-column-limits"));
        assert!(pre("ALTER TABLE posts ADD COLUMN code TEXT UNIQUE;").fires("sqlite-add-column-limits"));
        assert!(
            pre("ALTER TABLE posts ADD COLUMN at TEXT DEFAULT CURRENT_TIMESTAMP;").fires("sqlite-add-column-limits")
        );
        assert!(pre("ALTER TABLE posts ADD COLUMN n INTEGER PRIMARY KEY;").fires("sqlite-add-column-limits"));
    }

    #[test]
    fn what_sqlite_accepts_is_fine() {
        let run = pre("ALTER TABLE posts ADD COLUMN slug TEXT NOT NULL DEFAULT '';\nALTER TABLE posts ADD COLUMN at TEXT;\n\
                       ALTER TABLE posts ADD COLUMN n INTEGER DEFAULT -1;\nALTER TABLE posts ADD COLUMN b INTEGER DEFAULT FALSE;");
        assert!(run.errors().is_empty(), "{:?}", run.findings());
    }
}
