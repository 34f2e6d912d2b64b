//! Scenario tests across modules: a small fleet, requests, and the exact refusal messages.

use std::net::IpAddr;

use crate::*;

mod properties;

pub(crate) const GIB: u64 = 1 << 30;

pub(crate) fn zone(name: &str) -> ZoneName {
    ZoneName::new(name).unwrap()
}
pub(crate) fn dc(name: &str) -> DcName {
    DcName::new(name).unwrap()
}
pub(crate) fn host(name: &str) -> HostName {
    HostName::new(name).unwrap()
}
pub(crate) fn template(name: &str) -> TemplateName {
    TemplateName::new(name).unwrap()
}
pub(crate) fn service(name: &str) -> ServiceName {
    ServiceName::new(name).unwrap()
}
pub(crate) fn tenant(name: &str) -> TenantName {
    TenantName::new(name).unwrap()
}
pub(crate) fn res(cpu_millis: u64, memory_bytes: u64, disk_bytes: u64) -> Resources {
    Resources {
        cpu_millis,
        memory_bytes,
        disk_bytes,
    }
}
fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub(crate) fn range(cidr: &str, data_center: &str) -> AddressRange {
    AddressRange {
        cidr: cidr.parse().unwrap(),
        data_center: dc(data_center),
        gateway: None,
        reserved: Default::default(),
    }
}

pub(crate) fn host_spec(name: &str, data_center: &str, capacity: Resources) -> HostSpec {
    HostSpec {
        name: host(name),
        data_center: dc(data_center),
        capacity,
        labels: Default::default(),
        state: HostState::Up,
    }
}

/// A template of `data_center` extending `web_base` (500m, 1 GiB, 10 GiB).
pub(crate) fn member_template(name: &str, data_center: &str) -> Template {
    let mut t = Template::named(template(name));
    t.extends = Some(template("web_base"));
    t.data_center = Some(dc(data_center));
    t
}

pub(crate) fn base_template() -> Template {
    let mut t = Template::named(template("web_base"));
    t.resources = ResourceOverride {
        cpu_millis: Some(500),
        memory_bytes: Some(GIB),
        disk_bytes: Some(10 * GIB),
    };
    t.run = RunOverride {
        command: Some("/usr/bin/web".into()),
        args: Some(vec!["--port=8080".into()]),
        port: Some(8080),
        ..RunOverride::default()
    };
    t.health = Some(HealthOverride {
        probe: Some(Probe::Http {
            path: "/health".into(),
        }),
        ..HealthOverride::default()
    });
    t
}

/// Zone `production`, data centers `dc1..=dcN` each with range `10.N.0.0/16`, template
/// `web_dcN`, and `hosts_per_dc` hosts `dcN-hM` of 4 CPUs, 8 GiB, 100 GiB.
pub(crate) fn fleet(data_centers: usize, hosts_per_dc: usize) -> Fleet {
    let mut fleet = Fleet::new();
    fleet.create_zone(zone("production")).unwrap();
    fleet.upsert_template(base_template()).unwrap();
    for d in 1..=data_centers {
        let name = format!("dc{d}");
        fleet
            .create_data_center(dc(&name), &zone("production"))
            .unwrap();
        fleet
            .add_range(range(&format!("10.{d}.0.0/16"), &name))
            .unwrap();
        fleet
            .upsert_template(member_template(&format!("web_{name}"), &name))
            .unwrap();
        for h in 1..=hosts_per_dc {
            fleet
                .register_host(
                    host_spec(
                        &format!("{name}-h{h}"),
                        &name,
                        res(4000, 8 * GIB, 100 * GIB),
                    ),
                    0,
                )
                .unwrap();
        }
    }
    fleet
}

pub(crate) fn spec(name: &str, groups: u32, templates: &[&str]) -> ServiceSpec {
    ServiceSpec {
        name: service(name),
        tenant: tenant("acme"),
        templates: templates.iter().map(|t| template(t)).collect(),
        groups,
        resources: ResourceOverride::default(),
        policy: PlacementPolicy::Spread,
    }
}

fn unplaceable_reasons(error: FleetError) -> Vec<String> {
    match error {
        FleetError::Unplaceable { failures, .. } => {
            failures.iter().map(|f| f.to_string()).collect()
        }
        other => panic!("expected Unplaceable, got {other}"),
    }
}

/// Runs `operation`, asserts it fails, and that the fleet is exactly as before.
fn refused(
    fleet: &mut Fleet,
    operation: impl FnOnce(&mut Fleet) -> Result<Outcome, FleetError>,
) -> FleetError {
    let before = fleet.snapshot();
    let error = operation(fleet).expect_err("the request should be refused");
    assert_eq!(
        fleet.snapshot(),
        before,
        "a refused request changed the fleet"
    );
    assert!(fleet.verify_invariants().is_empty());
    error
}

#[test]
fn creating_a_service_places_one_member_per_data_center_on_distinct_hosts() {
    let mut fleet = fleet(2, 3);
    let outcome = fleet
        .create_service(spec("web", 3, &["web_dc1", "web_dc2"]))
        .unwrap();
    let instances = fleet.service_instances(&service("web"));
    assert_eq!(instances.len(), 6);
    for group in 1..=3 {
        let members: Vec<_> = instances.iter().filter(|i| i.group == group).collect();
        assert_eq!(members.len(), 2);
        assert_ne!(members[0].data_center, members[1].data_center);
    }
    let hosts: std::collections::BTreeSet<_> =
        instances.iter().map(|i| i.host.clone().unwrap()).collect();
    assert_eq!(hosts.len(), 6, "spread over distinct hosts");
    // Every instance has a lease, both ways.
    for instance in &instances {
        let lease = fleet.instance_lease(instance.id).unwrap();
        assert_eq!(fleet.lease_holder(lease.ip).unwrap().instance, instance.id);
        assert!(lease.range.contains(lease.ip));
    }
    assert_eq!(fleet.leases().len(), 6);
    // Changes and events describe it.
    let created = outcome
        .changes
        .iter()
        .filter(|c| matches!(c, Change::InstanceCreated { .. }))
        .count();
    let leases = outcome
        .changes
        .iter()
        .filter(|c| matches!(c, Change::LeaseGranted { .. }))
        .count();
    assert_eq!((created, leases), (6, 6));
    assert!(matches!(outcome.changes[0], Change::ServiceUpserted { .. }));
    assert!(matches!(
        outcome.changes.last(),
        Some(Change::CountersAdvanced {
            next_instance_id: 6,
            ..
        })
    ));
    let placed: Vec<_> = outcome
        .events
        .iter()
        .filter(|e| e.kind == EventKind::InstancePlaced)
        .collect();
    assert_eq!(placed.len(), 6);
    assert_eq!(
        placed[0].message,
        "placed i-0 (web group 1, member dc1 (template web_dc1)) on dc1-h1 with address 10.1.0.1: \
         spread policy: the host with the most free capacity in dc1 (100% of its scarcest resource free)"
    );
    assert_eq!(placed[0].host, Some(host("dc1-h1")));
    assert_eq!(placed[0].service, Some(service("web")));
    assert!(
        outcome
            .events
            .last()
            .unwrap()
            .message
            .starts_with("service web created: tenant acme, 3 group(s)")
    );
    let effective = fleet.effective_template(&template("web_dc2")).unwrap();
    assert_eq!(effective.chain, [template("web_dc2"), template("web_base")]);
    assert_eq!(effective.health.unwrap().interval_ms, 10_000);
    // The effective template is in the service.
    let member = &fleet.service(&service("web")).unwrap().members[1];
    assert_eq!(member.run.command.as_deref(), Some("/usr/bin/web"));
    assert_eq!(member.resources, res(500, GIB, 10 * GIB));
}

#[test]
fn refusal_names_group_member_template_resource_and_best_host() {
    let mut fleet = fleet(2, 0);
    fleet
        .register_host(
            host_spec("dc1-h1", "dc1", res(64_000, 256 * GIB, 1000 * GIB)),
            0,
        )
        .unwrap();
    fleet
        .register_host(
            host_spec("dc1-h2", "dc1", res(64_000, 256 * GIB, 1000 * GIB)),
            0,
        )
        .unwrap();
    fleet
        .register_host(
            host_spec("dc1-h3", "dc1", res(64_000, 256 * GIB, 1000 * GIB)),
            0,
        )
        .unwrap();
    fleet
        .register_host(host_spec("dc2-h1", "dc2", res(8000, 2 * GIB, 100 * GIB)), 0)
        .unwrap();
    fleet
        .register_host(host_spec("dc2-h2", "dc2", res(8000, 3 * GIB, 100 * GIB)), 0)
        .unwrap();
    fleet
        .register_host(
            host_spec("dc2-h3", "dc2", res(8000, GIB * 31 / 10 + 1, 100 * GIB)),
            0,
        )
        .unwrap();
    let mut request = spec("web", 3, &["web_dc1", "web_dc2"]);
    request.resources.memory_bytes = Some(4 * GIB);
    let error = refused(&mut fleet, |f| f.create_service(request.clone()));
    assert_eq!(error.class(), ErrorClass::Insufficient);
    let reasons = unplaceable_reasons(error.clone());
    assert_eq!(
        reasons.len(),
        3,
        "one explanation per member that could not be placed"
    );
    assert_eq!(
        reasons[2],
        "group 3, member dc2 (template web_dc2): no host with 4.0 GiB free memory in dc2; \
         the best, dc2-h3, has 3.1 GiB free"
    );
    assert!(
        error
            .to_string()
            .starts_with("service web cannot be placed: group 1, member dc2")
    );
    assert_eq!(fleet.services().count(), 0);
}

#[test]
fn refusal_for_cpu_and_for_resources_not_together() {
    let mut fleet = fleet(1, 0);
    fleet
        .register_host(
            host_spec("dc1-h1", "dc1", res(1000, 16 * GIB, 100 * GIB)),
            0,
        )
        .unwrap();
    fleet
        .register_host(host_spec("dc1-h2", "dc1", res(4000, 2 * GIB, 100 * GIB)), 0)
        .unwrap();
    let mut request = spec("big", 1, &["web_dc1"]);
    request.resources.cpu_millis = Some(8000);
    let reasons = unplaceable_reasons(refused(&mut fleet, |f| f.create_service(request.clone())));
    assert_eq!(
        reasons,
        [
            "group 1, member dc1 (template web_dc1): no host with 8000m free CPU in dc1; the best, \
          dc1-h2, has 4000m free"
        ]
    );
    request.resources = ResourceOverride {
        cpu_millis: Some(2000),
        memory_bytes: Some(4 * GIB),
        disk_bytes: None,
    };
    let reasons = unplaceable_reasons(refused(&mut fleet, |f| f.create_service(request.clone())));
    assert_eq!(
        reasons,
        [
            "group 1, member dc1 (template web_dc1): no host in dc1 has 2000m CPU, 4.0 GiB memory \
          and 10.0 GiB disk free at once; the best, dc1-h1, has 1000m CPU, 16.0 GiB memory and \
          100.0 GiB disk free"
        ]
    );
}

#[test]
fn refusal_when_no_host_is_up() {
    let mut fleet = fleet(2, 2);
    fleet
        .set_host_state(&host("dc2-h1"), HostState::Maintenance)
        .unwrap();
    fleet
        .set_host_state(&host("dc2-h2"), HostState::Down)
        .unwrap();
    let reasons = unplaceable_reasons(refused(&mut fleet, |f| {
        f.create_service(spec("web", 1, &["web_dc1", "web_dc2"]))
    }));
    assert_eq!(
        reasons,
        ["group 1, member dc2 (template web_dc2): no host is up in dc2 (1 down, 1 maintenance)"]
    );
    let mut empty = self::fleet(1, 0);
    let reasons = unplaceable_reasons(refused(&mut empty, |f| {
        f.create_service(spec("web", 1, &["web_dc1"]))
    }));
    assert_eq!(
        reasons,
        ["group 1, member dc1 (template web_dc1): data center dc1 has no hosts"]
    );
}

#[test]
fn exhausted_address_range_is_named() {
    let mut fleet = fleet(1, 0);
    fleet
        .create_data_center(dc("dc2"), &zone("production"))
        .unwrap();
    fleet
        .upsert_template(member_template("web_dc2", "dc2"))
        .unwrap();
    fleet.add_range(range("10.2.0.0/29", "dc2")).unwrap();
    for d in 1..=2 {
        for h in 1..=4 {
            fleet
                .register_host(
                    host_spec(
                        &format!("dc{d}-h{h}"),
                        &format!("dc{d}"),
                        res(64_000, 64 * GIB, 1000 * GIB),
                    ),
                    0,
                )
                .unwrap();
        }
    }
    fleet
        .create_service(spec("web", 6, &["web_dc1", "web_dc2"]))
        .unwrap();
    assert_eq!(
        fleet.range_usage(&"10.2.0.0/29".parse().unwrap()).unwrap(),
        RangeUsage {
            leased: 6,
            usable: 6
        }
    );
    let mut more = spec("web", 7, &["web_dc1", "web_dc2"]);
    let reasons = unplaceable_reasons(refused(&mut fleet, |f| f.update_service(more.clone())));
    assert_eq!(
        reasons,
        [
            "group 7, member dc2 (template web_dc2): dc2: address ranges 10.2.0.0/29 exhausted (6 of 6 leased)"
        ]
    );
    // A second range makes room.
    fleet.add_range(range("10.2.1.0/30", "dc2")).unwrap();
    more.groups = 8;
    fleet.update_service(more).unwrap();
    let mut addresses: Vec<IpAddr> = fleet
        .leases()
        .iter()
        .filter(|l| l.ip.to_string().starts_with("10.2."))
        .map(|l| l.ip)
        .collect();
    addresses.sort();
    assert_eq!(addresses.last(), Some(&ip("10.2.1.2")));
    assert_eq!(
        fleet
            .lease_holder(ip("10.2.0.1"))
            .map(|l| l.range.to_string())
            .as_deref(),
        Some("10.2.0.0/29")
    );
    assert!(
        fleet.lease_holder(ip("10.2.0.7")).is_none(),
        "broadcast is never leased"
    );
}

#[test]
fn ranges_must_not_overlap_and_leased_ranges_stay() {
    let mut fleet = fleet(2, 1);
    let error = refused(&mut fleet, |f| f.add_range(range("10.1.128.0/17", "dc2")));
    assert_eq!(
        error.to_string(),
        "address range 10.1.128.0/17 overlaps 10.1.0.0/16 (in data center dc1)"
    );
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let error = refused(&mut fleet, |f| {
        f.remove_range(&"10.1.0.0/16".parse().unwrap())
    });
    assert_eq!(
        error.to_string(),
        "cannot delete address range 10.1.0.0/16: it is used by lease 10.1.0.1 (i-0)"
    );
    fleet.remove_range(&"10.2.0.0/16".parse().unwrap()).unwrap();
    let mut gateway = range("10.9.0.0/24", "dc2");
    gateway.gateway = Some(ip("10.9.0.1"));
    fleet.add_range(gateway).unwrap();
    fleet.create_service(spec("api", 1, &["web_dc2"])).unwrap();
    assert_eq!(
        fleet.service_instances(&service("api"))[0].ip,
        Some(ip("10.9.0.2"))
    );
}

#[test]
fn templates_of_a_service_must_be_in_distinct_data_centers() {
    let mut fleet = fleet(2, 1);
    fleet
        .upsert_template(member_template("other_dc1", "dc1"))
        .unwrap();
    let error = refused(&mut fleet, |f| {
        f.create_service(spec("web", 1, &["web_dc1", "other_dc1"]))
    });
    assert_eq!(
        error.to_string(),
        "service web: templates web_dc1 and other_dc1 are both in dc1: the members of a group must be in distinct data centers"
    );
    let error = refused(&mut fleet, |f| {
        f.create_service(spec("web", 1, &["web_base"]))
    });
    assert_eq!(
        error.to_string(),
        "template web_base: data_center is not set in it"
    );
    let error = refused(&mut fleet, |f| f.create_service(spec("web", 1, &[])));
    assert_eq!(
        error.to_string(),
        "service web: it needs 1 to 16 templates (got 0)"
    );
}

#[test]
fn tenant_quota_is_enforced_with_a_clear_message() {
    let mut fleet = fleet(2, 3);
    fleet
        .set_tenant_quota(tenant("acme"), Some(res(100_000, 5 * GIB, 1000 * GIB)))
        .unwrap();
    fleet
        .create_service(spec("web", 2, &["web_dc1", "web_dc2"]))
        .unwrap();
    assert_eq!(
        fleet.tenant_usage(&tenant("acme")),
        res(2000, 4 * GIB, 40 * GIB)
    );
    let error = refused(&mut fleet, |f| {
        f.create_service(spec("api", 1, &["web_dc1", "web_dc2"]))
    });
    assert_eq!(
        error.to_string(),
        "tenant acme: memory quota exceeded by service api: usage would be 6.0 GiB (quota 5.0 GiB, 4.0 GiB used without this request)"
    );
    // Lowering a quota below usage is accepted, and shrinking is always allowed.
    fleet
        .set_tenant_quota(tenant("acme"), Some(res(100_000, GIB, 1000 * GIB)))
        .unwrap();
    fleet
        .update_service(spec("web", 1, &["web_dc1", "web_dc2"]))
        .unwrap();
    fleet.set_tenant_quota(tenant("acme"), None).unwrap();
    fleet
        .create_service(spec("api", 1, &["web_dc1", "web_dc2"]))
        .unwrap();
}

#[test]
fn scaling_adds_and_removes_whole_groups_highest_first() {
    let mut fleet = fleet(2, 3);
    fleet
        .create_service(spec("web", 2, &["web_dc1", "web_dc2"]))
        .unwrap();
    let outcome = fleet
        .update_service(spec("web", 4, &["web_dc1", "web_dc2"]))
        .unwrap();
    assert_eq!(
        outcome
            .events
            .iter()
            .filter(|e| e.kind == EventKind::InstancePlaced)
            .count(),
        4
    );
    let outcome = fleet
        .update_service(spec("web", 1, &["web_dc1", "web_dc2"]))
        .unwrap();
    let removed: Vec<_> = outcome
        .events
        .iter()
        .filter(|e| e.kind == EventKind::InstanceRemoved)
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(removed.len(), 6);
    assert!(
        removed[0].contains("web group 4, member dc1"),
        "{removed:?}"
    );
    assert!(removed[0].ends_with("the service was scaled to 1 groups"));
    let released = outcome
        .changes
        .iter()
        .filter(|c| matches!(c, Change::LeaseReleased { .. }))
        .count();
    assert_eq!(released, 6);
    let groups: Vec<u32> = fleet
        .service_instances(&service("web"))
        .iter()
        .map(|i| i.group)
        .collect();
    assert_eq!(groups, [1, 1]);
    assert_eq!(fleet.leases().len(), 2);
    fleet.delete_service(&service("web")).unwrap();
    assert_eq!(fleet.leases().len(), 0);
    assert_eq!(fleet.instances().count(), 0);
}

#[test]
fn resizing_moves_only_what_no_longer_fits() {
    let mut fleet = fleet(1, 2);
    // dc1-h1 gets a 6 GiB neighbour, so growing web to 3 GiB no longer fits there.
    let mut neighbour = spec("db", 1, &["web_dc1"]);
    neighbour.resources.memory_bytes = Some(6 * GIB);
    fleet.create_service(neighbour).unwrap();
    fleet.create_service(spec("web", 2, &["web_dc1"])).unwrap();
    let web_hosts: Vec<_> = fleet
        .service_instances(&service("web"))
        .iter()
        .map(|i| i.host.clone().unwrap())
        .collect();
    assert_eq!(web_hosts, [host("dc1-h2"), host("dc1-h1")]);
    let mut bigger = spec("web", 2, &["web_dc1"]);
    bigger.resources.memory_bytes = Some(3 * GIB);
    let outcome = fleet.update_service(bigger).unwrap();
    let kinds: Vec<_> = outcome.events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::InstanceResized));
    let rescheduled: Vec<_> = outcome
        .events
        .iter()
        .filter(|e| e.kind == EventKind::InstanceRescheduled)
        .collect();
    assert_eq!(rescheduled.len(), 1);
    assert!(
        rescheduled[0]
            .message
            .contains("no longer fits on dc1-h1 after a resize"),
        "{}",
        rescheduled[0].message
    );
    for instance in fleet.service_instances(&service("web")) {
        assert_eq!(instance.resources.memory_bytes, 3 * GIB);
        assert_eq!(instance.host, Some(host("dc1-h2")));
    }
}

#[test]
fn a_down_host_is_rescheduled_in_its_data_center_and_its_stale_instances_stopped() {
    let mut fleet = fleet(2, 2);
    fleet
        .create_service(spec("web", 2, &["web_dc1", "web_dc2"]))
        .unwrap();
    let on_h1: Vec<Instance> = fleet
        .host_instances(&host("dc1-h1"))
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(on_h1.len(), 1);
    let old = &on_h1[0];
    for h in ["dc1-h2", "dc2-h1", "dc2-h2"] {
        fleet.heartbeat(&host(h), 6_000).unwrap();
    }
    let outcome = fleet
        .detect_down_hosts(6_000, HEARTBEAT_TIMEOUT_MS_DEFAULT)
        .unwrap();
    assert_eq!(fleet.host(&host("dc1-h1")).unwrap().state, HostState::Down);
    let down_event = &outcome.events[0];
    assert_eq!(
        down_event.message,
        "host dc1-h1 is down (was up): no heartbeat for 6000 ms (timeout 5000 ms)"
    );
    // Replaced in dc1 with a new address; the old lease is released.
    assert!(fleet.instance(old.id).is_none());
    let replacement = fleet
        .service_instances(&service("web"))
        .into_iter()
        .find(|i| i.group == old.group && i.member == old.member)
        .unwrap()
        .clone();
    assert_eq!(replacement.host, Some(host("dc1-h2")));
    assert_ne!(replacement.ip, old.ip);
    assert!(fleet.lease_holder(old.ip.unwrap()).is_none());
    assert!(
        outcome
            .changes
            .iter()
            .any(|c| matches!(c, Change::LeaseReleased { lease } if Some(lease.ip) == old.ip))
    );
    let rescheduled = outcome
        .events
        .iter()
        .find(|e| e.kind == EventKind::InstanceRescheduled)
        .unwrap();
    assert!(
        rescheduled
            .message
            .contains(&format!("replaces {} (host dc1-h1 is down", old.id)),
        "{}",
        rescheduled.message
    );
    // The host comes back empty; its agent is told to stop the stale instance.
    fleet.heartbeat(&host("dc1-h1"), 7_000).unwrap();
    assert_eq!(fleet.host(&host("dc1-h1")).unwrap().state, HostState::Up);
    assert!(fleet.desired_instances(&host("dc1-h1")).unwrap().is_empty());
    let plan = fleet.reconcile_host(&host("dc1-h1"), &[old.id]).unwrap();
    assert_eq!(
        plan,
        HostReconciliation {
            start: vec![],
            stop: vec![old.id]
        }
    );
    let plan = fleet.reconcile_host(&host("dc1-h2"), &[]).unwrap();
    assert_eq!(plan.start.len(), 2);
}

#[test]
fn without_capacity_an_instance_is_pending_until_capacity_appears() {
    let mut fleet = fleet(2, 1);
    fleet
        .create_service(spec("web", 1, &["web_dc1", "web_dc2"]))
        .unwrap();
    fleet
        .set_host_state(&host("dc2-h1"), HostState::Down)
        .unwrap();
    let pending = fleet.pending_instances();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].state,
        InstanceState::Pending {
            reason: "no host is up in dc2 (1 down)".to_owned()
        }
    );
    let report = fleet.check(&service("web")).unwrap();
    assert_eq!(
        report.messages,
        [format!(
            "{} is pending: no host is up in dc2 (1 down)",
            pending[0].id
        )]
    );
    // A new host takes it at once.
    let outcome = fleet
        .register_host(host_spec("dc2-h2", "dc2", res(4000, 8 * GIB, 100 * GIB)), 0)
        .unwrap();
    assert!(
        outcome
            .events
            .iter()
            .any(|e| e.kind == EventKind::InstancePlaced && e.message.contains("it was pending"))
    );
    assert!(fleet.pending_instances().is_empty());
    assert!(fleet.check(&service("web")).unwrap().findings.is_empty());
}

#[test]
fn draining_moves_instances_one_at_a_time_make_before_break() {
    let mut fleet = fleet(1, 3);
    fleet.create_service(spec("web", 3, &["web_dc1"])).unwrap();
    fleet.create_service(spec("api", 1, &["web_dc1"])).unwrap();
    let drained = host("dc1-h1");
    let on_host: Vec<InstanceId> = fleet
        .host_instances(&drained)
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(on_host.len(), 2);
    fleet.drain_host(&drained).unwrap();
    assert_eq!(fleet.host(&drained).unwrap().state, HostState::Draining);
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 20, "the drain does not converge");
        let status = fleet.drain_status(&drained).unwrap();
        let active = status
            .moves
            .iter()
            .filter(|m| m.state != MoveState::Queued)
            .count();
        assert!(active <= 1, "one move at a time");
        match status.next {
            DrainStep::AwaitHealthy {
                replacement,
                replacement_host,
                ..
            } => {
                assert_ne!(replacement_host, drained);
                fleet.instance_healthy(replacement).unwrap();
            }
            DrainStep::AwaitStopped { instance, .. } => {
                let desired = fleet.desired_instances(&drained).unwrap();
                assert!(
                    desired
                        .iter()
                        .any(|d| d.instance == instance && d.action == DesiredAction::Stop)
                );
                let outcome = fleet.instance_stopped(instance).unwrap();
                assert!(
                    outcome
                        .events
                        .iter()
                        .any(|e| e.kind == EventKind::MoveCompleted)
                );
            }
            DrainStep::Done => break,
            other => panic!("unexpected step {other:?}"),
        }
    }
    assert!(fleet.host_instances(&drained).is_empty());
    assert_eq!(fleet.service_instances(&service("web")).len(), 3);
    fleet
        .set_host_state(&drained, HostState::Maintenance)
        .unwrap();
    fleet.delete_host(&drained).unwrap();
}

#[test]
fn a_blocked_drain_waits_for_capacity() {
    let mut fleet = fleet(1, 1);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    fleet.drain_host(&host("dc1-h1")).unwrap();
    let status = fleet.drain_status(&host("dc1-h1")).unwrap();
    match status.next {
        DrainStep::Blocked { reason, .. } => {
            assert_eq!(reason, "no host is up in dc1 (1 draining)")
        }
        other => panic!("expected blocked, got {other:?}"),
    }
    let error = refused(&mut fleet, |f| {
        f.set_host_state(&host("dc1-h1"), HostState::Maintenance)
    });
    assert!(
        error.to_string().starts_with(
            "host dc1-h1 is draining: it still runs 1 instance(s) (i-0): drain it first"
        ),
        "{error}"
    );
    fleet
        .register_host(host_spec("dc1-h2", "dc1", res(4000, 8 * GIB, 100 * GIB)), 0)
        .unwrap();
    assert!(matches!(
        fleet.drain_status(&host("dc1-h1")).unwrap().next,
        DrainStep::AwaitHealthy { .. }
    ));
    // Cancelling the drain removes the replacement that is not healthy yet.
    fleet
        .set_host_state(&host("dc1-h1"), HostState::Up)
        .unwrap();
    assert_eq!(fleet.moves().count(), 0);
    assert_eq!(fleet.service_instances(&service("web")).len(), 1);
}

#[test]
fn losing_a_host_during_a_drain_keeps_one_instance_per_member() {
    let mut fleet = fleet(1, 3);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let source = fleet.service_instances(&service("web"))[0]
        .host
        .clone()
        .unwrap();
    fleet.drain_host(&source).unwrap();
    let DrainStep::AwaitHealthy {
        replacement_host, ..
    } = fleet.drain_status(&source).unwrap().next
    else {
        panic!("expected a placed replacement");
    };
    // The replacement's host fails: the move places another replacement.
    fleet
        .set_host_state(&replacement_host, HostState::Down)
        .unwrap();
    let DrainStep::AwaitHealthy {
        replacement_host: second,
        ..
    } = fleet.drain_status(&source).unwrap().next
    else {
        panic!("expected another replacement");
    };
    assert_ne!(second, replacement_host);
    // Now the drained host itself fails: the replacement takes over, no duplicate appears.
    fleet.set_host_state(&source, HostState::Down).unwrap();
    let instances = fleet.service_instances(&service("web"));
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].host, Some(second));
    assert_eq!(fleet.moves().count(), 0);
}

#[test]
fn check_reports_and_migrate_fixes_placement_problems() {
    let mut fleet = fleet(1, 1);
    fleet.create_service(spec("web", 2, &["web_dc1"])).unwrap();
    assert!(
        fleet.check(&service("web")).unwrap().findings.is_empty(),
        "sharing is unavoidable with one host"
    );
    fleet
        .register_host(host_spec("dc1-h2", "dc1", res(4000, 8 * GIB, 100 * GIB)), 0)
        .unwrap();
    fleet
        .update_host(
            &host("dc1-h1"),
            HostUpdate {
                capacity: Some(res(4000, GIB + GIB / 2, 100 * GIB)),
                labels: None,
            },
        )
        .unwrap();
    let report = fleet.check(&service("web")).unwrap();
    assert_eq!(
        report.messages,
        [
            "2 instances share host dc1-h1 (i-0, i-1) although other hosts have room",
            "host dc1-h1 is over capacity (1000m CPU, 2.0 GiB memory, 20.0 GiB disk allocated, capacity 4000m CPU, 1.5 GiB memory, 100.0 GiB disk); the service has i-0, i-1 there",
        ]
    );
    let (migration, outcome) = fleet
        .migrate(&service("web"), Some(&host("dc1-h2")))
        .unwrap();
    assert_eq!(migration.moves.len(), 1);
    assert!(
        outcome
            .events
            .iter()
            .any(|e| e.kind == EventKind::MoveStarted)
    );
    let replacement = migration.moves[0].replacement.unwrap();
    assert_eq!(
        fleet.instance(replacement).unwrap().host,
        Some(host("dc1-h2"))
    );
    fleet.instance_healthy(replacement).unwrap();
    fleet.instance_stopped(migration.moves[0].instance).unwrap();
    assert!(fleet.check(&service("web")).unwrap().findings.is_empty());
    // A target host in the wrong data center is refused with the reason.
    let mut fleet2 = self::fleet(2, 1);
    fleet2.create_service(spec("web", 2, &["web_dc1"])).unwrap();
    fleet2
        .register_host(host_spec("dc1-h2", "dc1", res(4000, 8 * GIB, 100 * GIB)), 0)
        .unwrap();
    let error = refused(&mut fleet2, |f| {
        f.migrate(&service("web"), Some(&host("dc2-h1")))
            .map(|(_, o)| o)
    });
    assert_eq!(
        error.to_string(),
        "service web cannot be placed: group 2, member dc1 (template web_dc1): host dc2-h1 is in dc2, but the instance must run in dc1"
    );
}

#[test]
fn capacity_reports_totals_and_group_fit() {
    let mut fleet = fleet(2, 2);
    fleet
        .create_service(spec("web", 2, &["web_dc1", "web_dc2"]))
        .unwrap();
    fleet
        .set_host_state(&host("dc2-h2"), HostState::Maintenance)
        .unwrap_err();
    let report = fleet.capacity();
    assert_eq!(report.len(), 1);
    let dc1 = &report[0].data_centers[0];
    assert_eq!(dc1.hosts_up, 2);
    assert_eq!(dc1.resources.total, res(8000, 16 * GIB, 200 * GIB));
    assert_eq!(dc1.resources.allocated, res(1000, 2 * GIB, 20 * GIB));
    assert_eq!(dc1.resources.free, res(7000, 14 * GIB, 180 * GIB));
    assert_eq!(dc1.addresses_free, 65534 - 2);
    assert_eq!(report[0].resources.total, res(16_000, 32 * GIB, 400 * GIB));
    // Each host has 3500m and 7 GiB free: 3 copies of 1000m/2 GiB each, 6 per data center.
    let shape = GroupShape {
        templates: vec![template("web_dc1"), template("web_dc2")],
        resources: ResourceOverride {
            cpu_millis: Some(1000),
            memory_bytes: Some(2 * GIB),
            disk_bytes: None,
        },
    };
    let fit = fleet.fit_groups(&shape).unwrap();
    assert_eq!(fit.groups, 6);
    fleet.drain_host(&host("dc2-h2")).unwrap();
    let fit = fleet.fit_groups(&shape).unwrap();
    assert_eq!(fit.bottleneck, Some(dc("dc2")));
    assert!(fit.groups < 6);
}

#[test]
fn nothing_in_use_can_be_deleted() {
    let mut fleet = fleet(2, 1);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let cases: Vec<(FleetError, &str)> = vec![
        (
            refused(&mut fleet, |f| f.delete_zone(&zone("production"))),
            "cannot delete zone production: it is used by data centers dc1, dc2",
        ),
        (
            refused(&mut fleet, |f| f.delete_data_center(&dc("dc1"))),
            "cannot delete data center dc1: it is used by host dc1-h1 and template web_dc1 and address range 10.1.0.0/16 and service web",
        ),
        (
            refused(&mut fleet, |f| f.delete_host(&host("dc1-h1"))),
            "cannot delete host dc1-h1: it is used by instance i-0 (web group 1); drain it first",
        ),
        (
            refused(&mut fleet, |f| f.delete_template(&template("web_dc1"))),
            "cannot delete template web_dc1: it is used by service web",
        ),
        (
            refused(&mut fleet, |f| f.delete_template(&template("web_base"))),
            "cannot delete template web_base: it is used by templates web_dc1, web_dc2 (extending it)",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
        assert_eq!(error.class(), ErrorClass::Conflict);
    }
    fleet.delete_service(&service("web")).unwrap();
    fleet.delete_host(&host("dc2-h1")).unwrap();
    fleet.delete_template(&template("web_dc2")).unwrap();
    fleet.remove_range(&"10.2.0.0/16".parse().unwrap()).unwrap();
    fleet.delete_data_center(&dc("dc2")).unwrap();
}

#[test]
fn names_and_lookups_are_validated() {
    let mut fleet = fleet(1, 1);
    assert_eq!(
        ZoneName::new("Prod").unwrap_err().to_string(),
        "invalid zone name \"Prod\": may only contain lowercase letters (a-z), digits, '-' and '_' (found 'P')"
    );
    assert_eq!(
        refused(&mut fleet, |f| f.create_zone(zone("production"))).to_string(),
        "zone production already exists"
    );
    assert_eq!(
        refused(&mut fleet, |f| f
            .create_data_center(dc("dc9"), &zone("staging")))
        .to_string(),
        "zone staging does not exist"
    );
    assert_eq!(
        refused(&mut fleet, |f| f.heartbeat(&host("ghost"), 1)).to_string(),
        "host ghost does not exist"
    );
    assert_eq!(
        refused(&mut fleet, |f| f
            .register_host(host_spec("dc1-h9", "dc1", res(0, GIB, 0)), 0))
        .to_string(),
        "host dc1-h9: capacity.cpu_millis and capacity.memory_bytes must be positive"
    );
}

#[test]
fn template_cycles_are_refused() {
    let mut fleet = fleet(1, 0);
    let mut a = Template::named(template("a"));
    a.extends = Some(template("web_base"));
    fleet.upsert_template(a).unwrap();
    let mut base = base_template();
    base.extends = Some(template("a"));
    let error = refused(&mut fleet, |f| f.upsert_template(base.clone()));
    assert_eq!(
        error.to_string(),
        "template cycle: web_base -> a -> web_base"
    );
    let mut ghost = Template::named(template("b"));
    ghost.extends = Some(template("ghost"));
    assert_eq!(
        refused(&mut fleet, |f| f.upsert_template(ghost.clone())).to_string(),
        "template b: it extends ghost, which does not exist"
    );
}

#[test]
fn pack_policy_fills_hosts_first() {
    let mut fleet = fleet(1, 3);
    let mut request = spec("batch", 3, &["web_dc1"]);
    request.policy = PlacementPolicy::Pack;
    fleet.create_service(spec("seed", 1, &["web_dc1"])).unwrap();
    fleet.create_service(request).unwrap();
    // Anti-affinity still spreads the service while other hosts have room...
    let hosts: std::collections::BTreeSet<_> = fleet
        .service_instances(&service("batch"))
        .iter()
        .map(|i| i.host.clone())
        .collect();
    assert_eq!(hosts.len(), 3);
    // ...and the first goes to the fullest host (the one with the seed).
    let seed_host = fleet.service_instances(&service("seed"))[0].host.clone();
    assert_eq!(
        fleet.service_instances(&service("batch"))[0].host,
        seed_host
    );
}

#[test]
fn snapshots_round_trip_and_decide_alike() {
    let mut fleet = fleet(2, 3);
    fleet
        .create_service(spec("web", 3, &["web_dc1", "web_dc2"]))
        .unwrap();
    fleet
        .set_host_state(&host("dc1-h1"), HostState::Down)
        .unwrap();
    fleet.drain_host(&host("dc2-h2")).unwrap();
    fleet
        .set_tenant_quota(tenant("acme"), Some(res(100_000, 100 * GIB, 1000 * GIB)))
        .unwrap();
    let json = serde_json::to_string(&fleet).unwrap();
    let mut restored: Fleet = serde_json::from_str(&json).unwrap();
    assert_eq!(restored.snapshot(), fleet.snapshot());
    assert!(restored.verify_invariants().is_empty());
    let a = fleet
        .create_service(spec("api", 2, &["web_dc1", "web_dc2"]))
        .unwrap();
    let b = restored
        .create_service(spec("api", 2, &["web_dc1", "web_dc2"]))
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(restored.snapshot(), fleet.snapshot());
    // A corrupt snapshot is refused.
    let mut corrupt = fleet.snapshot();
    corrupt.instances[1].ip = corrupt.instances[0].ip;
    let error = Fleet::restore(corrupt).unwrap_err();
    assert_eq!(error.class(), ErrorClass::Internal);
    assert!(error.to_string().contains("not leasable"), "{error}");
}

#[test]
fn changes_replayed_in_order_rebuild_the_state() {
    // Apply every outcome's changes to a row store and compare with the fleet's snapshot.
    let mut fleet = Fleet::new();
    let mut rows = RowStore::default();
    let mut apply = |outcome: Result<Outcome, FleetError>| rows.apply(&outcome.unwrap().changes);
    apply(fleet.create_zone(zone("production")));
    apply(fleet.upsert_template(base_template()));
    for d in 1..=2 {
        let name = format!("dc{d}");
        apply(fleet.create_data_center(dc(&name), &zone("production")));
        apply(fleet.add_range(range(&format!("10.{d}.0.0/16"), &name)));
        apply(fleet.upsert_template(member_template(&format!("web_{name}"), &name)));
        for h in 1..=2 {
            apply(fleet.register_host(
                host_spec(
                    &format!("{name}-h{h}"),
                    &name,
                    res(4000, 8 * GIB, 100 * GIB),
                ),
                0,
            ));
        }
    }
    apply(fleet.create_service(spec("web", 2, &["web_dc1", "web_dc2"])));
    apply(fleet.heartbeat(&host("dc1-h2"), 9_000));
    apply(fleet.set_host_state(&host("dc1-h1"), HostState::Down));
    apply(fleet.drain_host(&host("dc2-h1")));
    let replacement = fleet.moves().next().and_then(|m| m.replacement).unwrap();
    apply(fleet.instance_healthy(replacement));
    apply(fleet.update_service(spec("web", 1, &["web_dc1", "web_dc2"])));
    assert_eq!(rows.snapshot(), fleet.snapshot());
}

/// A minimal stand-in for the server's tables.
#[derive(Default)]
struct RowStore {
    zones: std::collections::BTreeMap<ZoneName, Zone>,
    data_centers: std::collections::BTreeMap<DcName, DataCenter>,
    hosts: std::collections::BTreeMap<HostName, Host>,
    ranges: std::collections::BTreeMap<Cidr, AddressRange>,
    templates: std::collections::BTreeMap<TemplateName, Template>,
    services: std::collections::BTreeMap<ServiceName, Service>,
    quotas: std::collections::BTreeMap<TenantName, Resources>,
    instances: std::collections::BTreeMap<InstanceId, Instance>,
    leases: std::collections::BTreeMap<IpAddr, InstanceId>,
    moves: std::collections::BTreeMap<MoveId, Move>,
    counters: (u64, u64),
}

impl RowStore {
    fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change.clone() {
                Change::ZoneCreated { zone } => {
                    self.zones.insert(zone.name.clone(), zone);
                }
                Change::ZoneDeleted { zone } => {
                    self.zones.remove(&zone);
                }
                Change::DataCenterCreated { data_center } => {
                    self.data_centers
                        .insert(data_center.name.clone(), data_center);
                }
                Change::DataCenterDeleted { data_center } => {
                    self.data_centers.remove(&data_center);
                }
                Change::HostUpserted { host } => {
                    self.hosts.insert(host.name.clone(), host);
                }
                Change::HostHeartbeat {
                    host,
                    last_heartbeat_ms,
                } => {
                    self.hosts.get_mut(&host).unwrap().last_heartbeat_ms = last_heartbeat_ms;
                }
                Change::HostDeleted { host } => {
                    self.hosts.remove(&host);
                }
                Change::RangeAdded { range } => {
                    self.ranges.insert(range.cidr, range);
                }
                Change::RangeRemoved { range } => {
                    self.ranges.remove(&range);
                }
                Change::TemplateUpserted { template } => {
                    self.templates.insert(template.name.clone(), *template);
                }
                Change::TemplateDeleted { template } => {
                    self.templates.remove(&template);
                }
                Change::ServiceUpserted { service } => {
                    self.services.insert(service.name.clone(), service);
                }
                Change::ServiceDeleted { service } => {
                    self.services.remove(&service);
                }
                Change::QuotaSet {
                    tenant,
                    limits: Some(limits),
                } => {
                    self.quotas.insert(tenant, limits);
                }
                Change::QuotaSet {
                    tenant,
                    limits: None,
                } => {
                    self.quotas.remove(&tenant);
                }
                Change::InstanceCreated { instance } | Change::InstanceUpdated { instance } => {
                    self.instances.insert(instance.id, instance);
                }
                Change::InstanceRemoved { instance } => {
                    self.instances.remove(&instance);
                }
                Change::LeaseGranted { lease } => {
                    assert!(self.leases.insert(lease.ip, lease.instance).is_none());
                }
                Change::LeaseReleased { lease } => {
                    assert_eq!(self.leases.remove(&lease.ip), Some(lease.instance));
                }
                Change::MoveUpserted { move_ } => {
                    self.moves.insert(move_.id, move_);
                }
                Change::MoveRemoved { id } => {
                    self.moves.remove(&id);
                }
                Change::CountersAdvanced {
                    next_instance_id,
                    next_move_id,
                } => {
                    self.counters = (next_instance_id, next_move_id);
                }
            }
        }
        let from_instances: std::collections::BTreeMap<IpAddr, InstanceId> = self
            .instances
            .values()
            .filter_map(|i| i.ip.map(|ip| (ip, i.id)))
            .collect();
        assert_eq!(
            self.leases, from_instances,
            "lease rows match instance addresses"
        );
    }

    fn snapshot(&self) -> FleetSnapshot {
        FleetSnapshot {
            zones: self.zones.values().cloned().collect(),
            data_centers: self.data_centers.values().cloned().collect(),
            hosts: self.hosts.values().cloned().collect(),
            ranges: self.ranges.values().cloned().collect(),
            templates: self.templates.values().cloned().collect(),
            services: self.services.values().cloned().collect(),
            quotas: self
                .quotas
                .iter()
                .map(|(tenant, limits)| TenantQuota {
                    tenant: tenant.clone(),
                    limits: *limits,
                })
                .collect(),
            instances: self.instances.values().cloned().collect(),
            moves: self.moves.values().cloned().collect(),
            next_instance_id: self.counters.0,
            next_move_id: self.counters.1,
        }
    }
}

#[test]
fn instance_reports_are_checked() {
    let mut fleet = fleet(1, 1);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let id = fleet.service_instances(&service("web"))[0].id;
    let error = refused(&mut fleet, |f| f.instance_stopped(id));
    assert_eq!(
        error.to_string(),
        "instance i-0: it is placed, not stopping: only instances told to stop can be reported stopped"
    );
    fleet.instance_healthy(id).unwrap();
    assert_eq!(fleet.instance(id).unwrap().state, InstanceState::Running);
    assert!(fleet.instance_healthy(id).unwrap().is_empty(), "idempotent");
    assert_eq!(
        refused(&mut fleet, |f| f.instance_healthy(InstanceId(99))).to_string(),
        "instance i-99 does not exist"
    );
}

#[test]
fn warm_up_weights_reach_the_registry_and_start_over_after_unhealthy() {
    let mut fleet = fleet(1, 1);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let id = fleet.service_instances(&service("web"))[0].id;
    let endpoint = |fleet: &Fleet| {
        fleet
            .service_endpoints(&service("web"))
            .unwrap()
            .endpoints
            .remove(0)
    };
    let version = |fleet: &Fleet| fleet.service_endpoints(&service("web")).unwrap().version;
    let report = |port, weight| HealthReport {
        port,
        weight: Some(weight),
        address: None,
    };
    fleet
        .instance_healthy_report(id, report(Some(20_001), 10))
        .unwrap();
    let first = endpoint(&fleet);
    assert_eq!(
        (first.healthy, first.port, first.weight),
        (true, Some(20_001), 10)
    );
    // Every step is a change: a new version for the registry's watchers.
    let mut versions = vec![version(&fleet)];
    for weight in [25, 50, 100] {
        let outcome = fleet
            .instance_healthy_report(id, report(None, weight))
            .unwrap();
        assert!(matches!(
            outcome.changes.as_slice(),
            [Change::InstanceUpdated { instance }] if instance.weight == Some(weight)
        ));
        assert_eq!(endpoint(&fleet).weight, weight);
        assert_eq!(endpoint(&fleet).port, Some(20_001), "the port is kept");
        versions.push(version(&fleet));
    }
    versions.dedup();
    assert_eq!(versions.len(), 4, "{versions:?}");
    // The same step again, or a report without a weight, changes nothing.
    assert!(
        fleet
            .instance_healthy_report(id, report(None, 100))
            .unwrap()
            .is_empty()
    );
    assert!(fleet.instance_healthy(id).unwrap().is_empty());
    for weight in [0, ENDPOINT_WEIGHT_FULL + 1] {
        let error = refused(&mut fleet, |f| {
            f.instance_healthy_report(id, report(None, weight))
        });
        assert_eq!(error.class(), ErrorClass::Invalid);
        assert!(
            error.to_string().contains("is not between 1 and 100"),
            "{error}"
        );
    }
    // Unhealthy, then healthy again: the ramp starts over from what the agent reports.
    fleet.instance_unhealthy(id).unwrap();
    assert_eq!(fleet.instance(id).unwrap().weight, None);
    fleet.instance_healthy_report(id, report(None, 10)).unwrap();
    assert_eq!(endpoint(&fleet).weight, 10);
    // A report without a weight on a placed instance (an agent without warm-up): full weight.
    fleet.instance_unhealthy(id).unwrap();
    fleet.instance_healthy(id).unwrap();
    assert_eq!(endpoint(&fleet).weight, ENDPOINT_WEIGHT_FULL);
}

#[test]
fn an_unhealthy_instance_leaves_the_healthy_endpoints_until_healthy_again() {
    let mut fleet = fleet(1, 1);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let id = fleet.service_instances(&service("web"))[0].id;
    assert!(
        fleet.instance_unhealthy(id).unwrap().is_empty(),
        "a placed instance is not running: nothing changes"
    );
    fleet.instance_healthy_at(id, Some(20_001)).unwrap();
    let healthy =
        |fleet: &Fleet| fleet.service_endpoints(&service("web")).unwrap().endpoints[0].healthy;
    assert!(healthy(&fleet));
    let outcome = fleet.instance_unhealthy(id).unwrap();
    assert_eq!(fleet.instance(id).unwrap().state, InstanceState::Placed);
    assert!(!healthy(&fleet));
    assert!(
        outcome
            .events
            .iter()
            .any(|event| event.kind == EventKind::InstanceUnhealthy && event.instance == Some(id)),
        "{outcome:?}"
    );
    assert!(
        fleet.instance_unhealthy(id).unwrap().is_empty(),
        "idempotent"
    );
    fleet.instance_healthy(id).unwrap();
    assert!(healthy(&fleet));
    assert_eq!(
        fleet.service_endpoints(&service("web")).unwrap().endpoints[0].port,
        Some(20_001),
        "the port is kept"
    );
    assert_eq!(
        refused(&mut fleet, |f| f.instance_unhealthy(InstanceId(99))).to_string(),
        "instance i-99 does not exist"
    );
}

#[test]
fn heartbeats_only_move_forward_and_skip_settling() {
    let mut fleet = fleet(1, 1);
    let outcome = fleet.heartbeat(&host("dc1-h1"), 5).unwrap();
    assert_eq!(
        outcome.changes,
        [Change::HostHeartbeat {
            host: host("dc1-h1"),
            last_heartbeat_ms: 5
        }]
    );
    assert!(fleet.heartbeat(&host("dc1-h1"), 3).unwrap().is_empty());
    assert!(fleet.detect_down_hosts(5_005, 5_000).unwrap().is_empty());
    assert!(!fleet.detect_down_hosts(5_006, 5_000).unwrap().is_empty());
}

#[test]
fn endpoints_list_placed_instances_with_reported_ports_and_health() {
    let mut fleet = fleet(2, 2);
    fleet
        .create_service(spec("web", 2, &["web_dc1", "web_dc2"]))
        .unwrap();
    let listed = fleet.service_endpoints(&service("web")).unwrap();
    assert_eq!(listed.endpoints.len(), 4);
    assert_eq!(listed.version.len(), 16);
    for endpoint in &listed.endpoints {
        let instance = fleet.instance(endpoint.instance).unwrap();
        assert_eq!(Some(&endpoint.host), instance.host.as_ref());
        assert_eq!(endpoint.data_center, instance.data_center);
        assert_eq!(Some(endpoint.ip), instance.ip);
        assert_eq!(endpoint.port, None, "not reported yet");
        assert_eq!(endpoint.weight, ENDPOINT_WEIGHT_FULL);
        assert!(!endpoint.healthy && !endpoint.draining);
    }
    let ids: Vec<InstanceId> = listed.endpoints.iter().map(|e| e.instance).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "by instance id");

    let id = ids[0];
    fleet.instance_healthy_at(id, Some(20_001)).unwrap();
    let healthy = fleet.service_endpoints(&service("web")).unwrap();
    assert_ne!(healthy.version, listed.version);
    assert_eq!(healthy.endpoints[0].port, Some(20_001));
    assert!(healthy.endpoints[0].healthy);
    assert_eq!(fleet.instance(id).unwrap().port, Some(20_001));

    // The same report again changes nothing, nor does one without a port.
    assert!(
        fleet
            .instance_healthy_at(id, Some(20_001))
            .unwrap()
            .is_empty()
    );
    assert!(fleet.instance_healthy(id).unwrap().is_empty());
    assert_eq!(fleet.service_endpoints(&service("web")).unwrap(), healthy);

    // A restart on another port: the port follows.
    let outcome = fleet.instance_healthy_at(id, Some(20_007)).unwrap();
    assert!(matches!(
        outcome.changes.as_slice(),
        [Change::InstanceUpdated { instance }] if instance.port == Some(20_007)
    ));
    let moved = fleet.service_endpoints(&service("web")).unwrap();
    assert_eq!(moved.endpoints[0].port, Some(20_007));
    assert_ne!(moved.version, healthy.version);

    assert_eq!(
        fleet
            .service_endpoints(&service("nope"))
            .unwrap_err()
            .class(),
        ErrorClass::NotFound
    );
}

#[test]
fn the_registry_lists_the_included_services_with_frontend_ports_and_endpoints() {
    let mut fleet = fleet(2, 2);
    let mut exposed = member_template("web_public", "dc1");
    exposed.frontend_port = Some(8080);
    fleet.upsert_template(exposed).unwrap();
    fleet
        .create_service(spec("web", 1, &["web_dc2", "web_public"]))
        .unwrap();
    fleet.create_service(spec("api", 2, &["web_dc1"])).unwrap();

    let all = fleet.registry(|_| true);
    let names: Vec<&str> = all.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "web"], "by name");
    let web = &all.services[1];
    assert_eq!(
        web.frontend_port,
        Some(8080),
        "the first member that has one"
    );
    assert_eq!(all.services[0].frontend_port, None);
    assert_eq!(
        web.endpoints,
        fleet.service_endpoints(&service("web")).unwrap().endpoints
    );

    let only_web = fleet.registry(|s| s.name == service("web"));
    assert_eq!(only_web.services.len(), 1);
    assert_ne!(only_web.version, all.version);
    assert_eq!(fleet.registry(|_| true), all, "stable");

    let id = web.endpoints[0].instance;
    fleet.instance_healthy_at(id, Some(20_001)).unwrap();
    assert_ne!(fleet.registry(|_| true).version, all.version);
}

#[test]
fn an_address_reported_with_health_replaces_the_lease_in_the_registry() {
    let mut fleet = fleet(1, 1);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let id = fleet.service_instances(&service("web"))[0].id;
    let lease = fleet.instance(id).unwrap().ip.unwrap();
    let report = HealthReport {
        port: Some(20_001),
        weight: None,
        address: Some("127.0.0.1".parse().unwrap()),
    };
    fleet.instance_healthy_report(id, report).unwrap();
    let endpoints = fleet.service_endpoints(&service("web")).unwrap().endpoints;
    assert_eq!(endpoints[0].ip.to_string(), "127.0.0.1");
    assert_eq!(
        fleet.instance(id).unwrap().ip,
        Some(lease),
        "the lease stays leased"
    );
    // A later report without one keeps it.
    fleet
        .instance_healthy_report(id, HealthReport::default())
        .unwrap();
    assert_eq!(
        fleet.service_endpoints(&service("web")).unwrap().endpoints[0]
            .ip
            .to_string(),
        "127.0.0.1"
    );
}

#[test]
fn endpoints_of_a_lost_host_are_replaced_in_the_same_data_center() {
    let mut fleet = fleet(1, 2);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let before = fleet.service_endpoints(&service("web")).unwrap();
    let lost = before.endpoints[0].clone();
    fleet
        .instance_healthy_at(lost.instance, Some(20_000))
        .unwrap();
    // Only the other host heartbeats.
    let other = if lost.host == host("dc1-h1") {
        host("dc1-h2")
    } else {
        host("dc1-h1")
    };
    fleet.heartbeat(&other, 9_000).unwrap();
    fleet.detect_down_hosts(10_000, 5_000).unwrap();
    let after = fleet.service_endpoints(&service("web")).unwrap();
    assert_eq!(after.endpoints.len(), 1);
    let replacement = &after.endpoints[0];
    assert_ne!(replacement.instance, lost.instance);
    assert_eq!(replacement.host, other);
    assert_eq!(replacement.data_center, dc("dc1"));
    assert_eq!((replacement.port, replacement.healthy), (None, false));
    assert_ne!(after.version, before.version);
}

#[test]
fn endpoints_being_drained_or_replaced_are_draining() {
    let mut fleet = fleet(1, 2);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let old = fleet.service_endpoints(&service("web")).unwrap().endpoints[0].clone();
    fleet
        .instance_healthy_at(old.instance, Some(20_000))
        .unwrap();
    fleet.drain_host(&old.host).unwrap();
    let DrainStep::AwaitHealthy { replacement, .. } = fleet.drain_status(&old.host).unwrap().next
    else {
        panic!("a replacement is expected");
    };
    let during = fleet.service_endpoints(&service("web")).unwrap().endpoints;
    assert_eq!(during.len(), 2);
    assert!(
        during[0].healthy && during[0].draining,
        "the old one: {during:?}"
    );
    assert!(
        !during[1].healthy && !during[1].draining,
        "the new one: {during:?}"
    );
    fleet
        .instance_healthy_at(replacement, Some(20_100))
        .unwrap();
    let stopping = fleet.service_endpoints(&service("web")).unwrap().endpoints;
    assert!(
        stopping[0].draining && !stopping[0].healthy,
        "told to stop: {stopping:?}"
    );
    assert!(stopping[1].healthy && !stopping[1].draining);
    fleet.instance_stopped(old.instance).unwrap();
    let done = fleet.service_endpoints(&service("web")).unwrap().endpoints;
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].instance, done[0].port),
        (replacement, Some(20_100))
    );
}

#[test]
fn instance_ports_survive_a_snapshot_and_old_rows_load_without_one() {
    let mut fleet = fleet(1, 1);
    fleet.create_service(spec("web", 1, &["web_dc1"])).unwrap();
    let id = fleet.service_instances(&service("web"))[0].id;
    fleet.instance_healthy_at(id, Some(20_003)).unwrap();
    let restored = Fleet::restore(fleet.snapshot()).unwrap();
    assert_eq!(restored.instance(id).unwrap().port, Some(20_003));

    let mut row = serde_json::to_value(fleet.instance(id).unwrap()).unwrap();
    assert_eq!(row["port"], 20_003);
    row.as_object_mut().unwrap().remove("port");
    let old: Instance = serde_json::from_value(row).unwrap();
    assert_eq!(old.port, None);
}
