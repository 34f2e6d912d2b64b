//! Choosing a host for one instance, and explaining why none fits.
//!
//! Per data center, the `up` hosts are kept ordered by a score: the free fraction of their
//! scarcest resource, in parts per million. `spread` walks from the most free host down, `pack`
//! from the fullest up; both skip hosts that already run an instance of the same service while
//! another host fits (anti-affinity is soft). A placement then costs O(log hosts) plus the hosts
//! skipped, and the walk stops at a score below which no host can fit the request.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::fleet::Fleet;
use crate::inventory::HostState;
use crate::name::{DcName, HostName, InstanceId, ServiceName};
use crate::resources::{Resource, Resources};
use crate::service::PlacementPolicy;

/// Scores are free fractions scaled to this (parts per million).
const SCORE_SCALE: u128 = 1_000_000;

/// The `up` hosts of one data center, by score.
#[derive(Clone, Debug, Default)]
pub(crate) struct DcPlacement {
    /// Ordered by score, then by name descending (so that walking from the top visits equal
    /// scores in ascending name order). One set, so moving a host costs no allocation.
    by_score: BTreeSet<(u32, Reverse<HostName>)>,
    /// Component-wise maximum capacity of any host ever indexed in the data center. It only
    /// grows, which keeps [`DcPlacement::score_floor`] a valid lower bound.
    max_capacity: Resources,
}

impl PartialEq for DcPlacement {
    /// Compares the ordered hosts only: `max_capacity` is a bound, not state.
    fn eq(&self, other: &DcPlacement) -> bool {
        self.by_score == other.by_score
    }
}

impl Eq for DcPlacement {}

impl DcPlacement {
    pub(crate) fn insert(&mut self, score: u32, host: &HostName) {
        let inserted = self.by_score.insert((score, Reverse(host.clone())));
        debug_assert!(inserted, "host {host} indexed twice");
    }

    pub(crate) fn remove(&mut self, score: u32, host: &HostName) {
        let removed = self.by_score.remove(&(score, Reverse(host.clone())));
        debug_assert!(removed, "host {host} not at score {score}");
    }

    pub(crate) fn note_capacity(&mut self, capacity: &Resources) {
        self.max_capacity = self.max_capacity.max(capacity);
    }

    /// Whether no host is `up`.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_score.is_empty()
    }

    /// The `up` hosts, any order.
    pub(crate) fn hosts(&self) -> impl Iterator<Item = &HostName> {
        self.by_score.iter().map(|(_, Reverse(host))| host)
    }

    /// Hosts from the most free down to `floor` (spread).
    fn most_free_first(&self, floor: u32) -> impl Iterator<Item = (u32, &HostName)> {
        self.by_score
            .iter()
            .rev()
            .take_while(move |(score, _)| *score >= floor)
            .map(|(score, Reverse(host))| (*score, host))
    }

    /// Hosts from `floor` up to the most free (pack).
    fn least_free_first(&self, floor: u32) -> impl Iterator<Item = (u32, &HostName)> {
        // With names reversed, the greatest name is the first key of a score.
        let start = (floor, Reverse(HostName::above_all().clone()));
        self.by_score
            .range(start..)
            .map(|(score, Reverse(host))| (*score, host))
    }

    /// No host with a score below this can fit `request`: a host that fits has, in every
    /// dimension, `free/capacity >= request/capacity >= request/max_capacity`.
    fn score_floor(&self, request: &Resources) -> u32 {
        Resource::ALL
            .into_iter()
            .filter(|r| self.max_capacity.get(*r) > 0)
            .map(|r| {
                let floor =
                    u128::from(request.get(r)) * SCORE_SCALE / u128::from(self.max_capacity.get(r));
                u32::try_from(floor.min(SCORE_SCALE)).unwrap_or(u32::MAX)
            })
            .min()
            .unwrap_or(0)
    }
}

/// What one host carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostLoad {
    pub(crate) data_center: DcName,
    pub(crate) capacity: Resources,
    pub(crate) allocated: Resources,
    pub(crate) up: bool,
    pub(crate) score: u32,
    pub(crate) instances: BTreeSet<InstanceId>,
}

impl HostLoad {
    pub(crate) fn new(data_center: DcName) -> HostLoad {
        HostLoad {
            data_center,
            capacity: Resources::ZERO,
            allocated: Resources::ZERO,
            up: false,
            score: 0,
            instances: BTreeSet::new(),
        }
    }

    pub(crate) fn free(&self) -> Resources {
        self.capacity.saturating_sub(&self.allocated)
    }

    pub(crate) fn refresh_score(&mut self) {
        let free = self.free();
        self.score = Resource::ALL
            .into_iter()
            .filter(|r| self.capacity.get(*r) > 0)
            .map(|r| {
                let fraction =
                    u128::from(free.get(r)) * SCORE_SCALE / u128::from(self.capacity.get(r));
                u32::try_from(fraction).unwrap_or(u32::MAX)
            })
            .min()
            .unwrap_or(0);
    }
}

/// What to place: one instance of `service` needing `resources` in `data_center`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostRequest<'a> {
    pub(crate) data_center: &'a DcName,
    pub(crate) resources: Resources,
    pub(crate) policy: PlacementPolicy,
    pub(crate) service: &'a ServiceName,
    /// A host not to use (the one an instance moves away from).
    pub(crate) exclude: Option<&'a HostName>,
}

/// The chosen host and why.
#[derive(Clone, Debug)]
pub(crate) struct HostChoice {
    pub(crate) host: HostName,
    pub(crate) why: Why,
    /// The host already runs an instance of the service (no other host had room).
    pub(crate) shares_service: bool,
}

/// Why a host was chosen, rendered only into the event message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Why {
    /// By policy; `score` is the free fraction (ppm) of the host's scarcest resource.
    Policy { policy: PlacementPolicy, score: u32 },
    /// An operator named the host.
    Operator,
}

impl HostChoice {
    /// Appends `spread policy: ...` to an event message.
    pub(crate) fn explain_into(
        &self,
        out: &mut String,
        service: &ServiceName,
        data_center: &DcName,
    ) {
        // Writing to a String cannot fail.
        let _ = match self.why {
            Why::Policy {
                policy: PlacementPolicy::Spread,
                score,
            } => write!(
                out,
                "spread policy: the host with the most free capacity in {data_center} \
                 ({}% of its scarcest resource free)",
                score / 10_000
            ),
            Why::Policy {
                policy: PlacementPolicy::Pack,
                score,
            } => write!(
                out,
                "pack policy: the fullest host with room in {data_center} \
                 ({}% of its scarcest resource free)",
                score / 10_000
            ),
            Why::Operator => write!(out, "the operator chose this host"),
        };
        if self.shares_service {
            let _ = write!(
                out,
                "; it already runs an instance of {service}: no other host in {data_center} has room"
            );
        }
    }
}

impl Fleet {
    /// The host `request` should go to, if any fits.
    pub(crate) fn choose_host(&self, request: &HostRequest<'_>) -> Option<HostChoice> {
        let placement = self.ix.placement.get(request.data_center)?;
        let floor = placement.score_floor(&request.resources);
        let found = match request.policy {
            PlacementPolicy::Spread => self.scan(placement.most_free_first(floor), request),
            PlacementPolicy::Pack => self.scan(placement.least_free_first(floor), request),
        };
        let (host, score, shares_service) = found?;
        Some(HostChoice {
            host,
            why: Why::Policy {
                policy: request.policy,
                score,
            },
            shares_service,
        })
    }

    /// First host of `hosts` that fits and does not run the service; failing that, the first
    /// that fits.
    fn scan<'a>(
        &self,
        hosts: impl Iterator<Item = (u32, &'a HostName)>,
        request: &HostRequest<'_>,
    ) -> Option<(HostName, u32, bool)> {
        let avoid = self.ix.services.get(request.service).map(|s| &s.hosts);
        let mut fallback: Option<(HostName, u32)> = None;
        for (score, name) in hosts {
            if request.exclude == Some(name) {
                continue;
            }
            let Some(load) = self.ix.host_load.get(name) else {
                debug_assert!(false, "indexed host {name} has no load");
                continue;
            };
            if !request.resources.fits_in(&load.free()) {
                continue;
            }
            if avoid.is_some_and(|hosts| hosts.contains_key(name)) {
                if fallback.is_none() {
                    fallback = Some((name.clone(), score));
                }
                continue;
            }
            return Some((name.clone(), score, false));
        }
        fallback.map(|(name, score)| (name, score, true))
    }

    /// Whether `host` can take `request` (used when an operator names the target host).
    pub(crate) fn check_target_host(
        &self,
        host: &HostName,
        request: &HostRequest<'_>,
    ) -> Result<(), String> {
        let Some(record) = self.hosts.get(host) else {
            return Err(format!("host {host} does not exist"));
        };
        if &record.data_center != request.data_center {
            return Err(format!(
                "host {host} is in {}, but the instance must run in {}",
                record.data_center, request.data_center
            ));
        }
        if record.state != HostState::Up {
            return Err(format!("host {host} is {}", record.state));
        }
        if request.exclude == Some(host) {
            return Err(format!("the instance is already on {host}"));
        }
        let free = self
            .ix
            .host_load
            .get(host)
            .map(|load| load.free())
            .unwrap_or_default();
        let short = request.resources.exceeding(&free);
        if let Some(resource) = short.first() {
            return Err(format!(
                "host {host} has {} free {}, {} is needed",
                resource.format(free.get(*resource)),
                resource.label(),
                resource.format(request.resources.get(*resource))
            ));
        }
        Ok(())
    }

    /// Why no host of the data center fits `request`, naming the resource and the best host.
    pub(crate) fn explain_no_host(&self, request: &HostRequest<'_>) -> String {
        let dc = request.data_center;
        let candidates: Vec<(&HostName, Resources)> = self
            .ix
            .placement
            .get(dc)
            .into_iter()
            .flat_map(|placement| placement.hosts())
            .filter(|name| request.exclude != Some(*name))
            .filter_map(|name| self.ix.host_load.get(name).map(|load| (name, load.free())))
            .collect();
        if candidates.is_empty() {
            return self.explain_no_up_host(request);
        }
        let wanted: Vec<Resource> = Resource::ALL
            .into_iter()
            .filter(|r| request.resources.get(*r) > 0)
            .collect();
        let mut lacking = Vec::new();
        for resource in &wanted {
            let need = request.resources.get(*resource);
            let best = best_by(&candidates, |free| free.get(*resource));
            if let Some((host, free)) = best
                && free.get(*resource) < need
            {
                lacking.push(format!(
                    "no host with {} free {} in {dc}; the best, {host}, has {} free",
                    resource.format(need),
                    resource.label(),
                    resource.format(free.get(*resource)),
                ));
            }
        }
        if !lacking.is_empty() {
            return lacking.join("; ");
        }
        // Every resource is available somewhere, but not all on one host. The best host is the
        // one whose scarcest resource (relative to the need) is the most plentiful.
        let ratio = |free: &Resources| {
            wanted
                .iter()
                .map(|r| {
                    u128::from(free.get(*r)) * SCORE_SCALE / u128::from(request.resources.get(*r))
                })
                .min()
                .unwrap_or(0)
        };
        let best = best_by(&candidates, ratio);
        let describe = |amounts: &Resources| {
            let parts: Vec<String> = wanted
                .iter()
                .map(|r| format!("{} {}", r.format(amounts.get(*r)), r.label()))
                .collect();
            join_and(&parts)
        };
        match best {
            Some((host, free)) => format!(
                "no host in {dc} has {} free at once; the best, {host}, has {} free",
                describe(&request.resources),
                describe(&free)
            ),
            None => format!("no host in {dc} has room"),
        }
    }

    fn explain_no_up_host(&self, request: &HostRequest<'_>) -> String {
        let dc = request.data_center;
        let mut by_state: BTreeMap<HostState, usize> = BTreeMap::new();
        let mut total = 0;
        let mut excluded_up = false;
        for host in self.hosts.values().filter(|h| &h.data_center == dc) {
            total += 1;
            // The host an instance leaves is left out when it is up (it is where the instance
            // is); otherwise it counts in its state, which is why it is left.
            if request.exclude == Some(&host.name) && host.state == HostState::Up {
                excluded_up = true;
                continue;
            }
            *by_state.entry(host.state).or_default() += 1;
        }
        if total == 0 {
            return format!("data center {dc} has no hosts");
        }
        let states: Vec<String> = by_state
            .iter()
            .filter(|(state, _)| **state != HostState::Up)
            .map(|(state, count)| format!("{count} {state}"))
            .collect();
        let other = if excluded_up { "other " } else { "" };
        if states.is_empty() {
            format!("no {other}host is up in {dc}")
        } else {
            format!("no {other}host is up in {dc} ({})", states.join(", "))
        }
    }
}

/// The candidate maximising `key`; ties go to the first name.
fn best_by<'a, K: Ord>(
    candidates: &[(&'a HostName, Resources)],
    key: impl Fn(&Resources) -> K,
) -> Option<(&'a HostName, Resources)> {
    let mut best: Option<(&HostName, Resources, K)> = None;
    for (name, free) in candidates {
        let k = key(free);
        let better = match &best {
            None => true,
            Some((best_name, _, best_key)) => {
                k > *best_key || (k == *best_key && *name < *best_name)
            }
        };
        if better {
            best = Some((name, *free, k));
        }
    }
    best.map(|(name, free, _)| (name, free))
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
