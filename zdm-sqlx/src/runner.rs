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
    m.check_config()?;
    let names = m.names();
    let metas = m.metas();
    let found = backend.bootstrap(&names).await?;
    let models = registry::models();
    // run_pre reads drops only to refuse a build that maps a dropped column (decision 15),
    // and backfills only to start them (below): the common boot stays at a few queries.
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
    let (local, others) = if target == Target::Pre {
        (None, Vec::new())
    } else {
        let local = local_view(m, backend, &names, &found, &models).await?;
        let others = local.others(&backend.live_instances(&names, m.instance_ttl).await?);
        (Some(local), others)
    };
    let judged = match &local {
        Some(local) => deferred::judge(&drops, &others, local, &backfills),
        None => Vec::new(),
    };
    // run_all also finishes the backfills an interrupted run left (they gate the drops).
    let drops_due = judged.iter().any(|s| deferred::next_step(s).is_some())
        || (target == Target::All && backfills.iter().any(|b| !b.finished));
    let (runnable, held) = gated(m, &first, target, &others, local.as_ref(), &backfills);
    let mut report = if runnable.is_empty() && !drops_due {
        let mut notices = log_notices(&first);
        notices.extend(held_notice(held));
        Report { notices, ..Report::default() }
    } else {
        let server_notices = server_notices(m, &first, found.server_version);
        let mut ctx = RunContext::current(&m.app_name, &m.app_version);
        ctx.session_url = m.session_url_in_force();
        let lease = Lease::acquire(
            backend,
            &names,
            owner_id(&ctx.hostname),
            m.lease_ttl,
            m.lock_wait,
            ctx.session_url.as_deref(),
        )
        .await?;
        crate::fault::boundary("lease taken");
        let result =
            run_locked(m, backend, &names, &ctx, &lease, target, found.foreign, local.as_ref()).await.map(|mut r| {
                r.notices.extend(server_notices);
                r
            });
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the migration lease; it expires by itself");
        }
        result?
    };
    for s in judged.iter().filter(|s| !s.dropped && !s.blockers.is_empty() && deferred::next_step(s).is_none()) {
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
        let registered = registry::register(m, backend, &names, &found).await?;
        crate::fault::boundary("registered");
        report.instance = Some(registered.instance);
        first_registration = registered.fresh;
        if !registered.predated_read_only.is_empty() {
            // A rolled-back build: what it may still write must not stay read-only.
            report.dropped.extend(lift_read_only(m, backend, &names, &found, &models).await?);
        }
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

/// The calling process as the gate sees it (decision 17): its build's migrations and
/// models, and whether its own heartbeat can be trusted (decision 18).
pub(crate) async fn local_view<B: Backend>(
    m: &Migrator,
    backend: &B,
    names: &Names,
    found: &crate::backend::Found,
    models: &[zdm_core::model::ModelInfo],
) -> Result<deferred::Local, Error> {
    let app_had_models = models.is_empty() && backend.app_had_models(names, &m.app_name).await?;
    Ok(deferred::Local {
        own_id: registry::own_id().to_string(),
        embedded: m.steps.iter().map(|s| s.meta.version).collect(),
        models: models.to_vec(),
        app_name: m.app_name.clone(),
        app_had_models,
        heartbeat_key: registry::key(found, names),
        instance_ttl: m.instance_ttl,
    })
}

/// Lifts the read-only triggers of drops this build predates (it just registered, so every
/// later gate sees it), each step checking again inside its transaction.
async fn lift_read_only<B: Backend>(
    m: &Migrator,
    backend: &B,
    names: &Names,
    found: &crate::backend::Found,
    models: &[zdm_core::model::ModelInfo],
) -> Result<Vec<String>, Error> {
    let local = local_view(m, backend, names, found, models).await?;
    let drops = backend.load_drops(names).await?;
    let others = local.others(&backend.live_instances(names, m.instance_ttl).await?);
    let backfills: Vec<_> = backend.load_backfills(names).await?.iter().map(|b| b.pending()).collect();
    let judged: Vec<_> = deferred::judge(&drops, &others, &local, &backfills)
        .into_iter()
        .filter(|s| deferred::next_step(s) == Some(crate::backend::DropStep::Writable))
        .collect();
    deferred::run_due(m, backend, names, &judged, &local, &backfills, None).await
}

/// The planned migrations that may run now: for run_post, in order up to the first one a
/// live build (another, or this one) holds back (its blockers are returned with it).
fn gated(
    m: &Migrator,
    plan: &Plan,
    target: Target,
    others: &[gate::Instance],
    local: Option<&deferred::Local>,
    backfills: &[gate::PendingBackfill],
) -> (Vec<usize>, Option<(i64, Vec<Blocker>)>) {
    if target != Target::Post {
        return (plan.run.clone(), None);
    }
    let Some(local) = local else { return (plan.run.clone(), None) };
    let mut run = Vec::new();
    for &i in &plan.run {
        let mut blockers = migration_gate(m, i, others, local, backfills);
        blockers.dedup();
        if !blockers.is_empty() {
            return (run, Some((m.steps[i].meta.version, blockers)));
        }
        run.push(i);
    }
    (run, None)
}

/// What holds back the after_deploy migration `m.steps[i]`: live builds without it (this
/// one included), unfinished backfills before it, the fail-closed cases, and, when it
/// drops columns or tables, live builds whose structs still map them.
fn migration_gate(
    m: &Migrator,
    i: usize,
    others: &[gate::Instance],
    local: &deferred::Local,
    backfills: &[gate::PendingBackfill],
) -> Vec<Blocker> {
    let step = &m.steps[i];
    let version = step.meta.version;
    let mut out = gate::migration_blockers(version, others);
    out.extend(gate::backfill_blockers(version, backfills));
    out.extend(gate::local_blockers(version, &local.embedded));
    out.extend(local.fail_closed(others));
    if let crate::migration::Body::Sql(sql) = step.body {
        out.extend(gate::removed_blockers(&zdm_core::removed::removed(sql), others, &local.models));
    }
    out
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
    m.check_config()?;
    let names = m.names();
    let found = backend.bootstrap(&names).await?;
    let models = registry::models();
    deferred::check_boot(&backend.load_drops(&names).await?, &models)?;
    let registered = registry::register(m, backend, &names, &found).await?;
    if !registered.predated_read_only.is_empty() {
        lift_read_only(m, backend, &names, &found, &models).await?;
    }
    Ok(registered.instance)
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
    // The calling build as the gate sees it (run_post and run_all; run_pre gates nothing).
    local: Option<&deferred::Local>,
) -> Result<Report, Error> {
    let metas = m.metas();
    let fence = lease.fence();
    let plan = make_plan(&metas, &load_applied(backend, names, foreign).await?, target)?;
    let backfills: Vec<_> = backend.load_backfills(names).await?.iter().map(|b| b.pending()).collect();
    // Read again under the lease: an instance may have registered since the first look.
    let (runnable, held) = match local.filter(|_| target == Target::Post) {
        Some(l) => {
            let others = l.others(&backend.live_instances(names, m.instance_ttl).await?);
            gated(m, &plan, target, &others, Some(l), &backfills)
        }
        None => gated(m, &plan, target, &[], None, &backfills),
    };
    let mut report = Report { notices: log_notices(&plan), ..Report::default() };
    report.notices.extend(held_notice(held));
    for i in runnable {
        let step = &m.steps[i];
        lease.confirm().await?;
        tracing::info!(version = step.meta.version, source = step.meta.source, phase = %step.meta.phase, "applying migration");
        // An after_deploy migration of run_post asks the gate again inside its own transaction.
        let gating = local.filter(|_| target == Target::Post && step.meta.phase == Phase::PostDeploy);
        let recheck = |live: &[gate::Instance]| match gating {
            Some(l) => migration_gate(m, i, &l.others(live), l, &backfills),
            None => Vec::new(),
        };
        let guard = crate::backend::StepGuard { fence: None, instance_ttl: m.instance_ttl, recheck: &recheck };
        let gate = gating.map(|_| &guard);
        let applied = match backend.apply(names, step, ctx, &m.policy, &fence, gate).await {
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
    if let Some(local) = local {
        lease.confirm().await?;
        // Judged again under the lease: a migration just applied may have scheduled one.
        let drops = backend.load_drops(names).await?;
        let backfills: Vec<_> = backend.load_backfills(names).await?.iter().map(|b| b.pending()).collect();
        let others = local.others(&backend.live_instances(names, m.instance_ttl).await?);
        let judged = deferred::judge(&drops, &others, local, &backfills);
        report.dropped = deferred::run_due(m, backend, names, &judged, local, &backfills, Some(&fence)).await?;
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
