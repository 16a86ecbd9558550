//! The gate of post-deploy work: an after_deploy migration or a deferred drop runs only
//! when no live instance runs a build that predates the migration behind it, and (for a
//! drop) no live build's model struct still maps what it removes, and its minimum delay has
//! passed. Pure: the executor loads the instance registry and asks here.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{self, ModelInfo};
use crate::removed::Removed;
use crate::time::shown;

/// One live instance of the registry (heartbeat younger than the TTL).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Instance {
    pub id: String,
    pub app_name: String,
    pub app_version: String,
    pub hostname: String,
    pub pid: i32,
    /// When it registered.
    pub started_at: DateTime<Utc>,
    /// How long ago its last heartbeat reached the database (by the database's clock).
    #[cfg_attr(feature = "serde", serde(rename = "heartbeat_age_s", serialize_with = "crate::time::serde::secs"))]
    pub heartbeat_age: Duration,
    /// The migration versions its build embeds.
    pub embedded: Vec<i64>,
    /// The columns its model structs map.
    pub mapped: Vec<Mapped>,
    /// The columns its model structs declare unused (`table.column`).
    pub ignored: Vec<String>,
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {} pid {} (up since {} UTC, heartbeat {} s ago)",
            self.app_name,
            self.app_version,
            self.hostname,
            self.pid,
            shown(&self.started_at),
            self.heartbeat_age.as_secs()
        )
    }
}

/// A column that a model struct of some instance maps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Mapped {
    pub table: String,
    pub column: String,
    pub by: String,
}

impl Mapped {
    /// The registry's text form: `table<TAB>column<TAB>struct`.
    pub fn encode(&self) -> String {
        format!("{}\t{}\t{}", self.table, self.column, self.by)
    }

    pub fn decode(text: &str) -> Option<Mapped> {
        let mut parts = text.splitn(3, '\t');
        Some(Mapped { table: parts.next()?.into(), column: parts.next()?.into(), by: parts.next()?.into() })
    }

    /// Every column the given structs map.
    pub fn of(models: &[ModelInfo]) -> Vec<Mapped> {
        models
            .iter()
            .flat_map(|m| {
                m.columns.iter().map(|c| Mapped { table: m.table.into(), column: (*c).into(), by: m.name.into() })
            })
            .collect()
    }
}

/// What a deferred drop removes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum DropTarget {
    Column(String),
    Table,
    /// A view, e.g. the old name of a renamed table.
    View,
}

/// A pending deferred drop, as the registry of drops holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PendingDrop {
    pub id: i64,
    pub schema: String,
    pub table: String,
    pub target: DropTarget,
    /// The migration that scheduled it.
    pub scheduled_by: i64,
    /// When the migration scheduled it.
    pub scheduled_at: DateTime<Utc>,
    /// The minimum delay's end and whether it has passed (by the database's clock).
    pub not_before: Option<(DateTime<Utc>, bool)>,
    /// The read-only trigger is installed.
    pub read_only: bool,
    /// How long ago it was scheduled (by the database's clock).
    #[cfg_attr(feature = "serde", serde(rename = "age_s", serialize_with = "crate::time::serde::secs"))]
    pub age: Duration,
    /// SQL run before the drop (and before making it read-only), e.g. removing the sync
    /// trigger of a renamed column.
    pub before_drop: Option<String>,
    /// The column or table does not exist now (after a drop: not re-added since).
    pub gone: bool,
}

impl PendingDrop {
    /// The column it removes; `None` for a table or a view.
    pub fn column(&self) -> Option<&str> {
        match &self.target {
            DropTarget::Column(c) => Some(c),
            DropTarget::Table | DropTarget::View => None,
        }
    }
}

impl fmt::Display for PendingDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            DropTarget::Column(c) => write!(f, "drop column {}.{}.{}", self.schema, self.table, c)?,
            DropTarget::Table => write!(f, "drop table {}.{}", self.schema, self.table)?,
            DropTarget::View => write!(f, "drop view {}.{}", self.schema, self.table)?,
        }
        write!(f, " (scheduled by migration {} at {} UTC)", self.scheduled_by, shown(&self.scheduled_at))
    }
}

/// Why a pending item cannot run yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Blocker {
    /// A live instance runs a build without the migration `version`.
    OldBuild { instance: Instance, version: i64 },
    /// A live instance's struct `by` still maps the column (or reads the table).
    Mapped { instance: Instance, by: String },
    /// The drop's minimum delay ends at `until`.
    Delay { until: DateTime<Utc> },
    /// Another step must finish first (e.g. a backfill), described in words.
    Waits(String),
    /// The calling process runs a build without the migration `version` (a rolled-back
    /// build): it never carries out what that migration scheduled.
    ThisBuild { version: i64 },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::OldBuild { instance, version } => {
                write!(f, "{instance} runs a build without migration {version}")
            }
            Blocker::Mapped { instance, by } => write!(f, "{instance}: its struct `{by}` still maps it"),
            Blocker::Delay { until } => write!(f, "minimum delay until {} UTC", shown(until)),
            Blocker::Waits(what) => f.write_str(what),
            Blocker::ThisBuild { version } => write!(
                f,
                "this build does not embed migration {version} (an older build: it still uses what that \
                 migration retires; deploy a build that includes it)"
            ),
        }
    }
}

/// Blockers as one line, `; `-separated, as reports and errors show them.
pub fn one_line(blockers: &[Blocker]) -> String {
    blockers.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A backfill that has not finished, as the registry of backfills holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PendingBackfill {
    pub name: String,
    pub table: String,
    /// The migration that scheduled it.
    pub scheduled_by: i64,
    pub rows_done: i64,
    pub finished: bool,
}

impl PendingBackfill {
    fn blocker(&self) -> Blocker {
        Blocker::Waits(format!(
            "backfill `{}` of {} (scheduled by migration {}) has not finished: {} rows so far",
            self.name, self.table, self.scheduled_by, self.rows_done
        ))
    }
}

/// What holds back the after_deploy migration `version`.
pub fn migration_blockers(version: i64, live: &[Instance]) -> Vec<Blocker> {
    old_builds(version, live)
}

/// Unfinished backfills scheduled before the after_deploy migration `version`: post-deploy
/// work may depend on the data they write.
pub fn backfill_blockers(version: i64, backfills: &[PendingBackfill]) -> Vec<Blocker> {
    backfills.iter().filter(|b| !b.finished && b.scheduled_by < version).map(PendingBackfill::blocker).collect()
}

/// Unfinished backfills that a drop scheduled by the same or a later migration waits for
/// (a renamed column's old half is dropped only once the new half is filled).
pub fn drop_backfill_blockers(drop: &PendingDrop, backfills: &[PendingBackfill]) -> Vec<Blocker> {
    backfills
        .iter()
        .filter(|b| !b.finished && b.scheduled_by <= drop.scheduled_by)
        .map(PendingBackfill::blocker)
        .collect()
}

fn old_builds(version: i64, live: &[Instance]) -> Vec<Blocker> {
    live.iter()
        .filter(|i| !i.embedded.contains(&version))
        .map(|i| Blocker::OldBuild { instance: i.clone(), version })
        .collect()
}

/// What the calling process's own build holds back: it counts as a live build (a
/// rolled-back build never carries out work scheduled by a migration it lacks).
pub fn local_blockers(version: i64, local_embedded: &[i64]) -> Vec<Blocker> {
    if local_embedded.contains(&version) {
        Vec::new()
    } else {
        vec![Blocker::ThisBuild { version }]
    }
}

/// What holds back a deferred drop. An empty list means it may run now.
pub fn drop_blockers(drop: &PendingDrop, live: &[Instance]) -> Vec<Blocker> {
    let mut out = old_builds(drop.scheduled_by, live);
    for i in live {
        if let Some(m) = mapped_by(i, Some(&drop.schema), &drop.table, drop.column()) {
            out.push(Blocker::Mapped { instance: i.clone(), by: m.by.clone() });
        }
    }
    if let Some((until, false)) = &drop.not_before {
        out.push(Blocker::Delay { until: *until });
    }
    out
}

/// The steps of a deferred drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropStep {
    /// A trigger that rejects writes (and, for a column, its default dropped).
    ReadOnly,
    /// The `DROP` itself.
    Drop,
    /// Lifts the read-only trigger again: a build that still writes came back (a rollback).
    Writable,
}

impl DropStep {
    /// Whether the step may run while these blockers hold the drop back: the drop with
    /// none; the read-only trigger while only a minimum delay waits (old builds may still
    /// write, so it waits for them too); the lift while a live build (this one or
    /// another) predates the scheduling migration.
    pub fn allowed(self, blockers: &[Blocker]) -> bool {
        match self {
            DropStep::Drop => blockers.is_empty(),
            DropStep::ReadOnly => !blockers.is_empty() && blockers.iter().all(|b| matches!(b, Blocker::Delay { .. })),
            DropStep::Writable => {
                blockers.iter().any(|b| matches!(b, Blocker::OldBuild { .. } | Blocker::ThisBuild { .. }))
            }
        }
    }
}

/// A drop as the database records it: scheduled, and whether it was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRecord {
    pub drop: PendingDrop,
    /// Carried out.
    pub dropped: bool,
}

/// One scheduled drop with the gate's verdict on it, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DropStatus {
    pub drop: PendingDrop,
    /// Carried out.
    pub dropped: bool,
    /// What holds it back (empty when due or done).
    pub blockers: Vec<Blocker>,
}

impl DropStatus {
    /// The step the drop is ready for, if any: the one place that decides it. A read-only
    /// drop that a live build predates is made writable again (a rollback: that build may
    /// write it); otherwise the read-only trigger while only a delay waits, the drop once
    /// nothing does.
    pub fn next_step(&self) -> Option<DropStep> {
        if self.dropped {
            return None;
        }
        if self.drop.read_only {
            if DropStep::Writable.allowed(&self.blockers) {
                return Some(DropStep::Writable);
            }
        } else if DropStep::ReadOnly.allowed(&self.blockers) {
            return Some(DropStep::ReadOnly);
        }
        DropStep::Drop.allowed(&self.blockers).then_some(DropStep::Drop)
    }
}

/// The build of the calling process, which every verdict counts as a live build too: a
/// rolled-back build never carries out work scheduled by a migration it lacks, and never
/// drops what its own structs map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBuild {
    /// This process's registry id (its own row is judged as the local build instead).
    pub own_id: String,
    /// The migrations this build embeds.
    pub embedded: Vec<i64>,
    pub models: Vec<ModelInfo>,
    pub app_name: String,
    /// Some build of this app registered model structs before.
    pub app_had_models: bool,
}

impl LocalBuild {
    /// The live instances other than this process.
    pub fn others(&self, live: &[Instance]) -> Vec<Instance> {
        live.iter().filter(|i| i.id != self.own_id).cloned().collect()
    }

    /// The gate fails closed for a build without model structs where another live
    /// instance of the same app has some, or where an earlier build of the app registered
    /// some: the linker probably dropped them (unreferenced `inventory` entries), so this
    /// build cannot vouch that nothing maps what a drop removes.
    pub fn fail_closed(&self, others: &[Instance]) -> Option<Blocker> {
        if !self.models.is_empty() {
            return None;
        }
        let fix = "the linker may have dropped them (reference a struct of each model crate from the binary)";
        if let Some(other) = others.iter().find(|i| i.app_name == self.app_name && !i.mapped.is_empty()) {
            return Some(Blocker::Waits(format!("this build registers no model structs but {other} does: {fix}")));
        }
        self.app_had_models.then(|| {
            Blocker::Waits(format!(
                "this build registers no model structs but an earlier build of `{}` did: {fix}",
                self.app_name
            ))
        })
    }
}

/// Everything that holds back one drop: live builds without its migration or mapping
/// it, its delay, unfinished backfills, this build, and `closed` (reasons the gate cannot
/// judge at all, e.g. this process's own heartbeat is late).
pub fn drop_verdict(
    d: &PendingDrop,
    others: &[Instance],
    local: &LocalBuild,
    backfills: &[PendingBackfill],
    closed: &[Blocker],
) -> Vec<Blocker> {
    let mut out = local_blockers(d.scheduled_by, &local.embedded);
    out.extend(drop_blockers(d, others));
    out.extend(drop_backfill_blockers(d, backfills));
    out.extend(local.fail_closed(others));
    out.extend(closed.iter().cloned());
    out
}

/// The verdict on each recorded drop (done drops have none).
pub fn judge(
    drops: &[DropRecord],
    others: &[Instance],
    local: &LocalBuild,
    backfills: &[PendingBackfill],
    closed: &[Blocker],
) -> Vec<DropStatus> {
    drops
        .iter()
        .map(|r| DropStatus {
            drop: r.drop.clone(),
            dropped: r.dropped,
            blockers: if r.dropped { Vec::new() } else { drop_verdict(&r.drop, others, local, backfills, closed) },
        })
        .collect()
}

/// Everything that holds back the after_deploy migration `version`, which removes
/// `removed`: live builds without it (this one included), unfinished backfills before
/// it, live builds (and this build's structs) that map what it removes, and `closed`.
pub fn migration_verdict(
    version: i64,
    removed: &[Removed],
    others: &[Instance],
    local: &LocalBuild,
    backfills: &[PendingBackfill],
    closed: &[Blocker],
) -> Vec<Blocker> {
    let mut out = migration_blockers(version, others);
    out.extend(backfill_blockers(version, backfills));
    out.extend(local_blockers(version, &local.embedded));
    out.extend(local.fail_closed(others));
    out.extend(closed.iter().cloned());
    out.extend(removed_blockers(removed, others, &local.models));
    out.dedup();
    out
}

/// A struct of this build that maps what is already gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootConflict<'a> {
    /// The drop (deferred or plain) that removed it.
    pub drop: &'a PendingDrop,
    /// The struct that still maps it.
    pub model: &'a ModelInfo,
}

/// A build whose structs map something a migration or a deferred drop already removed
/// (and nothing re-added since) must not start: it would fail on its first query.
pub fn boot_conflict<'a>(drops: &'a [DropRecord], models: &'a [ModelInfo]) -> Option<BootConflict<'a>> {
    drops
        .iter()
        .filter(|r| r.dropped && r.drop.gone)
        .find_map(|r| local_user(&r.drop, models).map(|model| BootConflict { drop: &r.drop, model }))
}

/// The struct of this build that still needs what the drop removes: the drop is refused.
pub fn local_user<'a>(drop: &PendingDrop, models: &'a [ModelInfo]) -> Option<&'a ModelInfo> {
    local_mapping(models, Some(&drop.schema), &drop.table, drop.column())
}

/// What holds back a migration that removes these columns and tables (a plain
/// `ALTER TABLE .. DROP COLUMN` or `DROP TABLE`): live builds whose structs map them, and
/// this build's own structs that still do.
pub fn removed_blockers(removed: &[Removed], live: &[Instance], models: &[ModelInfo]) -> Vec<Blocker> {
    let mut out = Vec::new();
    for r in removed {
        for i in live {
            if let Some(m) = mapped_by(i, None, &r.table, r.column.as_deref()) {
                out.push(Blocker::Mapped { instance: i.clone(), by: m.by.clone() });
            }
        }
        if let Some(model) = local_mapping(models, None, &r.table, r.column.as_deref()) {
            let what = match &r.column {
                Some(c) => format!("{}.{c}", r.table),
                None => r.table.clone(),
            };
            out.push(Blocker::Waits(format!(
                "struct `{}` of this build still maps {what}, which this migration removes: remove the field \
                 (or list it in #[zdm::ignored_columns]) and deploy that build first",
                model.name
            )));
        }
    }
    out
}

/// A column (`column`) or any column (`None`) of the table that one of `i`'s structs maps.
fn mapped_by<'a>(i: &'a Instance, schema: Option<&str>, table: &str, column: Option<&str>) -> Option<&'a Mapped> {
    i.mapped
        .iter()
        .find(|m| model::same_table(&m.table, schema, table) && column.is_none_or(|c| m.column.eq_ignore_ascii_case(c)))
}

/// The struct of this build that maps the column (or reads the table).
fn local_mapping<'a>(
    models: &'a [ModelInfo],
    schema: Option<&str>,
    table: &str,
    column: Option<&str>,
) -> Option<&'a ModelInfo> {
    match column {
        Some(c) => model::mapping(models, schema, table, c),
        None => model::reader(models, schema, table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn instance(pid: i32, embedded: &[i64], mapped: &[(&str, &str, &str)]) -> Instance {
        Instance {
            id: format!("host:{pid}"),
            app_name: "app".into(),
            app_version: "1.0.0".into(),
            hostname: "host".into(),
            pid,
            started_at: at("2026-01-01T00:00:00Z"),
            heartbeat_age: Duration::from_secs(1),
            embedded: embedded.to_vec(),
            mapped: mapped
                .iter()
                .map(|(t, c, b)| Mapped { table: (*t).into(), column: (*c).into(), by: (*b).into() })
                .collect(),
            ignored: Vec::new(),
        }
    }

    fn column_drop(scheduled_by: i64) -> PendingDrop {
        PendingDrop {
            id: 1,
            schema: "public".into(),
            table: "posts".into(),
            target: DropTarget::Column("legacy".into()),
            scheduled_by,
            scheduled_at: at("2026-01-01T00:00:00Z"),
            not_before: None,
            read_only: false,
            age: Duration::ZERO,
            before_drop: None,
            gone: false,
        }
    }

    #[test]
    fn an_old_build_blocks_until_it_is_gone() {
        let old = instance(1, &[1, 2], &[("posts", "legacy", "a::Post")]);
        let new = instance(2, &[1, 2, 3], &[("posts", "title", "b::Post")]);
        let drop = column_drop(3);
        let blockers = drop_blockers(&drop, &[old.clone(), new.clone()]);
        assert_eq!(blockers.len(), 2, "{blockers:?}");
        assert!(blockers[0].to_string().contains("pid 1"), "{}", blockers[0]);
        assert!(blockers[1].to_string().contains("a::Post"), "{}", blockers[1]);
        // Times read as they always did: UTC, to the second.
        assert_eq!(
            old.to_string(),
            "app 1.0.0 on host pid 1 (up since 2026-01-01 00:00:00 UTC, heartbeat 1 s ago)",
            "{old}"
        );
        assert!(drop.to_string().ends_with("(scheduled by migration 3 at 2026-01-01 00:00:00 UTC)"), "{drop}");
        let delay = Blocker::Delay { until: at("2026-01-02T00:00:00.75Z") };
        assert_eq!(delay.to_string(), "minimum delay until 2026-01-02 00:00:00 UTC");
        assert!(drop_blockers(&drop, std::slice::from_ref(&new)).is_empty());
        assert_eq!(migration_blockers(3, &[old]).len(), 1);
    }

    #[test]
    fn a_new_build_that_still_maps_the_column_blocks_it() {
        let careless = instance(2, &[1, 2, 3], &[("public.posts", "legacy", "b::Post")]);
        assert!(
            matches!(&drop_blockers(&column_drop(3), &[careless])[..], [Blocker::Mapped { by, .. }] if by == "b::Post")
        );
        let mut table = column_drop(3);
        table.target = DropTarget::Table;
        let reader = instance(2, &[1, 2, 3], &[("posts", "id", "b::Post")]);
        assert_eq!(drop_blockers(&table, &[reader]).len(), 1);
    }

    #[test]
    fn the_minimum_delay_blocks_until_it_passes() {
        let mut drop = column_drop(3);
        drop.not_before = Some((at("2026-01-02T00:00:00Z"), false));
        assert!(matches!(&drop_blockers(&drop, &[])[..], [Blocker::Delay { .. }]));
        drop.not_before = Some((at("2026-01-02T00:00:00Z"), true));
        assert!(drop_blockers(&drop, &[]).is_empty());
    }

    #[test]
    fn the_local_build_refuses_a_drop_it_still_maps() {
        let models = [ModelInfo { name: "b::Post", table: "posts", columns: &["id", "legacy"], ignored: &[] }];
        assert_eq!(local_user(&column_drop(3), &models).map(|m| m.name), Some("b::Post"));
        let ignoring = [ModelInfo { name: "b::Post", table: "posts", columns: &["id"], ignored: &["legacy"] }];
        assert!(local_user(&column_drop(3), &ignoring).is_none());
    }

    #[test]
    fn unfinished_backfills_hold_later_post_work() {
        let b = PendingBackfill {
            name: "fill".into(),
            table: "posts".into(),
            scheduled_by: 3,
            rows_done: 10,
            finished: false,
        };
        assert!(backfill_blockers(3, std::slice::from_ref(&b)).is_empty(), "not the migration that scheduled it");
        assert!(backfill_blockers(4, std::slice::from_ref(&b))[0].to_string().contains("backfill `fill` of posts"));
        assert_eq!(drop_blockers(&column_drop(3), &[]).len(), 0);
        assert_eq!(drop_backfill_blockers(&column_drop(3), std::slice::from_ref(&b)).len(), 1);
        assert!(drop_backfill_blockers(&column_drop(2), std::slice::from_ref(&b)).is_empty());
        let done = PendingBackfill { finished: true, ..b };
        assert!(backfill_blockers(4, &[done]).is_empty());
    }

    #[test]
    fn the_local_build_counts_as_live() {
        assert!(local_blockers(3, &[1, 2, 3]).is_empty());
        let b = local_blockers(3, &[1, 2]);
        assert_eq!(b, [Blocker::ThisBuild { version: 3 }]);
        assert!(b[0].to_string().starts_with("this build does not embed migration 3"), "{}", b[0]);
        assert!(!DropStep::Drop.allowed(&b) && !DropStep::ReadOnly.allowed(&b) && DropStep::Writable.allowed(&b));
        let delay = [Blocker::Delay { until: at("2030-01-01T00:00:00Z") }];
        assert!(DropStep::ReadOnly.allowed(&delay) && !DropStep::Drop.allowed(&delay));
        assert!(DropStep::Drop.allowed(&[]) && !DropStep::Writable.allowed(&delay));
    }

    #[test]
    fn next_step_follows_the_drop_through_its_life() {
        let status = |read_only: bool, dropped: bool, blockers: Vec<Blocker>| DropStatus {
            drop: PendingDrop { read_only, ..column_drop(3) },
            dropped,
            blockers,
        };
        let delay = || Blocker::Delay { until: at("2030-01-01T00:00:00Z") };
        let old = || Blocker::OldBuild { instance: instance(1, &[1, 2], &[]), version: 3 };
        assert_eq!(status(false, false, vec![old()]).next_step(), None, "an old build may still write it");
        assert_eq!(status(false, false, vec![delay()]).next_step(), Some(DropStep::ReadOnly));
        assert_eq!(status(true, false, vec![delay()]).next_step(), None, "already read-only");
        assert_eq!(status(true, false, vec![]).next_step(), Some(DropStep::Drop));
        assert_eq!(status(false, false, vec![]).next_step(), Some(DropStep::Drop));
        assert_eq!(status(true, false, vec![old()]).next_step(), Some(DropStep::Writable), "a rollback");
        let this = Blocker::ThisBuild { version: 3 };
        assert_eq!(status(true, false, vec![this]).next_step(), Some(DropStep::Writable));
        assert_eq!(status(true, true, vec![]).next_step(), None, "done");
    }

    fn local(embedded: &[i64], models: Vec<ModelInfo>) -> LocalBuild {
        LocalBuild {
            own_id: "me".into(),
            embedded: embedded.to_vec(),
            models,
            app_name: "app".into(),
            app_had_models: false,
        }
    }

    const POST: ModelInfo = ModelInfo { name: "b::Post", table: "posts", columns: &["id", "legacy"], ignored: &[] };

    #[test]
    fn a_migration_verdict_lists_every_reason_in_order_once() {
        let old = instance(1, &[1, 2], &[("posts", "legacy", "a::Post")]);
        let fill = PendingBackfill {
            name: "fill".into(),
            table: "posts".into(),
            scheduled_by: 2,
            rows_done: 10,
            finished: false,
        };
        let removed = [Removed { table: "posts".into(), column: Some("legacy".into()) }];
        let closed = [Blocker::Waits("own heartbeat late".into())];
        let v = migration_verdict(3, &removed, std::slice::from_ref(&old), &local(&[1, 2], vec![]), &[fill], &closed);
        let kinds: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(v.len(), 6, "{kinds:#?}");
        assert!(matches!(v[0], Blocker::OldBuild { version: 3, .. }), "live builds without it first: {kinds:#?}");
        assert!(kinds[1].contains("backfill `fill`"), "{kinds:#?}");
        assert_eq!(v[2], Blocker::ThisBuild { version: 3 });
        // This build has no structs while another instance of the app has some.
        assert!(kinds[3].contains("registers no model structs"), "{kinds:#?}");
        assert_eq!(v[4], closed[0]);
        assert!(matches!(&v[5], Blocker::Mapped { by, .. } if by == "a::Post"), "what it removes last: {kinds:#?}");
        let twice = migration_verdict(3, &removed, &[old.clone(), old], &local(&[1, 2, 3], vec![POST]), &[], &[]);
        assert_eq!(
            twice.iter().filter(|b| matches!(b, Blocker::OldBuild { .. })).count(),
            1,
            "deduplicated: {twice:?}"
        );
        // Nothing holds it: this build embeds it, nobody maps or lacks it.
        let new = instance(2, &[1, 2, 3], &[]);
        assert!(migration_verdict(3, &removed, &[new], &local(&[1, 2, 3], vec![]), &[], &[]).is_empty());
        // This build's own struct still maps the removed column.
        let mine = migration_verdict(3, &removed, &[], &local(&[1, 2, 3], vec![POST]), &[], &[]);
        assert!(mine[0].to_string().contains("struct `b::Post` of this build still maps posts.legacy"), "{mine:?}");
    }

    #[test]
    fn a_drop_verdict_counts_this_build_delays_backfills_and_the_closed_gate() {
        let mut drop = column_drop(3);
        drop.not_before = Some((at("2030-01-01T00:00:00Z"), false));
        let v = drop_verdict(&drop, &[], &local(&[1, 2], vec![]), &[], &[]);
        assert_eq!(v, [Blocker::ThisBuild { version: 3 }, Blocker::Delay { until: at("2030-01-01T00:00:00Z") }]);
        let closed = [Blocker::Waits("own heartbeat late".into())];
        let v = drop_verdict(&column_drop(3), &[], &local(&[1, 2, 3], vec![]), &[], &closed);
        assert_eq!(v, closed, "a closed gate holds even a drop nothing else holds");
        let judged = judge(
            &[DropRecord { drop: column_drop(3), dropped: true }, DropRecord { drop: column_drop(3), dropped: false }],
            &[],
            &local(&[1, 2], vec![]),
            &[],
            &[],
        );
        assert!(judged[0].blockers.is_empty(), "a done drop has no blockers");
        assert_eq!(judged[1].blockers, [Blocker::ThisBuild { version: 3 }]);
    }

    #[test]
    fn a_build_that_maps_what_is_gone_must_not_boot() {
        let gone = PendingDrop { gone: true, ..column_drop(3) };
        let records = |dropped: bool, drop: PendingDrop| [DropRecord { drop, dropped }];
        let done = records(true, gone.clone());
        let c = boot_conflict(&done, &[POST]).expect("maps a dropped column");
        assert_eq!((c.drop.id, c.model.name), (1, "b::Post"));
        assert!(boot_conflict(&records(false, gone.clone()), &[POST]).is_none(), "still pending");
        assert!(boot_conflict(&records(true, column_drop(3)), &[POST]).is_none(), "re-added since (not gone)");
        assert!(boot_conflict(&records(true, gone), &[]).is_none(), "no struct maps it");
    }

    #[test]
    fn a_build_that_lost_its_models_fails_closed() {
        let local = LocalBuild {
            own_id: "me".into(),
            embedded: vec![1, 2, 3],
            models: Vec::new(),
            app_name: "app".into(),
            app_had_models: false,
        };
        let mut other = instance(7, &[1, 2, 3], &[("posts", "title", "b::Post")]);
        other.app_name = "worker".into();
        assert_eq!(local.fail_closed(&[]), None);
        assert!(local.fail_closed(std::slice::from_ref(&other)).is_none(), "another app's models say nothing");
        other.app_name = "app".into();
        let closed = local.fail_closed(std::slice::from_ref(&other)).expect("same app has models");
        assert!(closed.to_string().contains("registers no model structs"), "{closed}");
        let had = LocalBuild { app_had_models: true, ..local.clone() };
        assert!(had.fail_closed(&[]).is_some());
        assert_eq!(local.others(&[other.clone(), Instance { id: "me".into(), ..other }]).len(), 1);
    }

    #[test]
    fn mapped_columns_round_trip_through_text() {
        let m = Mapped { table: "s.posts".into(), column: "title".into(), by: "app::models::Post".into() };
        assert_eq!(Mapped::decode(&m.encode()), Some(m));
        assert_eq!(Mapped::decode("garbage"), None);
    }
}
