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
