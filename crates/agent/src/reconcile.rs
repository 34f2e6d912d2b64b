//! The reconcile core, pure: what the host must run (from the server) and what it runs (the
//! agent's records of its processes) in, the actions that close the gap out.
//!
//! - A desired `run` instance with no process is started; one whose process crashed is
//!   restarted after an exponential backoff ([`restart_delay_ms`]), reset once a process has
//!   run for [`STABLE_RUN_MS`].
//! - A desired `stop` instance is stopped, then reported stopped (once nothing runs).
//! - An instance the server no longer lists is stopped and forgotten, without a report (the
//!   server already removed it: scaled down, or its host went down and came back empty).
//!
//! Time is a parameter (`now_ms`, any monotonic origin); the same inputs give the same plan.

use std::collections::BTreeMap;

use caravan_fleet::{DesiredAction, InstanceId};

/// First restart delay after a crash.
pub const RESTART_BACKOFF_MS_BASE: u64 = 500;
/// Longest restart delay.
pub const RESTART_BACKOFF_MS_MAX: u64 = 30_000;
/// A process that ran at least this long before exiting starts its backoff over.
pub const STABLE_RUN_MS: u64 = 10_000;

/// What the agent knows of one instance it ran or runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actual {
    /// A process runs (it may not be healthy yet).
    Running {
        /// When it started.
        started_ms: u64,
        /// Consecutive failures before this start (0 on a first start).
        failures: u32,
    },
    /// The agent asked it to stop and waits for it to exit.
    Stopping,
    /// Its process exited without being asked to, or could not start.
    Exited {
        /// When.
        at_ms: u64,
        /// Consecutive failures, this one included (at least 1).
        failures: u32,
    },
}

/// One step towards what the server wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Start a process for the instance (first start or restart).
    Start(InstanceId),
    /// Stop the instance's process (SIGTERM, then SIGKILL after the grace period).
    Stop(InstanceId),
    /// Tell the server a `stop` instance no longer runs, then forget it.
    ReportStopped(InstanceId),
    /// Drop the record of an exited instance the server no longer lists.
    Forget(InstanceId),
}

/// The actions to take now, and when to look again if nothing else happens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Actions, in instance order.
    pub actions: Vec<Action>,
    /// The earliest time a waiting restart becomes due, if any.
    pub wake_at_ms: Option<u64>,
}

/// How long to wait before restarting after `failures` consecutive failures: 0 for none, then
/// [`RESTART_BACKOFF_MS_BASE`] doubling up to [`RESTART_BACKOFF_MS_MAX`].
pub fn restart_delay_ms(failures: u32) -> u64 {
    if failures == 0 {
        return 0;
    }
    let doublings = (failures - 1).min(16);
    RESTART_BACKOFF_MS_BASE
        .saturating_mul(1 << doublings)
        .min(RESTART_BACKOFF_MS_MAX)
}

/// The consecutive failures after a process that started at `started_ms` with `failures`
/// behind it exits at `exited_ms`: a long enough run resets the count.
pub fn failures_after_exit(failures: u32, started_ms: u64, exited_ms: u64) -> u32 {
    if exited_ms.saturating_sub(started_ms) >= STABLE_RUN_MS {
        1
    } else {
        failures.saturating_add(1)
    }
}

/// Compares what the server wants (`desired`: instance -> run or stop) with what the agent runs.
pub fn reconcile(
    desired: &BTreeMap<InstanceId, DesiredAction>,
    actual: &BTreeMap<InstanceId, Actual>,
    now_ms: u64,
) -> Plan {
    let mut plan = Plan::default();
    for (&id, &want) in desired {
        match (want, actual.get(&id)) {
            (DesiredAction::Run, None) => plan.actions.push(Action::Start(id)),
            (DesiredAction::Run, Some(Actual::Exited { at_ms, failures })) => {
                let due_ms = at_ms.saturating_add(restart_delay_ms(*failures));
                if now_ms >= due_ms {
                    plan.actions.push(Action::Start(id));
                } else {
                    plan.wake_at_ms = Some(plan.wake_at_ms.map_or(due_ms, |w| w.min(due_ms)));
                }
            }
            (DesiredAction::Run, Some(Actual::Running { .. } | Actual::Stopping)) => {}
            (DesiredAction::Stop, Some(Actual::Running { .. })) => {
                plan.actions.push(Action::Stop(id));
            }
            (DesiredAction::Stop, Some(Actual::Stopping)) => {}
            (DesiredAction::Stop, None | Some(Actual::Exited { .. })) => {
                plan.actions.push(Action::ReportStopped(id));
            }
        }
    }
    for (&id, state) in actual {
        if desired.contains_key(&id) {
            continue;
        }
        match state {
            Actual::Running { .. } => plan.actions.push(Action::Stop(id)),
            Actual::Stopping => {}
            Actual::Exited { .. } => plan.actions.push(Action::Forget(id)),
        }
    }
    plan.actions.sort();
    plan
}

/// The lowest port of `first..=last` that is neither in `used` nor in `unavailable`.
pub fn allocate_port(
    first: u16,
    last: u16,
    used: &std::collections::BTreeSet<u16>,
    unavailable: &std::collections::BTreeSet<u16>,
) -> Option<u16> {
    (first..=last).find(|port| !used.contains(port) && !unavailable.contains(port))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn id(n: u64) -> InstanceId {
        InstanceId(n)
    }

    fn desired(entries: &[(u64, DesiredAction)]) -> BTreeMap<InstanceId, DesiredAction> {
        entries.iter().map(|&(n, a)| (id(n), a)).collect()
    }

    fn actual(entries: &[(u64, Actual)]) -> BTreeMap<InstanceId, Actual> {
        entries.iter().map(|&(n, a)| (id(n), a)).collect()
    }

    const RUNNING: Actual = Actual::Running {
        started_ms: 0,
        failures: 0,
    };

    #[test]
    fn missing_instances_start_and_removed_ones_stop() {
        let plan = reconcile(
            &desired(&[(1, DesiredAction::Run), (2, DesiredAction::Run)]),
            &actual(&[(2, RUNNING), (3, RUNNING), (4, Actual::Stopping)]),
            1_000,
        );
        assert_eq!(plan.actions, [Action::Start(id(1)), Action::Stop(id(3))]);
        assert_eq!(plan.wake_at_ms, None);
    }

    #[test]
    fn stop_instances_are_stopped_then_reported() {
        let want = desired(&[(1, DesiredAction::Stop)]);
        assert_eq!(
            reconcile(&want, &actual(&[(1, RUNNING)]), 0).actions,
            [Action::Stop(id(1))]
        );
        assert_eq!(
            reconcile(&want, &actual(&[(1, Actual::Stopping)]), 0).actions,
            []
        );
        assert_eq!(
            reconcile(&want, &actual(&[]), 0).actions,
            [Action::ReportStopped(id(1))]
        );
        let exited = Actual::Exited {
            at_ms: 0,
            failures: 1,
        };
        assert_eq!(
            reconcile(&want, &actual(&[(1, exited)]), 0).actions,
            [Action::ReportStopped(id(1))]
        );
    }

    #[test]
    fn crashed_instances_restart_after_a_growing_delay() {
        let want = desired(&[(1, DesiredAction::Run)]);
        let crashed = |failures| {
            actual(&[(
                1,
                Actual::Exited {
                    at_ms: 10_000,
                    failures,
                },
            )])
        };
        let waiting = reconcile(&want, &crashed(1), 10_499);
        assert_eq!(waiting.actions, []);
        assert_eq!(waiting.wake_at_ms, Some(10_500));
        assert_eq!(
            reconcile(&want, &crashed(1), 10_500).actions,
            [Action::Start(id(1))]
        );
        assert_eq!(
            reconcile(&want, &crashed(3), 11_999).wake_at_ms,
            Some(12_000)
        );
        assert_eq!(
            reconcile(&desired(&[]), &crashed(3), 0).actions,
            [Action::Forget(id(1))]
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_bound_and_resets_after_a_stable_run() {
        let delays: Vec<u64> = (0..=8).map(restart_delay_ms).collect();
        assert_eq!(
            delays,
            [0, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        assert_eq!(restart_delay_ms(u32::MAX), RESTART_BACKOFF_MS_MAX);
        assert_eq!(failures_after_exit(4, 0, STABLE_RUN_MS - 1), 5);
        assert_eq!(failures_after_exit(4, 0, STABLE_RUN_MS), 1);
        assert_eq!(failures_after_exit(0, 5, 6), 1);
    }

    #[test]
    fn ports_are_the_lowest_free_in_the_range() {
        let used: BTreeSet<u16> = [20_000, 20_002].into();
        let unavailable: BTreeSet<u16> = [20_001].into();
        assert_eq!(
            allocate_port(20_000, 20_004, &used, &unavailable),
            Some(20_003)
        );
        assert_eq!(allocate_port(20_000, 20_002, &used, &unavailable), None);
    }

    fn any_actual() -> impl Strategy<Value = Actual> {
        prop_oneof![
            (0..100_000u64, 0..5u32).prop_map(|(started_ms, failures)| Actual::Running {
                started_ms,
                failures
            }),
            Just(Actual::Stopping),
            (0..100_000u64, 1..10u32)
                .prop_map(|(at_ms, failures)| Actual::Exited { at_ms, failures }),
        ]
    }

    proptest! {
        /// Applying a plan (with instant processes) converges: a second round asks nothing
        /// but waiting restarts, nothing runs that is not wanted, and every wanted instance
        /// runs or waits for its backoff.
        #[test]
        fn plans_converge(
            want in prop::collection::btree_map(0..20u64, prop_oneof![Just(DesiredAction::Run), Just(DesiredAction::Stop)], 0..12),
            have in prop::collection::btree_map(0..20u64, any_actual(), 0..12),
            now_ms in 0..200_000u64,
        ) {
            let want: BTreeMap<InstanceId, DesiredAction> = want.into_iter().map(|(n, a)| (id(n), a)).collect();
            let mut have: BTreeMap<InstanceId, Actual> = have.into_iter().map(|(n, a)| (id(n), a)).collect();
            let plan = reconcile(&want, &have, now_ms);
            prop_assert_eq!(&plan, &reconcile(&want, &have, now_ms), "deterministic");
            for action in &plan.actions {
                match *action {
                    Action::Start(i) => {
                        prop_assert_eq!(want.get(&i), Some(&DesiredAction::Run));
                        have.insert(i, Actual::Running { started_ms: now_ms, failures: 0 });
                    }
                    Action::Stop(i) | Action::ReportStopped(i) | Action::Forget(i) => {
                        prop_assert!(want.get(&i) != Some(&DesiredAction::Run));
                        have.remove(&i);
                    }
                }
            }
            let again = reconcile(&want, &have, now_ms);
            prop_assert!(again.actions.iter().all(|a| matches!(a, Action::ReportStopped(_))), "{:?}", again);
            for (i, state) in &have {
                if matches!(state, Actual::Running { .. }) {
                    prop_assert_eq!(want.get(i), Some(&DesiredAction::Run));
                }
            }
        }
    }
}
