//! Property tests: after any sequence of operations the invariants hold, a refused operation
//! changes nothing, and the same sequence always yields the same fleet.

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Op {
    Create {
        service: u8,
        shape: u8,
        groups: u32,
        size: u8,
    },
    Scale {
        service: u8,
        groups: u32,
    },
    Resize {
        service: u8,
        size: u8,
    },
    Delete {
        service: u8,
    },
    Fail {
        host: u8,
    },
    Heartbeat {
        host: u8,
    },
    Drain {
        host: u8,
    },
    Undrain {
        host: u8,
    },
    Maintenance {
        host: u8,
    },
    Healthy {
        pick: u8,
    },
    ReplacementHealthy {
        pick: u8,
    },
    Stopped {
        pick: u8,
    },
    AddHost {
        data_center: u8,
    },
    Migrate {
        service: u8,
        to_host: Option<u8>,
    },
    ShrinkQuota {
        memory_gib: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4u8, 0..4u8, 0..4u32, 0..3u8).prop_map(|(service, shape, groups, size)| Op::Create { service, shape, groups, size }),
        2 => (0..4u8, 0..5u32).prop_map(|(service, groups)| Op::Scale { service, groups }),
        2 => (0..4u8, 0..3u8).prop_map(|(service, size)| Op::Resize { service, size }),
        1 => (0..4u8).prop_map(|service| Op::Delete { service }),
        2 => (0..12u8).prop_map(|host| Op::Fail { host }),
        2 => (0..12u8).prop_map(|host| Op::Heartbeat { host }),
        2 => (0..12u8).prop_map(|host| Op::Drain { host }),
        1 => (0..12u8).prop_map(|host| Op::Undrain { host }),
        1 => (0..12u8).prop_map(|host| Op::Maintenance { host }),
        2 => any::<u8>().prop_map(|pick| Op::Healthy { pick }),
        4 => any::<u8>().prop_map(|pick| Op::ReplacementHealthy { pick }),
        4 => any::<u8>().prop_map(|pick| Op::Stopped { pick }),
        1 => (0..3u8).prop_map(|data_center| Op::AddHost { data_center }),
        1 => (0..4u8, proptest::option::of(0..12u8)).prop_map(|(service, to_host)| Op::Migrate { service, to_host }),
        1 => (4..40u8).prop_map(|memory_gib| Op::ShrinkQuota { memory_gib }),
    ]
}

const SHAPES: [&[&str]; 4] = [&["t1", "t2"], &["t2", "t3"], &["t1"], &["t1", "t2", "t3"]];
const SIZES: [(u64, u64); 3] = [(250, GIB / 2), (1000, 2 * GIB), (3000, 5 * GIB)];

/// Three data centers of three hosts (4 CPUs, 8 GiB each), small address ranges (a /28 in dc3)
/// so that hosts and addresses both run out.
fn start() -> Fleet {
    let mut fleet = Fleet::new();
    fleet.create_zone(zone("prod")).unwrap();
    for d in 1..=3 {
        let name = format!("dc{d}");
        fleet.create_data_center(dc(&name), &zone("prod")).unwrap();
        let cidr = if d == 3 {
            "10.3.0.0/28".to_owned()
        } else {
            format!("10.{d}.0.0/24")
        };
        fleet.add_range(range(&cidr, &name)).unwrap();
        let mut t = base_template();
        t.name = template(&format!("t{d}"));
        t.data_center = Some(dc(&name));
        fleet.upsert_template(t).unwrap();
        for h in 0..3 {
            fleet
                .register_host(
                    host_spec(
                        &format!("h{}", (d - 1) * 3 + h),
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

fn host_name(fleet: &Fleet, index: u8) -> Option<HostName> {
    let hosts: Vec<&Host> = fleet.hosts().collect();
    hosts
        .get(index as usize % hosts.len().max(1))
        .map(|h| h.name.clone())
}

fn run(ops: &[Op]) -> Result<Fleet, TestCaseError> {
    let mut fleet = start();
    let mut added = 0;
    for (step, op) in ops.iter().enumerate() {
        let now_ms = step as u64 * 1_000;
        let before = fleet.snapshot();
        let result: Result<Outcome, FleetError> = match op.clone() {
            Op::Create {
                service: s,
                shape,
                groups,
                size,
            } => {
                let mut request = spec(&format!("s{s}"), groups, SHAPES[shape as usize]);
                request.resources.cpu_millis = Some(SIZES[size as usize].0);
                request.resources.memory_bytes = Some(SIZES[size as usize].1);
                fleet.create_service(request)
            }
            Op::Scale { service: s, groups } => match fleet.service(&service(&format!("s{s}"))) {
                Some(existing) => {
                    let mut request = existing.spec();
                    request.groups = groups;
                    fleet.update_service(request)
                }
                None => continue,
            },
            Op::Resize { service: s, size } => match fleet.service(&service(&format!("s{s}"))) {
                Some(existing) => {
                    let mut request = existing.spec();
                    request.resources.cpu_millis = Some(SIZES[size as usize].0);
                    request.resources.memory_bytes = Some(SIZES[size as usize].1);
                    fleet.update_service(request)
                }
                None => continue,
            },
            Op::Delete { service: s } => fleet.delete_service(&service(&format!("s{s}"))),
            Op::Fail { host } => match host_name(&fleet, host) {
                Some(h) => fleet.set_host_state(&h, HostState::Down),
                None => continue,
            },
            Op::Heartbeat { host } => match host_name(&fleet, host) {
                Some(h) => fleet.heartbeat(&h, now_ms),
                None => continue,
            },
            Op::Drain { host } => match host_name(&fleet, host) {
                Some(h) => fleet.drain_host(&h),
                None => continue,
            },
            Op::Undrain { host } => match host_name(&fleet, host) {
                Some(h) => fleet.set_host_state(&h, HostState::Up),
                None => continue,
            },
            Op::Maintenance { host } => match host_name(&fleet, host) {
                Some(h) => fleet.set_host_state(&h, HostState::Maintenance),
                None => continue,
            },
            Op::Healthy { pick } => {
                let placed: Vec<InstanceId> = fleet
                    .instances()
                    .filter(|i| i.state == InstanceState::Placed)
                    .map(|i| i.id)
                    .collect();
                if placed.is_empty() {
                    continue;
                }
                fleet.instance_healthy(placed[pick as usize % placed.len()])
            }
            Op::ReplacementHealthy { pick } => {
                let waiting: Vec<InstanceId> = fleet
                    .moves()
                    .filter(|m| m.state == MoveState::AwaitingHealthy)
                    .filter_map(|m| m.replacement)
                    .collect();
                if waiting.is_empty() {
                    continue;
                }
                fleet.instance_healthy(waiting[pick as usize % waiting.len()])
            }
            Op::Stopped { pick } => {
                let stopping: Vec<InstanceId> = fleet
                    .instances()
                    .filter(|i| i.state == InstanceState::Stopping)
                    .map(|i| i.id)
                    .collect();
                if stopping.is_empty() {
                    continue;
                }
                fleet.instance_stopped(stopping[pick as usize % stopping.len()])
            }
            Op::AddHost { data_center } => {
                added += 1;
                let name = format!("dc{}", data_center + 1);
                fleet.register_host(
                    host_spec(&format!("x{added}"), &name, res(4000, 8 * GIB, 100 * GIB)),
                    now_ms,
                )
            }
            Op::Migrate {
                service: s,
                to_host,
            } => {
                let target = to_host.and_then(|h| host_name(&fleet, h));
                fleet
                    .migrate(&service(&format!("s{s}")), target.as_ref())
                    .map(|(_, outcome)| outcome)
            }
            Op::ShrinkQuota { memory_gib } => fleet.set_tenant_quota(
                tenant("acme"),
                Some(res(1_000_000, u64::from(memory_gib) * GIB, 10_000 * GIB)),
            ),
        };
        if let Err(error) = &result {
            prop_assert_eq!(
                &fleet.snapshot(),
                &before,
                "refused {:?} ({}) changed the fleet",
                op,
                error
            );
        }
        let violations = fleet.verify_invariants();
        prop_assert!(violations.is_empty(), "after {:?}: {:#?}", op, violations);
        for h in fleet.hosts() {
            let allocated = fleet.host_allocated(&h.name).unwrap_or_default();
            prop_assert!(
                allocated.fits_in(&h.capacity),
                "host {} over capacity after {:?}",
                h.name,
                op
            );
        }
        for lease in fleet.leases() {
            let holder = fleet.instance(lease.instance);
            prop_assert!(
                holder.is_some_and(|i| i.ip == Some(lease.ip)),
                "lease {} without its instance",
                lease.ip
            );
        }
        for instance in fleet.instances() {
            let pending = matches!(instance.state, InstanceState::Pending { .. });
            prop_assert_eq!(fleet.instance_lease(instance.id).is_some(), !pending);
        }
    }
    Ok(fleet)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_any_sequence(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }

    #[test]
    fn same_sequence_same_fleet(ops in proptest::collection::vec(op(), 1..30)) {
        let a = run(&ops)?;
        let b = run(&ops)?;
        prop_assert_eq!(a.snapshot(), b.snapshot());
        let restored = Fleet::restore(a.snapshot()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(restored.verify_invariants().is_empty());
    }
}
