//! Deciding what a phase runs, given what the database says already ran.
//!
//! The rules of a rolling deploy live here: `run_pre` never runs an after_deploy
//! migration; `run_post` runs one only once every pre-deploy migration below it has run;
//! rows the embedded set does not know (a newer build migrated first) are reported, not
//! fatal; a changed checksum of an applied migration is fatal; a pending pre-deploy
//! migration older than the newest applied one (a merged branch) still runs, with a notice.

use std::collections::HashMap;
use std::fmt;

use crate::checksum::to_hex;
use crate::migration::{Migration, Phase};

/// Which migrations a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `run_pre`: pending pre-deploy migrations.
    Pre,
    /// `run_post`: pending after_deploy migrations whose earlier pre-deploy ones ran.
    Post,
    /// `run_all`: everything pending, in version order.
    All,
}

/// Who recorded a migration as applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedBy {
    Zdm,
    /// A successful row of sqlx's `_sqlx_migrations` (adoption: never re-run history).
    Sqlx,
    /// A row of diesel's `__diesel_schema_migrations` (no checksum: diesel keeps none).
    Diesel,
}

/// A migration the database records as successfully applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: i64,
    pub description: String,
    pub checksum: Vec<u8>,
    pub by: AppliedBy,
}

/// What the plan wants the caller to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Applied in the database but not embedded in this build: a newer build migrated.
    UnknownApplied { version: i64, description: String },
    /// Pending, but older than the newest applied migration (a merged branch).
    OutOfOrder { version: i64, source: &'static str, newest_applied: i64 },
    /// An after_deploy migration that must wait for a pending pre-deploy one.
    PostWaits { version: i64, source: &'static str, waits_for: i64 },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::UnknownApplied { version, description } => write!(
                f,
                "migration {version} ({description}) is applied but not embedded in this build; \
                 a newer build has migrated, this one keeps running"
            ),
            Notice::OutOfOrder { version, source, newest_applied } => write!(
                f,
                "{source}: migration {version} is older than the newest applied migration {newest_applied}; \
                 applying it now (merged late?)"
            ),
            Notice::PostWaits { version, source, waits_for } => write!(
                f,
                "{source}: after_deploy migration {version} waits until pre-deploy migration {waits_for} has run (run_pre first)"
            ),
        }
    }
}

/// A reason the set cannot be run against this database at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    ChecksumMismatch { version: i64, source: &'static str, embedded: Vec<u8>, applied: Vec<u8> },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::ChecksumMismatch { version, source, embedded, applied } => write!(
                f,
                "{source}: migration {version} was changed after it was applied \
                 (applied checksum {}, file now {}); restore the applied content and put the change in a new migration",
                to_hex(applied),
                to_hex(embedded)
            ),
        }
    }
}

/// What a call will run, in order, and what to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices into the embedded set, in version order.
    pub run: Vec<usize>,
    pub notices: Vec<Notice>,
}

/// Plans `target` for `set` (sorted by version) against `applied`.
pub fn plan(set: &[Migration], applied: &[Applied], target: Target) -> Result<Plan, Vec<PlanError>> {
    let by_version: HashMap<i64, &Applied> = applied.iter().map(|a| (a.version, a)).collect();
    let mut errors = Vec::new();
    let mut out = Plan::default();

    for m in set {
        if let Some(a) = by_version.get(&m.version) {
            if a.by == AppliedBy::Zdm && a.checksum != m.checksum {
                errors.push(PlanError::ChecksumMismatch {
                    version: m.version,
                    source: m.source,
                    embedded: m.checksum.to_vec(),
                    applied: a.checksum.clone(),
                });
            }
        }
    }
    let mut unknown: Vec<&Applied> = applied.iter().filter(|a| !set.iter().any(|m| m.version == a.version)).collect();
    unknown.sort_by_key(|a| a.version);
    out.notices.extend(
        unknown.into_iter().map(|a| Notice::UnknownApplied { version: a.version, description: a.description.clone() }),
    );
    if !errors.is_empty() {
        return Err(errors);
    }

    let newest_applied = applied.iter().map(|a| a.version).max();
    // An after_deploy migration pending below applied pre-deploy ones is the two phases
    // working as designed; it is out of order only below an applied after_deploy one.
    let newest_post_applied = set
        .iter()
        .filter(|m| m.phase == Phase::PostDeploy && by_version.contains_key(&m.version))
        .map(|m| m.version)
        .max();
    // The lowest pending pre-deploy migration: an after_deploy one above it must wait.
    let first_pending_pre = set
        .iter()
        .filter(|m| m.phase == Phase::PreDeploy && !by_version.contains_key(&m.version))
        .map(|m| m.version)
        .min();

    for (i, m) in set.iter().enumerate() {
        if by_version.contains_key(&m.version) {
            continue;
        }
        let wanted = match (target, m.phase) {
            (Target::All, _) | (Target::Pre, Phase::PreDeploy) => true,
            (Target::Post, Phase::PostDeploy) => match first_pending_pre {
                Some(pre) if pre < m.version => {
                    out.notices.push(Notice::PostWaits { version: m.version, source: m.source, waits_for: pre });
                    false
                }
                _ => true,
            },
            _ => false,
        };
        if !wanted {
            continue;
        }
        let newest = if m.phase == Phase::PostDeploy { newest_post_applied } else { newest_applied };
        if let Some(newest) = newest.filter(|&n| n > m.version) {
            out.notices.push(Notice::OutOfOrder { version: m.version, source: m.source, newest_applied: newest });
        }
        out.run.push(i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn m(version: i64, phase: Phase, checksum: &'static [u8]) -> Migration {
        Migration {
            version,
            description: "d",
            source: "migrations/x.sql",
            checksum,
            phase,
            no_transaction: false,
            safety_assured: &[],
            lock_timeout_ms: None,
            statement_timeout_ms: None,
        }
    }
    const PRE: Phase = Phase::PreDeploy;
    const POST: Phase = Phase::PostDeploy;

    fn applied(version: i64, checksum: &[u8]) -> Applied {
        Applied { version, description: "d".into(), checksum: checksum.to_vec(), by: AppliedBy::Zdm }
    }

    fn versions(set: &[Migration], p: &Plan) -> Vec<i64> {
        p.run.iter().map(|&i| set[i].version).collect()
    }

    #[test]
    fn pre_never_runs_after_deploy_migrations() {
        let set = [m(1, PRE, b"a"), m(2, POST, b"b"), m(3, PRE, b"c")];
        let p = plan(&set, &[], Target::Pre).unwrap();
        assert_eq!(versions(&set, &p), [1, 3]);
    }

    #[test]
    fn post_waits_for_lower_pending_pre() {
        let set = [m(1, PRE, b"a"), m(2, POST, b"b"), m(3, PRE, b"c"), m(4, POST, b"d")];
        let p = plan(&set, &[applied(1, b"a")], Target::Post).unwrap();
        assert_eq!(versions(&set, &p), [2]);
        assert_eq!(p.notices, [Notice::PostWaits { version: 4, source: "migrations/x.sql", waits_for: 3 }]);
        let p = plan(&set, &[applied(1, b"a"), applied(3, b"c")], Target::Post).unwrap();
        assert_eq!(versions(&set, &p), [2, 4]);
    }

    #[test]
    fn all_runs_everything_in_order() {
        let set = [m(1, PRE, b"a"), m(2, POST, b"b"), m(3, PRE, b"c")];
        assert_eq!(versions(&set, &plan(&set, &[applied(2, b"b")], Target::All).unwrap()), [1, 3]);
    }

    #[test]
    fn unknown_newer_rows_are_notices_not_errors() {
        let set = [m(1, PRE, b"a")];
        let p = plan(&set, &[applied(1, b"a"), applied(7, b"z")], Target::Pre).unwrap();
        assert!(p.run.is_empty());
        assert_eq!(p.notices, [Notice::UnknownApplied { version: 7, description: "d".into() }]);
    }

    #[test]
    fn changed_checksum_is_fatal_and_names_both() {
        let set = [m(1, PRE, b"\x01")];
        let e = plan(&set, &[applied(1, b"\x02")], Target::Pre).unwrap_err();
        let msg = e[0].to_string();
        assert!(
            msg.contains("migrations/x.sql") && msg.contains("applied checksum 02") && msg.contains("file now 01"),
            "{msg}"
        );
    }

    #[test]
    fn sqlx_rows_count_as_applied_without_checksum_check() {
        let set = [m(1, PRE, b"a"), m(2, PRE, b"b")];
        let sqlx = Applied { version: 1, description: "d".into(), checksum: b"other".to_vec(), by: AppliedBy::Sqlx };
        assert_eq!(versions(&set, &plan(&set, &[sqlx], Target::Pre).unwrap()), [2]);
    }

    #[test]
    fn late_merged_pre_runs_with_a_notice() {
        let set = [m(1, PRE, b"a"), m(2, PRE, b"b"), m(3, PRE, b"c")];
        let p = plan(&set, &[applied(1, b"a"), applied(3, b"c")], Target::Pre).unwrap();
        assert_eq!(versions(&set, &p), [2]);
        assert!(matches!(p.notices[0], Notice::OutOfOrder { version: 2, newest_applied: 3, .. }));
    }

    #[test]
    fn an_after_deploy_migration_below_applied_pre_deploy_ones_is_not_out_of_order() {
        let set = [m(1, PRE, b"a"), m(2, POST, b"b"), m(3, PRE, b"c")];
        let p = plan(&set, &[applied(1, b"a"), applied(3, b"c")], Target::Post).unwrap();
        assert_eq!(versions(&set, &p), [2]);
        assert!(p.notices.is_empty(), "the two phases as designed: {:?}", p.notices);
        // Below an applied after_deploy migration it is (a branch merged late).
        let set = [m(1, PRE, b"a"), m(2, POST, b"b"), m(3, POST, b"c")];
        let p = plan(&set, &[applied(1, b"a"), applied(3, b"c")], Target::Post).unwrap();
        assert!(matches!(p.notices[0], Notice::OutOfOrder { version: 2, newest_applied: 3, .. }));
    }
}
