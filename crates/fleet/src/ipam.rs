//! IP address management: CIDR ranges per data center and leases to instances.
//!
//! Allocation always hands out the lowest free address of the first range (in CIDR order) of a
//! data center that has one. That makes the allocator state a pure function of the set of
//! leases (so a restored fleet allocates exactly like one that never restarted) and keeps it
//! cheap: each pool keeps a high-water mark (every address at or above it is free) and the set
//! of released addresses below it. A lease or a release costs O(log n) whatever the range size,
//! so a /64 is as cheap as a /29.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::FleetError;
use crate::name::{DcName, InstanceId};

/// Most user-listed reserved addresses per range.
pub const RESERVED_ADDRESSES_MAX: usize = 1024;

/// An IPv4 or IPv6 network in CIDR notation, host bits zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Validates a network address and prefix length (host bits must be zero).
    pub fn new(network: IpAddr, prefix_len: u8) -> Result<Cidr, FleetError> {
        let invalid = |reason: String| FleetError::InvalidRange {
            range: format!("{network}/{prefix_len}"),
            reason,
        };
        let bits = family_bits(&network);
        if prefix_len > bits {
            return Err(invalid(format!("the prefix length must be at most {bits}")));
        }
        let cidr = Cidr {
            network,
            prefix_len,
        };
        let value = to_u128(network);
        if value & !cidr.mask() != 0 {
            let fixed = Cidr {
                network: from_u128(value & cidr.mask(), network.is_ipv6()),
                prefix_len,
            };
            return Err(invalid(format!(
                "host bits are set (did you mean {fixed}?)"
            )));
        }
        Ok(cidr)
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.network.is_ipv6() && to_u128(ip) & self.mask() == to_u128(self.network)
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.network.is_ipv6() == other.network.is_ipv6()
            && self.first() <= other.last()
            && other.first() <= self.last()
    }

    /// Number of addresses, saturating at `u128::MAX` for an IPv6 /0.
    pub fn size(&self) -> u128 {
        (self.last() - self.first()).saturating_add(1)
    }

    fn mask(&self) -> u128 {
        let bits = u32::from(family_bits(&self.network));
        let host_bits = bits - u32::from(self.prefix_len);
        let all = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        if host_bits >= 128 {
            0
        } else {
            all & !((1u128 << host_bits) - 1)
        }
    }

    pub(crate) fn first(&self) -> u128 {
        to_u128(self.network)
    }

    pub(crate) fn last(&self) -> u128 {
        let bits = u32::from(family_bits(&self.network));
        let host_bits = bits - u32::from(self.prefix_len);
        let host_max = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        self.first() | host_max
    }

    /// The addresses excluded automatically: network and broadcast of an IPv4 range (unless /31
    /// or /32, RFC 3021), the subnet-router anycast address (the network address) of an IPv6
    /// range (unless /127 or /128).
    fn automatic_reserved(&self) -> Vec<u128> {
        match self.network {
            IpAddr::V4(_) if self.prefix_len <= 30 => vec![self.first(), self.last()],
            IpAddr::V6(_) if self.prefix_len <= 126 => vec![self.first()],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Cidr {
    type Err = FleetError;
    fn from_str(text: &str) -> Result<Cidr, FleetError> {
        let invalid = |reason: &str| FleetError::InvalidRange {
            range: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| invalid("expected ADDRESS/PREFIX_LENGTH, e.g. 10.1.0.0/16"))?;
        let network: IpAddr = address
            .parse()
            .map_err(|_| invalid("the address is not a valid IPv4 or IPv6 address"))?;
        let prefix_len: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix length is not a number"))?;
        Cidr::new(network, prefix_len)
    }
}

impl TryFrom<String> for Cidr {
    type Error = FleetError;
    fn try_from(text: String) -> Result<Cidr, FleetError> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

/// An address range of a data center: where instance addresses come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRange {
    /// The network.
    pub cidr: Cidr,
    /// The data center whose instances get addresses from it.
    pub data_center: DcName,
    /// The gateway, never leased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Other addresses never leased (besides the automatic ones and the gateway).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub reserved: BTreeSet<IpAddr>,
}

impl AddressRange {
    /// Checks the gateway and reserved addresses, and that something is left to lease.
    pub(crate) fn validate(&self) -> Result<(), FleetError> {
        let invalid = |reason: String| FleetError::InvalidRange {
            range: self.cidr.to_string(),
            reason,
        };
        if self.reserved.len() > RESERVED_ADDRESSES_MAX {
            return Err(invalid(format!(
                "at most {RESERVED_ADDRESSES_MAX} reserved addresses are allowed (got {})",
                self.reserved.len()
            )));
        }
        for address in self.gateway.iter().chain(&self.reserved) {
            if !self.cidr.contains(*address) {
                return Err(invalid(format!("address {address} is outside the range")));
            }
        }
        if Pool::new(self).usable == 0 {
            return Err(invalid("every address is reserved".to_owned()));
        }
        Ok(())
    }
}

/// One leased address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address.
    pub ip: IpAddr,
    /// The range it comes from.
    pub range: Cidr,
    /// The instance holding it.
    pub instance: InstanceId,
}

/// How much of a range is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeUsage {
    /// Leased addresses.
    pub leased: u128,
    /// Addresses that can be leased (size minus reserved).
    pub usable: u128,
}

/// Allocator state of one range. Invariant: `free` holds exactly the unreserved, unleased
/// addresses below `next`, and every address at or above `next` is unleased.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pool {
    first: u128,
    last: u128,
    is_v6: bool,
    reserved: BTreeSet<u128>,
    next: u128,
    /// `next` went past `last`: every address is below the high-water mark.
    at_end: bool,
    free: BTreeSet<u128>,
    leased: u128,
    usable: u128,
}

impl Pool {
    fn new(range: &AddressRange) -> Pool {
        let cidr = range.cidr;
        let mut reserved: BTreeSet<u128> = cidr.automatic_reserved().into_iter().collect();
        reserved.extend(
            range
                .gateway
                .iter()
                .chain(&range.reserved)
                .map(|ip| to_u128(*ip)),
        );
        let usable = cidr.size().saturating_sub(reserved.len() as u128);
        Pool {
            first: cidr.first(),
            last: cidr.last(),
            is_v6: cidr.network.is_ipv6(),
            reserved,
            next: cidr.first(),
            at_end: false,
            free: BTreeSet::new(),
            leased: 0,
            usable,
        }
    }

    /// The lowest free address, without taking it.
    fn peek(&self) -> Option<u128> {
        if let Some(lowest) = self.free.first() {
            return Some(*lowest);
        }
        if self.at_end {
            return None;
        }
        // Reserved addresses are few (bounded by RESERVED_ADDRESSES_MAX + 2), so this skips at
        // most that many.
        let mut candidate = self.next;
        loop {
            if !self.reserved.contains(&candidate) {
                return Some(candidate);
            }
            if candidate == self.last {
                return None;
            }
            candidate += 1;
        }
    }

    fn claim(&mut self, address: u128) {
        debug_assert!(self.first <= address && address <= self.last);
        debug_assert!(!self.reserved.contains(&address));
        if self.at_end || address < self.next {
            let was_free = self.free.remove(&address);
            debug_assert!(was_free, "address claimed twice");
        } else {
            // Everything between the mark and the address becomes "released below the mark".
            // Normal allocation claims the lowest candidate, so this gap only holds reserved
            // addresses; restoring a snapshot walks real gaps once.
            let mut gap = self.next;
            while gap < address {
                if !self.reserved.contains(&gap) {
                    self.free.insert(gap);
                }
                gap += 1;
            }
            if address == self.last {
                self.at_end = true;
            } else {
                self.next = address + 1;
            }
        }
        self.leased += 1;
    }

    fn release(&mut self, address: u128) {
        debug_assert!(self.leased > 0);
        self.leased -= 1;
        self.free.insert(address);
        // Lower the mark over the free and reserved addresses just below it, so the state only
        // depends on the set of leases.
        let mut mark_is_past_last = self.at_end;
        loop {
            let below = if mark_is_past_last {
                self.last
            } else if self.next > self.first {
                self.next - 1
            } else {
                break;
            };
            let movable = self.free.remove(&below) || self.reserved.contains(&below);
            if !movable {
                break;
            }
            self.next = below;
            mark_is_past_last = false;
        }
        self.at_end = mark_is_past_last;
    }
}

/// Allocator state of every range, plus the fleet-wide lease table. Derived from the ranges and
/// the instances' addresses; rebuilt when a fleet is restored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ipam {
    pools: BTreeMap<Cidr, Pool>,
    by_data_center: BTreeMap<DcName, BTreeSet<Cidr>>,
    leases: BTreeMap<IpAddr, InstanceId>,
}

impl Ipam {
    pub(crate) fn add_range(&mut self, range: &AddressRange) {
        self.pools.insert(range.cidr, Pool::new(range));
        self.by_data_center
            .entry(range.data_center.clone())
            .or_default()
            .insert(range.cidr);
    }

    pub(crate) fn remove_range(&mut self, range: &AddressRange) {
        self.pools.remove(&range.cidr);
        if let Some(set) = self.by_data_center.get_mut(&range.data_center) {
            set.remove(&range.cidr);
            if set.is_empty() {
                self.by_data_center.remove(&range.data_center);
            }
        }
    }

    /// The address the next lease in `data_center` would get, and its range.
    pub(crate) fn peek(&self, data_center: &DcName) -> Result<(IpAddr, Cidr), FleetError> {
        let Some(cidrs) = self.by_data_center.get(data_center) else {
            return Err(FleetError::NoAddressRange {
                data_center: data_center.clone(),
            });
        };
        for cidr in cidrs {
            if let Some(pool) = self.pools.get(cidr)
                && let Some(address) = pool.peek()
            {
                return Ok((from_u128(address, pool.is_v6), *cidr));
            }
        }
        let (leased, usable) = cidrs
            .iter()
            .filter_map(|cidr| self.pools.get(cidr))
            .fold((0u128, 0u128), |(l, u), pool| {
                (l.saturating_add(pool.leased), u.saturating_add(pool.usable))
            });
        Err(FleetError::RangesExhausted {
            data_center: data_center.clone(),
            ranges: cidrs.iter().copied().collect(),
            leased,
            usable,
        })
    }

    /// Free addresses in `data_center`, saturating.
    pub(crate) fn free_addresses(&self, data_center: &DcName) -> u128 {
        self.by_data_center
            .get(data_center)
            .into_iter()
            .flatten()
            .filter_map(|cidr| self.pools.get(cidr))
            .fold(0u128, |sum, pool| {
                sum.saturating_add(pool.usable.saturating_sub(pool.leased))
            })
    }

    /// The range containing `ip`, if any.
    pub(crate) fn range_of(&self, ip: IpAddr) -> Option<Cidr> {
        let probe = Cidr {
            network: ip,
            prefix_len: u8::MAX,
        };
        self.pools
            .range(..=probe)
            .next_back()
            .map(|(cidr, _)| *cidr)
            .filter(|cidr| cidr.contains(ip))
    }

    /// Whether `ip` could be leased right now (inside a range, not reserved, not leased).
    pub(crate) fn is_leasable(&self, ip: IpAddr) -> bool {
        let Some(pool) = self.range_of(ip).and_then(|cidr| self.pools.get(&cidr)) else {
            return false;
        };
        !pool.reserved.contains(&to_u128(ip)) && !self.leases.contains_key(&ip)
    }

    pub(crate) fn claim(&mut self, ip: IpAddr, instance: InstanceId) {
        let previous = self.leases.insert(ip, instance);
        debug_assert!(previous.is_none(), "{ip} leased twice");
        if let Some(pool) = self.range_of(ip).and_then(|cidr| self.pools.get_mut(&cidr)) {
            pool.claim(to_u128(ip));
        } else {
            debug_assert!(false, "{ip} is in no range");
        }
    }

    pub(crate) fn release(&mut self, ip: IpAddr) {
        let previous = self.leases.remove(&ip);
        debug_assert!(previous.is_some(), "{ip} released but not leased");
        if let Some(pool) = self.range_of(ip).and_then(|cidr| self.pools.get_mut(&cidr)) {
            pool.release(to_u128(ip));
        }
    }

    pub(crate) fn holder(&self, ip: IpAddr) -> Option<InstanceId> {
        self.leases.get(&ip).copied()
    }

    pub(crate) fn leases(&self) -> &BTreeMap<IpAddr, InstanceId> {
        &self.leases
    }

    pub(crate) fn usage(&self, cidr: &Cidr) -> Option<RangeUsage> {
        self.pools.get(cidr).map(|pool| RangeUsage {
            leased: pool.leased,
            usable: pool.usable,
        })
    }

    /// Leases inside `cidr`.
    pub(crate) fn leases_in(&self, cidr: &Cidr) -> Vec<(IpAddr, InstanceId)> {
        let first = from_u128(cidr.first(), cidr.network.is_ipv6());
        let last = from_u128(cidr.last(), cidr.network.is_ipv6());
        self.leases
            .range(first..=last)
            .map(|(ip, id)| (*ip, *id))
            .collect()
    }
}

fn family_bits(ip: &IpAddr) -> u8 {
    if ip.is_ipv6() { 128 } else { 32 }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(value: u128, is_v6: bool) -> IpAddr {
    if is_v6 {
        IpAddr::V6(Ipv6Addr::from(value))
    } else {
        // Pools of IPv4 ranges only hold values below 2^32: truncation cannot happen.
        IpAddr::V4(Ipv4Addr::from(value as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(name: &str) -> DcName {
        DcName::new(name).unwrap()
    }

    fn range(cidr: &str, data_center: &str) -> AddressRange {
        AddressRange {
            cidr: cidr.parse().unwrap(),
            data_center: dc(data_center),
            gateway: None,
            reserved: BTreeSet::new(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_validates_cidrs() {
        let cidr: Cidr = "10.2.0.0/29".parse().unwrap();
        assert_eq!(cidr.to_string(), "10.2.0.0/29");
        assert_eq!(cidr.size(), 8);
        assert!(cidr.contains(ip("10.2.0.7")));
        assert!(!cidr.contains(ip("10.2.0.8")));
        let err = "10.2.0.1/29".parse::<Cidr>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid address range 10.2.0.1/29: host bits are set (did you mean 10.2.0.0/29?)"
        );
        assert!("10.2.0.0/33".parse::<Cidr>().is_err());
        assert!("10.2.0.0".parse::<Cidr>().is_err());
        let v6: Cidr = "fd00::/64".parse().unwrap();
        assert_eq!(v6.size(), 1 << 64);
        assert_eq!("::/0".parse::<Cidr>().unwrap().size(), u128::MAX);
        assert!(v6.overlaps(&"fd00::/48".parse().unwrap()));
        assert!(!v6.overlaps(&"fd01::/64".parse().unwrap()));
        assert!(!cidr.overlaps(&v6));
    }

    #[test]
    fn allocates_lowest_free_skipping_reserved() {
        let mut spec = range("10.2.0.0/29", "dc2");
        spec.gateway = Some(ip("10.2.0.1"));
        let mut ipam = Ipam::default();
        ipam.add_range(&spec);
        let mut got = Vec::new();
        for n in 0..5 {
            let (address, _) = ipam.peek(&dc("dc2")).unwrap();
            ipam.claim(address, InstanceId(n));
            got.push(address.to_string());
        }
        assert_eq!(
            got,
            ["10.2.0.2", "10.2.0.3", "10.2.0.4", "10.2.0.5", "10.2.0.6"]
        );
        let err = ipam.peek(&dc("dc2")).unwrap_err().to_string();
        assert_eq!(
            err,
            "dc2: address ranges 10.2.0.0/29 exhausted (5 of 5 leased)"
        );
        ipam.release(ip("10.2.0.4"));
        assert_eq!(ipam.peek(&dc("dc2")).unwrap().0, ip("10.2.0.4"));
    }

    #[test]
    fn state_depends_only_on_leases() {
        let spec = range("10.0.0.0/24", "dc1");
        let mut a = Ipam::default();
        a.add_range(&spec);
        for n in 0..10 {
            let (address, _) = a.peek(&dc("dc1")).unwrap();
            a.claim(address, InstanceId(n));
        }
        for last in (5..=10).rev() {
            a.release(ip(&format!("10.0.0.{last}")));
        }
        // Only 10.0.0.1 ..= 10.0.0.4 remain: the mark is back to .5.
        let pool = a.pools.values().next().unwrap();
        assert!(pool.free.is_empty());
        assert_eq!(pool.next, to_u128(ip("10.0.0.5")));
        // Claiming out of order (as a restore does) fills the gap.
        let mut b = Ipam::default();
        b.add_range(&spec);
        b.claim(ip("10.0.0.9"), InstanceId(1));
        assert_eq!(b.peek(&dc("dc1")).unwrap().0, ip("10.0.0.1"));
        b.release(ip("10.0.0.9"));
        let pool = b.pools.values().next().unwrap();
        assert!(pool.free.is_empty());
        assert_eq!(pool.next, pool.first);
    }

    #[test]
    fn tiny_ranges_have_no_automatic_reservation() {
        let mut ipam = Ipam::default();
        ipam.add_range(&range("10.9.0.0/31", "dc1"));
        ipam.add_range(&range("fd00::/127", "dc1"));
        let mut got = Vec::new();
        while let Ok((address, _)) = ipam.peek(&dc("dc1")) {
            ipam.claim(address, InstanceId(got.len() as u64));
            got.push(address.to_string());
        }
        assert_eq!(got, ["10.9.0.0", "10.9.0.1", "fd00::", "fd00::1"]);
        let err = ipam.peek(&dc("dc1")).unwrap_err().to_string();
        assert_eq!(
            err,
            "dc1: address ranges 10.9.0.0/31, fd00::/127 exhausted (4 of 4 leased)"
        );
        ipam.release(ip("fd00::1"));
        ipam.release(ip("10.9.0.1"));
        assert_eq!(ipam.peek(&dc("dc1")).unwrap().0, ip("10.9.0.1"));
    }

    #[test]
    fn finds_the_range_of_an_address() {
        let mut ipam = Ipam::default();
        ipam.add_range(&range("10.1.0.0/16", "dc1"));
        ipam.add_range(&range("10.2.0.0/16", "dc2"));
        ipam.add_range(&range("fd00::/64", "dc2"));
        assert_eq!(
            ipam.range_of(ip("10.1.255.255")).unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            ipam.range_of(ip("10.2.0.0")).unwrap().to_string(),
            "10.2.0.0/16"
        );
        assert_eq!(
            ipam.range_of(ip("fd00::5")).unwrap().to_string(),
            "fd00::/64"
        );
        assert!(ipam.range_of(ip("10.3.0.1")).is_none());
        assert!(ipam.range_of(ip("fd01::1")).is_none());
    }

    #[test]
    fn big_ipv6_ranges_are_cheap() {
        let mut ipam = Ipam::default();
        ipam.add_range(&range("fd00::/48", "dc1"));
        for n in 0..1000 {
            let (address, _) = ipam.peek(&dc("dc1")).unwrap();
            ipam.claim(address, InstanceId(n));
        }
        assert_eq!(ipam.peek(&dc("dc1")).unwrap().0, ip("fd00::3e9"));
        assert_eq!(ipam.free_addresses(&dc("dc1")), (1u128 << 80) - 1 - 1000);
    }

    #[test]
    fn validates_reserved_addresses() {
        let mut spec = range("10.2.0.0/30", "dc2");
        spec.reserved.insert(ip("10.2.0.9"));
        assert_eq!(
            spec.validate().unwrap_err().to_string(),
            "invalid address range 10.2.0.0/30: address 10.2.0.9 is outside the range"
        );
        spec.reserved = [ip("10.2.0.1"), ip("10.2.0.2")].into();
        assert_eq!(
            spec.validate().unwrap_err().to_string(),
            "invalid address range 10.2.0.0/30: every address is reserved"
        );
    }
}
