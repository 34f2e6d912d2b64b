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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use caravan_fleet::{DcName, HostName, TenantName};
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn endpoint(id: u64, port: Option<u16>, healthy: bool, draining: bool) -> Endpoint {
        Endpoint {
            instance: InstanceId(id),
            host: HostName::new("dc1-h1").unwrap(),
            data_center: DcName::new("dc1").unwrap(),
            ip: IpAddr::from([10, 0, 0, id as u8]),
            port,
            weight: 100,
            healthy,
            draining,
        }
    }

    pub(crate) fn service(
        name: &str,
        port: Option<u16>,
        endpoints: Vec<Endpoint>,
    ) -> RegisteredService {
        RegisteredService {
            name: ServiceName::new(name).unwrap(),
            tenant: TenantName::new("shop").unwrap(),
            frontend_port: port,
            endpoints,
        }
    }

    fn slot_of(desired: &Desired, backend: &str, id: u64) -> Option<usize> {
        desired.slots[backend]
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|s| s.instance == InstanceId(id)))
    }

    #[test]
    fn services_with_a_frontend_port_get_a_backend_of_slots() {
        let services = [
            service(
                "web",
                Some(8080),
                vec![
                    endpoint(1, Some(20000), true, false),
                    endpoint(2, None, false, false),
                ],
            ),
            service("batch", None, vec![endpoint(3, Some(20001), true, false)]),
        ];
        let desired = plan(&services, &Assignment::default(), 4);
        assert_eq!(
            desired.layout.backends,
            [BackendLayout {
                service: ServiceName::new("web").unwrap(),
                name: "svc_web".into(),
                frontend_port: 8080,
                slots: 4
            }]
        );
        let slots = &desired.slots["svc_web"];
        assert_eq!(slots.len(), 4);
        assert_eq!(
            slots[0],
            Some(Server {
                instance: InstanceId(1),
                addr: IpAddr::from([10, 0, 0, 1]),
                port: 20000,
                weight: 100,
                state: ServerState::Ready
            })
        );
        assert!(
            slots[1..].iter().all(Option::is_none),
            "no port yet: not a server"
        );
    }

    #[test]
    fn health_and_draining_decide_the_state() {
        let services = [service(
            "web",
            Some(8080),
            vec![
                endpoint(1, Some(1), true, false),
                endpoint(2, Some(2), true, true),
                endpoint(3, Some(3), false, false),
                endpoint(4, Some(4), false, true),
            ],
        )];
        let desired = plan(&services, &Assignment::default(), 8);
        let states: Vec<ServerState> = desired.slots["svc_web"]
            .iter()
            .flatten()
            .map(|server| server.state)
            .collect();
        use ServerState::*;
        assert_eq!(states, [Ready, Drain, Maint, Maint]);
    }

    #[test]
    fn endpoints_keep_their_slots_and_newcomers_avoid_slots_just_left() {
        let first = [service(
            "web",
            Some(8080),
            vec![
                endpoint(1, Some(1), true, false),
                endpoint(2, Some(2), true, false),
                endpoint(3, Some(3), true, false),
            ],
        )];
        let before = plan(&first, &Assignment::default(), 4);
        // 1 leaves, 4 and 5 arrive.
        let second = [service(
            "web",
            Some(8080),
            vec![
                endpoint(2, Some(2), true, false),
                endpoint(3, Some(3), true, false),
                endpoint(4, Some(4), true, false),
                endpoint(5, Some(5), true, false),
            ],
        )];
        let after = plan(&second, &before.assignment(), 4);
        assert_eq!(
            slot_of(&after, "svc_web", 2),
            slot_of(&before, "svc_web", 2)
        );
        assert_eq!(
            slot_of(&after, "svc_web", 3),
            slot_of(&before, "svc_web", 3)
        );
        assert_eq!(
            slot_of(&after, "svc_web", 4),
            Some(3),
            "the slot nobody held"
        );
        assert_eq!(
            slot_of(&after, "svc_web", 5),
            Some(0),
            "then the one 1 left"
        );
        assert_eq!(after.layout, before.layout, "no reload");
    }

    #[test]
    fn a_backend_grows_to_twice_its_endpoints_when_they_no_longer_fit() {
        let endpoints = (1..=5)
            .map(|id| endpoint(id, Some(id as u16), true, false))
            .collect();
        let desired = plan(
            &[service("web", Some(8080), endpoints)],
            &Assignment::default(),
            4,
        );
        assert_eq!(desired.layout.backends[0].slots, 10);
    }

    #[test]
    fn a_frontend_port_taken_by_another_service_is_reported_not_exposed() {
        let services = [
            service("api", Some(8080), vec![]),
            service("web", Some(8080), vec![]),
        ];
        let desired = plan(&services, &Assignment::default(), 4);
        assert_eq!(desired.layout.backends.len(), 1);
        assert_eq!(
            desired.conflicts,
            ["service web: frontend port 8080 is already service api's; not exposed"]
        );
    }

    proptest! {
        /// Whatever the sequence of registries: every endpoint with a port has exactly one
        /// slot, slots are never shared, and an endpoint present in two consecutive registries
        /// keeps its slot.
        #[test]
        fn slots_are_exclusive_and_stable(rounds in prop::collection::vec(prop::collection::btree_set(0u64..24, 0..20), 1..12)) {
            let mut assignment = Assignment::default();
            let mut previous: Option<Desired> = None;
            for ids in rounds {
                let endpoints = ids.iter().map(|&id| endpoint(id, Some(1000 + id as u16), true, false)).collect();
                let desired = plan(&[service("web", Some(8080), endpoints)], &assignment, 4);
                let slots = &desired.slots["svc_web"];
                prop_assert_eq!(slots.len(), desired.layout.backends[0].slots);
                let held: Vec<u64> = slots.iter().flatten().map(|s| s.instance.0).collect();
                let unique: BTreeSet<u64> = held.iter().copied().collect();
                prop_assert_eq!(held.len(), unique.len());
                prop_assert_eq!(&unique, &ids);
                if let Some(previous) = &previous {
                    for &id in &ids {
                        if let Some(slot) = slot_of(previous, "svc_web", id) {
                            prop_assert_eq!(slot_of(&desired, "svc_web", id), Some(slot));
                        }
                    }
                }
                assignment = desired.assignment();
                previous = Some(desired);
            }
        }
    }
}
