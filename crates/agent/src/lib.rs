//! The Caravan agent: one per host. It registers its host, heartbeats, fetches what its host
//! must run, reconciles that with the processes it runs, health-checks them and reports to the
//! server. Also the built-in sample service (`caravan sample-app`) used by demos and tests.
//!
//! - [`reconcile`], [`health`] and [`warmup`] are pure: state in, decision out, no I/O and no
//!   clock.
//! - [`driver`] runs instances as process groups (and adopts those a previous agent left);
//!   [`procfs`] reads processes in `/proc`; [`probe`] runs one health probe.
//! - [`agent`] is the loop that ties them to the server; [`machine`] reads the host's capacity.
//! - [`sample_app`] is the sample HTTP service.

pub mod agent;
pub mod driver;
pub mod error;
pub mod health;
pub mod limits;
pub mod machine;
pub mod probe;
pub mod procfs;
pub mod reconcile;
pub mod sample_app;
pub mod ship;
pub mod warmup;

pub use agent::{AgentConfig, PortRange, run};
pub use error::AgentError;
pub use sample_app::SampleAppConfig;
