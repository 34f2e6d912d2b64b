//! Caravan's load-balancer driver: a local HAProxy whose pools follow the service registry.
//!
//! Pure parts: [`model`] (what HAProxy should hold: a frontend and a backend of server slots
//! per service with a frontend port), [`sync`] (HAProxy's actual servers and the Runtime API
//! commands that bring them to the desired state), [`render`] (the configuration, from a
//! minijinja template). I/O parts: [`runtime`] (the Runtime API and master CLI sockets),
//! [`haproxy`] (the process, `haproxy -c`, hitless reloads), [`driver`] (the loop), and the
//! metrics endpoint.

pub mod driver;
pub mod haproxy;
pub mod metrics;
pub mod model;
pub mod render;
pub mod runtime;
mod serve;
pub mod sync;

pub use driver::{LbConfig, run};

/// The driver failed.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// The Caravan server could not be reached or refused.
    #[error(transparent)]
    Client(#[from] caravan_client::ClientError),
    /// The configuration template is wrong.
    #[error(transparent)]
    Render(#[from] render::RenderError),
    /// HAProxy could not be driven.
    #[error(transparent)]
    Haproxy(#[from] haproxy::HaproxyError),
    /// A Runtime API command failed.
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    /// HAProxy's answer could not be read.
    #[error(transparent)]
    Parse(#[from] sync::ParseError),
    /// A metric could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A file or socket could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What failed.
        source: std::io::Error,
    },
}
