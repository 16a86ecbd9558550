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

use sqlx::{AssertSqlSafe, PgConnection};
use zdm_core::gate::{self, Blocker, PendingDrop};
use zdm_core::model::ModelInfo;

use crate::backend::{Backend, DropStep};
use crate::error::Error;
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
    let f = function(conn, "zdm.fn_drop_column").await?;
    sqlx::query(AssertSqlSafe(format!("SELECT {f}($1, $2, make_interval(secs => $3))")))
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
    let f = function(conn, "zdm.fn_drop_table").await?;
    sqlx::query(AssertSqlSafe(format!("SELECT {f}($1, make_interval(secs => $2))")))
        .bind(table)
        .bind(min_delay.as_secs_f64())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The function's quoted name, which zdm sets for the migration it runs.
async fn function(conn: &mut PgConnection, setting: &str) -> Result<String, sqlx::Error> {
    let name: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting($1, true), '')").bind(setting).fetch_one(&mut *conn).await?;
    name.ok_or_else(|| {
        sqlx::Error::Protocol(
            "zdm's drop_column_later / drop_table_later must be called inside a migration that zdm runs \
             (a #[zdm::migration] function)"
                .into(),
        )
    })
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

/// The blockers of each pending drop, from this build's point of view.
pub(crate) fn judge(
    drops: &[(PendingDrop, bool)],
    live: &[gate::Instance],
    models: &[ModelInfo],
    app_name: &str,
    backfills: &[gate::PendingBackfill],
) -> Vec<DropStatus> {
    drops
        .iter()
        .map(|(d, dropped)| {
            let mut blockers = if *dropped { Vec::new() } else { gate::drop_blockers(d, live) };
            if !dropped {
                blockers.extend(gate::drop_backfill_blockers(d, backfills));
            }
            if !dropped {
                if let Some(b) = empty_registry(models, live, app_name) {
                    blockers.push(b);
                }
            }
            DropStatus { drop: d.clone(), dropped: *dropped, blockers }
        })
        .collect()
}

/// The gate fails closed: a build without model structs, where another live instance of
/// the same app has some, probably lost them to the linker (unreferenced `inventory`
/// entries), so it cannot vouch that nothing maps the column.
fn empty_registry(models: &[ModelInfo], live: &[gate::Instance], app_name: &str) -> Option<Blocker> {
    if !models.is_empty() {
        return None;
    }
    let other = live.iter().find(|i| i.app_name == app_name && !i.mapped.is_empty())?;
    Some(Blocker::Waits(format!(
        "this build registers no model structs but {other} does: the linker may have dropped them \
         (reference a struct of each model crate from the binary)"
    )))
}

/// Carries out the due drops: read-only while only a delay holds one back, dropped when
/// nothing does. A drop that a struct of this build maps is refused.
pub(crate) async fn run_due<B: Backend>(
    m: &Migrator,
    backend: &B,
    names: &Names,
    judged: &[DropStatus],
    models: &[ModelInfo],
) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    for s in judged.iter().filter(|s| !s.dropped) {
        if let Some(user) = gate::local_user(&s.drop, models) {
            return Err(Error::DropStillMapped { drop: s.drop.to_string(), by: user.name.to_string() });
        }
        let step = if s.blockers.is_empty() {
            DropStep::Drop
        } else if !s.drop.read_only && s.blockers.iter().all(|b| matches!(b, Blocker::Delay { .. })) {
            DropStep::ReadOnly
        } else {
            continue;
        };
        tracing::info!(drop = %s.drop, ?step, "running a deferred drop");
        if let Err(message) = backend.drop_step(names, &s.drop, step, &m.policy).await? {
            return Err(Error::DropFailed { drop: s.drop.to_string(), message });
        }
        done.push(match step {
            DropStep::Drop => s.drop.to_string().replacen("drop", "dropped", 1),
            DropStep::ReadOnly => format!("made read-only until its delay passes: {}", s.drop),
        });
    }
    Ok(done)
}

/// Decision 15: an old build redeployed after a drop it still maps has run must not start.
pub(crate) fn check_boot(drops: &[(PendingDrop, bool)], models: &[ModelInfo]) -> Result<(), Error> {
    for (d, dropped) in drops {
        if *dropped {
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
