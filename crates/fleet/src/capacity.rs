//! Capacity: what each zone and data center has, uses and has left, and how many more groups
//! of a given shape fit.

use serde::{Deserialize, Serialize};

use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::inventory::HostState;
use crate::name::{DcName, TemplateName, ZoneName};
use crate::resources::{ResourceOverride, Resources};

/// Total, allocated and free resources of a set of `up` hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTotals {
    /// Capacity of the `up` hosts.
    pub total: Resources,
    /// Allocated on them.
    pub allocated: Resources,
    /// Sum of each host's free resources (an over-capacity host counts as zero, not negative).
    pub free: Resources,
}

impl ResourceTotals {
    fn add(&mut self, other: &ResourceTotals) {
        self.total = self.total.saturating_add(&other.total);
        self.allocated = self.allocated.saturating_add(&other.allocated);
        self.free = self.free.saturating_add(&other.free);
    }
}

/// Capacity of one data center.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcCapacity {
    /// The data center.
    pub data_center: DcName,
    /// Hosts in it.
    pub hosts_total: usize,
    /// Hosts `up` in it (only they count in `resources`).
    pub hosts_up: usize,
    /// Resources of the `up` hosts.
    pub resources: ResourceTotals,
    /// Addresses still free in its ranges (saturating).
    pub addresses_free: u64,
}

/// Capacity of one zone and its data centers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneCapacity {
    /// The zone.
    pub zone: ZoneName,
    /// Sum over its data centers.
    pub resources: ResourceTotals,
    /// Its data centers, by name.
    pub data_centers: Vec<DcCapacity>,
}

/// A service shape: what one more group would need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupShape {
    /// One template per member.
    pub templates: Vec<TemplateName>,
    /// Override of the templates' resources.
    #[serde(default)]
    pub resources: ResourceOverride,
}

/// How many members of one template fit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFit {
    /// The template.
    pub template: TemplateName,
    /// Its data center.
    pub data_center: DcName,
    /// What one member needs.
    pub resources: Resources,
    /// Members that fit on the `up` hosts (sum over hosts of how many fit on each).
    pub fit_by_hosts: u64,
    /// Free addresses in the data center.
    pub fit_by_addresses: u64,
}

/// How many more groups of a shape fit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFit {
    /// Groups that fit: the smallest member fit.
    pub groups: u64,
    /// The data center that bounds it.
    pub bottleneck: Option<DcName>,
    /// Per member.
    pub members: Vec<MemberFit>,
}

impl Fleet {
    /// Total, allocated and free resources per zone and data center.
    pub fn capacity(&self) -> Vec<ZoneCapacity> {
        self.zones
            .values()
            .map(|zone| {
                let data_centers: Vec<DcCapacity> = self
                    .data_centers
                    .values()
                    .filter(|dc| dc.zone == zone.name)
                    .map(|dc| self.dc_capacity(&dc.name))
                    .collect();
                let mut resources = ResourceTotals::default();
                for dc in &data_centers {
                    resources.add(&dc.resources);
                }
                ZoneCapacity {
                    zone: zone.name.clone(),
                    resources,
                    data_centers,
                }
            })
            .collect()
    }

    fn dc_capacity(&self, data_center: &DcName) -> DcCapacity {
        let mut resources = ResourceTotals::default();
        let mut hosts_total = 0;
        let mut hosts_up = 0;
        for host in self
            .hosts
            .values()
            .filter(|h| &h.data_center == data_center)
        {
            hosts_total += 1;
            if host.state != HostState::Up {
                continue;
            }
            hosts_up += 1;
            if let Some(load) = self.ix.host_load.get(&host.name) {
                resources.add(&ResourceTotals {
                    total: load.capacity,
                    allocated: load.allocated,
                    free: load.free(),
                });
            }
        }
        DcCapacity {
            data_center: data_center.clone(),
            hosts_total,
            hosts_up,
            resources,
            addresses_free: saturate(self.ix.ipam.free_addresses(data_center)),
        }
    }

    /// How many more groups of `shape` fit now. Each member fits `min(by hosts, by addresses)`
    /// times, where "by hosts" sums how many copies fit on each `up` host (exact for one
    /// shape: a copy never spans hosts); the bottleneck data center bounds the result.
    /// Tenant quotas are not counted.
    pub fn fit_groups(&self, shape: &GroupShape) -> Result<GroupFit, FleetError> {
        let invalid = |reason: String| FleetError::InvalidShape { reason };
        let members = self.resolve_members(&shape.templates, &shape.resources, invalid)?;
        let mut fits = Vec::with_capacity(members.len());
        for member in members {
            let fit_by_hosts = self
                .ix
                .placement
                .get(&member.data_center)
                .into_iter()
                .flat_map(|placement| placement.hosts())
                .filter_map(|name| self.ix.host_load.get(name))
                .fold(0u64, |sum, load| {
                    sum.saturating_add(load.free().copies_of(&member.resources))
                });
            fits.push(MemberFit {
                template: member.template,
                fit_by_addresses: saturate(self.ix.ipam.free_addresses(&member.data_center)),
                data_center: member.data_center,
                resources: member.resources,
                fit_by_hosts,
            });
        }
        let bottleneck = fits
            .iter()
            .min_by_key(|m| m.fit_by_hosts.min(m.fit_by_addresses))
            .map(|m| m.data_center.clone());
        let groups = fits
            .iter()
            .map(|m| m.fit_by_hosts.min(m.fit_by_addresses))
            .min()
            .unwrap_or(0);
        Ok(GroupFit {
            groups,
            bottleneck,
            members: fits,
        })
    }
}

fn saturate(count: u128) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}
