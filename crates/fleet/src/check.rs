//! Placement problems of a service ([`Fleet::check`]) and their fixes ([`Fleet::migrate`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::drain::{Move, MoveOrigin, MoveState};
use crate::error::{FleetError, PlacementFailure};
use crate::events::Outcome;
use crate::fleet::Fleet;
use crate::inventory::HostState;
use crate::name::{DcName, HostName, InstanceId, ServiceName};
use crate::resources::Resources;
use crate::service::{InstanceState, Slot};

/// One placement problem of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// Two members of one group run in the same data center.
    GroupSharesDataCenter {
        /// The group.
        group: u32,
        /// The shared data center.
        data_center: DcName,
        /// The instances in it.
        instances: Vec<InstanceId>,
    },
    /// An instance runs outside its template's data center.
    WrongDataCenter {
        /// The instance.
        instance: InstanceId,
        /// Where it runs.
        data_center: DcName,
        /// Where its template says it must run.
        expected: DcName,
    },
    /// Several instances of the service share a host although another host could take one.
    SharedHost {
        /// The host.
        host: HostName,
        /// The instances on it.
        instances: Vec<InstanceId>,
    },
    /// A host carrying the service has more allocated than its capacity.
    HostOverCapacity {
        /// The host.
        host: HostName,
        /// What is allocated on it.
        allocated: Resources,
        /// Its capacity.
        capacity: Resources,
        /// The service's instances on it.
        instances: Vec<InstanceId>,
    },
    /// An instance is on a host that is not `up`.
    UnavailableHost {
        /// The instance.
        instance: InstanceId,
        /// Its host.
        host: HostName,
        /// The host's state.
        state: HostState,
    },
    /// An instance waits for capacity.
    Pending {
        /// The instance.
        instance: InstanceId,
        /// Why it is not placed.
        reason: String,
    },
}

impl Finding {
    /// A sentence for a human.
    pub fn message(&self) -> String {
        match self {
            Finding::GroupSharesDataCenter {
                group,
                data_center,
                instances,
            } => format!(
                "group {group} has {} members in {data_center} ({})",
                instances.len(),
                crate::error::join(instances, ", ")
            ),
            Finding::WrongDataCenter {
                instance,
                data_center,
                expected,
            } => format!("{instance} runs in {data_center}, but its template is in {expected}"),
            Finding::SharedHost { host, instances } => format!(
                "{} instances share host {host} ({}) although other hosts have room",
                instances.len(),
                crate::error::join(instances, ", ")
            ),
            Finding::HostOverCapacity {
                host,
                allocated,
                capacity,
                instances,
            } => format!(
                "host {host} is over capacity ({allocated} allocated, capacity {capacity}); \
                 the service has {} there",
                crate::error::join(instances, ", ")
            ),
            Finding::UnavailableHost {
                instance,
                host,
                state,
            } => format!("{instance} is on host {host}, which is {state}"),
            Finding::Pending { instance, reason } => format!("{instance} is pending: {reason}"),
        }
    }
}

/// The placement problems of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The service.
    pub service: ServiceName,
    /// Its problems (empty: all is well).
    pub findings: Vec<Finding>,
    /// One message per finding, in the same order.
    pub messages: Vec<String>,
}

/// What [`Fleet::migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// The moves started (their replacements are placed).
    pub moves: Vec<Move>,
    /// Problems a move cannot fix (pending instances wait for capacity).
    pub unfixable: Vec<String>,
}

impl Fleet {
    /// Reports the placement problems of a service.
    pub fn check(&self, service: &ServiceName) -> Result<CheckReport, FleetError> {
        let Some(record) = self.services.get(service) else {
            return Err(FleetError::not_found(ServiceName::KIND, service));
        };
        let instances = self.service_instances(service);
        let mut findings = Vec::new();
        // Members of a group in one data center (different members only: a member and its
        // replacement during a move legitimately share one).
        let mut by_group: BTreeMap<(u32, &DcName), BTreeMap<u32, Vec<InstanceId>>> =
            BTreeMap::new();
        for instance in &instances {
            by_group
                .entry((instance.group, &instance.data_center))
                .or_default()
                .entry(instance.member)
                .or_default()
                .push(instance.id);
        }
        for ((group, data_center), members) in by_group {
            if members.len() > 1 {
                findings.push(Finding::GroupSharesDataCenter {
                    group,
                    data_center: data_center.clone(),
                    instances: members.into_values().flatten().collect(),
                });
            }
        }
        for instance in &instances {
            if let Some(member) = record.members.get(instance.member as usize)
                && member.data_center != instance.data_center
            {
                findings.push(Finding::WrongDataCenter {
                    instance: instance.id,
                    data_center: instance.data_center.clone(),
                    expected: member.data_center.clone(),
                });
            }
        }
        // Shared hosts, when avoidable.
        let mut by_host: BTreeMap<&HostName, Vec<InstanceId>> = BTreeMap::new();
        for instance in &instances {
            if let Some(host) = &instance.host
                && instance.state != InstanceState::Stopping
            {
                by_host.entry(host).or_default().push(instance.id);
            }
        }
        for (host, ids) in &by_host {
            if ids.len() > 1 && self.sharing_is_avoidable(host, ids, record.policy) {
                findings.push(Finding::SharedHost {
                    host: (*host).clone(),
                    instances: ids.clone(),
                });
            }
        }
        for (host, ids) in &by_host {
            if let Some(load) = self.ix.host_load.get(*host)
                && !load.allocated.fits_in(&load.capacity)
            {
                findings.push(Finding::HostOverCapacity {
                    host: (*host).clone(),
                    allocated: load.allocated,
                    capacity: load.capacity,
                    instances: ids.clone(),
                });
            }
        }
        for instance in &instances {
            match (&instance.host, &instance.state) {
                (_, InstanceState::Pending { reason }) => findings.push(Finding::Pending {
                    instance: instance.id,
                    reason: reason.clone(),
                }),
                (Some(host), _) => {
                    let state = self.hosts.get(host).map_or(HostState::Down, |h| h.state);
                    if state != HostState::Up && instance.state != InstanceState::Stopping {
                        findings.push(Finding::UnavailableHost {
                            instance: instance.id,
                            host: host.clone(),
                            state,
                        });
                    }
                }
                (None, _) => {}
            }
        }
        let messages = findings.iter().map(Finding::message).collect();
        Ok(CheckReport {
            service: service.clone(),
            findings,
            messages,
        })
    }

    /// Whether one of `ids` (on `host`) could go to a host that runs nothing of its service.
    fn sharing_is_avoidable(
        &self,
        host: &HostName,
        ids: &[InstanceId],
        policy: crate::service::PlacementPolicy,
    ) -> bool {
        ids.iter()
            .filter_map(|id| self.instances.get(id))
            .any(|instance| {
                let slot = Slot::of_instance(instance, policy);
                self.choose_host(&slot.request(Some(host)))
                    .is_some_and(|choice| !choice.shares_service)
            })
    }

    /// Fixes what [`Fleet::check`] reports by moving instances (make-before-break, see
    /// [`crate::drain`]), to `to_host` if given. All or nothing: if a move cannot be placed,
    /// nothing is done and the error explains each failure.
    pub fn migrate(
        &mut self,
        service: &ServiceName,
        to_host: Option<&HostName>,
    ) -> Result<(Migration, Outcome), FleetError> {
        let report = self.check(service)?;
        let mut planned: BTreeMap<InstanceId, String> = BTreeMap::new();
        let mut unfixable = Vec::new();
        for finding in &report.findings {
            let message = finding.message();
            let ids: Vec<InstanceId> = match finding {
                Finding::GroupSharesDataCenter { instances, .. } => instances
                    .iter()
                    .filter(|id| {
                        report.findings.iter().any(|f| {
                            matches!(f, Finding::WrongDataCenter { instance, .. } if instance == *id)
                        })
                    })
                    .copied()
                    .collect(),
                Finding::WrongDataCenter { instance, .. } => vec![*instance],
                // Keep the first, move the others.
                Finding::SharedHost { instances, .. } => instances[1..].to_vec(),
                Finding::HostOverCapacity { host, instances, .. } => {
                    self.relief_set(host, instances, &planned)
                }
                Finding::UnavailableHost { instance, .. } => vec![*instance],
                Finding::Pending { .. } => {
                    unfixable.push(message.clone());
                    Vec::new()
                }
            };
            for id in ids {
                planned.entry(id).or_insert_with(|| message.clone());
            }
        }
        // Instances already moving (or replacing another) keep their move.
        planned.retain(|id, _| !self.ix.move_of.contains_key(id));
        let (moves, outcome) = self.transact(|fleet, txn| {
            let mut failures: Vec<PlacementFailure> = Vec::new();
            let mut moves = Vec::new();
            for (id, finding) in planned {
                let Some(instance) = fleet.instances.get(&id).cloned() else {
                    continue;
                };
                let Some(from_host) = instance.host.clone() else {
                    continue;
                };
                let move_id = fleet.allocate_move_id();
                let move_ = Move {
                    id: move_id,
                    instance: id,
                    service: instance.service.clone(),
                    from_host,
                    origin: MoveOrigin::Migrate { finding },
                    target: to_host.cloned(),
                    replacement: None,
                    state: MoveState::Queued,
                };
                fleet.put_move(txn, move_id, Some(move_));
                match fleet.start_move(txn, move_id) {
                    Ok(()) => {
                        if let Some(started) = fleet.moves.get(&move_id) {
                            moves.push(started.clone());
                        }
                    }
                    Err(reason) => {
                        let policy = fleet
                            .services
                            .get(&instance.service)
                            .map(|s| s.policy)
                            .unwrap_or_default();
                        failures.push(Slot::of_instance(&instance, policy).failure(reason));
                    }
                }
            }
            if !failures.is_empty() {
                return Err(FleetError::Unplaceable {
                    service: service.clone(),
                    failures,
                });
            }
            Ok(moves)
        })?;
        Ok((Migration { moves, unfixable }, outcome))
    }

    /// The service's instances to move off an over-capacity host, largest first, until it fits
    /// (or all of them, if that is not enough).
    fn relief_set(
        &self,
        host: &HostName,
        ids: &[InstanceId],
        planned: &BTreeMap<InstanceId, String>,
    ) -> Vec<InstanceId> {
        let Some(load) = self.ix.host_load.get(host) else {
            return Vec::new();
        };
        let resources_of = |id: &InstanceId| self.instances.get(id).map(|i| i.resources);
        // Instances already planned to leave count as gone.
        let mut allocated = ids
            .iter()
            .filter(|id| planned.contains_key(id))
            .filter_map(resources_of)
            .fold(load.allocated, |sum, r| sum.saturating_sub(&r));
        let mut candidates: Vec<(Resources, InstanceId)> = ids
            .iter()
            .filter(|id| !planned.contains_key(id))
            .filter_map(|id| resources_of(id).map(|r| (r, *id)))
            .collect();
        candidates.sort_by_key(|(r, id)| (std::cmp::Reverse((r.memory_bytes, r.cpu_millis)), *id));
        let mut chosen = BTreeSet::new();
        for (resources, id) in candidates {
            if allocated.fits_in(&load.capacity) {
                break;
            }
            allocated = allocated.saturating_sub(&resources);
            chosen.insert(id);
        }
        chosen.into_iter().collect()
    }
}
