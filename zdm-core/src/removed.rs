//! What a migration removes: the columns and tables its `ALTER TABLE .. DROP COLUMN` and
//! `DROP TABLE` statements take away. The executor records them when the migration runs,
//! so an older build whose model structs still map one refuses to boot (it would fail on
//! its first query), whichever way the column went: a deferred drop or a plain statement.

use crate::lint::model::{split_qualified, Action, StmtKind};

/// One removed object, named as the statement names it without its schema (identifier
/// case folded as PostgreSQL folds it): the gate matches it against model structs'
/// unqualified table names (`model::same_table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub table: String,
    /// `None` for a whole table.
    pub column: Option<String>,
}

/// Deeper than this, the parser's recursion could exhaust a 2 MiB worker stack (measured
/// in docs/src/fuzzing.md: thousands of levels); no DROP is nested that deep anyway.
const MAX_NESTING: usize = 256;

/// The columns and tables `sql` drops, in statement order. A file nested deeper than any
/// real DDL (generated data, a huge expression) is not analysed: it removes nothing here.
pub fn removed(sql: &str) -> Vec<Removed> {
    if too_deep(sql) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for stmt in crate::lint::parse::parse(sql) {
        match stmt.kind {
            StmtKind::AlterTable { table, actions } => {
                let table = split_qualified(&table).1;
                for a in actions {
                    if let Action::DropColumn { column } = a {
                        if !column.is_empty() && !table.is_empty() {
                            out.push(Removed { table: table.clone(), column: Some(column) });
                        }
                    }
                }
            }
            StmtKind::DropTable { tables, .. } => {
                out.extend(
                    tables
                        .iter()
                        .map(|t| split_qualified(t).1)
                        .filter(|t| !t.is_empty())
                        .map(|table| Removed { table, column: None }),
                );
            }
            _ => {}
        }
    }
    out
}

/// Parentheses or brackets nested deeper than [`MAX_NESTING`], or an operator chain long
/// enough to recurse as deep (a rough count: quotes are not parsed here).
pub(crate) fn too_deep(sql: &str) -> bool {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in sql.bytes() {
        match b {
            b'(' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let chains = sql.matches("||").count() + sql.matches(" OR ").count() + sql.matches(" or ").count();
    max > MAX_NESTING || chains > 16 * MAX_NESTING
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_dropped_columns_and_tables() {
        let sql = "ALTER TABLE posts DROP COLUMN legacy, DROP COLUMN IF EXISTS \"Old Name\";\n\
                   DROP TABLE IF EXISTS audit, public.notes CASCADE;\n\
                   ALTER TABLE posts ADD COLUMN x int;\n\
                   SELECT 'DROP TABLE fake';";
        assert_eq!(
            removed(sql),
            [
                Removed { table: "posts".into(), column: Some("legacy".into()) },
                Removed { table: "posts".into(), column: Some("Old Name".into()) },
                Removed { table: "audit".into(), column: None },
                Removed { table: "notes".into(), column: None },
            ]
        );
    }

    #[test]
    fn a_qualified_table_is_named_without_its_schema_for_the_gate() {
        assert_eq!(
            removed("ALTER TABLE app.posts DROP COLUMN legacy; DROP TABLE app.\"Notes\";"),
            [
                Removed { table: "posts".into(), column: Some("legacy".into()) },
                Removed { table: "Notes".into(), column: None },
            ]
        );
    }

    #[test]
    fn absurdly_deep_sql_is_not_parsed() {
        let deep = format!("ALTER TABLE t DROP COLUMN c; SELECT {}1{};", "(".repeat(20_000), ")".repeat(20_000));
        assert!(removed(&deep).is_empty());
        assert_eq!(removed("ALTER TABLE t DROP COLUMN c; SELECT ((1));").len(), 1);
    }

    #[test]
    fn additive_sql_removes_nothing() {
        assert!(removed("CREATE TABLE t (id int); CREATE INDEX i ON t (id);").is_empty());
        assert!(removed("not sql at all ;;; DROP").is_empty());
    }
}
