//! # `cic-corruption-window`
//!
//! **What it does:** warns about `CREATE INDEX CONCURRENTLY` / `REINDEX CONCURRENTLY` when
//! the target is PostgreSQL 14.0 to 14.3 (configure the minor: `postgres = "14.2"`). zdm also
//! checks the server's version when the migration runs.
//!
//! **Why is this bad?** Those releases can build corrupt indexes concurrently (fixed in
//! 14.4).
//!
//! **Example:**
//! ```sql
//! CREATE INDEX CONCURRENTLY posts_user_idx ON posts (user_id);   -- on 14.2
//! ```
//! **Use instead:** upgrade the server to 14.4 or later first.
//!
//! **PostgreSQL versions:** 14.0–14.3 only.

use super::{Cx, Hit, Kind, Rule};
use crate::lint::model::{Stmt, StmtKind};

pub static RULE: Rule = Rule {
    id: "cic-corruption-window",
    kind: Kind::Warning,
    why: "PostgreSQL 14.0 to 14.3 can build corrupt indexes concurrently (fixed in 14.4)",
    recipe: "upgrade the server to 14.4 or later before building indexes concurrently",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let concurrent = matches!(
        stmt.kind,
        StmtKind::CreateIndex { concurrently: true, .. } | StmtKind::Reindex { concurrently: true, .. }
    );
    if concurrent && cx.pg.major == 14 && cx.pg.minor.is_some_and(|m| m < 4) {
        out.push(Hit::anywhere("builds an index concurrently on PostgreSQL 14.0–14.3"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::lint::{lint, LintConfig, LintInput, PgVersion};
    use crate::Phase;

    fn on(version: PgVersion) -> bool {
        let file = LintInput {
            version: 1,
            path: "m.sql",
            sql: "CREATE INDEX CONCURRENTLY i ON t (a);",
            phase: Phase::PreDeploy,
            no_transaction: true,
            safety_assured: &[],
        };
        lint(&[file], &LintConfig { postgres: version, ..Default::default() })
            .iter()
            .any(|f| f.rule == "cic-corruption-window")
    }

    #[test]
    fn warns_on_affected_minors_only() {
        assert!(on(PgVersion { major: 14, minor: Some(2) }));
        assert!(!on(PgVersion { major: 14, minor: Some(4) }));
        assert!(!on(PgVersion { major: 15, minor: None }));
        assert!(!pre("CREATE INDEX CONCURRENTLY i ON posts (a);").no_tx().fires("cic-corruption-window"));
    }
}
