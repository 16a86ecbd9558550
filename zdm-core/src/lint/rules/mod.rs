//! The rules, one per file; the file name is the rule id with `_` for `-`. Each file
//! documents its rule the way clippy documents lints (what it does, why it is bad, an
//! example, what to use instead, PostgreSQL version nuances), holds its check and its
//! positive and negative tests. [`RULES`] lists the PostgreSQL rules, [`SQLITE_RULES`] the
//! SQLite ones. A hazard both databases share keeps one id, and its file holds both
//! checks (`RULE` and `SQLITE`) with each database's own words; a hazard only SQLite has
//! gets a `sqlite-` id and a file of its own.

use std::collections::HashSet;

use super::model::{Action, Stmt, StmtKind};
use super::schema::{Key, Schema, Table};
use super::sqlite::model::Stmt as SqliteStmt;
use super::sqlite::Cx as SqliteCx;
use super::PgVersion;
use crate::migration::Phase;

pub mod add_required_column;
pub mod attach_partition_scan;
pub mod check_validated;
pub mod cic_corruption_window;
pub mod cic_partitioned;
pub mod cic_unnamed;
pub mod concurrently_in_transaction;
pub mod depends_on_pending_post;
pub mod detach_partition;
pub mod domain_constraint;
pub mod drop_column;
pub mod drop_database;
pub mod drop_default_of_not_null;
pub mod drop_function;
pub mod drop_index_not_concurrent;
pub mod drop_schema;
pub mod drop_table;
pub mod drop_view;
pub mod enum_add_value;
pub mod enum_add_value_in_txn;
pub mod exclusion_constraint;
pub mod explicit_lock;
pub mod foreign_key_validated;
pub mod incompatible_type_change;
pub mod index_not_concurrent;
pub mod json_column;
pub mod primary_key;
pub mod refresh_matview;
pub mod reindex_not_concurrent;
pub mod rename_column;
pub mod rename_enum_value;
pub mod rename_schema;
pub mod rename_table;
pub mod serial_identity_generated;
pub mod set_not_null;
pub mod sqlite_add_column_limits;
pub mod sqlite_create_index_blocks_writer;
pub mod sqlite_foreign_keys_in_transaction;
pub mod sqlite_statement_fails;
pub mod sqlite_table_rebuild;
pub mod sqlite_transaction_control;
pub mod statements_after_access_exclusive;
pub mod table_rewrite;
pub mod trigger_lock;
pub mod truncate;
pub mod truncate_cascade;
pub mod type_change;
pub mod type_change_with_check;
pub mod unanalysable;
pub mod unbatched_backfill;
pub mod unique_constraint;
pub mod validate_in_same_txn;
pub mod volatile_default;

/// Where the guide publishes one page per rule, generated from the rule's module doc (the
/// book under `docs/` in zdm's repository). Every finding links its page: [`page`].
pub const GUIDE: &str = "https://zdm-rs.github.io/zdm/rules/";

/// The guide's page of the rule `id`, e.g. `https://zdm-rs.github.io/zdm/rules/set-not-null.html`.
pub fn page(id: &str) -> String {
    format!("{GUIDE}{id}.html")
}

/// Every rule, in the order findings are reported for one statement.
pub static RULES: &[&Rule] = &[
    &unanalysable::RULE,
    &depends_on_pending_post::RULE,
    &drop_column::RULE,
    &drop_table::RULE,
    &drop_schema::RULE,
    &drop_database::RULE,
    &drop_view::RULE,
    &drop_function::RULE,
    &truncate::RULE,
    &truncate_cascade::RULE,
    &rename_column::RULE,
    &rename_table::RULE,
    &rename_schema::RULE,
    &rename_enum_value::RULE,
    &add_required_column::RULE,
    &drop_default_of_not_null::RULE,
    &type_change::RULE,
    &incompatible_type_change::RULE,
    &type_change_with_check::RULE,
    &index_not_concurrent::RULE,
    &drop_index_not_concurrent::RULE,
    &reindex_not_concurrent::RULE,
    &cic_partitioned::RULE,
    &cic_corruption_window::RULE,
    &cic_unnamed::RULE,
    &concurrently_in_transaction::RULE,
    &foreign_key_validated::RULE,
    &check_validated::RULE,
    &unique_constraint::RULE,
    &primary_key::RULE,
    &exclusion_constraint::RULE,
    &set_not_null::RULE,
    &volatile_default::RULE,
    &serial_identity_generated::RULE,
    &json_column::RULE,
    &table_rewrite::RULE,
    &refresh_matview::RULE,
    &attach_partition_scan::RULE,
    &detach_partition::RULE,
    &enum_add_value::RULE,
    &enum_add_value_in_txn::RULE,
    &explicit_lock::RULE,
    &domain_constraint::RULE,
    &trigger_lock::RULE,
    &unbatched_backfill::RULE,
    &validate_in_same_txn::RULE,
    &statements_after_access_exclusive::RULE,
];

/// Every SQLite rule, in the order findings are reported for one statement. No PostgreSQL
/// advice (`CONCURRENTLY`, `lock_timeout`, `NOT VALID`) ever reaches a SQLite set.
pub static SQLITE_RULES: &[&SqliteRule] = &[
    &unanalysable::SQLITE,
    &drop_column::SQLITE,
    &drop_table::SQLITE,
    &rename_column::SQLITE,
    &rename_table::SQLITE,
    &add_required_column::SQLITE,
    &type_change::SQLITE,
    &sqlite_table_rebuild::RULE,
    &sqlite_foreign_keys_in_transaction::RULE,
    &sqlite_transaction_control::RULE,
    &sqlite_add_column_limits::RULE,
    &sqlite_create_index_blocks_writer::RULE,
    &sqlite_statement_fails::RULE,
];

/// Every rule id of every dialect (a PostgreSQL rule and a SQLite rule may share one).
pub fn ids() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|r| r.id).chain(SQLITE_RULES.iter().map(|r| r.id))
}

/// A SQLite rule: the same fields as [`Rule`], with a check over the replayed statement.
pub struct SqliteRule {
    /// Stable id, also the file name; shared with the PostgreSQL rule of the same hazard.
    pub id: &'static str,
    pub kind: Kind,
    pub why: &'static str,
    pub recipe: &'static str,
    pub check: fn(&SqliteStmt, &SqliteCx<'_>, &mut Vec<Hit>),
}

/// How a rule's findings depend on the phase (see the module doc of `lint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Breaks the build still serving: an error in pre-deploy migrations only.
    Breaks,
    /// Breaks old or new code whatever the phase (renames): always an error.
    BreaksEveryPhase,
    /// Holds a lock that stalls traffic: an error in every phase.
    Locks,
    /// Both: an error in every phase.
    BreaksAndLocks,
    /// The database would refuse it (or silently not do it) when it runs: always an error.
    RunTimeError,
    /// Worth knowing, never blocks.
    Warning,
    /// Handled by zdm at run time; reported to tools only.
    Info,
}

/// One rule: its id, its phase semantics, and its check.
pub struct Rule {
    /// Stable id, also the file name (`drop-column` → `drop_column.rs`).
    pub id: &'static str,
    pub kind: Kind,
    /// Why it is unsafe: the lock taken or the old code broken.
    pub why: &'static str,
    /// The safe way.
    pub recipe: &'static str,
    pub check: fn(&Stmt, &Cx<'_>, &mut Vec<Hit>),
}

/// What a rule found in one statement.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The table the statement breaks or locks; a table created earlier in the same file
    /// exempts the hit (no old code uses it yet).
    pub table: Option<String>,
    pub message: String,
    /// Where in the file, when narrower than the statement.
    pub span: Option<std::ops::Range<usize>>,
}

impl Hit {
    pub fn on(table: &str, message: impl Into<String>) -> Hit {
        Hit { table: Some(table.to_string()), message: message.into(), span: None }
    }
    pub fn anywhere(message: impl Into<String>) -> Hit {
        Hit { table: None, message: message.into(), span: None }
    }
}

/// What the rules know when they judge one statement.
pub struct Cx<'a> {
    pub phase: Phase,
    /// The migration runs in one transaction (not `no_transaction`).
    pub transactional: bool,
    pub pg: PgVersion,
    /// The schema before this statement.
    pub schema: &'a Schema,
    pub file: &'a FileState,
    /// Every statement of the file, and this one's index.
    pub stmts: &'a [Stmt],
    pub index: usize,
    /// The file's text.
    pub sql: &'a str,
}

impl Cx<'_> {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.schema.table(name)
    }

    /// Created earlier in this file, or earlier in the release not yet deployed: no old
    /// code uses it.
    pub fn is_new(&self, table: &str) -> bool {
        self.file.is_new(table, self.schema)
    }

    /// The later statements of this file.
    pub fn later(&self) -> &[Stmt] {
        &self.stmts[self.index + 1..]
    }

    pub fn text(&self, stmt: &Stmt) -> &str {
        &self.sql[stmt.range.clone()]
    }
}

/// What earlier statements of the same file did.
#[derive(Debug, Default)]
pub struct FileState {
    /// Tables created in this file.
    pub created: HashSet<Key>,
    /// Constraints added `NOT VALID` in this file.
    pub not_valid: HashSet<String>,
    /// The first existing table an earlier statement locked ACCESS EXCLUSIVE (held until
    /// commit in a transactional migration).
    pub exclusive: Option<String>,
}

impl FileState {
    /// `table` (as written) was created earlier in this file, or by a migration of the
    /// release not yet deployed: no deployed build uses it.
    pub fn is_new(&self, table: &str, schema: &Schema) -> bool {
        let key = schema.resolve(table);
        self.created.contains(&key) || schema.unreleased.contains(&key)
    }
}

/// The `ALTER TABLE` actions of `stmt`, with the table name.
pub fn alter_actions(stmt: &Stmt) -> impl Iterator<Item = (&str, &Action)> {
    let (table, actions): (&str, &[Action]) = match &stmt.kind {
        StmtKind::AlterTable { table, actions } => (table, actions),
        _ => ("", &[]),
    };
    actions.iter().map(move |a| (table, a))
}

/// The existing table `stmt` locks ACCESS EXCLUSIVE, if any.
pub fn access_exclusive_table(stmt: &Stmt, schema: &Schema) -> Option<String> {
    match &stmt.kind {
        StmtKind::AlterTable { table, actions } => {
            let weaker = |a: &Action| {
                matches!(
                    a,
                    Action::ValidateConstraint { .. } | Action::EnableDisableTrigger | Action::AttachPartition { .. }
                ) || matches!(a, Action::AddConstraint(c) if matches!(c.kind, super::model::ConstraintKind::ForeignKey { .. }))
                    || matches!(a, Action::DetachPartition { concurrently: true, .. })
            };
            (!actions.is_empty() && !actions.iter().all(weaker)).then(|| table.clone())
        }
        StmtKind::DropTable { tables, .. } | StmtKind::Truncate { tables, .. } | StmtKind::Lock { tables } => {
            tables.first().cloned()
        }
        StmtKind::DropIndex { names, concurrently: false, .. } => names.iter().find_map(|n| schema.index_table(n)),
        StmtKind::TableRewrite { table, .. } => table.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod registry_tests {
    use super::SQLITE_RULES;

    /// A rule id leads to its file in one hop: `drop-column` is `drop_column.rs`, and the
    /// file declares that id.
    #[test]
    fn every_rule_id_is_its_file_name() {
        for id in super::ids() {
            let path = format!("{}/src/lint/rules/{}.rs", env!("CARGO_MANIFEST_DIR"), id.replace('-', "_"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{id}: {path}: {e}"));
            assert!(text.contains(&format!("id: \"{id}\"")), "{path} does not declare `{id}`");
            assert!(text.starts_with(&format!("//! # `{id}`")), "{path} does not document `{id}` first");
        }
    }

    /// No PostgreSQL advice reaches a SQLite set.
    #[test]
    fn sqlite_rules_give_no_postgres_advice() {
        for r in SQLITE_RULES {
            for text in [r.why, r.recipe] {
                for word in ["CONCURRENTLY", "lock_timeout", "NOT VALID", "ACCESS EXCLUSIVE", "VALIDATE"] {
                    assert!(!text.contains(word), "{}: {text}", r.id);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::super::{lint, LintConfig, LintInput, PgVersion};
    use crate::directive;
    use crate::migration::Phase;

    /// Tables the tests migrate against, created by an earlier migration.
    pub const SETUP: &str = "
        CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
        CREATE TABLE posts (
            id bigint PRIMARY KEY,
            user_id bigint,
            title varchar(100) NOT NULL,
            body text,
            price numeric(10,2),
            status text NOT NULL DEFAULT 'draft',
            score int CHECK (score >= 0),
            legacy_slug text
        );
        CREATE INDEX posts_title_idx ON posts (title);
        CREATE TABLE events (id bigint, at timestamptz) PARTITION BY RANGE (at);
        CREATE TYPE mood AS ENUM ('happy', 'sad');
    ";

    pub struct Run {
        pub sql: &'static str,
        pub phase: Phase,
        pub no_transaction: bool,
        pub pg: u32,
        pub setup: &'static str,
        /// `LintConfig::deployed`: the setup is version 1, the migration version 2.
        pub deployed: Option<i64>,
    }

    pub fn pre(sql: &'static str) -> Run {
        Run { sql, phase: Phase::PreDeploy, no_transaction: false, pg: 15, setup: SETUP, deployed: None }
    }
    pub fn post(sql: &'static str) -> Run {
        Run { phase: Phase::PostDeploy, ..pre(sql) }
    }

    impl Run {
        pub fn no_tx(mut self) -> Run {
            self.no_transaction = true;
            self
        }
        pub fn pg(mut self, major: u32) -> Run {
            self.pg = major;
            self
        }
        pub fn deployed(mut self, version: i64) -> Run {
            self.deployed = Some(version);
            self
        }
        pub fn setup(mut self, extra: &'static str) -> Run {
            self.setup = extra;
            self
        }
        /// The ids of the blocking findings of the migration after `setup`.
        pub fn errors(&self) -> Vec<&'static str> {
            self.findings().into_iter().filter(|f| f.blocks()).map(|f| f.rule).collect()
        }
        pub fn findings(&self) -> Vec<super::super::Finding> {
            let d = directive::parse(self.sql).expect("test SQL has valid directives");
            let config = LintConfig {
                dialect: Default::default(),
                postgres: PgVersion { major: self.pg, minor: None },
                start_after: Some(1),
                baseline: None,
                deployed: self.deployed,
            };
            let files = [
                LintInput {
                    version: 1,
                    path: "setup.sql",
                    sql: self.setup,
                    phase: Phase::PreDeploy,
                    no_transaction: false,
                    safety_assured: &[],
                },
                LintInput {
                    version: 2,
                    path: "m.sql",
                    sql: self.sql,
                    phase: self.phase,
                    no_transaction: self.no_transaction,
                    safety_assured: &d.safety_assured,
                },
            ];
            lint(&files, &config)
        }
        /// `rule` reports an error (or, for warning rules, any finding).
        pub fn fires(&self, rule: &str) -> bool {
            self.findings().iter().any(|f| f.rule == rule && f.assured.is_none())
        }
    }
}
