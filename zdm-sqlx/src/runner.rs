//! Running a phase: plan without the lease (nothing pending means no lock and a few
//! queries), then take the lease, plan again (another process may have done the work),
//! and apply each migration, recording failures outside the rolled-back transaction.

use zdm_core::gate::{self, Blocker};
use zdm_core::plan::{self, Applied, Plan, Target};
use zdm_core::Phase;

use crate::backend::{Backend, Foreign};
use crate::error::Error;
use crate::lease::{owner_id, Lease};
use crate::ledger::{Names, RunContext};
use crate::migrator::{AppliedStep, Migrator, Report};
use crate::registry::{self, Instance};
use crate::{deferred, status};

pub(crate) async fn run<B: Backend>(m: &Migrator, backend: &B, target: Target) -> Result<Report, Error> {
    m.check_unique()?;
    let names = m.names();
    let metas = m.metas();
    let found = backend.bootstrap(&names).await?;
    let models = registry::models();
    // run_pre reads drops only to refuse a build that maps a dropped column (decision 15),
    // and backfills only to start them (below): the common boot stays at three queries.
    let drops =
        if target != Target::Pre || !models.is_empty() { backend.load_drops(&names).await? } else { Vec::new() };
    let backfills: Vec<_> = if target == Target::Pre {
        Vec::new()
    } else {
        backend.load_backfills(&names).await?.iter().map(|b| b.pending()).collect()
    };
    if target != Target::Post {
        deferred::check_boot(&drops, &models)?;
    }
    let applied_before = load_applied(backend, &names, found.foreign).await?;
    let first = make_plan(&metas, &applied_before, target)?;
    // run_pre gates nothing: it needs the registry only to register.
    let live = if target == Target::Pre { Vec::new() } else { others(backend, &names, m).await? };
    let judged = match target {
        Target::Pre => Vec::new(),
        _ => deferred::judge(&drops, &live, &models, &m.app_name, &backfills),
    };
    let drops_due = judged.iter().any(|s| {
        !s.dropped
            && (s.blockers.is_empty()
                || (!s.drop.read_only && s.blockers.iter().all(|b| matches!(b, Blocker::Delay { .. }))))
    });
    let (runnable, held) = gated(m, &first, target, &live, &backfills);
    let mut report = if runnable.is_empty() && !drops_due {
        let mut notices = log_notices(&first);
        notices.extend(held_notice(held));
        Report { notices, ..Report::default() }
    } else {
        let server_notices = server_notices(m, &first, found.server_version);
        let ctx = RunContext::current(&m.app_name, &m.app_version);
        let lease = Lease::acquire(backend, &names, owner_id(&ctx.hostname), m.lease_ttl, m.lock_wait).await?;
        let result = run_locked(m, backend, &names, &ctx, &lease, target, found.foreign, &models).await.map(|mut r| {
            r.notices.extend(server_notices);
            r
        });
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the migration lease; it expires by itself");
        }
        result?
    };
    for s in judged.iter().filter(|s| !s.dropped && !s.blockers.is_empty()) {
        let text = format!(
            "deferred {} waits for: {}",
            s.drop,
            s.blockers.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        );
        tracing::info!("{text}");
        report.notices.push(text);
    }
    let applied = if report.applied.is_empty() && report.dropped.is_empty() {
        applied_before
    } else {
        load_applied(backend, &names, found.foreign).await?
    };
    let waiting: Vec<i64> = m
        .steps
        .iter()
        .filter(|s| s.meta.phase == Phase::PostDeploy && !applied.iter().any(|a| a.version == s.meta.version))
        .map(|s| s.meta.version)
        .collect();
    let mut first_registration = false;
    if target != Target::Post && m.registers {
        let (instance, fresh) = registry::register(m, backend, &names, &found).await?;
        report.instance = Some(instance);
        first_registration = fresh;
        if !waiting.is_empty() {
            backend.note_post_pending(&names, &waiting).await?;
        }
    }
    // Backfills to start: ones this run scheduled, or ones a previous process left.
    if target == Target::Pre
        && m.registers
        && m.backfill_in_background
        && (first_registration || !report.applied.is_empty())
        && backend.load_backfills(&names).await?.iter().any(|b| !b.finished)
    {
        crate::backfill::spawn(m, backend, &names);
    }
    // Only waiting work can be late: the common boot skips the status query.
    let drops_pending = drops.iter().any(|(_, dropped)| !dropped) || !report.dropped.is_empty();
    if target != Target::All && (!waiting.is_empty() || drops_pending) {
        report.notices.extend(lag_warnings(m, backend).await?);
    }
    Ok(report)
}

/// Live instances other than this process: this process's own build is the one running,
/// and its models are checked as the local build's.
pub(crate) async fn others<B: Backend>(backend: &B, names: &Names, m: &Migrator) -> Result<Vec<gate::Instance>, Error> {
    let own = registry::own_id();
    Ok(backend.live_instances(names, m.instance_ttl).await?.into_iter().filter(|i| i.id != own).collect())
}

/// The planned migrations that may run now: for run_post, in order up to the first one a
/// live old build holds back (its blockers are returned with it).
fn gated(
    m: &Migrator,
    plan: &Plan,
    target: Target,
    live: &[gate::Instance],
    backfills: &[gate::PendingBackfill],
) -> (Vec<usize>, Option<(i64, Vec<Blocker>)>) {
    if target != Target::Post {
        return (plan.run.clone(), None);
    }
    let mut run = Vec::new();
    for &i in &plan.run {
        let version = m.steps[i].meta.version;
        let mut blockers = gate::migration_blockers(version, live);
        blockers.extend(gate::backfill_blockers(version, backfills));
        if !blockers.is_empty() {
            return (run, Some((m.steps[i].meta.version, blockers)));
        }
        run.push(i);
    }
    (run, None)
}

fn held_notice(held: Option<(i64, Vec<Blocker>)>) -> Option<String> {
    let (version, blockers) = held?;
    let text = format!(
        "after_deploy migration {version} waits for: {}",
        blockers.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    );
    tracing::info!("{text}");
    Some(text)
}

/// Registers without migrating.
pub(crate) async fn register_only<B: Backend>(m: &Migrator, backend: &B) -> Result<Instance, Error> {
    let names = m.names();
    let found = backend.bootstrap(&names).await?;
    deferred::check_boot(&backend.load_drops(&names).await?, &registry::models())?;
    Ok(registry::register(m, backend, &names, &found).await?.0)
}

/// Runs run_post whenever the gate opens, until nothing post-deploy is left.
pub(crate) async fn run_post_when_safe<B: Backend>(m: &Migrator, backend: &B) -> Result<Report, Error> {
    let mut total = Report::default();
    loop {
        match run(m, backend, Target::Post).await {
            Ok(r) => {
                total.applied.extend(r.applied);
                total.dropped.extend(r.dropped);
                for n in r.notices {
                    if !total.notices.contains(&n) {
                        total.notices.push(n);
                    }
                }
            }
            // The database may be briefly unreachable; the next check tries again.
            Err(e @ Error::Database { .. }) => tracing::warn!(error = %e, "post-deploy check failed; retrying"),
            Err(e) => return Err(e),
        }
        match status::load(m, backend).await {
            Ok(st) if st.pending_post().next().is_none() && st.deferred.iter().all(|d| d.dropped) => return Ok(total),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "post-deploy check failed; retrying"),
        }
        tokio::time::sleep(m.heartbeat).await;
    }
}

/// Warnings for post-deploy work that has waited longer than `lag_warning`.
pub(crate) async fn lag_warnings<B: Backend>(m: &Migrator, backend: &B) -> Result<Vec<String>, Error> {
    let st = status::load(m, backend).await?;
    for w in &st.warnings {
        tracing::warn!("{w}");
    }
    Ok(st.warnings)
}

#[allow(clippy::too_many_arguments)]
async fn run_locked<B: Backend>(
    m: &Migrator,
    backend: &B,
    names: &Names,
    ctx: &RunContext,
    lease: &Lease<B>,
    target: Target,
    foreign: Foreign,
    models: &[zdm_core::model::ModelInfo],
) -> Result<Report, Error> {
    let metas = m.metas();
    let plan = make_plan(&metas, &load_applied(backend, names, foreign).await?, target)?;
    let live = others(backend, names, m).await?;
    let backfills: Vec<_> = backend.load_backfills(names).await?.iter().map(|b| b.pending()).collect();
    let (runnable, held) = gated(m, &plan, target, &live, &backfills);
    let mut report = Report { notices: log_notices(&plan), ..Report::default() };
    report.notices.extend(held_notice(held));
    for i in runnable {
        let step = &m.steps[i];
        lease.confirm(m.lease_ttl).await?;
        tracing::info!(version = step.meta.version, source = step.meta.source, phase = %step.meta.phase, "applying migration");
        match backend.apply(names, step, ctx, &m.policy).await? {
            Ok(duration_ms) => {
                tracing::info!(version = step.meta.version, duration_ms, "applied migration");
                report.applied.push(AppliedStep {
                    version: step.meta.version,
                    description: step.meta.description,
                    phase: step.meta.phase,
                    duration_ms,
                });
            }
            Err(failure) => {
                tracing::error!(version = step.meta.version, source = step.meta.source, error = %failure.message, "migration failed");
                if let Err(e) = backend.record_failure(names, step, ctx, &failure).await {
                    tracing::error!(error = %e, "could not record the failed migration in the ledger");
                }
                return Err(Error::MigrationFailed {
                    version: step.meta.version,
                    source_path: step.meta.source,
                    line: failure.line,
                    message: failure.message,
                    no_transaction: step.meta.no_transaction,
                });
            }
        }
    }
    if target == Target::All {
        // Development and tests: fill what the migrations scheduled before anything drops.
        crate::backfill::run_all(m, backend, names).await?;
    }
    if target != Target::Pre {
        lease.confirm(m.lease_ttl).await?;
        // Judged again under the lease: a migration just applied may have scheduled one.
        let drops = backend.load_drops(names).await?;
        let backfills: Vec<_> = backend.load_backfills(names).await?.iter().map(|b| b.pending()).collect();
        let judged = deferred::judge(&drops, &others(backend, names, m).await?, models, &m.app_name, &backfills);
        report.dropped = deferred::run_due(m, backend, names, &judged, models).await?;
    }
    Ok(report)
}

/// Successful ledger rows plus, when they exist, sqlx's successful rows and diesel's rows.
pub(crate) async fn load_applied<B: Backend>(
    backend: &B,
    names: &Names,
    foreign: Foreign,
) -> Result<Vec<Applied>, Error> {
    let mut applied: Vec<Applied> = backend.load_zdm_applied(names).await?;
    if foreign.any() {
        for row in backend.load_sqlx_applied(foreign).await? {
            if !applied.iter().any(|a| a.version == row.version) {
                applied.push(row);
            }
        }
    }
    Ok(applied)
}

fn make_plan(metas: &[zdm_core::Migration], applied: &[Applied], target: Target) -> Result<Plan, Error> {
    plan::plan(metas, applied, target).map_err(|errs| Error::Mismatch(errs.iter().map(ToString::to_string).collect()))
}

fn log_notices(plan: &Plan) -> Vec<String> {
    plan.notices
        .iter()
        .map(|n| {
            let text = n.to_string();
            match n {
                plan::Notice::UnknownApplied { .. } => tracing::info!("{text}"),
                _ => tracing::warn!("{text}"),
            }
            text
        })
        .collect()
}

/// Warnings about the server itself: older than the lint assumed, or a PostgreSQL 14
/// release whose concurrent index builds can corrupt indexes.
fn server_notices(m: &Migrator, plan: &Plan, server_version: Option<i32>) -> Vec<String> {
    let Some(num) = server_version else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let major = (num / 10000) as u32;
    if let Some(lint) = m.lint_postgres.filter(|&l| major < l) {
        out.push(format!(
            "the server runs PostgreSQL {major} but the migrations were linted for PostgreSQL {lint}: \
             lock and rewrite judgements may not hold; set `postgres = \"{major}\"` in `zdm::migrations!`"
        ));
    }
    let concurrent = plan.run.iter().any(|&i| match m.steps[i].body {
        crate::migration::Body::Sql(sql) => {
            m.steps[i].meta.no_transaction && sql.to_ascii_uppercase().contains("CONCURRENTLY")
        }
        _ => false,
    });
    if (140000..140004).contains(&num) && concurrent {
        out.push(format!(
            "PostgreSQL {}.{} can build corrupt indexes concurrently (fixed in 14.4): upgrade before these migrations",
            num / 10000,
            num % 100
        ));
    }
    for n in &out {
        tracing::warn!("{n}");
    }
    out
}
