//! The driver: follows the registry (a long poll) and keeps HAProxy equal to it.
//!
//! A registry change is applied after a short batching window: through the Runtime API when
//! only servers changed (addresses, weights, ready/drain/maint), by rendering, checking and
//! reloading the configuration when the layout changed (at most one reload per
//! `reload_interval_min`). Every application reads HAProxy's actual servers first, so it also
//! repairs whatever differs; a periodic full reconciliation (a fresh registry read, compared
//! with HAProxy) makes a missed change or a lost command unable to leave HAProxy stale.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caravan_api::fleet::RegistryView;
use caravan_client::{Client, ClientError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::haproxy::{Files, Haproxy, HaproxyError};
use crate::model::{self, Desired, Layout, slot_name};
use crate::render::{Renderer, Settings};
use crate::sync::{self, ActualServer};
use crate::{LbError, metrics::Metrics, runtime};

/// How long the driver lets a burst of registry changes gather before applying them.
pub const BATCH_MS_DEFAULT: u64 = 50;
/// The shortest time between two reloads.
pub const RELOAD_INTERVAL_MS_DEFAULT: u64 = 500;
/// The time between two full reconciliations.
pub const RESYNC_MS_DEFAULT: u64 = 5_000;
/// How long one registry long poll waits for a change.
const WATCH_WAIT_MS: u64 = 25_000;

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct LbConfig {
    /// The Caravan server's URL.
    pub server_url: String,
    /// A token that may read the registry (admin: every service; a tenant's: its own).
    pub token: String,
    /// Where HAProxy's configuration, sockets and state file are kept.
    pub work_dir: PathBuf,
    /// The HAProxy program.
    pub haproxy_binary: PathBuf,
    /// An existing HAProxy to drive instead of starting one: its files (master socket,
    /// configuration it runs from, runtime socket and state file the template must name).
    pub attach: Option<Files>,
    /// The configuration template (minijinja source).
    pub template: String,
    /// The address frontends listen on.
    pub bind_address: IpAddr,
    /// Where HAProxy's own Prometheus exporter listens, if anywhere.
    pub prometheus_listen: Option<SocketAddr>,
    /// Where the driver serves `/metrics` (its own and HAProxy's statistics), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Server slots a backend has at least.
    pub slots_min: u32,
    /// The batching window for registry changes.
    pub batch: Duration,
    /// The shortest time between two reloads.
    pub reload_interval_min: Duration,
    /// The time between two full reconciliations.
    pub resync_interval: Duration,
}

/// Runs the driver until `shutdown` resolves, then stops the HAProxy it started.
pub async fn run(config: LbConfig, shutdown: impl Future<Output = ()>) -> Result<(), LbError> {
    let client = Client::new(&config.server_url, Some(config.token.clone()))?;
    let renderer = Renderer::new(config.template.clone())?;
    std::fs::create_dir_all(&config.work_dir).map_err(|source| LbError::Io {
        what: format!("cannot create {}", config.work_dir.display()),
        source,
    })?;
    let haproxy = match &config.attach {
        Some(files) => Haproxy::attached(config.haproxy_binary.clone(), files.clone()),
        None => Haproxy::managed(
            config.haproxy_binary.clone(),
            Files::in_dir(&config.work_dir),
        ),
    };
    let settings = Settings {
        runtime_socket: haproxy.files().runtime_socket.display().to_string(),
        state_file: haproxy.files().state_file.display().to_string(),
        prometheus_listen: config.prometheus_listen,
        ..Settings::in_dir(&config.work_dir, config.bind_address)
    };
    let metrics = Arc::new(Metrics::new()?);
    let instances = Arc::new(Mutex::new(BTreeMap::new()));
    if let Some(listen) = config.metrics_listen {
        crate::serve::metrics(
            listen,
            metrics.clone(),
            instances.clone(),
            haproxy.files().runtime_socket.clone(),
        )
        .await?;
    }
    let mut driver = Driver {
        haproxy,
        renderer,
        settings,
        slots_min: config.slots_min,
        reload_interval_min: config.reload_interval_min,
        desired: None,
        applied_layout: None,
        last_reload: None,
        applied_version: None,
        conflicts_reported: BTreeSet::new(),
        metrics: metrics.clone(),
        instances,
    };

    // HAProxy starts from the first registry read, once the server answers. A failure to start
    // it (no program, a template HAProxy refuses, a port in use) ends the driver with its reason.
    tokio::pin!(shutdown);
    let first = tokio::select! {
        () = &mut shutdown => return Ok(()),
        first = first_registry(&client, &metrics) => first?,
    };
    driver.sync(&first, Trigger::Change).await?;
    tracing::info!(
        version = %first.version,
        services = first.services.len(),
        "load balancer following the registry"
    );

    let (changes_tx, mut changes) = watch::channel(first);
    let watcher = tokio::spawn(watch_registry(client.clone(), changes_tx, metrics.clone()));
    let mut resync = tokio::time::interval_at(
        Instant::now() + config.resync_interval,
        config.resync_interval,
    );
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (registry, trigger) = tokio::select! {
            () = &mut shutdown => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                // Let the rest of a burst arrive, then take the latest.
                tokio::time::sleep(config.batch).await;
                (changes.borrow_and_update().clone(), Trigger::Change)
            }
            _ = resync.tick() => match client.registry(None, 0).await {
                Ok(registry) => (registry, Trigger::Resync),
                Err(error) => {
                    metrics.errors.with_label_values(&["registry"]).inc();
                    tracing::warn!(%error, "full reconciliation skipped: cannot read the registry");
                    continue;
                }
            },
        };
        if let Err(error) = driver.sync(&registry, trigger).await {
            tracing::error!(%error, "HAProxy not brought up to date; trying again at the next change or reconciliation");
        }
    }
    watcher.abort();
    driver.haproxy.stop(Duration::from_secs(5)).await;
    Ok(())
}

/// The registry, read again with backoff until the server answers.
/// A token the server refuses is not worth waiting for.
async fn first_registry(client: &Client, metrics: &Metrics) -> Result<RegistryView, LbError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match client.registry(None, 0).await {
            Ok(registry) => return Ok(registry),
            Err(
                error @ ClientError::Api {
                    status: 401 | 403, ..
                },
            ) => return Err(error.into()),
            Err(error) => {
                metrics.errors.with_label_values(&["registry"]).inc();
                tracing::warn!(%error, retry_in = ?backoff, "cannot read the registry yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Long-polls the registry, publishing each new version; reconnects with backoff.
async fn watch_registry(
    client: Client,
    changes: watch::Sender<RegistryView>,
    metrics: Arc<Metrics>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let known = changes.borrow().version.clone();
        match client.registry(Some(&known), WATCH_WAIT_MS).await {
            Ok(registry) => {
                backoff = Duration::from_millis(200);
                if registry.version != known {
                    changes.send_replace(registry);
                }
            }
            Err(error) => {
                metrics.errors.with_label_values(&["registry"]).inc();
                tracing::warn!(%error, retry_in = ?backoff, "registry watch failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// A registry change (or the start).
    Change,
    /// The periodic full reconciliation.
    Resync,
}

struct Driver {
    haproxy: Haproxy,
    renderer: Renderer,
    settings: Settings,
    slots_min: u32,
    reload_interval_min: Duration,
    /// What HAProxy was last brought to (`None` before the first sync).
    desired: Option<Desired>,
    /// The layout of the configuration HAProxy runs, when it is one the driver applied.
    applied_layout: Option<Layout>,
    last_reload: Option<Instant>,
    /// The registry version HAProxy holds.
    applied_version: Option<String>,
    conflicts_reported: BTreeSet<String>,
    metrics: Arc<Metrics>,
    /// `backend/server` -> instance, for the metrics' labels.
    instances: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Driver {
    /// Brings HAProxy to what `registry` says.
    async fn sync(&mut self, registry: &RegistryView, trigger: Trigger) -> Result<(), LbError> {
        let runtime_socket = self.haproxy.files().runtime_socket.clone();
        let previous = match &self.desired {
            Some(desired) => desired.assignment(),
            // Beside a HAProxy that already runs (attached): keep its slots where they are.
            None if self.haproxy.is_running() => match self.actual_servers().await {
                Ok(actual) => sync::assignment_of(&actual, &registry.services),
                // Its runtime socket is not Caravan's yet: the first reload makes it so.
                Err(_) => Default::default(),
            },
            None => Default::default(),
        };
        let desired = model::plan(&registry.services, &previous, self.slots_min);
        for conflict in &desired.conflicts {
            if self.conflicts_reported.insert(conflict.clone()) {
                tracing::warn!("{conflict}");
            }
        }
        self.desired = Some(desired.clone());
        self.publish_instances(&desired);

        if !self.haproxy.is_running() || self.applied_layout.as_ref() != Some(&desired.layout) {
            if let Some(last) = self.last_reload {
                tokio::time::sleep(self.reload_interval_min.saturating_sub(last.elapsed())).await;
            }
            let config = self.renderer.render(&self.settings, &desired)?;
            self.last_reload = Some(Instant::now());
            match self.haproxy.apply(&config).await {
                Ok(()) => {
                    self.metrics.reloads.inc();
                    self.applied_layout = Some(desired.layout.clone());
                }
                Err(error) => {
                    let kind = match error {
                        HaproxyError::InvalidConfig { .. } => "invalid_config",
                        _ => "haproxy",
                    };
                    self.metrics.errors.with_label_values(&[kind]).inc();
                    if !self.haproxy.is_running() {
                        return Err(error.into());
                    }
                    // The previous configuration keeps serving: bring its servers up to date.
                    tracing::error!(%error, "configuration not applied");
                }
            }
        }

        let actual = self.actual_servers().await?;
        let found = sync::commands(&desired, &actual);
        if !found.missing.is_empty() && self.applied_layout.as_ref() == Some(&desired.layout) {
            // HAProxy runs something else than what was applied (restarted by hand?): reload.
            tracing::warn!(missing = ?found.missing, "HAProxy lacks servers of the layout; reloading at the next sync");
            self.applied_layout = None;
        }
        runtime::apply(&runtime_socket, &found.commands).await?;
        self.metrics
            .runtime_commands
            .inc_by(found.commands.len() as u64);
        if trigger == Trigger::Resync && !found.commands.is_empty() {
            self.metrics
                .resync_corrections
                .inc_by(found.commands.len() as u64);
            tracing::warn!(commands = ?found.commands, "full reconciliation corrected HAProxy");
        }
        if self.applied_version.as_deref() != Some(registry.version.as_str()) {
            if self.applied_version.is_some() {
                let delay_ms = now_ms().saturating_sub(registry.changed_at_ms);
                self.metrics
                    .change_applied
                    .observe(delay_ms as f64 / 1_000.0);
                tracing::debug!(version = %registry.version, delay_ms, commands = found.commands.len(), "registry change applied");
            }
            self.applied_version = Some(registry.version.clone());
        }
        Ok(())
    }

    async fn actual_servers(&self) -> Result<Vec<ActualServer>, LbError> {
        let state =
            runtime::send(&self.haproxy.files().runtime_socket, "show servers state").await?;
        Ok(sync::parse_servers_state(&state)?)
    }

    fn publish_instances(&self, desired: &Desired) {
        let mut map = BTreeMap::new();
        for (backend, slots) in &desired.slots {
            for (slot, server) in slots.iter().enumerate() {
                if let Some(server) = server {
                    map.insert(
                        format!("{backend}/{}", slot_name(slot)),
                        server.instance.to_string(),
                    );
                }
            }
        }
        if let Ok(mut instances) = self.instances.lock() {
            *instances = map;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
