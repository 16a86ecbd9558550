//! Running a phase: plan without the lease (nothing pending means no lock and two
//! queries), then take the lease, plan again (another process may have done the work),
//! and apply each migration, recording failures outside the rolled-back transaction.

use zdm_core::plan::{self, Applied, AppliedBy, Plan, Target};

use crate::backend::Backend;
use crate::error::Error;
use crate::lease::{owner_id, Lease};
use crate::ledger::{Names, RunContext};
use crate::migrator::{AppliedStep, Migrator, Report};

pub(crate) async fn run<B: Backend>(m: &Migrator, backend: &B, target: Target) -> Result<Report, Error> {
    m.check_unique()?;
    let names = m.names();
    let metas = m.metas();
    let found = backend.bootstrap(&names).await?;
    let first = make_plan(&metas, &load_applied(backend, &names, found.sqlx_ledger).await?, target)?;
    if first.run.is_empty() {
        return Ok(Report { applied: Vec::new(), notices: log_notices(&first) });
    }
    let server_notices = server_notices(m, &first, found.server_version);

    let ctx = RunContext::current(&m.app_name, &m.app_version);
    let lease = Lease::acquire(backend, &names, owner_id(&ctx.hostname), m.lease_ttl, m.lock_wait).await?;
    let result = run_locked(m, backend, &names, &ctx, &lease, target, found.sqlx_ledger).await.map(|mut r| {
        r.notices.extend(server_notices);
        r
    });
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "could not release the migration lease; it expires by itself");
    }
    result
}

async fn run_locked<B: Backend>(
    m: &Migrator,
    backend: &B,
    names: &Names,
    ctx: &RunContext,
    lease: &Lease<B>,
    target: Target,
    sqlx_ledger: bool,
) -> Result<Report, Error> {
    let metas = m.metas();
    let plan = make_plan(&metas, &load_applied(backend, names, sqlx_ledger).await?, target)?;
    let mut report = Report { applied: Vec::new(), notices: log_notices(&plan) };
    for &i in &plan.run {
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
    Ok(report)
}

/// Successful ledger rows plus, when it exists, sqlx's successful rows.
pub(crate) async fn load_applied<B: Backend>(
    backend: &B,
    names: &Names,
    sqlx_ledger: bool,
) -> Result<Vec<Applied>, Error> {
    let mut applied: Vec<Applied> = backend
        .load_ledger(names)
        .await?
        .into_iter()
        .filter(|r| r.success)
        .map(|r| Applied { version: r.version, description: r.description, checksum: r.checksum, by: AppliedBy::Zdm })
        .collect();
    if sqlx_ledger {
        for row in backend.load_sqlx_applied().await? {
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
