//! The instance registry: every process that uses the database records which build it
//! runs (app, version, the migrations it embeds, the columns its model structs map and
//! ignore) and keeps a heartbeat. The gate of post-deploy work reads it to know when no
//! live process still needs what a migration or a deferred drop removes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use zdm_core::gate::Mapped;
use zdm_core::model::ModelInfo;

use crate::backend::Registry;
use crate::error::Error;
use crate::names::Names;
use crate::records::{Found, InstanceRecord};
use crate::settings::Settings;

/// The registration `#[zdm::ignored_columns]` and `#[zdm::model]` submit.
pub struct RegisteredModel(pub ModelInfo);
inventory::collect!(RegisteredModel);

/// Every model struct linked into this binary.
pub fn models() -> Vec<ModelInfo> {
    linked_models().to_vec()
}

/// The model structs, collected once: what the linker kept does not change while the
/// process runs, and every run, registration and heartbeat asks.
pub(crate) fn linked_models() -> &'static [ModelInfo] {
    static MODELS: OnceLock<Vec<ModelInfo>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let mut out: Vec<ModelInfo> = inventory::iter::<RegisteredModel>.into_iter().map(|m| m.0).collect();
        out.sort_by_key(|m| m.name);
        out
    })
}

/// What this process publishes about itself: its build (app, version, the migrations it
/// embeds) and what its model structs map and ignore.
pub(crate) fn this_process(settings: &Settings, embedded: &[i64]) -> InstanceRecord {
    let models = linked_models();
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    InstanceRecord {
        id: process_id(&hostname).to_string(),
        app_name: settings.app_name.clone(),
        app_version: settings.app_version.clone(),
        hostname,
        pid: std::process::id() as i32,
        embedded: embedded.to_vec(),
        mapped: Mapped::of(models).iter().map(Mapped::encode).collect(),
        ignored: models.iter().flat_map(|m| m.ignored.iter().map(move |c| format!("{}.{c}", m.table))).collect(),
    }
}

/// This process's id in every registry.
pub(crate) fn own_id() -> &'static str {
    process_id(&gethostname::gethostname().to_string_lossy())
}

/// This process's id in every registry: host, pid and a random part (pids are reused).
fn process_id(hostname: &str) -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| crate::records::unique_id(hostname))
}

/// A registered process's handle. The heartbeat runs for the life of the process (or of
/// the tokio runtime); dropping the handle leaves it running. Call [`Instance::stop`] on a
/// clean shutdown so post-deploy work need not wait for the registration to expire.
#[derive(Clone)]
pub struct Instance {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    key: String,
    /// When the heartbeat (or the registration) last reached the database.
    last_ok: Arc<Mutex<Instant>>,
    heartbeat: Duration,
    record: Arc<Mutex<InstanceRecord>>,
    task: Mutex<Option<JoinHandle<()>>>,
    deregister: Box<dyn Fn() -> crate::migration::BoxFuture<'static, Result<(), Error>> + Send + Sync>,
}

impl Instance {
    /// This process's id in the registry (`host:pid:random`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Stops the heartbeat and removes the registration: this process no longer holds back
    /// post-deploy work. Call it after the last query, before exiting.
    pub async fn stop(&self) -> Result<(), Error> {
        let task = self.inner.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        registered().lock().unwrap_or_else(|p| p.into_inner()).remove(&self.inner.key);
        (self.inner.deregister)().await?;
        tracing::info!(id = %self.inner.id, "deregistered this instance");
        Ok(())
    }

    fn running(&self) -> bool {
        self.inner.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").field("id", &self.inner.id).finish_non_exhaustive()
    }
}

impl PartialEq for Instance {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id && self.inner.key == other.inner.key
    }
}
impl Eq for Instance {}

/// The registry key of a database (and zdm table set).
pub(crate) fn key(found: &Found, names: &Names) -> String {
    format!("{}|{}", found.db_key, names.instances)
}

/// Why this process's own heartbeat to that database cannot be trusted now (the gate then
/// stays closed: a process cut off from the database may have been pruned, and the
/// registry it reads may miss builds that registered since), or `None` when it beats on
/// time or the process never registered there. Late means no successful beat for longer than half the instance TTL (and three
/// beats): the registry this process reads may be as stale as its own row.
pub(crate) fn heartbeat_late(key: &str, instance_ttl: Duration) -> Option<String> {
    let map = registered().lock().unwrap_or_else(|p| p.into_inner());
    let inst = map.get(key)?;
    let age = inst.inner.last_ok.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
    let limit = (instance_ttl / 2).max(inst.inner.heartbeat * 3);
    (age > limit).then(|| {
        format!(
            "this process's own heartbeat last reached the database {:.1} s ago (limit {:.1} s): \
             the registry cannot be trusted until it beats again",
            age.as_secs_f64(),
            limit.as_secs_f64()
        )
    })
}

/// One heartbeat per database (and zdm table set) this process registered with.
fn registered() -> &'static Mutex<HashMap<String, Instance>> {
    static MAP: OnceLock<Mutex<HashMap<String, Instance>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

/// What a registration found.
pub(crate) struct Registered {
    pub instance: Instance,
    /// This process's first registration with that database (a new heartbeat).
    pub fresh: bool,
    /// Read-only drops scheduled by migrations this build lacks: it may write them.
    pub predated_read_only: Vec<i64>,
}

/// Registers (or refreshes) this process and makes sure its heartbeat runs, on a
/// connection of its own.
pub(crate) async fn register<B: Registry>(
    settings: &Settings,
    record: InstanceRecord,
    backend: &B,
    names: &Names,
    found: &Found,
) -> Result<Registered, Error> {
    let predated = backend.upsert_instance(names, &record, settings.instance_ttl, linked_models()).await?;
    Ok(handle(settings, record, backend, names, found, predated))
}

/// Takes back the row a failed run wrote with its boot's reads, unless this process has a
/// running registration with that database (an earlier run's, whose row it is too).
pub(crate) async fn forget_boot_registration<B: Registry>(backend: &B, names: &Names, found: &Found) {
    let running =
        registered().lock().unwrap_or_else(|p| p.into_inner()).get(&key(found, names)).is_some_and(Instance::running);
    if !running {
        if let Err(e) = backend.deregister(names, own_id()).await {
            tracing::warn!(error = %e, "could not take back this failed run's registration; it expires with its TTL");
        }
    }
}

/// The handle of a registration already written (by [`register`], or with the boot's
/// reads): starts the heartbeat, or updates the running one of an earlier registration of
/// this process with the same database.
pub(crate) fn handle<B: Registry>(
    settings: &Settings,
    record: InstanceRecord,
    backend: &B,
    names: &Names,
    found: &Found,
    predated: Vec<i64>,
) -> Registered {
    let key = key(found, names);
    let mut map = registered().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = map.get(&key).filter(|i| i.running()) {
        *existing.inner.record.lock().unwrap_or_else(|p| p.into_inner()) = record;
        *existing.inner.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        return Registered { instance: existing.clone(), fresh: false, predated_read_only: predated };
    }
    tracing::info!(id = %record.id, app = %record.app_name, version = %record.app_version, "registered this instance");
    let shared = Arc::new(Mutex::new(record.clone()));
    let last_ok = Arc::new(Mutex::new(Instant::now()));
    let task = tokio::spawn(heartbeat(
        backend.side(settings.session_url_in_force().as_deref()),
        names.clone(),
        shared.clone(),
        last_ok.clone(),
        settings.heartbeat,
        settings.instance_ttl,
    ));
    let (b, n, id) = (backend.clone(), names.clone(), record.id.clone());
    let instance = Instance {
        inner: Arc::new(Inner {
            id: record.id.clone(),
            key: key.clone(),
            last_ok,
            heartbeat: settings.heartbeat,
            record: shared,
            task: Mutex::new(Some(task)),
            deregister: Box::new(move || {
                let (b, n, id) = (b.clone(), n.clone(), id.clone());
                Box::pin(async move { b.deregister(&n, &id).await })
            }),
        }),
    };
    map.insert(key, instance.clone());
    Registered { instance, fresh: true, predated_read_only: predated }
}

/// Beats on `side`, a connection of its own: an app that holds every pooled connection
/// (a busy old build) must not look gone.
async fn heartbeat<B: Registry>(
    side: B,
    names: Names,
    record: Arc<Mutex<InstanceRecord>>,
    last_ok: Arc<Mutex<Instant>>,
    every: Duration,
    ttl: Duration,
) {
    // Expired rows are pruned by the first beat, then at most once per TTL.
    let mut pruned: Option<Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        let id = record.lock().unwrap_or_else(|p| p.into_inner()).id.clone();
        let prune = pruned.is_none_or(|at| at.elapsed() >= ttl).then_some(ttl);
        let ok = match side.beat(&names, &id, prune).await {
            Ok(true) => {
                if prune.is_some() {
                    pruned = Some(Instant::now());
                }
                true
            }
            Ok(false) => {
                // Pruned while this process was stalled past the TTL: add it back.
                tracing::warn!(id = %id, "this instance's registration had expired; registering again");
                let current = record.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match side.upsert_instance(&names, &current, ttl, linked_models()).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not register this instance again");
                        false
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; retrying at the next beat");
                false
            }
        };
        if ok {
            *last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }
}
