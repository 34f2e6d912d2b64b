//! The agent loop: one task owning every record of the host's instances.
//!
//! Every `heartbeat_ms` it registers its host if needed (a host that exists already is
//! re-registered: its capacity updated), heartbeats and reports instances that became healthy.
//! A task of its own long-polls the host's desired instances (the server answers as soon as
//! they change, or after [`DESIRED_WAIT_MS`] without a change). Between those, the loop reacts
//! to new desired instances, process exits and health transitions, and after each wake-up it
//! applies [`reconcile`]'s plan. When the server cannot
//! be reached, contacts back off (doubling up to [`SERVER_BACKOFF_MS_MAX`]) while the instances
//! keep running and crashed ones keep being restarted from the last desired state known.
//!
//! An instance that fails its health check (`fall` failures) is stopped and restarted with the
//! crash backoff; the server has no "unhealthy" report yet.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use caravan_api::fleet::HostPatch;
use caravan_client::DesiredAnswer;
use caravan_client::{Client, ClientError};
use caravan_fleet::{
    DcName, DesiredAction, DesiredInstance, HealthCheck, HostName, HostSpec, HostState, InstanceId,
    Resources,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::driver::{self, Event, LaunchSpec, Process};
use crate::error::AgentError;
use crate::health::{HealthState, Transition};
use crate::probe;
use crate::reconcile::{self, Action, Actual};

/// Default time between heartbeats (and fetches of the desired instances).
pub const HEARTBEAT_MS_DEFAULT: u64 = 1_000;
/// Default time an instance gets between SIGTERM and SIGKILL.
pub const STOP_GRACE_MS_DEFAULT: u64 = 5_000;
/// Longest wait between attempts to reach an unreachable server.
pub const SERVER_BACKOFF_MS_MAX: u64 = 5_000;
/// Longest time one round of server calls may take before it counts as failed.
pub const SERVER_ROUND_MS_MAX: u64 = 10_000;
/// Longest wait of one long-polling request for the desired instances.
pub const DESIRED_WAIT_MS: u64 = 10_000;
/// Bound of the queue of process and health events (senders wait when it is full).
pub const EVENTS_QUEUE_LEN: usize = 1_024;
/// Directory of instances under the work directory.
pub const INSTANCES_DIR: &str = "instances";

/// A range of ports the agent gives its instances, such as `20000-20099`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (included).
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = AgentError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            AgentError::Config(format!(
                "port range {text:?}: expected FIRST-LAST, such as 20000-20099"
            ))
        };
        let (first, last) = text.split_once('-').ok_or_else(invalid)?;
        let first: u16 = first.trim().parse().map_err(|_| invalid())?;
        let last: u16 = last.trim().parse().map_err(|_| invalid())?;
        if first == 0 || first > last {
            return Err(invalid());
        }
        Ok(PortRange { first, last })
    }
}

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The server's base URL.
    pub server_url: String,
    /// An admin token (agents have no tokens of their own yet).
    pub token: String,
    /// The host this agent is.
    pub host: HostName,
    /// Its data center.
    pub data_center: DcName,
    /// What it offers to instances.
    pub capacity: Resources,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Where instances get their directories (`<work_dir>/instances/<id>/`).
    pub work_dir: PathBuf,
    /// Ports given to instances.
    pub ports: PortRange,
    /// Time between heartbeats (default [`HEARTBEAT_MS_DEFAULT`]).
    pub heartbeat_ms: u64,
    /// Time between SIGTERM and SIGKILL (default [`STOP_GRACE_MS_DEFAULT`]).
    pub stop_grace_ms: u64,
}

/// Runs the agent until `shutdown` completes; then stops its instances (SIGTERM, SIGKILL after
/// the grace period) and returns.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    if config.heartbeat_ms == 0 {
        return Err(AgentError::Config(
            "the heartbeat interval must be positive".to_owned(),
        ));
    }
    let instances_dir = config.work_dir.join(INSTANCES_DIR);
    std::fs::create_dir_all(&instances_dir)
        .map_err(|e| AgentError::io("cannot create", &instances_dir, e))?;
    let grace = Duration::from_millis(config.stop_grace_ms);
    let leftovers = driver::kill_leftovers(&instances_dir, grace).await?;
    if leftovers > 0 {
        tracing::info!(leftovers, "stopped instances of a previous agent");
    }
    let client = Client::new(&config.server_url, Some(config.token.clone()))?;
    let (events_sender, events) = mpsc::channel(EVENTS_QUEUE_LEN);
    // Only the latest desired instances matter: a watch channel keeps just that.
    let (desired_sender, desired_updates) = watch::channel(None);
    let watcher = tokio::spawn(watch_desired(
        client.clone(),
        config.host.clone(),
        config.heartbeat_ms,
        desired_sender,
    ));
    // Instances' output into their tenants' logs; what is not shipped when the agent stops
    // stays on disk for the next agent.
    let shipper = tokio::spawn(crate::ship::run(client.clone(), instances_dir.clone()));
    let mut agent = Agent {
        client,
        config,
        origin: Instant::now(),
        slots: BTreeMap::new(),
        desired: None,
        server_reachable: false,
        registered: false,
        next_generation: 1,
        events_sender,
    };
    agent.run(events, desired_updates, shutdown).await;
    watcher.abort();
    shipper.abort();
    Ok(())
}

struct Slot {
    actual: Actual,
    /// Consecutive failures before the current start.
    failures: u32,
    started_ms: u64,
    port: u16,
    generation: u64,
    process: Option<Process>,
    health_task: Option<JoinHandle<()>>,
    healthy: bool,
    reported_healthy: bool,
    /// Stopped because unhealthy: its exit counts as a failure and it is restarted.
    restart_after_exit: bool,
}

struct Agent {
    client: Client,
    config: AgentConfig,
    origin: Instant,
    slots: BTreeMap<InstanceId, Slot>,
    /// The last desired instances the server sent; `None` until the first answer.
    desired: Option<BTreeMap<InstanceId, DesiredInstance>>,
    server_reachable: bool,
    registered: bool,
    next_generation: u64,
    events_sender: mpsc::Sender<Event>,
}

impl Agent {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(
        &mut self,
        mut events: mpsc::Receiver<Event>,
        mut desired_updates: watch::Receiver<Option<Vec<DesiredInstance>>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let heartbeat = Duration::from_millis(self.config.heartbeat_ms);
        let mut backoff = Duration::ZERO;
        let mut next_contact = Instant::now();
        tokio::pin!(shutdown);
        loop {
            let wake_at_ms = self.apply_plan().await;
            let mut wake = next_contact;
            if let Some(ms) = wake_at_ms {
                wake = wake.min(self.origin + Duration::from_millis(ms));
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(event) = events.recv() => self.on_event(event).await,
                Ok(()) = desired_updates.changed() => {
                    let update = desired_updates.borrow_and_update().clone();
                    if let Some(desired) = update {
                        self.desired = Some(desired.into_iter().map(|d| (d.instance, d)).collect());
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if Instant::now() < next_contact {
                        continue;
                    }
                    let round = tokio::time::timeout(
                        Duration::from_millis(SERVER_ROUND_MS_MAX),
                        self.sync(),
                    ).await;
                    let result = round.unwrap_or_else(|_| Err(ClientError::Transport {
                        url: self.config.server_url.clone(),
                        message: format!("no answer within {SERVER_ROUND_MS_MAX} ms"),
                    }));
                    match result {
                        Ok(()) => {
                            if !self.server_reachable {
                                tracing::info!(host = %self.config.host, "connected to the server");
                            }
                            self.server_reachable = true;
                            backoff = Duration::ZERO;
                            next_contact = Instant::now() + heartbeat;
                        }
                        Err(error) => {
                            self.server_reachable = false;
                            backoff = (backoff * 2).clamp(heartbeat, Duration::from_millis(SERVER_BACKOFF_MS_MAX).max(heartbeat));
                            tracing::warn!(%error, retry_ms = backoff.as_millis() as u64, "server round failed");
                            next_contact = Instant::now() + backoff;
                        }
                    }
                }
            }
        }
        self.stop_all(events).await;
    }

    /// One round with the server: registration if needed, heartbeat, health reports.
    async fn sync(&mut self) -> Result<(), ClientError> {
        if !self.registered {
            self.register().await?;
        }
        match self.client.heartbeat(&self.config.host).await {
            Err(ClientError::Api { status: 404, .. }) => {
                // Deleted while this agent ran: register again.
                self.registered = false;
                self.register().await?;
                self.client.heartbeat(&self.config.host).await?;
            }
            other => {
                other?;
            }
        }
        self.report_healthy().await;
        Ok(())
    }

    async fn register(&mut self) -> Result<(), ClientError> {
        let spec = HostSpec {
            name: self.config.host.clone(),
            data_center: self.config.data_center.clone(),
            capacity: self.config.capacity,
            labels: self.config.labels.clone(),
            state: HostState::Up,
        };
        match self.client.register_host(&spec).await {
            Ok(_) => {
                tracing::info!(host = %spec.name, data_center = %spec.data_center, "host registered")
            }
            Err(ClientError::Api { status: 409, .. }) => {
                let existing = self.client.host(&spec.name).await?;
                if existing.host.data_center != spec.data_center {
                    tracing::error!(host = %spec.name, registered_in = %existing.host.data_center,
                        "the host is registered in another data center");
                }
                if existing.host.capacity != spec.capacity || existing.host.labels != spec.labels {
                    let patch = HostPatch {
                        capacity: Some(spec.capacity),
                        labels: Some(spec.labels.clone()),
                        state: None,
                    };
                    self.client.update_host(&spec.name, &patch).await?;
                }
                tracing::info!(host = %spec.name, "host re-registered");
            }
            Err(error) => return Err(error),
        }
        self.registered = true;
        Ok(())
    }

    /// Reports instances that became healthy and were not reported yet.
    async fn report_healthy(&mut self) {
        let wanted: Vec<(InstanceId, u16)> = self
            .slots
            .iter()
            .filter(|(id, slot)| slot.healthy && !slot.reported_healthy && self.wants_run(**id))
            .map(|(id, slot)| (*id, slot.port))
            .collect();
        for (id, port) in wanted {
            // With its port: the service registry publishes it.
            match self.client.instance_healthy_at(id, port).await {
                Ok(())
                | Err(ClientError::Api {
                    status: 404 | 409, ..
                }) => {
                    tracing::info!(instance = %id, "instance healthy");
                    if let Some(slot) = self.slots.get_mut(&id) {
                        slot.reported_healthy = true;
                    }
                }
                Err(error) => {
                    tracing::warn!(instance = %id, %error, "cannot report the instance healthy");
                    self.server_reachable = false;
                    return;
                }
            }
        }
    }

    fn wants_run(&self, id: InstanceId) -> bool {
        self.desired
            .as_ref()
            .and_then(|desired| desired.get(&id))
            .is_some_and(|d| d.action == DesiredAction::Run)
    }

    /// Computes and applies the reconcile plan; answers when a waiting restart is due.
    async fn apply_plan(&mut self) -> Option<u64> {
        let desired: BTreeMap<InstanceId, DesiredAction> = self
            .desired
            .as_ref()?
            .iter()
            .map(|(id, d)| (*id, d.action))
            .collect();
        let actual: BTreeMap<InstanceId, Actual> = self
            .slots
            .iter()
            .map(|(id, slot)| (*id, slot.actual))
            .collect();
        let now_ms = self.now_ms();
        let plan = reconcile::reconcile(&desired, &actual, now_ms);
        for action in plan.actions {
            match action {
                Action::Start(id) => self.start(id, now_ms),
                Action::Stop(id) => self.stop(id, false),
                Action::Forget(id) => {
                    self.slots.remove(&id);
                }
                Action::ReportStopped(id) => {
                    if !self.server_reachable {
                        continue;
                    }
                    match self.client.instance_stopped(id).await {
                        Ok(())
                        | Err(ClientError::Api {
                            status: 404 | 409, ..
                        }) => {
                            tracing::info!(instance = %id, "instance stopped");
                            self.slots.remove(&id);
                            if let Some(desired) = self.desired.as_mut() {
                                desired.remove(&id);
                            }
                        }
                        Err(error) => {
                            tracing::warn!(instance = %id, %error, "cannot report the instance stopped");
                            self.server_reachable = false;
                        }
                    }
                }
            }
        }
        plan.wake_at_ms
    }

    fn start(&mut self, id: InstanceId, now_ms: u64) {
        let Some(desired) = self.desired.as_ref().and_then(|d| d.get(&id)).cloned() else {
            return;
        };
        let (port, failures) = match self.slots.get(&id) {
            Some(slot) => (Some(slot.port), slot.failures_so_far()),
            None => (None, 0),
        };
        let port = match port
            .filter(|&p| port_free(p))
            .or_else(|| self.allocate_port())
        {
            Some(port) => port,
            None => {
                tracing::error!(instance = %id, first = self.config.ports.first, last = self.config.ports.last,
                    "no free port in the agent's range");
                self.record_failure(id, 0, now_ms, failures);
                return;
            }
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        let spec = LaunchSpec {
            instance: id,
            service: &desired.service,
            ip: desired.ip,
            port,
            run: &desired.run,
            host: &self.config.host,
            data_center: &self.config.data_center,
            dir: self
                .config
                .work_dir
                .join(INSTANCES_DIR)
                .join(id.to_string()),
        };
        if let Some(tenant) = &desired.tenant {
            let labels = crate::ship::LogLabels {
                instance: id.to_string(),
                service: desired.service.to_string(),
                tenant: tenant.to_string(),
                host: self.config.host.to_string(),
                data_center: self.config.data_center.to_string(),
            };
            if let Err(error) = crate::ship::write_labels(&spec.dir, &labels) {
                tracing::warn!(instance = %id, %error, "cannot label the instance's logs: they will not be shipped");
            }
        }
        match driver::spawn(&spec, generation, self.events_sender.clone()) {
            Ok(process) => {
                tracing::info!(instance = %id, service = %desired.service, port, pid = process.pid(),
                    restarts = failures, "instance started");
                let health_task = desired.health.clone().map(|check| {
                    tokio::spawn(watch_health(
                        check,
                        id,
                        generation,
                        port,
                        spec.dir.clone(),
                        driver::instance_env(&spec),
                        self.events_sender.clone(),
                    ))
                });
                let healthy = health_task.is_none();
                self.slots.insert(
                    id,
                    Slot {
                        actual: Actual::Running {
                            started_ms: now_ms,
                            failures,
                        },
                        failures,
                        started_ms: now_ms,
                        port,
                        generation,
                        process: Some(process),
                        health_task,
                        healthy,
                        reported_healthy: false,
                        restart_after_exit: false,
                    },
                );
            }
            Err(error) => {
                tracing::error!(instance = %id, %error, "instance did not start");
                self.record_failure(id, port, now_ms, failures);
            }
        }
    }

    fn record_failure(&mut self, id: InstanceId, port: u16, now_ms: u64, failures: u32) {
        let failures = failures.saturating_add(1);
        self.slots.insert(
            id,
            Slot {
                actual: Actual::Exited {
                    at_ms: now_ms,
                    failures,
                },
                failures,
                started_ms: now_ms,
                port,
                generation: 0,
                process: None,
                health_task: None,
                healthy: false,
                reported_healthy: false,
                restart_after_exit: false,
            },
        );
    }

    fn allocate_port(&self) -> Option<u16> {
        let used: BTreeSet<u16> = self.slots.values().map(|slot| slot.port).collect();
        let mut unavailable = BTreeSet::new();
        loop {
            let port = reconcile::allocate_port(
                self.config.ports.first,
                self.config.ports.last,
                &used,
                &unavailable,
            )?;
            if port_free(port) {
                return Some(port);
            }
            unavailable.insert(port);
        }
    }

    fn stop(&mut self, id: InstanceId, restart_after_exit: bool) {
        let grace = Duration::from_millis(self.config.stop_grace_ms);
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if let Some(task) = slot.health_task.take() {
            task.abort();
        }
        if let Some(process) = &slot.process {
            tracing::info!(instance = %id, pid = process.pid(), restart_after_exit, "stopping instance");
            process.terminate(grace);
        }
        slot.actual = Actual::Stopping;
        slot.healthy = false;
        slot.restart_after_exit = restart_after_exit;
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Exited {
                instance,
                generation,
                status,
            } => {
                let now_ms = self.now_ms();
                let Some(slot) = self.slots.get_mut(&instance) else {
                    return;
                };
                if slot.generation != generation {
                    return;
                }
                if let Some(task) = slot.health_task.take() {
                    task.abort();
                }
                slot.process = None;
                slot.healthy = false;
                slot.reported_healthy = false;
                let crashed =
                    matches!(slot.actual, Actual::Running { .. }) || slot.restart_after_exit;
                if crashed {
                    let failures =
                        reconcile::failures_after_exit(slot.failures, slot.started_ms, now_ms);
                    tracing::warn!(%instance, %status, failures,
                        retry_in_ms = reconcile::restart_delay_ms(failures), "instance exited");
                    slot.actual = Actual::Exited {
                        at_ms: now_ms,
                        failures,
                    };
                    slot.failures = failures;
                    slot.restart_after_exit = false;
                } else {
                    tracing::info!(%instance, %status, "instance exited after being stopped");
                    self.slots.remove(&instance);
                }
            }
            Event::Health {
                instance,
                generation,
                transition,
            } => {
                let Some(slot) = self.slots.get_mut(&instance) else {
                    return;
                };
                if slot.generation != generation || !matches!(slot.actual, Actual::Running { .. }) {
                    return;
                }
                match transition {
                    Transition::Healthy => {
                        slot.healthy = true;
                        if self.server_reachable {
                            self.report_healthy().await;
                        }
                    }
                    Transition::Unhealthy => {
                        let was_reported = slot.reported_healthy;
                        slot.healthy = false;
                        slot.reported_healthy = false;
                        tracing::warn!(%instance, "instance unhealthy: restarting it");
                        // Out of the registry's healthy endpoints at once (best effort: if the
                        // server is away, the next healthy report sets it right).
                        if was_reported
                            && self.server_reachable
                            && let Err(error) = self.client.instance_unhealthy(instance).await
                        {
                            tracing::warn!(%instance, %error, "cannot report the instance unhealthy");
                        }
                        self.stop(instance, true);
                    }
                }
            }
        }
    }

    /// Stops every instance and waits (at most the grace period and a second) for them to exit.
    async fn stop_all(&mut self, mut events: mpsc::Receiver<Event>) {
        let ids: Vec<InstanceId> = self.slots.keys().copied().collect();
        for id in ids {
            self.stop(id, false);
        }
        self.slots.retain(|_, slot| slot.process.is_some());
        let deadline = Instant::now() + Duration::from_millis(self.config.stop_grace_ms + 1_000);
        while !self.slots.is_empty() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::Exited {
                    instance,
                    generation,
                    ..
                })) => {
                    if self
                        .slots
                        .get(&instance)
                        .is_some_and(|s| s.generation == generation)
                    {
                        self.slots.remove(&instance);
                    }
                }
                Ok(Some(Event::Health { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

impl Slot {
    fn failures_so_far(&self) -> u32 {
        match self.actual {
            Actual::Exited { failures, .. } => failures,
            Actual::Running { failures, .. } => failures,
            Actual::Stopping => self.failures,
        }
    }
}

/// Whether `port` can be bound on loopback now (not held by something outside the agent).
fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Long-polls the host's desired instances and publishes each new list; retries with a backoff
/// (from `heartbeat_ms`, doubling up to [`SERVER_BACKOFF_MS_MAX`]) while the server cannot be
/// reached or does not know the host yet. Ends when the agent is gone.
async fn watch_desired(
    client: Client,
    host: HostName,
    heartbeat_ms: u64,
    updates: watch::Sender<Option<Vec<DesiredInstance>>>,
) {
    let mut version: Option<String> = None;
    let mut backoff_ms = 0;
    while !updates.is_closed() {
        match client
            .desired_instances_since(&host, version.as_deref(), DESIRED_WAIT_MS)
            .await
        {
            Ok(DesiredAnswer::Changed {
                desired,
                version: new_version,
            }) => {
                backoff_ms = 0;
                version = new_version;
                updates.send_replace(Some(desired));
            }
            Ok(DesiredAnswer::Unchanged) => backoff_ms = 0,
            Err(error) => {
                backoff_ms =
                    (backoff_ms * 2).clamp(heartbeat_ms, SERVER_BACKOFF_MS_MAX.max(heartbeat_ms));
                tracing::debug!(%error, retry_ms = backoff_ms, "cannot fetch the desired instances");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            }
        }
    }
}

/// Probes one instance every `interval_ms` and sends its health transitions; ends when the
/// agent aborts it (the instance stopped or exited) or the agent is gone.
async fn watch_health(
    check: HealthCheck,
    instance: InstanceId,
    generation: u64,
    port: u16,
    dir: PathBuf,
    env: BTreeMap<String, String>,
    events: mpsc::Sender<Event>,
) {
    let mut state = HealthState::default();
    let interval = Duration::from_millis(check.interval_ms.max(1));
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    loop {
        let success = probe::run(&check.probe, port, timeout, &dir, &env).await;
        if let Some(transition) = state.observe(success, check.rise, check.fall) {
            let event = Event::Health {
                instance,
                generation,
                transition,
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse() {
        assert_eq!(
            "20000-20099".parse::<PortRange>().unwrap(),
            PortRange {
                first: 20_000,
                last: 20_099
            }
        );
        for bad in ["20000", "20099-20000", "0-10", "a-b", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }
}
