//! What the runner and the status report share: a migration set with its settings (a
//! [`Job`]), what counts as applied, the plan, and the gate's verdict on an after_deploy
//! migration, so `status` says exactly what `run_post` would do.

use zdm_core::gate::{self, Blocker, PendingBackfill};
use zdm_core::plan::{self, Applied, Plan, Target};

use crate::backend::{Backend, MigratePool};
use crate::error::Error;
use crate::local::Local;
use crate::migration::{Body, Step};
use crate::names::Names;
use crate::records::{Foreign, Found};
use crate::registry;
use crate::settings::Settings;

/// A migration set and how to run it: what `Migrator` hands to the runner.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a> {
    pub steps: &'a [Step],
    pub settings: &'a Settings,
}

impl Job<'_> {
    /// The versions this build embeds.
    pub(crate) fn embedded(&self) -> Vec<i64> {
        self.steps.iter().map(|s| s.meta.version).collect()
    }

    pub(crate) fn metas(&self) -> Vec<zdm_core::Migration> {
        self.steps.iter().map(|s| s.meta).collect()
    }

    /// The settings make sense and no two migrations share a version (a Rust one
    /// colliding with a file).
    pub(crate) fn check<B: MigratePool>(&self) -> Result<(), Error> {
        self.settings.check()?;
        if let Some(set) = self.settings.dialect.filter(|&d| d != B::DIALECT) {
            return Err(Error::WrongDialect {
                set: set.arg(),
                set_name: set.name(),
                pool: B::DIALECT.arg(),
                pool_name: B::DIALECT.name(),
            });
        }
        let dups: Vec<String> = self
            .steps
            .windows(2)
            .filter(|w| w[0].meta.version == w[1].meta.version)
            .map(|w| {
                format!("version {} is used by both {} and {}", w[0].meta.version, w[0].meta.source, w[1].meta.source)
            })
            .collect();
        if dups.is_empty() {
            Ok(())
        } else {
            Err(Error::Mismatch(dups))
        }
    }

    /// This process as the gate sees it.
    pub(crate) async fn local<B: MigratePool>(
        &self,
        backend: &B,
        names: &Names,
        found: &Found,
    ) -> Result<Local, Error> {
        Local::load(self.settings, &self.embedded(), backend, names, found, registry::linked_models()).await
    }
}

/// What holds back the after_deploy migration `step` (see `gate::migration_verdict`).
pub(crate) fn migration_gate(
    step: &Step,
    others: &[gate::Instance],
    local: &Local,
    backfills: &[PendingBackfill],
) -> Vec<Blocker> {
    let removed = match step.body {
        Body::Sql(sql) => zdm_core::removed::removed(sql),
        Body::Rust(_) => Vec::new(),
    };
    local.migration_verdict(step.meta.version, &removed, others, backfills)
}

/// Successful ledger rows plus, when they exist, sqlx's successful rows and diesel's rows.
pub(crate) async fn load_applied<B: Backend>(
    backend: &B,
    names: &Names,
    foreign: Foreign,
) -> Result<Vec<Applied>, Error> {
    backend.load_applied(names, foreign).await
}

pub(crate) fn make_plan(metas: &[zdm_core::Migration], applied: &[Applied], target: Target) -> Result<Plan, Error> {
    plan::plan(metas, applied, target).map_err(|errs| Error::Mismatch(errs.iter().map(ToString::to_string).collect()))
}
