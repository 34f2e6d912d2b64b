//! The agent's errors.

use std::path::PathBuf;

/// Why the agent or the sample service failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A process could not be started.
    #[error("cannot start instance {instance}: {reason}")]
    Spawn {
        /// The instance.
        instance: String,
        /// Why.
        reason: String,
    },
    /// A socket could not be bound or served.
    #[error("cannot serve on {address}: {source}")]
    Serve {
        /// The address.
        address: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The server refused a request or could not be reached.
    #[error(transparent)]
    Client(#[from] caravan_client::ClientError),
}

impl AgentError {
    /// An I/O error on `path` while doing `action`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
