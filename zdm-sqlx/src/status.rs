//! [`Status`]: what is applied, what waits for `run_pre` and what waits for `run_post`,
//! with the ledger's details; `Display` prints it as a table.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use zdm_core::time::shown;

use zdm_core::plan::{self, AppliedBy, Target};
use zdm_core::Phase;

use zdm_core::gate::{self, Blocker, DropStatus};

use crate::backend::MigratePool;
use crate::error::Error;
use crate::job::{load_applied, make_plan, migration_gate, Job};
use crate::local::Local;
use crate::records::{BackfillRow, LedgerRow};
use crate::registry;

/// Where one migration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum State {
    /// Applied by zdm.
    Applied,
    /// Applied by sqlx before zdm was adopted (`_sqlx_migrations`).
    AppliedBySqlx,
    /// Applied by diesel before zdm was adopted (`__diesel_schema_migrations`).
    AppliedByDiesel,
    /// Not applied; `run_pre` will apply it.
    PendingPre,
    /// Not applied; `run_post` will apply it, once `waits_for` (a pre-deploy version) ran.
    PendingPost { waits_for: Option<i64> },
    /// Its last attempt failed (see the ledger row's error); the next run retries it.
    Failed,
    /// Applied in the database but not embedded in this build (a newer build migrated).
    NotEmbedded,
}

/// One line of the status table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct StatusRow {
    pub version: i64,
    pub description: String,
    pub phase: Option<Phase>,
    pub state: State,
    /// zdm's ledger row, when there is one.
    pub ledger: Option<LedgerRow>,
    /// For a pending after_deploy migration: the live instances that hold it back.
    pub blockers: Vec<Blocker>,
    /// For a pending after_deploy migration: since when a build that embeds it runs.
    pub waiting_since: Option<DateTime<Utc>>,
}

/// The migration status of one database for one embedded set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Status {
    pub rows: Vec<StatusRow>,
    /// Every deferred drop scheduled in this database, with what holds back the pending ones.
    pub deferred: Vec<DropStatus>,
    /// The live instances of the registry (other than this process).
    pub instances: Vec<gate::Instance>,
    /// Post-deploy work that has waited longer than `Migrator::lag_warning`.
    pub warnings: Vec<String>,
    /// Every backfill scheduled in this database, with its progress.
    pub backfills: Vec<BackfillRow>,
}

impl Status {
    /// Rows in `state` (compared by kind, ignoring `waits_for`).
    fn with(&self, f: impl Fn(&State) -> bool) -> impl Iterator<Item = &StatusRow> {
        self.rows.iter().filter(move |r| f(&r.state))
    }
    pub fn applied(&self) -> impl Iterator<Item = &StatusRow> {
        self.with(|s| matches!(s, State::Applied | State::AppliedBySqlx | State::AppliedByDiesel))
    }
    pub fn pending_pre(&self) -> impl Iterator<Item = &StatusRow> {
        self.with(|s| matches!(s, State::PendingPre))
    }
    pub fn pending_post(&self) -> impl Iterator<Item = &StatusRow> {
        self.with(|s| matches!(s, State::PendingPost { .. }))
    }
    pub fn failed(&self) -> impl Iterator<Item = &StatusRow> {
        self.with(|s| matches!(s, State::Failed))
    }
}

pub(crate) async fn load<B: MigratePool>(job: Job<'_>, backend: &B) -> Result<Status, Error> {
    job.check::<B>()?;
    let names = job.settings.names();
    let found = backend.bootstrap(&names).await?;
    let ledger = backend.load_ledger(&names).await?;
    let applied = load_applied(backend, &names, found.foreign).await?;
    let metas = job.metas();
    // Reuse the planner so status says exactly what run_post would wait for.
    let post_plan = make_plan(&metas, &applied, Target::Post)?;

    let mut rows = Vec::new();
    for meta in &metas {
        let row = ledger.iter().find(|r| r.version == meta.version).cloned();
        let by = applied.iter().find(|a| a.version == meta.version).map(|a| a.by);
        let state = match (by, &row) {
            (Some(AppliedBy::Zdm), _) => State::Applied,
            (Some(AppliedBy::Sqlx), _) => State::AppliedBySqlx,
            (Some(AppliedBy::Diesel), _) => State::AppliedByDiesel,
            (None, Some(r)) if !r.success => State::Failed,
            _ if meta.phase == Phase::PreDeploy => State::PendingPre,
            _ => State::PendingPost {
                waits_for: post_plan.notices.iter().find_map(|n| match n {
                    plan::Notice::PostWaits { version, waits_for, .. } if *version == meta.version => Some(*waits_for),
                    _ => None,
                }),
            },
        };
        rows.push(StatusRow {
            version: meta.version,
            description: meta.description.to_string(),
            phase: Some(meta.phase),
            state,
            ledger: row,
            blockers: Vec::new(),
            waiting_since: None,
        });
    }
    for a in applied.iter().filter(|a| !metas.iter().any(|m| m.version == a.version)) {
        rows.push(StatusRow {
            version: a.version,
            description: a.description.clone(),
            phase: ledger.iter().find(|r| r.version == a.version).and_then(|r| r.phase),
            state: State::NotEmbedded,
            ledger: ledger.iter().find(|r| r.version == a.version).cloned(),
            blockers: Vec::new(),
            waiting_since: None,
        });
    }
    rows.sort_by_key(|r| r.version);

    let s = job.settings;
    let embedded = job.embedded();
    let local = Local::load(s, &embedded, backend, &names, &found, registry::linked_models()).await?;
    let live = local.others(&backend.live_instances(&names, s.instance_ttl).await?);
    let since = backend.post_pending_since(&names).await?;
    let mut warnings = Vec::new();
    let lag = s.lag_warning;
    let backfills = backend.load_backfills(&names).await?;
    let pending_fills: Vec<_> = backfills.iter().map(|b| b.pending()).collect();
    for r in rows.iter_mut().filter(|r| matches!(r.state, State::PendingPost { .. })) {
        // Exactly what run_post would wait for (the one verdict it uses too).
        if let Some(step) = job.steps.iter().find(|st| st.meta.version == r.version) {
            r.blockers = migration_gate(step, &live, &local, &pending_fills);
        }
        if let State::PendingPost { waits_for: Some(v) } = r.state {
            r.blockers.push(Blocker::Waits(format!("pre-deploy migration {v} has not run")));
        }
        if let Some(p) = since.iter().find(|p| p.version == r.version) {
            r.waiting_since = Some(p.since);
            if p.age > lag {
                warnings.push(lag_text(
                    &format!("after_deploy migration {} ({})", r.version, r.description),
                    &p.since,
                    p.age,
                    &r.blockers,
                ));
            }
        }
    }
    let deferred = local.judge(&backend.load_drops(&names).await?, &live, &pending_fills);
    for d in deferred.iter().filter(|d| !d.dropped && d.drop.age > lag) {
        warnings.push(lag_text(&d.drop.to_string(), &d.drop.scheduled_at, d.drop.age, &d.blockers));
    }
    Ok(Status { rows, deferred, instances: live, warnings, backfills })
}

fn lag_text(what: &str, since: &DateTime<Utc>, age: Duration, blockers: &[Blocker]) -> String {
    let why = if blockers.is_empty() {
        "nothing blocks it: run run_post".to_string()
    } else {
        format!("blocked by {}", gate::one_line(blockers))
    };
    format!(
        "{what} has waited {:.1} h (since {} UTC); post-deploy work run late meets data written meanwhile. {why}",
        age.as_secs_f64() / 3600.0,
        shown(since)
    )
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Applied => f.write_str("applied"),
            State::AppliedBySqlx => f.write_str("applied (sqlx)"),
            State::AppliedByDiesel => f.write_str("applied (diesel)"),
            State::PendingPre => f.write_str("pending: run_pre"),
            State::PendingPost { waits_for: None } => f.write_str("pending: run_post"),
            State::PendingPost { waits_for: Some(v) } => write!(f, "pending: run_post after {v}"),
            State::Failed => f.write_str("FAILED"),
            State::NotEmbedded => f.write_str("applied, not in this build"),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["version", "phase", "state", "description", "applied at (UTC)", "ms", "by"];
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                let l = r.ledger.as_ref();
                let by = l
                    .map(|l| {
                        format!(
                            "{} {} @ {}",
                            l.app_name.as_deref().unwrap_or("?"),
                            l.app_version.as_deref().unwrap_or("?"),
                            l.hostname.as_deref().unwrap_or("?")
                        )
                    })
                    .unwrap_or_default();
                [
                    r.version.to_string(),
                    r.phase.map_or("?", |p| p.as_str()).to_string(),
                    r.state.to_string(),
                    r.description.clone(),
                    l.map(|l| shown(&l.started_at).to_string()).unwrap_or_default(),
                    l.map(|l| l.duration.as_millis().to_string()).unwrap_or_default(),
                    by,
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: &[&str]| -> fmt::Result {
            let text: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            writeln!(f, "{}", text.join("  ").trim_end())
        };
        line(f, &header)?;
        line(f, &widths.map(|w| "-".repeat(w)).iter().map(String::as_str).collect::<Vec<_>>())?;
        for row in &cells {
            line(f, &row.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        for r in &self.rows {
            if let (State::Failed, Some(l)) = (&r.state, &r.ledger) {
                writeln!(f, "{}: last attempt failed: {}", r.version, l.error.as_deref().unwrap_or("?"))?;
            }
            for b in &r.blockers {
                writeln!(f, "{}: waits for: {b}", r.version)?;
            }
        }
        if !self.deferred.is_empty() {
            writeln!(f, "\ndeferred drops:")?;
        }
        for d in &self.deferred {
            let state = match (d.dropped, d.blockers.is_empty(), d.drop.read_only) {
                (true, _, _) => "done",
                (false, true, _) => "due: run_post",
                (false, false, true) => "read-only, waiting",
                (false, false, false) => "waiting",
            };
            writeln!(f, "  {} [{state}]", d.drop)?;
            for b in &d.blockers {
                writeln!(f, "    waits for: {b}")?;
            }
        }
        if !self.backfills.is_empty() {
            writeln!(f, "\nbackfills:")?;
        }
        for b in &self.backfills {
            let state =
                if b.finished { "done".to_string() } else { format!("at key {:?} of {:?}", b.last_key, b.max_key) };
            writeln!(
                f,
                "  {} on {} (migration {}): {} rows in {} batches, longest {} ms, {state}",
                b.name,
                b.table,
                b.scheduled_by,
                b.rows_done,
                b.batches,
                b.max_batch.as_millis()
            )?;
        }
        if !self.instances.is_empty() {
            writeln!(f, "\nother live instances:")?;
            for i in &self.instances {
                writeln!(f, "  {i}")?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "\nWARNING: {w}")?;
        }
        Ok(())
    }
}
