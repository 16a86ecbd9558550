//! Deferred drops (Discourse's ColumnDropper / TableDropper, gated on live builds).
//!
//! A migration schedules a drop with [`drop_column_later`] / [`drop_table_later`] (or the
//! SQL functions `zdm_drop_column_later('posts', 'legacy')` and
//! `zdm_drop_table_later('old_audit')` that zdm installs). Scheduling only records the drop
//! and, for a column, relaxes `NOT NULL`: the build still serving may write it. Once no
//! live instance runs a build without the scheduling migration and none maps the column,
//! `run_post` drops it. With a minimum delay, the column or table is made read-only by a
//! trigger while the delay runs, so a forgotten writer fails loudly instead of losing data.

use std::time::Duration;

use sqlx::PgConnection;
use zdm_core::gate::{self, Blocker, PendingDrop};
use zdm_core::model::ModelInfo;

use crate::backend::pg_simple as simple;
use crate::backend::{Backend, DropStep, StepGuard, StepOutcome};
use crate::error::Error;
use crate::lease::Fence;
use crate::ledger::Names;
use crate::migrator::Migrator;

/// Schedules `table.column` for dropping once no live build needs it. Call it from a
/// Rust-coded migration (pre-deploy is fine: it only records the drop and drops
/// `NOT NULL`). `table` is read as SQL reads it: `posts`, `app.posts`, `"Posts"`.
pub async fn drop_column_later(conn: &mut PgConnection, table: &str, column: &str) -> Result<(), sqlx::Error> {
    drop_column_later_with_delay(conn, table, column, Duration::ZERO).await
}

/// [`drop_column_later`] that also waits at least `min_delay` after scheduling; the column
/// is read-only while the delay runs once no old build is live.
pub async fn drop_column_later_with_delay(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    min_delay: Duration,
) -> Result<(), sqlx::Error> {
    let f = function(conn, "drop_column_later").await?;
    simple::sql(format!("SELECT {f}($1, $2, make_interval(secs => $3))"))
        .bind(table)
        .bind(column)
        .bind(min_delay.as_secs_f64())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Schedules `table` for dropping once no live build reads it.
pub async fn drop_table_later(conn: &mut PgConnection, table: &str) -> Result<(), sqlx::Error> {
    drop_table_later_with_delay(conn, table, Duration::ZERO).await
}

/// [`drop_table_later`] with a minimum delay, read-only while it runs.
pub async fn drop_table_later_with_delay(
    conn: &mut PgConnection,
    table: &str,
    min_delay: Duration,
) -> Result<(), sqlx::Error> {
    let f = function(conn, "drop_table_later").await?;
    simple::sql(format!("SELECT {f}($1, make_interval(secs => $2))"))
        .bind(table)
        .bind(min_delay.as_secs_f64())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The function's quoted name, which zdm sets for the migration it runs.
/// Rebuilt from the schema and prefix settings, each quoted (never a setting's text
/// spliced in as SQL).
async fn function(conn: &mut PgConnection, suffix: &str) -> Result<String, sqlx::Error> {
    let (schema, prefix): (Option<String>, Option<String>) = simple::sql(
        "SELECT nullif(current_setting('zdm.schema', true), ''), nullif(current_setting('zdm.prefix', true), '')",
    )
    .row_as(&mut *conn)
    .await?;
    let prefix = prefix.ok_or_else(|| {
        sqlx::Error::Protocol(
            "zdm's drop_column_later / drop_table_later must be called inside a migration that zdm runs \
             (a #[zdm::migration] function)"
                .into(),
        )
    })?;
    Ok(zdm_core::ident::qualified(schema.as_deref(), &format!("{prefix}{suffix}")))
}

/// One scheduled drop as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropStatus {
    pub drop: PendingDrop,
    /// Carried out.
    pub dropped: bool,
    /// What holds it back (empty when due or done).
    pub blockers: Vec<Blocker>,
}

/// What the calling process contributes to every gate verdict (decision 17: it is a live
/// build too) and what makes the gate fail closed (decision 18).
#[derive(Debug, Clone)]
pub(crate) struct Local {
    /// This process's registry id (its own row is judged as the local build instead).
    pub own_id: String,
    /// The migrations this build embeds.
    pub embedded: Vec<i64>,
    pub models: Vec<ModelInfo>,
    pub app_name: String,
    /// Some build of this app registered model structs before.
    pub app_had_models: bool,
    /// This process's registration with the database (its heartbeat is asked afresh at
    /// every verdict, the re-check inside a drop's transaction included).
    pub heartbeat_key: String,
    pub instance_ttl: Duration,
}

impl Local {
    /// Reasons to keep every gate closed whatever is pending: the gate cannot know.
    pub(crate) fn fail_closed(&self, others: &[gate::Instance]) -> Vec<Blocker> {
        let mut out: Vec<Blocker> =
            empty_registry(&self.models, others, &self.app_name, self.app_had_models).into_iter().collect();
        if let Some(late) = crate::registry::heartbeat_late(&self.heartbeat_key, self.instance_ttl) {
            out.push(Blocker::Waits(late));
        }
        out
    }

    /// The live instances other than this process.
    pub(crate) fn others(&self, live: &[gate::Instance]) -> Vec<gate::Instance> {
        live.iter().filter(|i| i.id != self.own_id).cloned().collect()
    }
}

/// Everything that holds back one drop, this build included.
pub(crate) fn blockers(
    d: &PendingDrop,
    others: &[gate::Instance],
    local: &Local,
    backfills: &[gate::PendingBackfill],
) -> Vec<Blocker> {
    let mut out = gate::local_blockers(d.scheduled_by, &local.embedded);
    out.extend(gate::drop_blockers(d, others));
    out.extend(gate::drop_backfill_blockers(d, backfills));
    out.extend(local.fail_closed(others));
    out
}

/// The blockers of each pending drop, from this build's point of view.
pub(crate) fn judge(
    drops: &[(PendingDrop, bool)],
    others: &[gate::Instance],
    local: &Local,
    backfills: &[gate::PendingBackfill],
) -> Vec<DropStatus> {
    drops
        .iter()
        .map(|(d, dropped)| DropStatus {
            drop: d.clone(),
            dropped: *dropped,
            blockers: if *dropped { Vec::new() } else { blockers(d, others, local, backfills) },
        })
        .collect()
}

/// The gate fails closed: a build without model structs, where another live instance of
/// the same app has some, or where a build of this app registered some before, probably
/// lost them to the linker (unreferenced `inventory` entries), so it cannot vouch that
/// nothing maps the column.
fn empty_registry(
    models: &[ModelInfo],
    others: &[gate::Instance],
    app_name: &str,
    app_had_models: bool,
) -> Option<Blocker> {
    if !models.is_empty() {
        return None;
    }
    let fix = "the linker may have dropped them (reference a struct of each model crate from the binary)";
    if let Some(other) = others.iter().find(|i| i.app_name == app_name && !i.mapped.is_empty()) {
        return Some(Blocker::Waits(format!("this build registers no model structs but {other} does: {fix}")));
    }
    app_had_models.then(|| {
        Blocker::Waits(format!("this build registers no model structs but an earlier build of `{app_name}` did: {fix}"))
    })
}

/// The step a pending drop is ready for, if any.
pub(crate) fn next_step(s: &DropStatus) -> Option<DropStep> {
    if s.dropped {
        return None;
    }
    if s.drop.read_only {
        // A build that predates the drop is live again (a rollback): it may write.
        if DropStep::Writable.allowed(&s.blockers) {
            return Some(DropStep::Writable);
        }
    } else if DropStep::ReadOnly.allowed(&s.blockers) {
        return Some(DropStep::ReadOnly);
    }
    DropStep::Drop.allowed(&s.blockers).then_some(DropStep::Drop)
}

/// Carries out the due drops: read-only while only a delay holds one back, dropped when
/// nothing does, writable again when a build that predates it is live. Each step checks
/// the gate again inside its transaction. A drop that a struct of this build maps (while
/// this build embeds the migration that scheduled it) is refused.
pub(crate) async fn run_due<B: Backend>(
    m: &Migrator,
    backend: &B,
    names: &Names,
    judged: &[DropStatus],
    local: &Local,
    backfills: &[gate::PendingBackfill],
    fence: Option<&Fence>,
) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    // Views first: a view left by a table rename depends on the columns of its table.
    let mut order: Vec<&DropStatus> = judged.iter().collect();
    order.sort_by_key(|s| !matches!(s.drop.target, gate::DropTarget::View));
    for s in order {
        let Some(step) = next_step(s) else { continue };
        if step != DropStep::Writable {
            if let Some(user) = gate::local_user(&s.drop, &local.models) {
                return Err(Error::DropStillMapped { drop: s.drop.to_string(), by: user.name.to_string() });
            }
        }
        tracing::info!(drop = %s.drop, ?step, "running a deferred drop");
        let d = s.drop.clone();
        let recheck = move |live: &[gate::Instance]| blockers(&d, &local.others(live), local, backfills);
        let guard = StepGuard { fence, instance_ttl: m.instance_ttl, recheck: &recheck };
        match backend.drop_step(names, &s.drop, step, &m.policy, &guard).await? {
            StepOutcome::Done => {}
            StepOutcome::Held(blockers) => {
                if !blockers.is_empty() {
                    tracing::info!(drop = %s.drop, "held back at the last moment: {}", join(&blockers));
                }
                continue;
            }
            StepOutcome::Failed(message) => return Err(Error::DropFailed { drop: s.drop.to_string(), message }),
        }
        done.push(match step {
            DropStep::Drop => s.drop.to_string().replacen("drop", "dropped", 1),
            DropStep::ReadOnly => format!("made read-only until its delay passes: {}", s.drop),
            DropStep::Writable => format!("made writable again (a build that predates it is live): {}", s.drop),
        });
    }
    Ok(done)
}

fn join(blockers: &[Blocker]) -> String {
    blockers.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Decision 15: an old build redeployed after a drop it still maps has run must not start.
pub(crate) fn check_boot(drops: &[(PendingDrop, bool)], models: &[ModelInfo]) -> Result<(), Error> {
    for (d, dropped) in drops {
        // Dropped and not re-added since.
        if *dropped && d.gone {
            if let Some(user) = gate::local_user(d, models) {
                return Err(Error::MapsDropped {
                    drop: d.to_string(),
                    by: user.name.to_string(),
                    version: d.scheduled_by,
                });
            }
        }
    }
    Ok(())
}
