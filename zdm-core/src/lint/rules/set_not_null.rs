//! # `set-not-null`
//!
//! **What it does:** flags `ALTER COLUMN .. SET NOT NULL` on an existing table, unless a
//! VALID `CHECK (col IS NOT NULL)` already exists and the target is PostgreSQL 12 or later,
//! or the replayed schema shows the column NOT NULL already (declared so, a primary key,
//! serial or identity): PostgreSQL then does nothing.
//!
//! **Why is this bad?** PostgreSQL scans every row to prove it under ACCESS EXCLUSIVE.
//!
//! **Example:**
//! ```sql
//! ALTER TABLE posts ALTER COLUMN body SET NOT NULL;
//! ```
//! **Use instead:**
//! ```sql
//! ALTER TABLE posts ADD CONSTRAINT body_not_null CHECK (body IS NOT NULL) NOT VALID;
//! -- next migration:
//! ALTER TABLE posts VALIDATE CONSTRAINT body_not_null;
//! -- next migration (no scan on PostgreSQL 12+):
//! ALTER TABLE posts ALTER COLUMN body SET NOT NULL;
//! ALTER TABLE posts DROP CONSTRAINT body_not_null;
//! ```
//! **PostgreSQL versions:** the validated check skips the scan from PostgreSQL 12.

use super::{alter_actions, Cx, Hit, Kind, Rule};
use crate::lint::model::{Action, Stmt};

pub static RULE: Rule = Rule {
    id: "set-not-null",
    kind: Kind::Locks,
    why: "it scans every row under ACCESS EXCLUSIVE to prove the column has no NULL",
    recipe: "add `CHECK (col IS NOT NULL) NOT VALID`, VALIDATE it in a later migration, then SET NOT NULL (no scan on PostgreSQL 12+) and drop the check",
    check,
};

fn check(stmt: &Stmt, cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for (table, action) in alter_actions(stmt) {
        if let Action::SetNotNull { column } = action {
            let t = cx.table(table);
            let already = t.and_then(|t| t.column(column)).is_some_and(|c| c.not_null);
            let proven = cx.pg.major >= 12 && t.is_some_and(|t| t.has_valid_not_null_check(column));
            if !already && !proven {
                out.push(Hit::on(table, format!("sets NOT NULL on `{table}.{column}` by scanning the table")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn plain_set_not_null_fires() {
        assert!(post("ALTER TABLE posts ALTER COLUMN body SET NOT NULL;").fires("set-not-null"));
    }

    #[test]
    fn a_column_already_not_null_is_a_no_op() {
        let setup = "CREATE TABLE t (id bigserial, k int GENERATED ALWAYS AS IDENTITY, p int PRIMARY KEY, n int NOT NULL, m int);";
        for sql in [
            "ALTER TABLE t ALTER COLUMN id SET NOT NULL;",
            "ALTER TABLE t ALTER COLUMN k SET NOT NULL;",
            "ALTER TABLE t ALTER COLUMN p SET NOT NULL;",
            "ALTER TABLE t ALTER COLUMN n SET NOT NULL;",
        ] {
            assert!(!post(sql).setup(setup).fires("set-not-null"), "{sql}");
        }
        assert!(post("ALTER TABLE t ALTER COLUMN m SET NOT NULL;").setup(setup).fires("set-not-null"));
        // NOT NULL dropped since: the scan is back.
        let dropped = "CREATE TABLE t (n int NOT NULL);\nALTER TABLE t ALTER COLUMN n DROP NOT NULL;";
        assert!(post("ALTER TABLE t ALTER COLUMN n SET NOT NULL;").setup(dropped).fires("set-not-null"));
    }

    #[test]
    fn validated_check_first_is_fine_on_12_plus() {
        let setup = "CREATE TABLE posts (id int, body text);\n\
                     ALTER TABLE posts ADD CONSTRAINT body_nn CHECK (body IS NOT NULL) NOT VALID;\n\
                     ALTER TABLE posts VALIDATE CONSTRAINT body_nn;";
        assert!(!post("ALTER TABLE posts ALTER COLUMN body SET NOT NULL;").setup(setup).fires("set-not-null"));
        assert!(post("ALTER TABLE posts ALTER COLUMN body SET NOT NULL;").setup(setup).pg(11).fires("set-not-null"));
        let not_validated = "CREATE TABLE posts (id int, body text);\nALTER TABLE posts ADD CONSTRAINT body_nn CHECK (body IS NOT NULL) NOT VALID;";
        assert!(post("ALTER TABLE posts ALTER COLUMN body SET NOT NULL;").setup(not_validated).fires("set-not-null"));
        // A table made before the migration set: the check's history is still learned.
        let outside = "ALTER TABLE legacy ADD CONSTRAINT nn CHECK (a IS NOT NULL) NOT VALID;\n\
                       ALTER TABLE legacy VALIDATE CONSTRAINT nn;";
        assert!(!post("ALTER TABLE legacy ALTER COLUMN a SET NOT NULL;").setup(outside).fires("set-not-null"));
    }
}
