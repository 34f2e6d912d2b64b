//! Heartbeats, host failure and recovery, and what each host must run.
//!
//! A host whose last heartbeat is older than the timeout goes `down`; its instances are
//! rescheduled in the same data center (so a group keeps one member per data center) with new
//! addresses, or become `pending` with the reason. When the host heartbeats again it comes back
//! `up` and empty: whatever its agent still runs is not in [`Fleet::desired_instances`] any more,
//! so [`Fleet::reconcile_host`] tells it to stop those. Nothing is ever duplicated, because the
//! desired instances of a host are the single source of what it must run.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::drain::{MoveOrigin, MoveState};
use crate::error::{FleetError, list_some};
use crate::events::{Event, EventKind, Outcome};
use crate::fleet::{Fleet, Settle, Txn};
use crate::inventory::HostState;
use crate::name::{HostName, InstanceId, ServiceName, TemplateName, TenantName};
use crate::resources::Resources;
use crate::service::{Instance, InstanceState, Slot, Target, placed_event};
use crate::template::{HealthCheck, RunSpec};

/// Default time without heartbeat after which a host is down.
pub const HEARTBEAT_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// What a host's agent must do with one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredAction {
    /// Keep it running (start it if it is not).
    Run,
    /// Stop it (it was replaced elsewhere); then report it stopped.
    Stop,
}

/// One instance a host must run or stop, with everything its agent needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredInstance {
    /// The instance.
    pub instance: InstanceId,
    /// Its service.
    pub service: ServiceName,
    /// The tenant owning the service: where the instance's logs go.
    pub tenant: Option<TenantName>,
    /// Its template.
    pub template: TemplateName,
    /// What it gets.
    pub resources: Resources,
    /// Its address.
    pub ip: Option<IpAddr>,
    /// Run or stop.
    pub action: DesiredAction,
    /// How to run it.
    pub run: RunSpec,
    /// How to check it.
    pub health: Option<HealthCheck>,
}

/// What an agent must change so that its host runs exactly its desired instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReconciliation {
    /// Desired running instances the agent did not report.
    pub start: Vec<InstanceId>,
    /// Reported instances the host must not run (stale, replaced, stopping, unknown).
    pub stop: Vec<InstanceId>,
}

impl Fleet {
    /// Records a heartbeat. A `down` host comes back `up` (empty: its instances were
    /// rescheduled) and pending instances may then be placed on it.
    pub fn heartbeat(&mut self, host: &HostName, now_ms: u64) -> Result<Outcome, FleetError> {
        let Some(record) = self.hosts.get(host) else {
            return Err(FleetError::not_found(HostName::KIND, host));
        };
        let comes_back = record.state == HostState::Down;
        let settle = if comes_back {
            Settle::After
        } else {
            Settle::Skip
        };
        let newer = now_ms > record.last_heartbeat_ms;
        self.transact_with(settle, |fleet, txn| {
            if newer {
                fleet.put_heartbeat(txn, host, now_ms);
            }
            if comes_back {
                fleet.change_host_state(
                    txn,
                    host,
                    HostState::Up,
                    "its agent sends heartbeats again",
                );
            }
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Marks `down` every `up` or `draining` host whose last heartbeat is more than
    /// `timeout_ms` old (see [`HEARTBEAT_TIMEOUT_MS_DEFAULT`]), and reschedules its instances.
    pub fn detect_down_hosts(
        &mut self,
        now_ms: u64,
        timeout_ms: u64,
    ) -> Result<Outcome, FleetError> {
        let stale: Vec<(HostName, u64)> = self
            .hosts
            .values()
            .filter(|h| matches!(h.state, HostState::Up | HostState::Draining))
            .filter(|h| now_ms.saturating_sub(h.last_heartbeat_ms) > timeout_ms)
            .map(|h| (h.name.clone(), now_ms.saturating_sub(h.last_heartbeat_ms)))
            .collect();
        let settle = if stale.is_empty() {
            Settle::Skip
        } else {
            Settle::After
        };
        self.transact_with(settle, |fleet, txn| {
            for (host, silent_ms) in stale {
                let why = format!("no heartbeat for {silent_ms} ms (timeout {timeout_ms} ms)");
                fleet.mark_down(txn, &host, &why);
            }
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Sets a host's state as an operator asks:
    /// - `up`: back in service (a drain in progress is cancelled);
    /// - `draining`: same as [`Fleet::drain_host`];
    /// - `down`: treated as a failure, its instances are rescheduled;
    /// - `maintenance`: only for a host that runs nothing (drain it first).
    pub fn set_host_state(
        &mut self,
        host: &HostName,
        state: HostState,
    ) -> Result<Outcome, FleetError> {
        if state == HostState::Draining {
            return self.drain_host(host);
        }
        self.transact(|fleet, txn| {
            let Some(record) = fleet.hosts.get(host) else {
                return Err(FleetError::not_found(HostName::KIND, host));
            };
            let current = record.state;
            if current == state {
                return Ok(());
            }
            match state {
                HostState::Up => {
                    if current == HostState::Draining {
                        fleet.cancel_drain(txn, host);
                    }
                    fleet.change_host_state(txn, host, HostState::Up, "an operator set it up");
                }
                HostState::Down => fleet.mark_down(txn, host, "an operator set it down"),
                HostState::Maintenance => {
                    let instances: Vec<InstanceId> =
                        fleet.host_instances(host).iter().map(|i| i.id).collect();
                    if !instances.is_empty() {
                        return Err(FleetError::HostState {
                            host: host.to_string(),
                            state: current,
                            reason: format!(
                                "it still runs {} instance(s) ({}): drain it first",
                                instances.len(),
                                list_some(&instances)
                            ),
                        });
                    }
                    fleet.change_host_state(
                        txn,
                        host,
                        HostState::Maintenance,
                        "an operator set it in maintenance",
                    );
                }
                HostState::Draining => unreachable!("handled above by drain_host"),
            }
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// What `host` must run or stop. Instances that were moved away (for example while the host
    /// was down) are absent: the host must not run them.
    pub fn desired_instances(&self, host: &HostName) -> Result<Vec<DesiredInstance>, FleetError> {
        if !self.hosts.contains_key(host) {
            return Err(FleetError::not_found(HostName::KIND, host));
        }
        Ok(self
            .host_instances(host)
            .into_iter()
            .map(|instance| {
                let service = self.services.get(&instance.service);
                let member = service.and_then(|s| s.members.get(instance.member as usize));
                DesiredInstance {
                    instance: instance.id,
                    service: instance.service.clone(),
                    tenant: service.map(|s| s.tenant.clone()),
                    template: instance.template.clone(),
                    resources: instance.resources,
                    ip: instance.ip,
                    action: if instance.state == InstanceState::Stopping {
                        DesiredAction::Stop
                    } else {
                        DesiredAction::Run
                    },
                    run: member.map(|m| m.run.clone()).unwrap_or_default(),
                    health: member.and_then(|m| m.health.clone()),
                }
            })
            .collect())
    }

    /// Compares what an agent reports running with what its host must run.
    pub fn reconcile_host(
        &self,
        host: &HostName,
        running: &[InstanceId],
    ) -> Result<HostReconciliation, FleetError> {
        let desired: BTreeSet<InstanceId> = self
            .desired_instances(host)?
            .into_iter()
            .filter(|d| d.action == DesiredAction::Run)
            .map(|d| d.instance)
            .collect();
        let reported: BTreeSet<InstanceId> = running.iter().copied().collect();
        Ok(HostReconciliation {
            start: desired.difference(&reported).copied().collect(),
            stop: reported.difference(&desired).copied().collect(),
        })
    }

    /// Sets a host's state and records why.
    pub(crate) fn change_host_state(
        &mut self,
        txn: &mut Txn,
        host: &HostName,
        state: HostState,
        why: &str,
    ) {
        let Some(mut record) = self.hosts.get(host).cloned() else {
            return;
        };
        let from = record.state;
        record.state = state;
        txn.event(
            Event::new(
                EventKind::HostStateChanged,
                format!("host {host} is {state} (was {from}): {why}"),
            )
            .host(host)
            .data_center(&record.data_center),
        );
        self.put_host(txn, host.clone(), Some(record));
    }

    /// Marks a host down and reschedules everything on it.
    pub(crate) fn mark_down(&mut self, txn: &mut Txn, host: &HostName, why: &str) {
        self.change_host_state(txn, host, HostState::Down, why);
        let cause = format!("host {host} is down ({why})");
        let ids: Vec<InstanceId> = self
            .ix
            .host_load
            .get(host)
            .map(|load| load.instances.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            let Some(instance) = self.instances.get(&id).cloned() else {
                continue;
            };
            let Some(move_id) = self.ix.move_of.get(&id).copied() else {
                self.reschedule(txn, &instance, &cause);
                continue;
            };
            let Some(mut move_) = self.moves.get(&move_id).cloned() else {
                continue;
            };
            if move_.instance == id {
                // The old instance of a move is lost: its replacement, if any, takes over.
                match move_.replacement {
                    Some(replacement) => self.remove_instance(
                        txn,
                        id,
                        &format!("{cause}; its replacement {replacement} takes over"),
                    ),
                    None => {
                        self.put_move(txn, move_id, None);
                        self.reschedule(txn, &instance, &cause);
                    }
                }
            } else {
                // A replacement is lost: the old instance must run again (if it was told to
                // stop, it is back to `placed` until its agent reports it healthy) and the move
                // starts again.
                if move_.state == MoveState::StoppingOld
                    && let Some(mut old) = self.instances.get(&move_.instance).cloned()
                {
                    old.state = InstanceState::Placed;
                    txn.event(
                        Event::new(
                            EventKind::InstancePlaced,
                            format!(
                                "{} ({}) must run again on {}: its replacement {id} was lost                                  ({cause})",
                                old.id,
                                old.describe(),
                                move_.from_host
                            ),
                        )
                        .service(&old.service)
                        .instance(old.id)
                        .host(&move_.from_host),
                    );
                    self.put_instance(txn, old.id, Some(old));
                }
                move_.replacement = None;
                move_.state = MoveState::Queued;
                self.put_move(txn, move_id, Some(move_));
                self.remove_instance(
                    txn,
                    id,
                    &format!("{cause}; move {move_id} will place another replacement"),
                );
            }
        }
        // Moves away from this host that had no instance left are over.
        let orphans: Vec<_> = self
            .moves
            .values()
            .filter(|m| matches!(&m.origin, MoveOrigin::Drain { host: h } if h == host))
            .map(|m| m.id)
            .collect();
        for move_id in orphans {
            self.put_move(txn, move_id, None);
        }
    }

    /// Replaces an instance of a failed host by a new one in the same data center (or a pending
    /// one), then removes it. The new instance is placed first, so it gets a new address.
    fn reschedule(&mut self, txn: &mut Txn, instance: &Instance, cause: &str) {
        let policy = self
            .services
            .get(&instance.service)
            .map(|s| s.policy)
            .unwrap_or_default();
        let slot = Slot::of_instance(instance, policy);
        match self.place_slot(txn, &slot, Target::AnyExcept(instance.host.as_ref())) {
            Ok((new_id, choice)) => {
                let ip = self.instances.get(&new_id).and_then(|i| i.ip);
                txn.event(placed_event(
                    EventKind::InstanceRescheduled,
                    &slot,
                    new_id,
                    &choice,
                    ip,
                    &format!("replaces {} ({cause})", instance.id),
                ));
                self.remove_instance(txn, instance.id, &format!("{cause}; replaced by {new_id}"));
            }
            Err(reason) => {
                let new_id = self.create_pending(txn, &slot, reason);
                self.remove_instance(
                    txn,
                    instance.id,
                    &format!("{cause}; replaced by pending {new_id}"),
                );
            }
        }
    }
}
