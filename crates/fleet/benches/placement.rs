//! Placement benchmark (`cargo bench -p caravan-fleet`): places 1,000,000 instances (500,000
//! services of one group with two members in two of three data centers, mixed sizes) on 10,000
//! hosts from an empty fleet, then fails 100 hosts one by one and reschedules their instances.
//! Prints throughput, per-failed-host latency, and a correctness check of the final fleet.
//!
//! Bounded: the work is fixed (no iteration until a statistical target), a few tens of seconds
//! in release mode on 2 cores.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use caravan_fleet::{
    AddressRange, DcName, Fleet, HostName, HostSpec, HostState, InstanceState, PlacementPolicy,
    ResourceOverride, Resources, RunOverride, ServiceName, ServiceSpec, Template, TemplateName,
    TenantName, ZoneName,
};

const GIB: u64 = 1 << 30;
const HOSTS: usize = 10_000;
const DATA_CENTERS: usize = 3;
const SERVICES: usize = 500_000;
const FAILED_HOSTS: usize = 100;

/// Member sizes, used in turn.
const SIZES: [(u64, u64, u64); 4] = [
    (250, GIB / 2, 5 * GIB),
    (500, GIB, 10 * GIB),
    (1000, 2 * GIB, 20 * GIB),
    (2000, 4 * GIB, 40 * GIB),
];

fn main() {
    let mut fleet = Fleet::new();
    let setup = Instant::now();
    build_inventory(&mut fleet);
    println!(
        "setup: {HOSTS} hosts in {DATA_CENTERS} data centers, 3 address ranges, 4 templates in {:.2?}",
        setup.elapsed()
    );

    // 1. Place a million instances.
    let tenants: Vec<TenantName> = (0..10)
        .map(|t| TenantName::new(&format!("tenant{t}")).expect("valid name"))
        .collect();
    let templates: Vec<TemplateName> = (1..=DATA_CENTERS)
        .map(|d| TemplateName::new(&format!("web_dc{d}")).expect("valid name"))
        .collect();
    let started = Instant::now();
    let mut changes = 0usize;
    let mut events = 0usize;
    for s in 0..SERVICES {
        let (cpu_millis, memory_bytes, disk_bytes) = SIZES[s % SIZES.len()];
        let first = s % DATA_CENTERS;
        let spec = ServiceSpec {
            name: ServiceName::new(&format!("svc{s}")).expect("valid name"),
            tenant: tenants[s % tenants.len()].clone(),
            templates: vec![
                templates[first].clone(),
                templates[(first + 1) % DATA_CENTERS].clone(),
            ],
            groups: 1,
            resources: ResourceOverride {
                cpu_millis: Some(cpu_millis),
                memory_bytes: Some(memory_bytes),
                disk_bytes: Some(disk_bytes),
            },
            policy: PlacementPolicy::Spread,
        };
        let outcome = fleet.create_service(spec).expect("the fleet has room");
        changes += outcome.changes.len();
        events += outcome.events.len();
    }
    let placing = started.elapsed();
    let instances = fleet.instances().count();
    println!(
        "placed {instances} instances ({SERVICES} services x 1 group x 2 members) in {:.2?}: \
         {:.0} instances/s, {:.2} us per service request ({changes} changes, {events} events)",
        placing,
        instances as f64 / placing.as_secs_f64(),
        placing.as_secs_f64() * 1e6 / SERVICES as f64,
    );

    // 2. Fail 100 hosts, one at a time.
    let victims: Vec<HostName> = fleet
        .hosts()
        .step_by(HOSTS / FAILED_HOSTS)
        .take(FAILED_HOSTS)
        .map(|h| h.name.clone())
        .collect();
    let mut latencies = Vec::with_capacity(victims.len());
    let mut moved = 0usize;
    let mut pending = 0usize;
    for host in &victims {
        let on_host = fleet.host_instances(host).len();
        let started = Instant::now();
        let outcome = fleet
            .set_host_state(host, HostState::Down)
            .expect("the host exists");
        latencies.push(started.elapsed());
        moved += on_host;
        pending += outcome
            .events
            .iter()
            .filter(|e| e.kind == caravan_fleet::EventKind::InstancePending)
            .count();
    }
    let total: Duration = latencies.iter().sum();
    let max = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "failed {} hosts, rescheduled {moved} instances ({pending} left pending): \
         mean {:.3?} per failed host, max {:.3?}, total {:.2?}",
        victims.len(),
        total / latencies.len().max(1) as u32,
        max,
        total
    );

    // 3. Correctness check.
    let started = Instant::now();
    let report = check(&fleet, &victims);
    println!("check ({:.2?}): {report}", started.elapsed());
    let started = Instant::now();
    let violations = fleet.verify_invariants();
    println!(
        "verify_invariants ({:.2?}): {} violation(s){}",
        started.elapsed(),
        violations.len(),
        violations
            .first()
            .map(|v| format!(", first: {v}"))
            .unwrap_or_default()
    );
    assert!(violations.is_empty());
}

fn build_inventory(fleet: &mut Fleet) {
    let zone = ZoneName::new("production").expect("valid name");
    fleet.create_zone(zone.clone()).expect("new zone");
    let mut base = Template::named(TemplateName::new("web_base").expect("valid name"));
    base.resources = ResourceOverride {
        cpu_millis: Some(500),
        memory_bytes: Some(GIB),
        disk_bytes: Some(10 * GIB),
    };
    base.run = RunOverride {
        command: Some("/usr/bin/web".into()),
        port: Some(8080),
        ..RunOverride::default()
    };
    fleet.upsert_template(base).expect("valid template");
    let ranges = ["10.0.0.0/11", "fd00:2::/64", "10.32.0.0/11"];
    for d in 1..=DATA_CENTERS {
        let dc = DcName::new(&format!("dc{d}")).expect("valid name");
        fleet.create_data_center(dc.clone(), &zone).expect("new dc");
        fleet
            .add_range(AddressRange {
                cidr: ranges[d - 1].parse().expect("valid cidr"),
                data_center: dc.clone(),
                gateway: None,
                reserved: Default::default(),
            })
            .expect("valid range");
        let mut t = Template::named(TemplateName::new(&format!("web_dc{d}")).expect("valid name"));
        t.extends = Some(TemplateName::new("web_base").expect("valid name"));
        t.data_center = Some(dc);
        fleet.upsert_template(t).expect("valid template");
    }
    for h in 0..HOSTS {
        let d = h % DATA_CENTERS + 1;
        fleet
            .register_host(
                HostSpec {
                    name: HostName::new(&format!("dc{d}-h{h:05}")).expect("valid name"),
                    data_center: DcName::new(&format!("dc{d}")).expect("valid name"),
                    capacity: Resources {
                        cpu_millis: 128_000,
                        memory_bytes: 256 * GIB,
                        disk_bytes: 4096 * GIB,
                    },
                    labels: Default::default(),
                    state: HostState::Up,
                },
                0,
            )
            .expect("new host");
    }
}

/// Cheap checks over the whole fleet; returns a one-line summary, panics on a violation.
fn check(fleet: &Fleet, failed: &[HostName]) -> String {
    let mut over_capacity = 0;
    let mut max_instances_per_host = 0;
    for host in fleet.hosts() {
        let allocated = fleet.host_allocated(&host.name).unwrap_or_default();
        if !allocated.fits_in(&host.capacity) {
            over_capacity += 1;
        }
        max_instances_per_host = max_instances_per_host.max(fleet.host_instances(&host.name).len());
    }
    let mut groups: BTreeMap<(&ServiceName, u32), Vec<&DcName>> = BTreeMap::new();
    let mut pending = 0;
    let mut without_lease = 0;
    for instance in fleet.instances() {
        groups
            .entry((&instance.service, instance.group))
            .or_default()
            .push(&instance.data_center);
        match instance.state {
            InstanceState::Pending { .. } => pending += 1,
            _ => {
                if fleet.instance_lease(instance.id).is_none() {
                    without_lease += 1;
                }
            }
        }
    }
    let shared_dc = groups
        .values()
        .filter(|dcs| {
            let mut sorted = (*dcs).clone();
            sorted.sort();
            sorted.dedup();
            sorted.len() != dcs.len()
        })
        .count();
    let leases = fleet.leases().len();
    let on_failed: usize = failed.iter().map(|h| fleet.host_instances(h).len()).sum();
    assert_eq!(over_capacity, 0, "hosts over capacity");
    assert_eq!(shared_dc, 0, "groups with two members in one data center");
    assert_eq!(without_lease, 0, "placed instances without a lease");
    assert_eq!(
        leases + pending,
        fleet.instances().count(),
        "leases without instances"
    );
    assert_eq!(on_failed, 0, "instances left on failed hosts");
    format!(
        "{} instances, {leases} leases, {pending} pending, {} groups (0 sharing a data center), \
         0 hosts over capacity, at most {max_instances_per_host} instances per host, 0 on failed hosts",
        fleet.instances().count(),
        groups.len()
    )
}
