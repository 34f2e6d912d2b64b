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
//! An instance that fails its health check (`fall` failures) is reported unhealthy, stopped and
//! restarted with the crash backoff. One that becomes healthy is reported with the first weight
//! of its warm-up ramp ([`crate::warmup`]), then with each next step until the full weight.
//! An instance the server no longer wants to run is stopped after the drain delay if it was
//! reported healthy (the registry already shows it draining or gone, and load balancers need a
//! moment to apply that).
//!
//! At start, the processes a previous agent left running (it crashed or was killed) are
//! adopted ([`driver::leftovers`]): kept running and watched, health-checked again once the
//! desired instances are known, stopped by the first plan if the server no longer wants them.

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
    DcName, DesiredAction, DesiredInstance, HealthCheck, HealthReport, HostName, HostSpec,
    HostState, InstanceId, Resources,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::driver::{self, Event, InstanceRecord, LaunchSpec, Process};
use crate::error::AgentError;
use crate::health::{HealthState, Transition};
use crate::limits::CgroupParent;
use crate::probe;
use crate::reconcile::{self, Action, Actual};
use crate::warmup;

/// Default time between heartbeats (and fetches of the desired instances).
pub const HEARTBEAT_MS_DEFAULT: u64 = 1_000;
/// Default time an instance gets between SIGTERM and SIGKILL.
pub const STOP_GRACE_MS_DEFAULT: u64 = 5_000;
/// Default time between the decision to stop a healthy instance and its SIGTERM.
pub const DRAIN_DELAY_MS_DEFAULT: u64 = 1_000;
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
    /// Time between the decision to stop an instance that was reported healthy and its
    /// SIGTERM, for load balancers to take it out of rotation first (default
    /// [`DRAIN_DELAY_MS_DEFAULT`]).
    pub drain_delay_ms: u64,
    /// The cgroup v2 hierarchy to put instances' cgroups in (normally
    /// [`crate::limits::CGROUP_ROOT_DEFAULT`]); `None`, or one the agent cannot use, leaves
    /// only `RLIMIT_DATA` (see [`crate::limits`]).
    pub cgroup_root: Option<PathBuf>,
    /// The address instances are reached at, reported with their health so that the registry
    /// publishes it instead of their leases (the process driver configures no lease on any
    /// interface: instances listen on the host's addresses). `None`: their leases.
    pub advertise_ip: Option<std::net::IpAddr>,
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
    let leftovers = driver::leftovers(&instances_dir)?;
    let cgroups = find_cgroups(&config);
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
        cgroups,
    };
    agent.adopt(leftovers);
    agent.run(events, desired_updates, shutdown).await;
    watcher.abort();
    shipper.abort();
    Ok(())
}

/// The agent's cgroup under `config.cgroup_root`, if it can have one; says once, at start,
/// which limits instances get.
fn find_cgroups(config: &AgentConfig) -> Option<CgroupParent> {
    let Some(root) = &config.cgroup_root else {
        tracing::info!(
            "cgroups disabled: instances' memory is limited per process (RLIMIT_DATA), \
             their CPU is not limited"
        );
        return None;
    };
    match CgroupParent::detect(root, config.host.as_str(), &config.work_dir) {
        Ok(parent) => {
            tracing::info!(cgroup = %parent.dir().display(),
                "instances get cgroups of their own (memory.max, cpu.max)");
            Some(parent)
        }
        Err(why) => {
            tracing::warn!(%why,
                "no cgroup v2 limits: instances' memory is limited per process (RLIMIT_DATA), \
                 their CPU is not limited");
            None
        }
    }
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
    /// When it last became healthy (the start of its warm-up).
    healthy_since_ms: u64,
    /// Its warm-up (0 for an adopted instance: it was warm before this agent started).
    warmup_ms: u64,
    /// The weight it was last reported healthy with; `None` until reported healthy.
    reported_weight: Option<u32>,
    /// Adopted from a previous agent: its health checks start once its desired instance is
    /// known.
    adopted: bool,
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
    /// The agent's cgroup, when instances get cgroups of their own.
    cgroups: Option<CgroupParent>,
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
            let mut wake_at_ms = self.apply_plan().await;
            if self.server_reachable {
                // The next step of a warm-up ramp (reported as soon as it is due).
                wake_at_ms = wake_at_ms
                    .into_iter()
                    .chain(self.next_warmup_step_ms())
                    .min();
            }
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
                        if self.server_reachable {
                            self.report_healthy().await;
                        }
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

    /// Reports instances that became healthy and were not reported yet, and the steps their
    /// warm-up ramps took since the last report.
    async fn report_healthy(&mut self) {
        let now_ms = self.now_ms();
        let wanted: Vec<(InstanceId, u16, u32, bool)> = self
            .slots
            .iter()
            .filter(|(id, slot)| slot.healthy && self.wants_run(**id))
            .filter_map(|(id, slot)| {
                let weight = slot.weight_at(now_ms);
                (slot.reported_weight != Some(weight)).then_some((
                    *id,
                    slot.port,
                    weight,
                    slot.reported_weight.is_none(),
                ))
            })
            .collect();
        for (id, port, weight, first) in wanted {
            // With its port and weight: the service registry publishes them.
            let report = HealthReport {
                port: Some(port),
                weight: Some(weight),
                address: self.config.advertise_ip,
            };
            match self.client.instance_health_report(id, &report).await {
                Ok(())
                | Err(ClientError::Api {
                    status: 404 | 409, ..
                }) => {
                    if first {
                        tracing::info!(instance = %id, weight, "instance healthy");
                    } else {
                        tracing::info!(instance = %id, weight, "instance warming up");
                    }
                    if let Some(slot) = self.slots.get_mut(&id) {
                        slot.reported_weight = Some(weight);
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

    /// When the next warm-up step of a healthy instance is due, if any.
    fn next_warmup_step_ms(&self) -> Option<u64> {
        // The same instances `report_healthy` reports (otherwise a due step that is never
        // reported would wake the loop again and again).
        self.slots
            .iter()
            .filter(|(id, slot)| {
                slot.healthy && slot.reported_weight.is_some() && self.wants_run(**id)
            })
            .map(|(_, slot)| slot)
            .filter_map(|slot| {
                let elapsed = self.now_ms().saturating_sub(slot.healthy_since_ms);
                warmup::next_step_ms(elapsed, slot.warmup_ms)
                    .map(|next| slot.healthy_since_ms.saturating_add(next))
            })
            .min()
    }

    fn wants_run(&self, id: InstanceId) -> bool {
        self.desired
            .as_ref()
            .and_then(|desired| desired.get(&id))
            .is_some_and(|d| d.action == DesiredAction::Run)
    }

    /// Computes and applies the reconcile plan; answers when a waiting restart is due.
    async fn apply_plan(&mut self) -> Option<u64> {
        self.check_adopted();
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
                Action::Stop(id) => self.stop(id, StopReason::NotWanted),
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
        let spec = self.launch_spec(&desired, port);
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
                let health_task = self.spawn_health(&desired, &spec, generation);
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
                        healthy_since_ms: now_ms,
                        warmup_ms: desired.health.as_ref().map_or(0, |h| h.warmup_ms),
                        reported_weight: None,
                        adopted: false,
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

    /// How to launch (or probe) `desired` on `port`.
    fn launch_spec<'a>(&'a self, desired: &'a DesiredInstance, port: u16) -> LaunchSpec<'a> {
        LaunchSpec {
            instance: desired.instance,
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
                .join(desired.instance.to_string()),
            resources: desired.resources,
            cgroups: self.cgroups.as_ref(),
        }
    }

    /// Starts the health checks of a process, if its template has any.
    fn spawn_health(
        &self,
        desired: &DesiredInstance,
        spec: &LaunchSpec<'_>,
        generation: u64,
    ) -> Option<JoinHandle<()>> {
        desired.health.clone().map(|check| {
            tokio::spawn(watch_health(
                check,
                desired.instance,
                generation,
                spec.port,
                spec.dir.clone(),
                driver::instance_env(spec),
                self.events_sender.clone(),
            ))
        })
    }

    /// Takes over the processes a previous agent left running: each is watched as if this
    /// agent had started it (its health checks start once its desired instance is known).
    fn adopt(&mut self, leftovers: Vec<InstanceRecord>) {
        let now_ms = self.now_ms();
        for record in leftovers {
            let Some(id) = record
                .instance
                .strip_prefix("i-")
                .and_then(|n| n.parse().ok())
                .map(InstanceId)
            else {
                continue;
            };
            let generation = self.next_generation;
            self.next_generation += 1;
            let adopted = Process::adopt(
                &record,
                id,
                generation,
                self.events_sender.clone(),
                self.cgroups.as_ref(),
            );
            match adopted {
                Ok(process) => {
                    tracing::info!(instance = %id, pid = record.pid, port = record.port,
                        "adopted an instance a previous agent started");
                    self.slots.insert(
                        id,
                        Slot {
                            actual: Actual::Running {
                                started_ms: now_ms,
                                failures: 0,
                            },
                            failures: 0,
                            started_ms: now_ms,
                            port: record.port,
                            generation,
                            process: Some(process),
                            health_task: None,
                            healthy: false,
                            healthy_since_ms: now_ms,
                            warmup_ms: 0,
                            reported_weight: None,
                            adopted: true,
                            restart_after_exit: false,
                        },
                    );
                }
                Err(error) => {
                    tracing::warn!(instance = %id, %error, "cannot adopt a leftover instance");
                }
            }
        }
    }

    /// Starts the health checks of adopted instances the server still wants to run.
    fn check_adopted(&mut self) {
        let Some(desired) = self.desired.as_ref() else {
            return;
        };
        let waiting: Vec<(DesiredInstance, u16, u64)> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.adopted && matches!(slot.actual, Actual::Running { .. }))
            .filter_map(|(id, slot)| {
                let wanted = desired.get(id)?;
                (wanted.action == DesiredAction::Run)
                    .then(|| (wanted.clone(), slot.port, slot.generation))
            })
            .collect();
        for (wanted, port, generation) in waiting {
            let spec = self.launch_spec(&wanted, port);
            let health_task = self.spawn_health(&wanted, &spec, generation);
            if let Some(slot) = self.slots.get_mut(&wanted.instance) {
                slot.healthy = health_task.is_none();
                slot.health_task = health_task;
                slot.adopted = false;
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
                healthy_since_ms: now_ms,
                warmup_ms: 0,
                reported_weight: None,
                adopted: false,
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

    fn stop(&mut self, id: InstanceId, reason: StopReason) {
        let grace = Duration::from_millis(self.config.stop_grace_ms);
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if let Some(task) = slot.health_task.take() {
            task.abort();
        }
        // Only an instance some load balancer may send traffic to needs the drain delay.
        let drain = if reason == StopReason::NotWanted && slot.reported_weight.is_some() {
            Duration::from_millis(self.config.drain_delay_ms)
        } else {
            Duration::ZERO
        };
        let restart_after_exit = reason == StopReason::Unhealthy;
        if let Some(process) = &slot.process {
            tracing::info!(instance = %id, pid = process.pid(), ?reason,
                drain_ms = drain.as_millis() as u64, "stopping instance");
            process.terminate(drain, grace);
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
                slot.reported_weight = None;
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
                let now_ms = self.now_ms();
                let Some(slot) = self.slots.get_mut(&instance) else {
                    return;
                };
                if slot.generation != generation || !matches!(slot.actual, Actual::Running { .. }) {
                    return;
                }
                match transition {
                    Transition::Healthy => {
                        slot.healthy = true;
                        slot.healthy_since_ms = now_ms;
                        if self.server_reachable {
                            self.report_healthy().await;
                        }
                    }
                    Transition::Unhealthy => {
                        let was_reported = slot.reported_weight.is_some();
                        slot.healthy = false;
                        slot.reported_weight = None;
                        tracing::warn!(%instance, "instance unhealthy: restarting it");
                        // Out of the registry's healthy endpoints at once (best effort: if the
                        // server is away, the next healthy report sets it right).
                        if was_reported
                            && self.server_reachable
                            && let Err(error) = self.client.instance_unhealthy(instance).await
                        {
                            tracing::warn!(%instance, %error, "cannot report the instance unhealthy");
                        }
                        self.stop(instance, StopReason::Unhealthy);
                    }
                }
            }
        }
    }

    /// Stops every instance and waits (at most the grace period and a second) for them to exit.
    async fn stop_all(&mut self, mut events: mpsc::Receiver<Event>) {
        let ids: Vec<InstanceId> = self.slots.keys().copied().collect();
        for id in ids {
            self.stop(id, StopReason::AgentExit);
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

/// Why the agent stops an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// The server no longer wants it to run (removed, or told to stop): drained first.
    NotWanted,
    /// It failed its health checks: restarted once it has exited.
    Unhealthy,
    /// The agent is stopping.
    AgentExit,
}

impl Slot {
    /// Its weight at `now_ms` in its warm-up ramp.
    fn weight_at(&self, now_ms: u64) -> u32 {
        warmup::weight_at(now_ms.saturating_sub(self.healthy_since_ms), self.warmup_ms)
    }

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
