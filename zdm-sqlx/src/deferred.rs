//! Carrying out due deferred drops. Which step a drop is ready for is the gate's decision
//! (`zdm_core::gate::DropStatus::next_step`); this module runs the steps in a safe order
//! and turns their outcomes into report lines. Each step asks the gate again inside its
//! own transaction (see [`crate::backend::Drops::drop_step`]).

use zdm_core::gate::{self, DropStatus, DropStep, PendingBackfill};
use zdm_core::retry::ExecPolicy;

use crate::backend::{Drops, StepGuard, StepOutcome};
use crate::error::Error;
use crate::local::Local;
use crate::names::Names;
use crate::records::Fence;

/// Carries out the due drops: read-only while only a delay holds one back, dropped when
/// nothing does, writable again when a build that predates it is live. A drop that a
/// struct of this build maps (while this build embeds the migration that scheduled it) is
/// refused. Returns a line per step done.
pub(crate) async fn run_due<B: Drops>(
    backend: &B,
    names: &Names,
    policy: &ExecPolicy,
    judged: &[DropStatus],
    local: &Local,
    backfills: &[PendingBackfill],
    fence: Option<&Fence>,
) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    // Views first: a view left by a table rename depends on the columns of its table.
    let mut order: Vec<&DropStatus> = judged.iter().collect();
    order.sort_by_key(|s| !matches!(s.drop.target, gate::DropTarget::View));
    for s in order {
        let Some(step) = s.next_step() else { continue };
        if step != DropStep::Writable {
            if let Some(user) = gate::local_user(&s.drop, &local.build.models) {
                return Err(Error::DropStillMapped { drop: s.drop.to_string(), by: user.name.to_string() });
            }
        }
        tracing::info!(drop = %s.drop, ?step, "running a deferred drop");
        let d = s.drop.clone();
        let recheck = move |live: &[gate::Instance]| local.drop_verdict(&d, &local.others(live), backfills);
        let guard = StepGuard { fence, instance_ttl: local.instance_ttl(), recheck: &recheck };
        match backend.drop_step(names, &s.drop, step, policy, &guard).await? {
            StepOutcome::Done => {}
            StepOutcome::Held(blockers) => {
                if !blockers.is_empty() {
                    tracing::info!(drop = %s.drop, "held back at the last moment: {}", gate::one_line(&blockers));
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
