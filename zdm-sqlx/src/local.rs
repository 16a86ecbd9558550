//! This process as the gate sees it. Every verdict of the gate (run_post, the steps of
//! deferred drops, status) counts the calling process as a live build with the
//! migrations its own build embeds and the columns its structs map: a rolled-back build
//! must never carry out what a newer build scheduled, nor drop what it still maps. And a
//! process whose own heartbeat is late keeps every gate closed: it may have been pruned
//! from the registry, so what it reads there may miss builds that registered since.

use std::time::Duration;

use zdm_core::gate::{self, Blocker, DropRecord, DropStatus, LocalBuild, PendingBackfill, PendingDrop};
use zdm_core::model::ModelInfo;
use zdm_core::removed::Removed;

use crate::backend::Registry;
use crate::error::Error;
use crate::names::Names;
use crate::records::Found;
use crate::registry;
use crate::settings::Settings;

/// The calling process: its build, and where to ask whether its heartbeat is on time.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    pub build: LocalBuild,
    /// This process's registration with the database (its heartbeat is asked afresh at
    /// every verdict, the re-check inside a drop's transaction included).
    heartbeat_key: String,
    instance_ttl: Duration,
}

impl Local {
    /// This process with the migrations `embedded` and the model structs `models`.
    pub(crate) async fn load<B: Registry>(
        settings: &Settings,
        embedded: &[i64],
        backend: &B,
        names: &Names,
        found: &Found,
        models: &[ModelInfo],
    ) -> Result<Local, Error> {
        // Only a build without structs needs to know whether its app ever had some.
        let app_had_models = models.is_empty() && backend.app_had_models(names, &settings.app_name).await?;
        Ok(Local {
            build: LocalBuild {
                own_id: registry::own_id().to_string(),
                embedded: embedded.to_vec(),
                models: models.to_vec(),
                app_name: settings.app_name.clone(),
                app_had_models,
            },
            heartbeat_key: registry::key(found, names),
            instance_ttl: settings.instance_ttl,
        })
    }

    /// How old a heartbeat may be before its instance counts as gone.
    pub(crate) fn instance_ttl(&self) -> Duration {
        self.instance_ttl
    }

    /// The live instances other than this process.
    pub(crate) fn others(&self, live: &[gate::Instance]) -> Vec<gate::Instance> {
        self.build.others(live)
    }

    /// Reasons to keep every gate closed whatever is pending: this process's own
    /// heartbeat is late.
    fn closed(&self) -> Vec<Blocker> {
        registry::heartbeat_late(&self.heartbeat_key, self.instance_ttl).map(Blocker::Waits).into_iter().collect()
    }

    /// Everything that holds back one drop, this build included.
    pub(crate) fn drop_verdict(
        &self,
        d: &PendingDrop,
        others: &[gate::Instance],
        backfills: &[PendingBackfill],
    ) -> Vec<Blocker> {
        gate::drop_verdict(d, others, &self.build, backfills, &self.closed())
    }

    /// The verdict on every recorded drop.
    pub(crate) fn judge(
        &self,
        drops: &[DropRecord],
        others: &[gate::Instance],
        backfills: &[PendingBackfill],
    ) -> Vec<DropStatus> {
        gate::judge(drops, others, &self.build, backfills, &self.closed())
    }

    /// Everything that holds back the after_deploy migration `version`, which removes
    /// `removed`.
    pub(crate) fn migration_verdict(
        &self,
        version: i64,
        removed: &[Removed],
        others: &[gate::Instance],
        backfills: &[PendingBackfill],
    ) -> Vec<Blocker> {
        gate::migration_verdict(version, removed, others, &self.build, backfills, &self.closed())
    }
}
