//! How the executor runs each statement of a migration. Most statements get zdm's short
//! lock timeout (so live queries never queue behind a lock request for long) and a
//! statement timeout; `CONCURRENTLY` operations and `VALIDATE CONSTRAINT` get a long lock
//! timeout and none, because their locks do not block traffic and a short one would make a
//! concurrent index build fail and leave an INVALID index behind.

use crate::lint::model::{Action, StmtKind};
use crate::lint::parse;
use crate::split;

/// Which timeouts a statement runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecClass {
    /// zdm's short lock timeout and the statement timeout.
    Normal,
    /// `CREATE/DROP INDEX CONCURRENTLY`, `REINDEX .. CONCURRENTLY`, `DETACH PARTITION ..
    /// CONCURRENTLY`, `REFRESH MATERIALIZED VIEW CONCURRENTLY`: long lock timeout, none for
    /// the statement. The first three cannot run inside a transaction block.
    Concurrent,
    /// `VALIDATE CONSTRAINT`: scans under SHARE UPDATE EXCLUSIVE; long timeouts too.
    Validate,
}

/// One statement as the executor sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecStatement<'a> {
    pub text: &'a str,
    /// 1-based line in the file.
    pub line: usize,
    pub class: ExecClass,
    /// `CREATE INDEX CONCURRENTLY name`: the index to check for an INVALID leftover.
    pub creates_index: Option<String>,
    /// PostgreSQL refuses it inside a transaction block.
    pub needs_no_transaction: bool,
}

/// The statements of `sql`, split lexically (quotes, dollar quotes and comments respected)
/// and classified with the parser.
pub fn statements(sql: &str) -> Vec<ExecStatement<'_>> {
    split::statements(sql)
        .into_iter()
        .map(|s| {
            // Nested deeper than any DDL: an ordinary statement (the parser's recursion
            // could exhaust a small stack).
            let parsed = if crate::removed::too_deep(s.text) { Vec::new() } else { parse::parse(s.text) };
            // The statement itself, not what a DO block inside it runs.
            let kind = parsed.iter().find(|p| !p.is_nested()).map(|p| &p.kind);
            let (class, creates_index, needs_no_transaction) = match kind {
                Some(StmtKind::CreateIndex { concurrently: true, name, .. }) => {
                    (ExecClass::Concurrent, name.clone(), true)
                }
                Some(StmtKind::DropIndex { concurrently: true, .. })
                | Some(StmtKind::Reindex { concurrently: true, .. }) => (ExecClass::Concurrent, None, true),
                Some(StmtKind::RefreshMatView { concurrently: true, .. }) => (ExecClass::Concurrent, None, false),
                Some(StmtKind::AlterTable { actions, .. }) => {
                    if actions.iter().any(|a| matches!(a, Action::DetachPartition { concurrently: true, .. })) {
                        (ExecClass::Concurrent, None, true)
                    } else if !actions.is_empty()
                        && actions.iter().all(|a| matches!(a, Action::ValidateConstraint { .. }))
                    {
                        (ExecClass::Validate, None, false)
                    } else {
                        (ExecClass::Normal, None, false)
                    }
                }
                _ => (ExecClass::Normal, None, false),
            };
            ExecStatement { text: s.text, line: s.line, class, creates_index, needs_no_transaction }
        })
        .collect()
}

/// Every statement must run outside a transaction: such a file is run that way even without
/// `-- zdm:no_transaction`.
pub fn only_no_transaction_statements(sql: &str) -> bool {
    // Each such statement says CONCURRENTLY: a file without the word needs no parse (this
    // runs for every file read, before the lint parses it).
    if !split::mentions(sql, "concurrently") {
        return false;
    }
    let stmts = statements(sql);
    !stmts.is_empty() && stmts.iter().all(|s| s.needs_no_transaction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let s = statements(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_a ON posts (a);\n\
             ALTER TABLE posts VALIDATE CONSTRAINT fk;\nALTER TABLE posts ADD COLUMN b int;",
        );
        assert_eq!(
            s.iter().map(|s| s.class).collect::<Vec<_>>(),
            [ExecClass::Concurrent, ExecClass::Validate, ExecClass::Normal]
        );
        assert_eq!(s[0].creates_index.as_deref(), Some("posts_a"));
        assert_eq!(s[1].line, 2);
    }

    #[test]
    fn files_of_concurrent_statements_only_run_outside_a_transaction() {
        assert!(only_no_transaction_statements(
            "-- build\nCREATE INDEX CONCURRENTLY a ON t (x);\nDROP INDEX CONCURRENTLY b;"
        ));
        assert!(!only_no_transaction_statements(
            "CREATE INDEX CONCURRENTLY a ON t (x);\nUPDATE t SET x = 1 WHERE id = 1;"
        ));
        assert!(!only_no_transaction_statements("-- nothing"));
    }

    #[test]
    fn a_do_block_is_one_normal_statement_whatever_it_runs() {
        let s = statements(
            "DO $$ BEGIN CREATE INDEX CONCURRENTLY a ON t (x); END $$;\nALTER TABLE t VALIDATE CONSTRAINT c;",
        );
        assert_eq!(s.iter().map(|s| s.class).collect::<Vec<_>>(), [ExecClass::Normal, ExecClass::Validate]);
        assert_eq!(s[0].creates_index, None);
    }
}
