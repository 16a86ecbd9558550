//! Running a phase: plan without the lease (nothing pending means no lock and a few
//! queries), then take the lease, plan again (another process may have done the work),
//! and apply each migration, recording failures outside the rolled-back transaction.

use zdm_core::exec::{self, ExecClass};
use zdm_core::gate::{self, Blocker, PendingBackfill};
use zdm_core::plan::{self, Plan, Target};
use zdm_core::Phase;

use crate::backend::MigratePool;
use crate::error::{refuse_boot, Error};
use crate::job::{load_applied, make_plan, migration_gate, Job};
use crate::lease::Lease;
use crate::local::Local;
use crate::migration::Body;
use crate::names::Names;
use crate::records::{unique_id, Booted, Foreign, Found, InstanceRecord, Outcome, RunContext};
use crate::registry::{self, Instance};
use crate::report::{AppliedStep, Report};
use crate::{deferred, status};

pub(crate) async fn run<B: MigratePool>(job: Job<'_>, backend: &B, target: Target) -> Result<Report, Error> {
    run_with(job, backend, target, true).await
}

/// `run`; `lag_check` off where the caller loads the status itself (run_post_when_safe,
/// which would otherwise load it twice per tick).
async fn run_with<B: MigratePool>(job: Job<'_>, backend: &B, target: Target, lag_check: bool) -> Result<Report, Error> {
    job.check::<B>()?;
    let s = job.settings;
    let names = s.names();
    let models = registry::linked_models();
    // The common boot (run_pre of a build without model structs, so nothing to refuse
    // under the registry's lock): look-up, ledger and registration in one round trip.
    let record =
        (target == Target::Pre && models.is_empty() && s.registers).then(|| registry::this_process(s, &job.embedded()));
    let booted = if target == Target::Pre && models.is_empty() {
        backend.boot(&names, record.as_ref().map(|r| (r, s.instance_ttl))).await?
    } else {
        None
    };
    // Registered with the boot's reads: a run that fails after it leaves no row that no
    // heartbeat keeps (it would count as a live build for a TTL).
    let boot_registration = booted.as_ref().filter(|b| b.predated.is_some()).map(|b| b.found.clone());
    let result = run_booted(job, backend, target, lag_check, &names, models, record, booted).await;
    if let (Err(_), Some(found)) = (&result, boot_registration) {
        registry::forget_boot_registration(backend, &names, &found).await;
    }
    result
}

/// The run once the boot's reads are done (or, `booted` being `None`, to be done here).
#[allow(clippy::too_many_arguments)]
async fn run_booted<B: MigratePool>(
    job: Job<'_>,
    backend: &B,
    target: Target,
    lag_check: bool,
    names: &Names,
    models: &'static [zdm_core::model::ModelInfo],
    record: Option<InstanceRecord>,
    booted: Option<Booted>,
) -> Result<Report, Error> {
    let s = job.settings;
    let metas = job.metas();
    let names = names.clone();
    let found = match &booted {
        Some(b) if b.applied.is_some() => b.found.clone(),
        _ => backend.bootstrap(&names).await?,
    };
    // run_pre reads drops only to refuse a build that maps a dropped column (it would fail
    // on its first query), and backfills only to start them (below): the common boot stays
    // at a few queries.
    let drops =
        if target != Target::Pre || !models.is_empty() { backend.load_drops(&names).await? } else { Vec::new() };
    let backfills = if target == Target::Pre { Vec::new() } else { pending_backfills(backend, &names).await? };
    if target != Target::Post {
        refuse_boot(&drops, models)?;
    }
    let (applied_before, registered_with_boot) = match booted {
        Some(Booted { applied: Some(applied), predated, .. }) => (applied, predated),
        Some(Booted { applied: None, predated, .. }) => (load_applied(backend, &names, found.foreign).await?, predated),
        None => (load_applied(backend, &names, found.foreign).await?, None),
    };
    let first = make_plan(&metas, &applied_before, target)?;
    // run_pre gates nothing: it needs the registry only to register.
    let (local, others) = if target == Target::Pre {
        (None, Vec::new())
    } else {
        let local = job.local(backend, &names, &found).await?;
        let others = local.others(&backend.live_instances(&names, s.instance_ttl).await?);
        (Some(local), others)
    };
    let judged = match &local {
        Some(local) => local.judge(&drops, &others, &backfills),
        None => Vec::new(),
    };
    // run_all also finishes the backfills an interrupted run left (they gate the drops).
    let drops_due = judged.iter().any(|d| d.next_step().is_some())
        || (target == Target::All && backfills.iter().any(|b| !b.finished));
    let (runnable, held) = gated(job, &first, target, &others, local.as_ref(), &backfills);
    // Nothing to run (no lease to wait for, nothing applied): the registration sent with the
    // boot's reads stands; otherwise it is written again at the end, as it would be.
    let quick = runnable.is_empty() && !drops_due;
    let mut report = if quick {
        let mut notices = log_notices(&first);
        notices.extend(held_notice(held));
        Report { notices, ..Report::default() }
    } else {
        let server_notices = server_notices(job, &first, found.server_version);
        let mut ctx = RunContext::current(&s.app_name, &s.app_version);
        ctx.session_url = s.session_url_in_force();
        let lease = Lease::acquire(
            backend,
            &names,
            unique_id(&ctx.hostname),
            s.lease_ttl,
            s.lock_wait,
            ctx.session_url.as_deref(),
        )
        .await?;
        crate::fault::boundary("lease taken");
        let result =
            run_locked(job, backend, &names, &ctx, &lease, target, found.foreign, local.as_ref()).await.map(|mut r| {
                r.notices.extend(server_notices);
                r
            });
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the migration lease; it expires by itself");
        }
        result?
    };
    for d in judged.iter().filter(|d| !d.dropped && !d.blockers.is_empty() && d.next_step().is_none()) {
        let text = format!("deferred {} waits for: {}", d.drop, gate::one_line(&d.blockers));
        tracing::info!("{text}");
        report.notices.push(text);
    }
    let applied = if report.applied.is_empty() && report.dropped.is_empty() {
        applied_before
    } else {
        load_applied(backend, &names, found.foreign).await?
    };
    let waiting: Vec<i64> = job
        .steps
        .iter()
        .filter(|st| st.meta.phase == Phase::PostDeploy && !applied.iter().any(|a| a.version == st.meta.version))
        .map(|st| st.meta.version)
        .collect();
    let mut first_registration = false;
    if target != Target::Post && s.registers {
        let record = record.unwrap_or_else(|| registry::this_process(s, &job.embedded()));
        let registered = match registered_with_boot {
            Some(predated) if quick => registry::handle(s, record, backend, &names, &found, predated),
            _ => registry::register(s, record, backend, &names, &found).await?,
        };
        crate::fault::boundary("registered");
        report.instance = Some(registered.instance);
        first_registration = registered.fresh;
        if !registered.predated_read_only.is_empty() {
            // A rolled-back build: what it may still write must not stay read-only.
            report.dropped.extend(lift_read_only(job, backend, &names, &found).await?);
        }
        if !waiting.is_empty() {
            backend.note_post_pending(&names, &waiting).await?;
        }
    }
    // Backfills to start: ones this run scheduled, or ones a previous process left.
    if target == Target::Pre
        && s.registers
        && s.backfill_in_background
        && (first_registration || !report.applied.is_empty())
        && backend.load_backfills(&names).await?.iter().any(|b| !b.finished)
    {
        crate::backfill::spawn(s, backend, &names);
    }
    // Only waiting work can be late: the common boot skips the status query.
    let drops_pending = drops.iter().any(|r| !r.dropped) || !report.dropped.is_empty();
    if lag_check && target != Target::All && (!waiting.is_empty() || drops_pending) {
        report.notices.extend(lag_warnings(job, backend).await?);
    }
    Ok(report)
}

/// Lifts the read-only triggers of drops this build predates (it just registered, so every
/// later gate sees it), each step checking again inside its transaction.
async fn lift_read_only<B: MigratePool>(
    job: Job<'_>,
    backend: &B,
    names: &Names,
    found: &Found,
) -> Result<Vec<String>, Error> {
    let local = job.local(backend, names, found).await?;
    let drops = backend.load_drops(names).await?;
    let others = local.others(&backend.live_instances(names, job.settings.instance_ttl).await?);
    let backfills = pending_backfills(backend, names).await?;
    let judged: Vec<_> = local
        .judge(&drops, &others, &backfills)
        .into_iter()
        .filter(|d| d.next_step() == Some(gate::DropStep::Writable))
        .collect();
    deferred::run_due(backend, names, &job.settings.policy, &judged, &local, &backfills, None).await
}

/// The unfinished backfills as the gate weighs them.
async fn pending_backfills<B: MigratePool>(backend: &B, names: &Names) -> Result<Vec<PendingBackfill>, Error> {
    Ok(backend.load_backfills(names).await?.iter().map(|b| b.pending()).collect())
}

/// The planned migrations that may run now: for run_post, in order up to the first one a
/// live build (another, or this one) holds back (its blockers are returned with it).
fn gated(
    job: Job<'_>,
    plan: &Plan,
    target: Target,
    others: &[gate::Instance],
    local: Option<&Local>,
    backfills: &[PendingBackfill],
) -> (Vec<usize>, Option<Held>) {
    if target != Target::Post {
        return (plan.run.clone(), None);
    }
    let Some(local) = local else { return (plan.run.clone(), None) };
    let mut run = Vec::new();
    for &i in &plan.run {
        let blockers = migration_gate(&job.steps[i], others, local, backfills);
        if !blockers.is_empty() {
            return (run, Some(Held { version: job.steps[i].meta.version, blockers }));
        }
        run.push(i);
    }
    (run, None)
}

/// The first after_deploy migration the gate holds back, and why.
struct Held {
    version: i64,
    blockers: Vec<Blocker>,
}

fn held_notice(held: Option<Held>) -> Option<String> {
    let Held { version, blockers } = held?;
    let text = format!("after_deploy migration {version} waits for: {}", gate::one_line(&blockers));
    tracing::info!("{text}");
    Some(text)
}

/// Registers without migrating.
pub(crate) async fn register_only<B: MigratePool>(job: Job<'_>, backend: &B) -> Result<Instance, Error> {
    job.check::<B>()?;
    let names = job.settings.names();
    let found = backend.bootstrap(&names).await?;
    refuse_boot(&backend.load_drops(&names).await?, registry::linked_models())?;
    let record = registry::this_process(job.settings, &job.embedded());
    let registered = registry::register(job.settings, record, backend, &names, &found).await?;
    if !registered.predated_read_only.is_empty() {
        lift_read_only(job, backend, &names, &found).await?;
    }
    Ok(registered.instance)
}

/// Runs run_post whenever the gate opens, until nothing post-deploy is left.
pub(crate) async fn run_post_when_safe<B: MigratePool>(job: Job<'_>, backend: &B) -> Result<Report, Error> {
    let mut total = Report::default();
    loop {
        match run_with(job, backend, Target::Post, false).await {
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
        let status = status::load(job, backend).await;
        if let Ok(st) = &status {
            // The lag warnings `run` adds, from the status this tick loads anyway.
            for w in &st.warnings {
                if !total.notices.contains(w) {
                    tracing::warn!("{w}");
                    total.notices.push(w.clone());
                }
            }
        }
        match status {
            Ok(st) if st.pending_post().next().is_none() && st.deferred.iter().all(|d| d.dropped) => return Ok(total),
            Ok(st)
                if st.pending_post().next().is_none()
                    && st
                        .deferred
                        .iter()
                        .filter(|d| !d.dropped)
                        .all(|d| d.blockers.iter().any(|b| matches!(b, Blocker::ThisBuild { .. }))) =>
            {
                // An older build (a rollback): what is left was scheduled by migrations it
                // lacks, and it never carries that out; a newer build will.
                let text = "run_post_when_safe: what is left was scheduled by migrations this build does not \
                            embed; a build that includes them carries it out"
                    .to_string();
                tracing::info!("{text}");
                total.notices.push(text);
                return Ok(total);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "post-deploy check failed; retrying"),
        }
        tokio::time::sleep(job.settings.heartbeat).await;
    }
}

/// Warnings for post-deploy work that has waited longer than `lag_warning`.
pub(crate) async fn lag_warnings<B: MigratePool>(job: Job<'_>, backend: &B) -> Result<Vec<String>, Error> {
    let st = status::load(job, backend).await?;
    for w in &st.warnings {
        tracing::warn!("{w}");
    }
    Ok(st.warnings)
}

#[allow(clippy::too_many_arguments)]
async fn run_locked<B: MigratePool>(
    job: Job<'_>,
    backend: &B,
    names: &Names,
    ctx: &RunContext,
    lease: &Lease<B>,
    target: Target,
    foreign: Foreign,
    // The calling build as the gate sees it (run_post and run_all; run_pre gates nothing).
    local: Option<&Local>,
) -> Result<Report, Error> {
    let s = job.settings;
    let fence = lease.fence();
    let plan = make_plan(&job.metas(), &load_applied(backend, names, foreign).await?, target)?;
    let backfills = pending_backfills(backend, names).await?;
    // Read again under the lease: an instance may have registered since the first look.
    let (runnable, held) = match local.filter(|_| target == Target::Post) {
        Some(l) => {
            let others = l.others(&backend.live_instances(names, s.instance_ttl).await?);
            gated(job, &plan, target, &others, Some(l), &backfills)
        }
        None => gated(job, &plan, target, &[], None, &backfills),
    };
    let mut report = Report { notices: log_notices(&plan), ..Report::default() };
    report.notices.extend(held_notice(held));
    for i in runnable {
        let step = &job.steps[i];
        lease.confirm().await?;
        tracing::info!(version = step.meta.version, source = step.meta.source, phase = %step.meta.phase, "applying migration");
        // An after_deploy migration of run_post asks the gate again inside its own transaction.
        let gating = local.filter(|_| target == Target::Post && step.meta.phase == Phase::PostDeploy);
        let recheck = |live: &[gate::Instance]| match gating {
            Some(l) => migration_gate(step, &l.others(live), l, &backfills),
            None => Vec::new(),
        };
        let guard = crate::backend::StepGuard { fence: None, instance_ttl: s.instance_ttl, recheck: &recheck };
        let gate = gating.map(|_| &guard);
        let applied = match backend.apply(names, step, ctx, &s.policy, &fence, gate).await {
            Err(Error::GateClosed { version, blockers }) => {
                let text =
                    format!("after_deploy migration {version} waits for: {blockers} (held back at the last moment)");
                tracing::info!("{text}");
                report.notices.push(text);
                break;
            }
            other => other?,
        };
        match applied {
            Outcome::Applied { duration } => {
                tracing::info!(version = step.meta.version, duration_ms = duration.as_millis(), "applied migration");
                report.applied.push(AppliedStep {
                    version: step.meta.version,
                    description: step.meta.description,
                    phase: step.meta.phase,
                    duration,
                });
            }
            Outcome::Failed(failure) => {
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
        crate::backfill::run_all(s, backend, names).await?;
    }
    if let Some(local) = local {
        lease.confirm().await?;
        // Judged again under the lease: a migration just applied may have scheduled one.
        let drops = backend.load_drops(names).await?;
        let backfills = pending_backfills(backend, names).await?;
        let others = local.others(&backend.live_instances(names, s.instance_ttl).await?);
        let judged = local.judge(&drops, &others, &backfills);
        report.dropped = deferred::run_due(backend, names, &s.policy, &judged, local, &backfills, Some(&fence)).await?;
    }
    Ok(report)
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
fn server_notices(job: Job<'_>, plan: &Plan, server_version: Option<i32>) -> Vec<String> {
    let Some(num) = server_version else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let major = (num / 10000) as u32;
    if let Some(lint) = job.settings.lint_postgres.filter(|&l| major < l) {
        out.push(format!(
            "the server runs PostgreSQL {major} but the migrations were linted for PostgreSQL {lint}: \
             lock and rewrite judgements may not hold; set `postgres = \"{major}\"` in `zdm::migrations!`"
        ));
    }
    // Only on the affected releases; the statements classified as zdm runs them, so a
    // comment or a string that says CONCURRENTLY is not one.
    let concurrent = || {
        plan.run.iter().any(|&i| match job.steps[i].body {
            Body::Sql(sql) => {
                job.steps[i].meta.no_transaction
                    && exec::statements(sql).iter().any(|st| st.class == ExecClass::Concurrent)
            }
            Body::Rust(_) => false,
        })
    };
    if (140000..140004).contains(&num) && concurrent() {
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
