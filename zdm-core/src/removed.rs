//! What a migration removes: the columns and tables its `ALTER TABLE .. DROP COLUMN` and
//! `DROP TABLE` statements take away. The executor records them when the migration runs,
//! so an older build whose model structs still map one refuses to boot (decision 15)
//! whichever way the column went: a deferred drop or a plain statement.

use crate::lint::model::{Action, StmtKind};

/// One removed object, named as the statement names it (unqualified, identifier case
/// folded as PostgreSQL folds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub table: String,
    /// `None` for a whole table.
    pub column: Option<String>,
}

/// The columns and tables `sql` drops, in statement order.
pub fn removed(sql: &str) -> Vec<Removed> {
    let mut out = Vec::new();
    for stmt in crate::lint::parse::parse(sql) {
        match stmt.kind {
            StmtKind::AlterTable { table, actions } => {
                for a in actions {
                    if let Action::DropColumn { column } = a {
                        if !column.is_empty() && !table.is_empty() {
                            out.push(Removed { table: table.clone(), column: Some(column) });
                        }
                    }
                }
            }
            StmtKind::DropTable { tables, .. } => {
                out.extend(tables.into_iter().filter(|t| !t.is_empty()).map(|table| Removed { table, column: None }));
            }
            _ => {}
        }
    }
    out
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
    fn additive_sql_removes_nothing() {
        assert!(removed("CREATE TABLE t (id int); CREATE INDEX i ON t (id);").is_empty());
        assert!(removed("not sql at all ;;; DROP").is_empty());
    }
}
