//! What HAProxy should hold, decided from the registry: pure, no I/O.
//!
//! Every service with a frontend port gets a frontend and a backend. A backend has a fixed
//! number of server *slots* (`s0`, `s1`, ...): an endpoint keeps its slot for as long as it is
//! in the registry, so that its server's state, counters and connections survive registry
//! changes and reloads, and a free slot is an address waiting in maintenance. Filling, moving
//! and emptying slots are Runtime API commands; only a new backend, a new frontend port, or more
//! endpoints than slots change the [`Layout`], which needs a reload.

use std::collections::BTreeMap;
use std::net::IpAddr;

use caravan_fleet::{Endpoint, InstanceId, RegisteredService, ServiceName};
use serde::Serialize;

/// Slots a backend has at least: room for scaling up without a reload.
pub const SLOTS_MIN_DEFAULT: u32 = 8;

/// The HAProxy name of a service's frontend and backend.
pub fn proxy_name(service: &ServiceName) -> String {
    format!("svc_{service}")
}

/// The HAProxy name of a backend's slot.
pub fn slot_name(slot: usize) -> String {
    format!("s{slot}")
}

/// The structure of HAProxy's configuration: what only a reload can change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// One per service with a frontend port, by service name.
    pub backends: Vec<BackendLayout>,
}

/// One service's frontend and backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendLayout {
    /// The service.
    pub service: ServiceName,
    /// The proxy name of its frontend and backend ([`proxy_name`]).
    pub name: String,
    /// The port its frontend listens on.
    pub frontend_port: u16,
    /// Its number of server slots.
    pub slots: usize,
}

/// What a server slot should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Takes traffic in proportion to its weight.
    Ready,
    /// Takes no new connections; its in-flight requests finish.
    Drain,
    /// Takes no traffic: an unhealthy endpoint, or a free slot.
    Maint,
}

impl ServerState {
    /// The word the Runtime API's `set server ... state` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maint => "maint",
        }
    }
}

/// An endpoint in a slot, as HAProxy should have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Server {
    /// The instance.
    pub instance: InstanceId,
    /// Its address.
    pub addr: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its weight (the registry's: 1 to 100).
    pub weight: u32,
    /// Ready, draining or in maintenance.
    pub state: ServerState,
}

impl Server {
    /// The server an endpoint is, or `None` if it cannot be reached yet (no port reported).
    fn of(endpoint: &Endpoint) -> Option<Self> {
        let state = match (endpoint.healthy, endpoint.draining) {
            (false, _) => ServerState::Maint,
            (true, true) => ServerState::Drain,
            (true, false) => ServerState::Ready,
        };
        Some(Self {
            instance: endpoint.instance,
            addr: endpoint.ip,
            port: endpoint.port?,
            weight: endpoint.weight,
            state,
        })
    }
}

/// Everything HAProxy should hold: the layout, and each backend's slots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// The structure.
    pub layout: Layout,
    /// Each backend's slots (as many as its layout says), by proxy name: `None` is a free slot.
    pub slots: BTreeMap<String, Vec<Option<Server>>>,
    /// Services left out, and why (a frontend port another service has).
    pub conflicts: Vec<String>,
}

impl Desired {
    /// Which instance holds which slot, to keep them in place at the next [`plan`].
    pub fn assignment(&self) -> Assignment {
        Assignment(
            self.slots
                .iter()
                .map(|(backend, slots)| {
                    let held = slots
                        .iter()
                        .map(|slot| slot.as_ref().map(|server| server.instance))
                        .collect();
                    (backend.clone(), held)
                })
                .collect(),
        )
    }
}

/// Which instance holds which slot of each backend (by proxy name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment(BTreeMap<String, Vec<Option<InstanceId>>>);

impl From<BTreeMap<String, Vec<Option<InstanceId>>>> for Assignment {
    fn from(slots: BTreeMap<String, Vec<Option<InstanceId>>>) -> Self {
        Self(slots)
    }
}

/// What HAProxy should hold for these registry services, keeping every endpoint that was
/// already in a slot of `previous` in that slot. Endpoints without a port are left out (nothing
/// can reach them yet). A backend keeps its slot count unless its endpoints no longer fit; then
/// it grows to twice their number, so that a reload for room is rare.
pub fn plan(services: &[RegisteredService], previous: &Assignment, slots_min: u32) -> Desired {
    let mut desired = Desired::default();
    for service in services {
        let Some(frontend_port) = service.frontend_port else {
            continue;
        };
        if let Some(owner) = desired
            .layout
            .backends
            .iter()
            .find(|backend| backend.frontend_port == frontend_port)
        {
            desired.conflicts.push(format!(
                "service {}: frontend port {frontend_port} is already service {}'s; not exposed",
                service.name, owner.service
            ));
            continue;
        }
        let name = proxy_name(&service.name);
        let servers: Vec<Server> = service.endpoints.iter().filter_map(Server::of).collect();
        let held = previous.0.get(&name).map(Vec::as_slice).unwrap_or_default();
        let mut slot_count = held.len().max(slots_min as usize);
        if servers.len() > slot_count {
            slot_count = servers.len() * 2;
        }
        let mut slots: Vec<Option<Server>> = vec![None; slot_count];
        let mut newcomers = Vec::new();
        for server in servers {
            match held.iter().position(|id| *id == Some(server.instance)) {
                Some(slot) => slots[slot] = Some(server),
                None => newcomers.push(server),
            }
        }
        // Newcomers take the free slots, first those nobody held last time (a slot just left
        // may still be finishing requests), lowest first. There is room: slot_count >= servers.
        let held_last_time = |slot: usize| held.get(slot).copied().flatten().is_some();
        let untouched = (0..slot_count).filter(|&slot| !held_last_time(slot));
        let vacated: Vec<usize> = (0..slot_count)
            .filter(|&slot| held_last_time(slot) && slots[slot].is_none())
            .collect();
        for (server, slot) in newcomers.into_iter().zip(untouched.chain(vacated)) {
            slots[slot] = Some(server);
        }
        desired.layout.backends.push(BackendLayout {
            service: service.name.clone(),
            name: name.clone(),
            frontend_port,
            slots: slot_count,
        });
        desired.slots.insert(name, slots);
    }
    desired
}
