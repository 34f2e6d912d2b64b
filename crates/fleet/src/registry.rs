//! The service registry: where a service's instances can be reached, and in what condition.
//!
//! An endpoint is an instance that has a host and an address (pending instances have neither):
//! its host and data center, its address (its lease), the port its agent gave it (reported with
//! its health), a weight (full, or lower while it warms up: its agent reports each step of
//! the ramp), whether it is healthy (reported healthy by its agent and not since
//! stopped or lost: lost instances are removed from the fleet) and whether it is draining (its
//! host is draining, or it is being replaced). A consumer sends traffic to the endpoints that
//! are healthy and not draining, in proportion to their weights.
//!
//! The version of a service's endpoints is a hash of them: it changes exactly when they do, so
//! that watchers (long polls) are woken only by changes they care about.

use std::hash::{Hash, Hasher};

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::fleet::Fleet;
use crate::{
    DcName, FleetError, HostName, HostState, InstanceId, InstanceState, Service, ServiceName,
    TenantName,
};

/// The weight of an endpoint that takes its full share of traffic. An instance warming up
/// (its template's `health.warmup_ms`) has less, as its agent reports it.
pub const ENDPOINT_WEIGHT_FULL: u32 = 100;

/// What an agent reports with an instance's health (the body of `POST
/// /api/v1/fleet/instances/{id}/healthy`, every field optional).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthReport {
    /// The port the agent gave the instance; `None` keeps the one known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Its weight in its warm-up ramp (1 to [`ENDPOINT_WEIGHT_FULL`]); `None` keeps the one
    /// known (full for an instance placed since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The address the instance is reached at, when it is not its lease (its host's, for the
    /// process driver); `None` keeps the one known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

/// One instance of a service, as its consumers see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The instance.
    pub instance: InstanceId,
    /// Its host.
    pub host: HostName,
    /// Its data center.
    pub data_center: DcName,
    /// The address it is reached at: the one its agent reported, else its lease.
    pub ip: IpAddr,
    /// The port its agent gave it; `None` until its agent reports it (with its health).
    pub port: Option<u16>,
    /// Its share of traffic relative to the others: [`ENDPOINT_WEIGHT_FULL`], or less while
    /// it warms up after becoming healthy.
    pub weight: u32,
    /// Reported healthy by its agent (and not since stopped or lost).
    pub healthy: bool,
    /// Its host is draining, or it is being replaced (a move, or told to stop): send it no new
    /// traffic.
    pub draining: bool,
}

/// A service's endpoints and their version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoints {
    /// Changes exactly when the endpoints do (a hash of them, 16 hexadecimal digits).
    pub version: String,
    /// The endpoints, by instance id.
    pub endpoints: Vec<Endpoint>,
}

impl ServiceEndpoints {
    /// The endpoints with their version.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        Self {
            version: version_of(&endpoints),
            endpoints,
        }
    }
}

/// One service in the [`Registry`]: who owns it, where a load balancer exposes it, its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredService {
    /// The service.
    pub name: ServiceName,
    /// Its owner.
    pub tenant: TenantName,
    /// The port a load balancer exposes it on (its templates' `frontend_port`; the first
    /// member's that has one), if any.
    pub frontend_port: Option<u16>,
    /// Its endpoints, by instance id.
    pub endpoints: Vec<Endpoint>,
}

/// The whole registry, or the part of it one caller may read, and its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Changes exactly when the services do (a hash of them, 16 hexadecimal digits).
    pub version: String,
    /// The services, by name.
    pub services: Vec<RegisteredService>,
}

/// A version string for hashable contents: the same contents give the same version.
fn version_of(contents: &impl Hash) -> String {
    // `DefaultHasher::new()` has fixed keys, so the version is stable across calls and runs.
    let mut hasher = std::hash::DefaultHasher::new();
    contents.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl Fleet {
    /// The registry: every service that `include` accepts, with its endpoints.
    pub fn registry(&self, mut include: impl FnMut(&Service) -> bool) -> Registry {
        let mut services: Vec<RegisteredService> = self
            .services()
            .filter(|service| include(service))
            .map(|service| RegisteredService {
                name: service.name.clone(),
                tenant: service.tenant.clone(),
                frontend_port: service.members.iter().find_map(|m| m.frontend_port),
                endpoints: self.endpoints_of(&service.name),
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Registry {
            version: version_of(&services),
            services,
        }
    }

    /// The endpoints of a service, by instance id.
    pub fn service_endpoints(&self, service: &ServiceName) -> Result<ServiceEndpoints, FleetError> {
        if self.service(service).is_none() {
            return Err(FleetError::not_found(ServiceName::KIND, service));
        }
        Ok(ServiceEndpoints::new(self.endpoints_of(service)))
    }

    /// The endpoints of a service that exists, by instance id.
    fn endpoints_of(&self, service: &ServiceName) -> Vec<Endpoint> {
        let mut instances = self.service_instances(service);
        instances.sort_by_key(|instance| instance.id);
        instances
            .into_iter()
            .filter_map(|instance| {
                let host = instance.host.clone()?;
                let ip = instance.address.or(instance.ip)?;
                let host_draining = self
                    .host(&host)
                    .is_some_and(|record| record.state == HostState::Draining);
                let replaced = self
                    .ix
                    .move_of
                    .get(&instance.id)
                    .and_then(|move_id| self.moves.get(move_id))
                    .is_some_and(|move_| move_.instance == instance.id);
                Some(Endpoint {
                    instance: instance.id,
                    data_center: instance.data_center.clone(),
                    host,
                    ip,
                    port: instance.port,
                    weight: instance.weight.unwrap_or(ENDPOINT_WEIGHT_FULL),
                    healthy: instance.state == InstanceState::Running,
                    draining: host_draining
                        || replaced
                        || instance.state == InstanceState::Stopping,
                })
            })
            .collect()
    }
}
