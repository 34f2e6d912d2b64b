//! Bringing HAProxy's servers to the desired state: reading what the Runtime API says they are
//! (`show servers state`) and the commands that change the difference. Pure, no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use caravan_fleet::{InstanceId, RegisteredService};

use crate::model::{Assignment, Desired, ServerState, proxy_name, slot_name};

/// A server as HAProxy has it, from one line of `show servers state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActualServer {
    /// Its backend.
    pub backend: String,
    /// Its name.
    pub name: String,
    /// Its address (`None` if HAProxy has none, or one that is not an IP).
    pub addr: Option<IpAddr>,
    /// Its port.
    pub port: u16,
    /// Its user weight.
    pub weight: u32,
    /// Ready, draining or in maintenance, from its administrative state.
    pub state: ServerState,
}

/// `show servers state` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unexpected `show servers state` output, line {line}: {reason}")]
pub struct ParseError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

// Administrative state bits (HAProxy's `enum srv_admin`): forced, inherited, resolution and
// health maintenance; forced and inherited drain. Configured maintenance (0x04, the `disabled`
// keyword) does not hold traffic back once `state ready` cleared the forced bit.
const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x20 | 0x40;
const ADMIN_DRAIN: u32 = 0x08 | 0x10;

/// Reads the output of `show servers state` (format version 1).
pub fn parse_servers_state(output: &str) -> Result<Vec<ActualServer>, ParseError> {
    let mut servers = Vec::new();
    let mut columns: Option<Vec<&str>> = None;
    for (index, line) in output.lines().enumerate() {
        let line = line.trim();
        let error = |reason: String| ParseError {
            line: index + 1,
            reason,
        };
        if line.is_empty() {
            continue;
        }
        if index == 0 {
            if line != "1" {
                return Err(error(format!("format version {line:?}, expected \"1\"")));
            }
            continue;
        }
        if let Some(header) = line.strip_prefix('#') {
            columns = Some(header.split_whitespace().collect());
            continue;
        }
        let columns = columns
            .as_ref()
            .ok_or_else(|| error("a server before the column names".into()))?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |name: &str| -> Result<&str, ParseError> {
            columns
                .iter()
                .position(|column| *column == name)
                .and_then(|at| fields.get(at).copied())
                .ok_or_else(|| error(format!("no {name}")))
        };
        let number = |name: &str| -> Result<u32, ParseError> {
            field(name)?
                .parse()
                .map_err(|_| error(format!("{name} is not a number")))
        };
        let admin = number("srv_admin_state")?;
        let state = if admin & ADMIN_MAINT != 0 {
            ServerState::Maint
        } else if admin & ADMIN_DRAIN != 0 {
            ServerState::Drain
        } else {
            ServerState::Ready
        };
        servers.push(ActualServer {
            backend: field("be_name")?.to_owned(),
            name: field("srv_name")?.to_owned(),
            addr: field("srv_addr")?.parse().ok(),
            port: u16::try_from(number("srv_port")?)
                .map_err(|_| error("srv_port is out of range".into()))?,
            weight: number("srv_uweight")?,
            state,
        });
    }
    Ok(servers)
}

/// What [`commands`] found to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Commands {
    /// The Runtime API commands, in order.
    pub commands: Vec<String>,
    /// Servers of the layout that HAProxy lacks (`backend/server`): its configuration is older
    /// than the layout, and only a reload can add them.
    pub missing: Vec<String>,
}

/// The Runtime API commands that bring `actual` to `desired`, in order: for each slot, its
/// address before its weight before its state, so that a server never takes traffic at an old
/// address. Servers HAProxy has beyond the layout are left alone; those it lacks are listed.
pub fn commands(desired: &Desired, actual: &[ActualServer]) -> Commands {
    let actual: BTreeMap<(&str, &str), &ActualServer> = actual
        .iter()
        .map(|server| ((server.backend.as_str(), server.name.as_str()), server))
        .collect();
    let mut out = Commands::default();
    for (backend, slots) in &desired.slots {
        for (slot, wanted) in slots.iter().enumerate() {
            let name = slot_name(slot);
            let server = format!("{backend}/{name}");
            let Some(has) = actual.get(&(backend.as_str(), name.as_str())) else {
                out.missing.push(server);
                continue;
            };
            let state = match wanted {
                None => ServerState::Maint,
                Some(wanted) => {
                    if has.addr != Some(wanted.addr) || has.port != wanted.port {
                        out.commands.push(format!(
                            "set server {server} addr {} port {}",
                            wanted.addr, wanted.port
                        ));
                    }
                    if has.weight != wanted.weight {
                        out.commands
                            .push(format!("set server {server} weight {}", wanted.weight));
                    }
                    wanted.state
                }
            };
            if has.state != state {
                out.commands
                    .push(format!("set server {server} state {}", state.as_str()));
            }
        }
    }
    out
}

/// Which registry endpoint each slot HAProxy has holds, by address and port: how a driver
/// that starts beside a running HAProxy (attached, or after its own restart) keeps the slots
/// where they are. Slots in maintenance count as free.
pub fn assignment_of(actual: &[ActualServer], services: &[RegisteredService]) -> Assignment {
    let mut by_address: BTreeMap<(&str, IpAddr, u16), InstanceId> = BTreeMap::new();
    let names: Vec<(String, &RegisteredService)> = services
        .iter()
        .map(|service| (proxy_name(&service.name), service))
        .collect();
    for (backend, service) in &names {
        for endpoint in &service.endpoints {
            if let Some(port) = endpoint.port {
                by_address.insert((backend.as_str(), endpoint.ip, port), endpoint.instance);
            }
        }
    }
    let mut slots: BTreeMap<String, Vec<Option<InstanceId>>> = BTreeMap::new();
    for server in actual {
        let Some(slot) = server
            .name
            .strip_prefix('s')
            .and_then(|slot| slot.parse::<usize>().ok())
        else {
            continue;
        };
        let held = slots.entry(server.backend.clone()).or_default();
        if held.len() <= slot {
            held.resize(slot + 1, None);
        }
        if server.state != ServerState::Maint {
            held[slot] = server
                .addr
                .and_then(|addr| by_address.get(&(server.backend.as_str(), addr, server.port)))
                .copied();
        }
    }
    Assignment::from(slots)
}

#[cfg(test)]
mod tests {
    use caravan_fleet::{DcName, Endpoint, HostName, ServiceName, TenantName};

    use super::*;
    use crate::model::plan;

    const STATE: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 svc_web 1 s0 10.0.0.1 2 4 100 100 1 1 0 0 8 0 0 0 - 20000 - 0 0 - - 0
3 svc_web 2 s1 0.0.0.0 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
3 svc_web 3 s2 10.0.0.3 2 8 50 50 1 1 0 0 8 0 0 0 - 20002 - 0 0 - - 0

";

    fn endpoint(id: u64, port: u16, weight: u32, healthy: bool, draining: bool) -> Endpoint {
        Endpoint {
            instance: InstanceId(id),
            host: HostName::new("dc1-h1").unwrap(),
            data_center: DcName::new("dc1").unwrap(),
            ip: IpAddr::from([10, 0, 0, id as u8]),
            port: Some(port),
            weight,
            healthy,
            draining,
        }
    }

    fn web(endpoints: Vec<Endpoint>) -> Vec<RegisteredService> {
        vec![RegisteredService {
            name: ServiceName::new("web").unwrap(),
            tenant: TenantName::new("shop").unwrap(),
            frontend_port: Some(8080),
            endpoints,
        }]
    }

    #[test]
    fn reads_servers_state() {
        let servers = parse_servers_state(STATE).unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(
            servers[0],
            ActualServer {
                backend: "svc_web".into(),
                name: "s0".into(),
                addr: Some(IpAddr::from([10, 0, 0, 1])),
                port: 20000,
                weight: 100,
                state: ServerState::Ready,
            }
        );
        let states: Vec<ServerState> = servers.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [ServerState::Ready, ServerState::Maint, ServerState::Drain],
            "configured maintenance alone is ready once forced maintenance is cleared"
        );
        let error = parse_servers_state("2\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unexpected `show servers state` output, line 1: format version \"2\", expected \"1\""
        );
        assert!(parse_servers_state("1\n3 svc_web 1 s0\n").is_err());
    }

    #[test]
    fn commands_change_only_what_differs_address_first() {
        let actual = parse_servers_state(STATE).unwrap();
        let services = web(vec![
            endpoint(1, 20000, 100, true, false),
            endpoint(2, 20001, 25, true, false),
            endpoint(3, 20002, 50, true, true),
        ]);
        let assignment = assignment_of(&actual, &services);
        let desired = plan(&services, &assignment, 3);
        let found = commands(&desired, &actual);
        assert_eq!(
            found.commands,
            [
                "set server svc_web/s1 addr 10.0.0.2 port 20001",
                "set server svc_web/s1 weight 25",
                "set server svc_web/s1 state ready",
            ]
        );
        assert!(found.missing.is_empty());
    }

    #[test]
    fn emptied_slots_go_to_maintenance_and_missing_slots_are_listed() {
        let actual = parse_servers_state(STATE).unwrap();
        let desired = plan(&web(vec![]), &Default::default(), 4);
        let found = commands(&desired, &actual);
        assert_eq!(
            found.commands,
            [
                "set server svc_web/s0 state maint",
                "set server svc_web/s2 state maint"
            ]
        );
        assert_eq!(found.missing, ["svc_web/s3"]);
    }

    #[test]
    fn the_assignment_of_a_running_haproxy_is_read_back_by_address() {
        let actual = parse_servers_state(STATE).unwrap();
        let services = web(vec![
            endpoint(3, 20002, 50, true, true),
            endpoint(1, 20000, 100, true, false),
        ]);
        let desired = plan(&services, &assignment_of(&actual, &services), 3);
        let instances: Vec<Option<u64>> = desired.slots["svc_web"]
            .iter()
            .map(|slot| slot.as_ref().map(|s| s.instance.0))
            .collect();
        assert_eq!(instances, [Some(1), None, Some(3)]);
        assert!(commands(&desired, &actual).commands.is_empty());
    }
}
