//! Draining hosts and moving instances, one make-before-break step at a time.
//!
//! A [`Move`] replaces one instance by a new one on another host:
//!
//! ```text
//! queued/blocked --(replacement placed)--> awaiting_healthy
//!     --(instance_healthy(replacement))--> stopping_old (old instance told to stop)
//!     --(instance_stopped(old))--> done (old removed, its lease released)
//! ```
//!
//! Draining a host creates one move per instance on it and runs them one at a time; migrations
//! ([`Fleet::migrate`]) start theirs at once. The fleet takes the placement steps itself (at the
//! end of every operation); the agent drives the rest by reporting health and stops.
//! [`Fleet::drain_status`] says what the next step is.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::FleetError;
use crate::events::{Event, EventKind, Outcome};
use crate::fleet::{Fleet, Txn};
use crate::inventory::HostState;
use crate::name::{HostName, InstanceId, MoveId, ServiceName};
use crate::registry::{ENDPOINT_WEIGHT_FULL, HealthReport};
use crate::service::{InstanceState, Slot, Target, placed_event};

/// One instance being replaced by another on a different host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Move {
    /// Its id.
    pub id: MoveId,
    /// The instance being replaced.
    pub instance: InstanceId,
    /// Its service.
    pub service: ServiceName,
    /// The host it leaves.
    pub from_host: HostName,
    /// Why it moves.
    pub origin: MoveOrigin,
    /// The host it must go to, if an operator chose one.
    pub target: Option<HostName>,
    /// The replacement, once placed.
    pub replacement: Option<InstanceId>,
    /// Where the move is.
    pub state: MoveState,
}

/// Why a move exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MoveOrigin {
    /// The host is being drained.
    Drain {
        /// The drained host.
        host: HostName,
    },
    /// `migrate` fixes a placement problem.
    Migrate {
        /// The problem, as `check` described it.
        finding: String,
    },
}

/// Where a move is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MoveState {
    /// Waiting for its turn.
    Queued,
    /// No host can take the replacement yet; retried when capacity appears.
    Blocked {
        /// Why.
        reason: String,
    },
    /// The replacement is placed; waiting for its agent to report it healthy.
    AwaitingHealthy,
    /// The replacement is healthy; the old instance is told to stop.
    StoppingOld,
}

/// The next thing that must happen for a drained host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum DrainStep {
    /// The host is not draining.
    NotDraining,
    /// A move is waiting to start (the fleet starts it at the end of the next operation).
    Queued {
        /// The move.
        move_id: MoveId,
        /// The instance to move.
        instance: InstanceId,
    },
    /// No host can take the next replacement; add capacity.
    Blocked {
        /// The move.
        move_id: MoveId,
        /// The instance to move.
        instance: InstanceId,
        /// Why.
        reason: String,
    },
    /// The agent of `replacement_host` must report `replacement` healthy
    /// ([`Fleet::instance_healthy`]).
    AwaitHealthy {
        /// The move.
        move_id: MoveId,
        /// The instance being replaced.
        instance: InstanceId,
        /// Its replacement.
        replacement: InstanceId,
        /// Where the replacement runs.
        replacement_host: HostName,
    },
    /// The drained host's agent must stop `instance` and report it
    /// ([`Fleet::instance_stopped`]).
    AwaitStopped {
        /// The move.
        move_id: MoveId,
        /// The instance to stop.
        instance: InstanceId,
    },
    /// What remains on the host are replacements of moves finishing elsewhere (their old
    /// instances are stopping); each gets its own move when its move is done.
    WaitingForMoves {
        /// The moves to finish first.
        moves: Vec<MoveId>,
    },
    /// Nothing runs on the host any more: it can go to maintenance.
    Done,
}

/// Where the drain of a host is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// The host.
    pub host: HostName,
    /// Its state.
    pub state: HostState,
    /// Instances still on it.
    pub remaining_instances: usize,
    /// Moves away from it, by id.
    pub moves: Vec<Move>,
    /// What must happen next.
    pub next: DrainStep,
}

impl Fleet {
    /// Starts draining an `up` host: it receives nothing new, and its instances are moved away
    /// one at a time (see the module documentation). Draining a draining host changes nothing.
    pub fn drain_host(&mut self, host: &HostName) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            let Some(record) = fleet.hosts.get(host) else {
                return Err(FleetError::not_found(HostName::KIND, host));
            };
            match record.state {
                HostState::Draining => return Ok(()),
                HostState::Up => {}
                state @ (HostState::Down | HostState::Maintenance) => {
                    return Err(FleetError::HostState {
                        host: host.to_string(),
                        state,
                        reason: "only an up host can be drained (this one runs nothing)".to_owned(),
                    });
                }
            }
            let ids: Vec<InstanceId> = fleet
                .ix
                .host_load
                .get(host)
                .map(|load| load.instances.iter().copied().collect())
                .unwrap_or_default();
            fleet.change_host_state(
                txn,
                host,
                HostState::Draining,
                &format!("{} instance(s) to move away, one at a time", ids.len()),
            );
            for id in ids {
                let Some(instance) = fleet.instances.get(&id).cloned() else {
                    continue;
                };
                if instance.state == InstanceState::Stopping {
                    continue;
                }
                if let Some(move_id) = fleet.ix.move_of.get(&id).copied() {
                    let Some(mut move_) = fleet.moves.get(&move_id).cloned() else {
                        continue;
                    };
                    if move_.replacement == Some(id) && move_.state == MoveState::AwaitingHealthy {
                        // A replacement just landed here: place it elsewhere instead.
                        move_.replacement = None;
                        move_.state = MoveState::Queued;
                        fleet.put_move(txn, move_id, Some(move_));
                        fleet.remove_instance(
                            txn,
                            id,
                            &format!(
                                "host {host} is draining; move {move_id} will place \
                                      another replacement"
                            ),
                        );
                    }
                    // An instance already moving away keeps its move. A healthy replacement
                    // whose old instance is stopping gets its own move when that one is done
                    // (see `instance_stopped`).
                    continue;
                }
                fleet.queue_drain_move(txn, id, &instance.service, host);
            }
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Queues the move of `instance` away from the draining `host`.
    fn queue_drain_move(
        &mut self,
        txn: &mut Txn,
        instance: InstanceId,
        service: &ServiceName,
        host: &HostName,
    ) {
        let move_id = self.allocate_move_id();
        let move_ = Move {
            id: move_id,
            instance,
            service: service.clone(),
            from_host: host.clone(),
            origin: MoveOrigin::Drain { host: host.clone() },
            target: None,
            replacement: None,
            state: MoveState::Queued,
        };
        self.put_move(txn, move_id, Some(move_));
    }

    /// Where the drain of `host` is, and what must happen next.
    pub fn drain_status(&self, host: &HostName) -> Result<DrainStatus, FleetError> {
        let Some(record) = self.hosts.get(host) else {
            return Err(FleetError::not_found(HostName::KIND, host));
        };
        let moves: Vec<crate::drain::Move> = self
            .moves
            .values()
            .filter(|m| &m.from_host == host)
            .cloned()
            .collect();
        let remaining_instances = self
            .ix
            .host_load
            .get(host)
            .map_or(0, |load| load.instances.len());
        let active = moves
            .iter()
            .find(|m| matches!(m.state, MoveState::AwaitingHealthy | MoveState::StoppingOld));
        let next = if record.state != HostState::Draining {
            DrainStep::NotDraining
        } else if let Some(move_) = active {
            match (&move_.state, move_.replacement) {
                (MoveState::AwaitingHealthy, Some(replacement)) => DrainStep::AwaitHealthy {
                    move_id: move_.id,
                    instance: move_.instance,
                    replacement,
                    replacement_host: self
                        .instances
                        .get(&replacement)
                        .and_then(|i| i.host.clone())
                        .unwrap_or_else(|| host.clone()),
                },
                _ => DrainStep::AwaitStopped {
                    move_id: move_.id,
                    instance: move_.instance,
                },
            }
        } else if let Some(move_) = moves.first() {
            match &move_.state {
                MoveState::Blocked { reason } => DrainStep::Blocked {
                    move_id: move_.id,
                    instance: move_.instance,
                    reason: reason.clone(),
                },
                _ => DrainStep::Queued {
                    move_id: move_.id,
                    instance: move_.instance,
                },
            }
        } else if remaining_instances > 0 {
            let mut waiting: Vec<MoveId> = self
                .ix
                .host_load
                .get(host)
                .into_iter()
                .flat_map(|load| &load.instances)
                .filter_map(|id| self.ix.move_of.get(id).copied())
                .collect();
            waiting.dedup();
            DrainStep::WaitingForMoves { moves: waiting }
        } else {
            DrainStep::Done
        };
        Ok(DrainStatus {
            host: host.clone(),
            state: record.state,
            remaining_instances,
            moves,
            next,
        })
    }

    /// The agent reports an instance healthy: `placed` becomes `running`; if it replaces
    /// another instance, that one is told to stop. Same as [`Fleet::instance_healthy_at`]
    /// without a port.
    pub fn instance_healthy(&mut self, id: InstanceId) -> Result<Outcome, FleetError> {
        self.instance_healthy_at(id, None)
    }

    /// The agent reports an instance healthy, listening on `port` (the service registry's
    /// endpoint; `None` keeps the port known, if any). Same as
    /// [`Fleet::instance_healthy_report`] without a weight.
    pub fn instance_healthy_at(
        &mut self,
        id: InstanceId,
        port: Option<u16>,
    ) -> Result<Outcome, FleetError> {
        self.instance_healthy_report(
            id,
            HealthReport {
                port,
                ..HealthReport::default()
            },
        )
    }

    /// The agent reports an instance healthy, with the port it listens on and its warm-up
    /// weight (each `None` keeps what is known): `placed` becomes `running`; if it replaces
    /// another instance, that one is told to stop. A `running` or `stopping` instance only has
    /// its port and weight updated (its agent restarted it on another port, or its warm-up
    /// ramp took a step). A weight outside 1 to [`ENDPOINT_WEIGHT_FULL`] is refused.
    pub fn instance_healthy_report(
        &mut self,
        id: InstanceId,
        report: HealthReport,
    ) -> Result<Outcome, FleetError> {
        if let Some(weight) = report.weight
            && !(1..=ENDPOINT_WEIGHT_FULL).contains(&weight)
        {
            return Err(FleetError::InvalidWeight {
                instance: id,
                weight,
            });
        }
        self.transact(|fleet, txn| {
            let Some(instance) = fleet.instances.get(&id).cloned() else {
                return Err(FleetError::not_found("instance", id));
            };
            let port = report.port.or(instance.port);
            let weight = report.weight.or(instance.weight);
            let address = report.address.or(instance.address);
            match &instance.state {
                InstanceState::Pending { .. } => {
                    return Err(FleetError::InstanceState {
                        instance: id,
                        reason: "it is pending: it runs nowhere".to_owned(),
                    });
                }
                InstanceState::Running | InstanceState::Stopping => {
                    if port != instance.port
                        || weight != instance.weight
                        || address != instance.address
                    {
                        let mut updated = instance;
                        updated.port = port;
                        updated.weight = weight;
                        updated.address = address;
                        fleet.put_instance(txn, id, Some(updated));
                    }
                    return Ok(());
                }
                InstanceState::Placed => {}
            }
            let host = instance.host.clone();
            let mut running = instance;
            running.state = InstanceState::Running;
            running.port = port;
            running.weight = weight;
            running.address = address;
            let mut event = Event::new(
                EventKind::InstanceHealthy,
                format!("{id} ({}) is healthy", running.describe()),
            )
            .service(&running.service)
            .instance(id);
            if let Some(host) = &host {
                event = event.host(host);
            }
            txn.event(event);
            fleet.put_instance(txn, id, Some(running));
            let Some(move_id) = fleet.ix.move_of.get(&id).copied() else {
                return Ok(());
            };
            let Some(mut move_) = fleet.moves.get(&move_id).cloned() else {
                return Ok(());
            };
            if move_.replacement != Some(id) || move_.state != MoveState::AwaitingHealthy {
                return Ok(());
            }
            if let Some(mut old) = fleet.instances.get(&move_.instance).cloned() {
                old.state = InstanceState::Stopping;
                txn.event(
                    Event::new(
                        EventKind::InstanceStopping,
                        format!(
                            "{} ({}) must stop on {}: its replacement {id} is healthy (move \
                             {move_id})",
                            old.id,
                            old.describe(),
                            move_.from_host
                        ),
                    )
                    .service(&old.service)
                    .instance(old.id)
                    .host(&move_.from_host),
                );
                fleet.put_instance(txn, old.id, Some(old));
            }
            move_.state = MoveState::StoppingOld;
            fleet.put_move(txn, move_id, Some(move_));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// The agent reports a `running` instance unhealthy (it failed `fall` probes in a row): it
    /// goes back to `placed`, out of the service registry's healthy endpoints, until its agent
    /// reports it healthy again (the agent restarts it meanwhile). An instance that is not
    /// running changes nothing: reports may arrive late, or twice.
    pub fn instance_unhealthy(&mut self, id: InstanceId) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            let Some(instance) = fleet.instances.get(&id).cloned() else {
                return Err(FleetError::not_found("instance", id));
            };
            if instance.state != InstanceState::Running {
                return Ok(());
            }
            let mut unhealthy = instance;
            unhealthy.state = InstanceState::Placed;
            // Healthy again, it warms up again (its agent reports the ramp's first step).
            unhealthy.weight = None;
            let mut event = Event::new(
                EventKind::InstanceUnhealthy,
                format!("{id} ({}) is unhealthy", unhealthy.describe()),
            )
            .service(&unhealthy.service)
            .instance(id);
            if let Some(host) = &unhealthy.host {
                event = event.host(host);
            }
            txn.event(event);
            fleet.put_instance(txn, id, Some(unhealthy));
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// The agent reports a `stopping` instance stopped: it is removed (its lease released) and
    /// its move is done; the next move of a drain starts.
    pub fn instance_stopped(&mut self, id: InstanceId) -> Result<Outcome, FleetError> {
        self.transact(|fleet, txn| {
            let Some(instance) = fleet.instances.get(&id).cloned() else {
                return Err(FleetError::not_found("instance", id));
            };
            if instance.state != InstanceState::Stopping {
                return Err(FleetError::InstanceState {
                    instance: id,
                    reason: format!(
                        "it is {}, not stopping: only instances told to stop can be reported \
                         stopped",
                        instance.state.label()
                    ),
                });
            }
            let mut drained_host = None;
            if let Some(move_id) = fleet.ix.move_of.get(&id).copied()
                && let Some(move_) = fleet.moves.get(&move_id).cloned()
            {
                let replacement = move_
                    .replacement
                    .map_or_else(|| "none".to_owned(), |r| r.to_string());
                txn.event(
                    Event::new(
                        EventKind::MoveCompleted,
                        format!(
                            "move {move_id} done: {id} left {}, replaced by {replacement}",
                            move_.from_host
                        ),
                    )
                    .service(&move_.service)
                    .instance(id)
                    .host(&move_.from_host),
                );
                if let MoveOrigin::Drain { host } = &move_.origin {
                    drained_host = Some(host.clone());
                }
                fleet.put_move(txn, move_id, None);
            }
            fleet.remove_instance(txn, id, "its agent stopped it");
            if let Some(host) = drained_host {
                let empty = fleet
                    .ix
                    .host_load
                    .get(&host)
                    .is_none_or(|load| load.instances.is_empty());
                let moving = fleet.moves.values().any(|m| m.from_host == host);
                if empty && !moving {
                    txn.event(
                        Event::new(
                            EventKind::HostDrained,
                            format!("host {host} is drained: nothing runs on it any more"),
                        )
                        .host(&host),
                    );
                }
            }
            Ok(())
        })
        .map(|((), outcome)| outcome)
    }

    /// Places pending instances, then starts the moves that can start. Runs at the end of
    /// every operation.
    pub(crate) fn settle(&mut self, txn: &mut Txn) {
        self.place_pending_in(txn);
        self.advance_moves(txn);
    }

    /// Starts waiting moves: at most one at a time per drained host, every migration at once.
    fn advance_moves(&mut self, txn: &mut Txn) {
        self.queue_stray_instances(txn);
        if self.moves.is_empty() {
            return;
        }
        let mut busy_hosts: BTreeSet<HostName> = self
            .moves
            .values()
            .filter(|m| matches!(m.state, MoveState::AwaitingHealthy | MoveState::StoppingOld))
            .filter_map(|m| match &m.origin {
                MoveOrigin::Drain { host } => Some(host.clone()),
                MoveOrigin::Migrate { .. } => None,
            })
            .collect();
        let waiting: Vec<MoveId> = self
            .moves
            .values()
            .filter(|m| matches!(m.state, MoveState::Queued | MoveState::Blocked { .. }))
            .map(|m| m.id)
            .collect();
        for move_id in waiting {
            let drained = match self.moves.get(&move_id).map(|m| &m.origin) {
                Some(MoveOrigin::Drain { host }) => Some(host.clone()),
                Some(MoveOrigin::Migrate { .. }) => None,
                None => continue,
            };
            if let Some(host) = &drained
                && busy_hosts.contains(host)
            {
                continue;
            }
            match self.start_move(txn, move_id) {
                Ok(()) => {
                    if let Some(host) = drained {
                        busy_hosts.insert(host);
                    }
                }
                Err(reason) => self.block_move(txn, move_id, reason),
            }
        }
    }

    /// Gives a drain move to every instance on a draining host that has none: the replacement
    /// of a move whose old instance went away (stopped, or lost with its host).
    fn queue_stray_instances(&mut self, txn: &mut Txn) {
        if self.ix.draining.is_empty() {
            return;
        }
        let draining: Vec<HostName> = self.ix.draining.iter().cloned().collect();
        for host in draining {
            let strays: Vec<(InstanceId, ServiceName)> = self
                .host_instances(&host)
                .into_iter()
                .filter(|i| !self.ix.move_of.contains_key(&i.id))
                .map(|i| (i.id, i.service.clone()))
                .collect();
            for (id, service) in strays {
                self.queue_drain_move(txn, id, &service, &host);
            }
        }
    }

    /// Places the replacement of a move.
    pub(crate) fn start_move(&mut self, txn: &mut Txn, move_id: MoveId) -> Result<(), String> {
        let Some(mut move_) = self.moves.get(&move_id).cloned() else {
            return Ok(());
        };
        let Some(instance) = self.instances.get(&move_.instance).cloned() else {
            self.put_move(txn, move_id, None);
            return Ok(());
        };
        let Some(service) = self.services.get(&instance.service) else {
            self.put_move(txn, move_id, None);
            return Ok(());
        };
        let mut slot = Slot::of_instance(&instance, service.policy);
        // A migration may move a member back to its template's data center.
        if let Some(member) = service.members.get(instance.member as usize) {
            slot.data_center = member.data_center.clone();
            slot.resources = member.resources;
        }
        let target = match &move_.target {
            Some(host) => Target::Host(host),
            None => Target::AnyExcept(Some(&move_.from_host)),
        };
        let (replacement, choice) = self.place_slot(txn, &slot, target)?;
        let ip = self.instances.get(&replacement).and_then(|i| i.ip);
        txn.event(placed_event(
            EventKind::MoveStarted,
            &slot,
            replacement,
            &choice,
            ip,
            &format!(
                "replaces {} on {} (move {move_id})",
                move_.instance, move_.from_host
            ),
        ));
        move_.replacement = Some(replacement);
        move_.state = MoveState::AwaitingHealthy;
        self.put_move(txn, move_id, Some(move_));
        Ok(())
    }

    fn block_move(&mut self, txn: &mut Txn, move_id: MoveId, reason: String) {
        let Some(mut move_) = self.moves.get(&move_id).cloned() else {
            return;
        };
        if move_.state
            == (MoveState::Blocked {
                reason: reason.clone(),
            })
        {
            return;
        }
        txn.event(
            Event::new(
                EventKind::MoveBlocked,
                format!(
                    "move {move_id} of {} away from {} is blocked: {reason}",
                    move_.instance, move_.from_host
                ),
            )
            .service(&move_.service)
            .instance(move_.instance)
            .host(&move_.from_host),
        );
        move_.state = MoveState::Blocked { reason };
        self.put_move(txn, move_id, Some(move_));
    }

    /// Cancels the drain of a host going back up: moves not started are dropped, replacements
    /// not yet healthy are removed; moves whose old instance is already stopping finish.
    pub(crate) fn cancel_drain(&mut self, txn: &mut Txn, host: &HostName) {
        let moves: Vec<Move> = self
            .moves
            .values()
            .filter(|m| matches!(&m.origin, MoveOrigin::Drain { host: h } if h == host))
            .cloned()
            .collect();
        for move_ in moves {
            match move_.state {
                MoveState::StoppingOld => continue,
                MoveState::AwaitingHealthy => {
                    self.put_move(txn, move_.id, None);
                    if let Some(replacement) = move_.replacement {
                        self.remove_instance(
                            txn,
                            replacement,
                            &format!("the drain of {host} was cancelled"),
                        );
                    }
                }
                MoveState::Queued | MoveState::Blocked { .. } => {
                    self.put_move(txn, move_.id, None);
                }
            }
            txn.event(
                Event::new(
                    EventKind::MoveCancelled,
                    format!(
                        "move {} cancelled: the drain of {host} was cancelled",
                        move_.id
                    ),
                )
                .service(&move_.service)
                .instance(move_.instance)
                .host(host),
            );
        }
    }
}
