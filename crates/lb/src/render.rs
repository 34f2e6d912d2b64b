//! HAProxy's configuration, rendered with minijinja from a template (Caravan's default, or one
//! the operator gives) and the desired state. Pure: callers read the template and write the
//! result.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Serialize;

use crate::model::{Desired, slot_name};

/// Caravan's default template.
pub const DEFAULT_TEMPLATE: &str = include_str!("../templates/haproxy.cfg.j2");

/// The template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
#[error("HAProxy configuration template: {0:#}")]
pub struct RenderError(#[from] minijinja::Error);

/// Where the configuration points HAProxy at, besides the backends.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// The Runtime API socket (admin level; Caravan's commands go there).
    pub runtime_socket: String,
    /// The file HAProxy reloads its servers' state from.
    pub state_file: String,
    /// A Unix socket answering `GET /healthz` (HAProxy needs one listener to run at all).
    pub monitor_socket: String,
    /// The address frontends listen on.
    pub bind_address: IpAddr,
    /// Where HAProxy's own Prometheus exporter listens, if anywhere.
    pub prometheus_listen: Option<SocketAddr>,
}

impl Settings {
    /// Settings for files under `dir`, frontends on `bind_address`.
    pub fn in_dir(dir: &Path, bind_address: IpAddr) -> Self {
        Self {
            runtime_socket: dir.join("runtime.sock").display().to_string(),
            state_file: dir.join("server-state").display().to_string(),
            monitor_socket: dir.join("monitor.sock").display().to_string(),
            bind_address,
            prometheus_listen: None,
        }
    }
}

#[derive(Serialize)]
struct Context<'a> {
    #[serde(flatten)]
    settings: &'a Settings,
    backends: Vec<BackendContext>,
}

#[derive(Serialize)]
struct BackendContext {
    name: String,
    service: String,
    frontend_port: u16,
    servers: Vec<ServerContext>,
}

#[derive(Serialize)]
struct ServerContext {
    name: String,
    /// `ip:port`, with brackets around an IPv6 address.
    address: String,
    weight: u32,
    /// In maintenance (an unhealthy endpoint or a free slot): rendered `disabled`.
    maint: bool,
    /// The instance in the slot, if any.
    instance: Option<String>,
}

/// A compiled configuration template.
pub struct Renderer {
    env: minijinja::Environment<'static>,
}

impl Renderer {
    /// Compiles a template (its syntax is checked here).
    pub fn new(source: String) -> Result<Self, RenderError> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.add_template_owned("haproxy.cfg", source)?;
        Ok(Self { env })
    }

    /// The configuration holding `desired`: every slot with its server's current address,
    /// weight and maintenance state, so that a reload starts from where things are (the Runtime
    /// API then brings drains over from the state file and the rest).
    pub fn render(&self, settings: &Settings, desired: &Desired) -> Result<String, RenderError> {
        let backends = desired
            .layout
            .backends
            .iter()
            .map(|backend| {
                let slots = desired.slots.get(&backend.name);
                let servers = (0..backend.slots)
                    .map(|slot| {
                        let server = slots
                            .and_then(|slots| slots.get(slot))
                            .and_then(Option::as_ref);
                        let address = match server {
                            Some(server) => SocketAddr::new(server.addr, server.port).to_string(),
                            // A free slot: a placeholder address it never receives traffic at.
                            None => "0.0.0.0:1".to_owned(),
                        };
                        ServerContext {
                            name: slot_name(slot),
                            address,
                            weight: server.map_or(1, |server| server.weight),
                            maint: server.is_none_or(|server| {
                                server.state == crate::model::ServerState::Maint
                            }),
                            instance: server.map(|server| server.instance.to_string()),
                        }
                    })
                    .collect();
                BackendContext {
                    name: backend.name.clone(),
                    service: backend.service.to_string(),
                    frontend_port: backend.frontend_port,
                    servers,
                }
            })
            .collect();
        let template = self.env.get_template("haproxy.cfg")?;
        Ok(template.render(Context { settings, backends })?)
    }
}

#[cfg(test)]
mod tests {
    use caravan_fleet::{
        DcName, Endpoint, HostName, InstanceId, RegisteredService, ServiceName, TenantName,
    };

    use super::*;
    use crate::model::{Assignment, plan};

    fn desired() -> Desired {
        let endpoint = |id: u64, healthy: bool, draining: bool| Endpoint {
            instance: InstanceId(id),
            host: HostName::new("dc1-h1").unwrap(),
            data_center: DcName::new("dc1").unwrap(),
            ip: IpAddr::from([127, 0, 0, id as u8]),
            port: Some(20_000 + id as u16),
            weight: 50,
            healthy,
            draining,
        };
        let services = [RegisteredService {
            name: ServiceName::new("web").unwrap(),
            tenant: TenantName::new("shop").unwrap(),
            frontend_port: Some(18080),
            endpoints: vec![
                endpoint(1, true, false),
                endpoint(2, true, true),
                endpoint(3, false, false),
            ],
        }];
        plan(&services, &Assignment::default(), 4)
    }

    fn settings() -> Settings {
        Settings {
            runtime_socket: "/run/caravan-lb/runtime.sock".into(),
            state_file: "/run/caravan-lb/server-state".into(),
            monitor_socket: "/run/caravan-lb/monitor.sock".into(),
            bind_address: IpAddr::from([127, 0, 0, 1]),
            prometheus_listen: Some("127.0.0.1:9101".parse().unwrap()),
        }
    }

    #[test]
    fn the_default_template_renders_every_slot() {
        let renderer = Renderer::new(DEFAULT_TEMPLATE.to_owned()).unwrap();
        insta::assert_snapshot!(renderer.render(&settings(), &desired()).unwrap());
    }

    #[test]
    fn template_errors_name_the_problem() {
        let error = Renderer::new("{% for %}".into()).err().unwrap();
        assert!(
            error
                .to_string()
                .starts_with("HAProxy configuration template: syntax error"),
            "{error}"
        );
        let renderer = Renderer::new("{{ nope.field }}".into()).unwrap();
        let error = renderer.render(&settings(), &desired()).unwrap_err();
        assert!(error.to_string().contains("undefined"), "{error}");
    }
}
