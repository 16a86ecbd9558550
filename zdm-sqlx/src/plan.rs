//! [`Plan`]: the pending work in the order `run_pre` and then `run_post` would run it, each
//! migration with its phase, directives, the gate's verdict now, and per statement the
//! lint's prediction (lock, table, rewrite, scan). It shares the runner's plan and gate
//! verdict (`job.rs`), so it says exactly what a run would do; it runs nothing.
//!
//! `Display` prints a table per migration; with the `serde` feature it serializes for tools.

use std::fmt;

use zdm_core::gate::Blocker;
use zdm_core::lint::{LintConfig, LintInput, PgVersion, StatementPlan};
use zdm_core::plan::{Notice, Target};
use zdm_core::Phase;

use crate::backend::MigratePool;
use crate::error::Error;
use crate::job::{load_applied, make_plan, migration_gate, Job};
use crate::migration::Body;

/// Which call runs a planned migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum RunBy {
    RunPre,
    RunPost,
}

impl fmt::Display for RunBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunBy::RunPre => "run_pre",
            RunBy::RunPost => "run_post",
        })
    }
}

/// One pending migration of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PlannedMigration {
    pub version: i64,
    pub description: String,
    /// The file (or Rust function) it comes from.
    pub source: String,
    pub phase: Phase,
    pub run_by: RunBy,
    /// `-- zdm:no_transaction` (or every statement needs it): each statement on its own.
    pub no_transaction: bool,
    /// The reasons of its `safety_assured` directives.
    pub safety_assured: Vec<String>,
    pub lock_timeout_ms: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
    /// What holds it back now (empty: the next call of `run_by` runs it). For a pre-deploy
    /// migration always empty; for an after_deploy one, the gate's verdict.
    pub blockers: Vec<Blocker>,
    /// A Rust-coded migration: its statements are not known before it runs.
    pub rust: bool,
    /// The lint's prediction per statement, in file order.
    pub statements: Vec<StatementPlan>,
}

/// What `run_pre` and `run_post` would do now; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Plan {
    pub migrations: Vec<PlannedMigration>,
    /// The planner's notices (a migration merged late, one applied by a newer build).
    pub notices: Vec<String>,
}

impl Plan {
    /// Every statement that takes ACCESS EXCLUSIVE on a table or rewrites one.
    pub fn blocking_statements(&self) -> impl Iterator<Item = (&PlannedMigration, &StatementPlan)> {
        self.migrations.iter().flat_map(|m| {
            m.statements
                .iter()
                .filter(|s| !s.rewrites.is_empty() || s.strongest().is_some_and(|l| l.mode.blocks_reads()))
                .map(move |s| (m, s))
        })
    }
}

/// The lint's view of the set: its SQL files, under the PostgreSQL version it was linted for.
pub(crate) fn predict(job: Job<'_>) -> Vec<StatementPlan> {
    let inputs: Vec<LintInput<'_>> = job
        .steps
        .iter()
        .filter_map(|s| match s.body {
            Body::Sql(sql) => Some(LintInput {
                version: s.meta.version,
                path: s.meta.source,
                sql,
                phase: s.meta.phase,
                no_transaction: s.meta.no_transaction,
                safety_assured: &[],
            }),
            Body::Rust(_) => None,
        })
        .collect();
    let config = LintConfig {
        dialect: job.settings.dialect.unwrap_or_default(),
        postgres: job.settings.lint_postgres.map_or_else(PgVersion::default, |major| PgVersion { major, minor: None }),
        ..LintConfig::default()
    };
    zdm_core::lint::predict(&inputs, &config)
}

pub(crate) async fn load<B: MigratePool>(job: Job<'_>, backend: &B) -> Result<Plan, Error> {
    job.check::<B>()?;
    let names = job.settings.names();
    let found = backend.bootstrap(&names).await?;
    let applied = load_applied(backend, &names, found.foreign).await?;
    let metas = job.metas();
    let pre = make_plan(&metas, &applied, Target::Pre)?;
    let post = make_plan(&metas, &applied, Target::Post)?;
    // Every pending after_deploy migration, also those that wait for run_pre (run_post's
    // own plan leaves those out with a notice).
    let all = make_plan(&metas, &applied, Target::All)?;
    let post_run: Vec<usize> =
        all.run.iter().copied().filter(|&i| job.steps[i].meta.phase == Phase::PostDeploy).collect();
    let predicted = predict(job);

    let mut plan = Plan::default();
    for n in pre.notices.iter().chain(post.notices.iter().filter(|n| !matches!(n, Notice::UnknownApplied { .. }))) {
        let text = n.to_string();
        if !plan.notices.contains(&text) {
            plan.notices.push(text);
        }
    }
    let mut gate = None;
    for (&i, run_by) in pre.run.iter().map(|i| (i, RunBy::RunPre)).chain(post_run.iter().map(|i| (i, RunBy::RunPost))) {
        let step = &job.steps[i];
        let m = step.meta;
        let mut blockers = Vec::new();
        if run_by == RunBy::RunPost {
            // The gate's verdict exactly as run_post takes it (loaded once, only when needed).
            if gate.is_none() {
                let local = job.local(backend, &names, &found).await?;
                let others = local.others(&backend.live_instances(&names, job.settings.instance_ttl).await?);
                let fills: Vec<_> = backend.load_backfills(&names).await?.iter().map(|b| b.pending()).collect();
                gate = Some((local, others, fills));
            }
            if let Some((local, others, fills)) = &gate {
                blockers = migration_gate(step, others, local, fills);
            }
        }
        // An after_deploy migration above a pending pre-deploy one waits for run_pre.
        for n in &post.notices {
            if let Notice::PostWaits { version, waits_for, .. } = n {
                if *version == m.version {
                    blockers.push(Blocker::Waits(format!("pre-deploy migration {waits_for} to run (run_pre)")));
                }
            }
        }
        let statements = predicted.iter().filter(|s| s.version == m.version).cloned().collect();
        plan.migrations.push(PlannedMigration {
            version: m.version,
            description: m.description.to_string(),
            source: m.source.to_string(),
            phase: m.phase,
            run_by,
            no_transaction: m.no_transaction,
            safety_assured: m.safety_assured.iter().map(|r| r.to_string()).collect(),
            lock_timeout_ms: m.lock_timeout_ms,
            statement_timeout_ms: m.statement_timeout_ms,
            blockers,
            rust: matches!(step.body, Body::Rust(_)),
            statements,
        });
    }
    Ok(plan)
}

/// Prints `rows` (the first is the header) as aligned columns, indented by two spaces.
pub(crate) fn table(f: &mut fmt::Formatter<'_>, rows: &[Vec<String>]) -> fmt::Result {
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for (i, row) in rows.iter().enumerate() {
        let text: Vec<String> = row.iter().zip(&widths).map(|(c, &w)| format!("{c:<w$}")).collect();
        writeln!(f, "  {}", text.join("  ").trim_end())?;
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
            writeln!(f, "  {}", rule.join("  "))?;
        }
    }
    Ok(())
}

/// The lock cell: the strongest mode and its table, then the others (`AccessExclusiveLock
/// posts; ShareRowExclusiveLock users`).
pub(crate) fn locks_cell(s: &StatementPlan) -> (String, String) {
    let Some(first) = s.strongest() else { return ("-".into(), String::new()) };
    let mode = first.mode.to_string();
    let tables: Vec<String> = s
        .locks
        .iter()
        .map(|l| if l.mode == first.mode { l.table.clone() } else { format!("{} ({})", l.table, l.mode) })
        .collect();
    (mode, tables.join(", "))
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.migrations.is_empty() {
            writeln!(f, "nothing pending")?;
        }
        for m in &self.migrations {
            let mut flags = vec![m.run_by.to_string()];
            if m.no_transaction {
                flags.push("no_transaction".into());
            }
            if let Some(t) = m.lock_timeout_ms {
                flags.push(format!("lock_timeout {t} ms"));
            }
            if let Some(t) = m.statement_timeout_ms {
                flags.push(format!("statement_timeout {t} ms"));
            }
            writeln!(f, "{} {} [{}, {}] {}", m.version, m.description, m.phase.as_str(), flags.join(", "), m.source)?;
            for r in &m.safety_assured {
                writeln!(f, "  safety_assured: {r}")?;
            }
            if m.run_by == RunBy::RunPost {
                if m.blockers.is_empty() {
                    writeln!(f, "  gate: open")?;
                }
                for b in &m.blockers {
                    writeln!(f, "  gate: waits for: {b}")?;
                }
            }
            if m.rust {
                writeln!(f, "  (Rust-coded: its statements are known only when it runs)")?;
                continue;
            }
            let mut rows = vec![["line", "statement", "lock", "table", "rewrite", "scan"].map(String::from).to_vec()];
            for s in &m.statements {
                let (mode, tables) = locks_cell(s);
                rows.push(vec![
                    s.line.to_string(),
                    s.summary(60),
                    if s.unknown { format!("{mode}?") } else { mode },
                    tables,
                    yes(!s.rewrites.is_empty()),
                    yes(!s.scans.is_empty()),
                ]);
            }
            table(f, &rows)?;
            writeln!(f)?;
        }
        for n in &self.notices {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}
