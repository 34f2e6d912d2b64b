//! The server's configuration: defaults, overridden by an optional TOML file, overridden by the
//! environment and flags (which the binary parses into [`ServerOverrides`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The effective configuration of `caravan server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:9200`, the port log shippers expect.
    pub listen: SocketAddr,
    /// Where the server keeps its state. Default `./caravan-data`.
    pub data_dir: PathBuf,
    /// Largest JSON body the native API accepts, in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after a shutdown signal, in seconds. Default 30.
    pub shutdown_grace_seconds: u64,
}

/// Default data directory.
pub const DATA_DIR_DEFAULT: &str = "./caravan-data";

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9200)),
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            max_body_bytes: 1024 * 1024,
            shutdown_grace_seconds: 30,
        }
    }
}

/// Values given by flags or environment variables; each one set wins over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOverrides {
    /// `--listen` / `CARAVAN_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir` / `CARAVAN_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: String, message: String },
    /// A value is out of its bounds.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ServerConfig {
    /// Loads the file (if any), then applies the overrides, then validates.
    pub fn load(file: Option<&Path>, overrides: ServerOverrides) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|message| ConfigError::Parse {
                    path: path.display().to_string(),
                    message,
                })?
            }
            None => Self::default(),
        };
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(data_dir) = overrides.data_dir {
            config.data_dir = data_dir;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document; the message names the offending key and line.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The configuration as a TOML document, as `--print-config` shows it.
    pub fn to_toml(&self) -> String {
        // Serialising plain scalars, a socket address and a path cannot fail, except for a path
        // that is not UTF-8, which is shown lossily instead.
        toml::to_string(self).unwrap_or_else(|_| {
            format!(
                "listen = \"{}\"\ndata_dir = \"{}\"\nmax_body_bytes = {}\nshutdown_grace_seconds = {}\n",
                self.listen,
                self.data_dir.display(),
                self.max_body_bytes,
                self.shutdown_grace_seconds
            )
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(format!(
                "max_body_bytes must be at least 1024, got {}",
                self.max_body_bytes
            )));
        }
        if self.shutdown_grace_seconds > 3600 {
            return Err(ConfigError::Invalid(format!(
                "shutdown_grace_seconds must be at most 3600, got {}",
                self.shutdown_grace_seconds
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("caravan.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9300\"\ndata_dir = \"/srv/caravan\"\n",
        )
        .unwrap();
        let from_file = ServerConfig::load(Some(&file), ServerOverrides::default()).unwrap();
        assert_eq!(from_file.listen.port(), 9300);
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/caravan"));
        assert_eq!(
            from_file.max_body_bytes,
            ServerConfig::default().max_body_bytes
        );
        let overrides = ServerOverrides {
            data_dir: Some(PathBuf::from("/tmp/x")),
            ..ServerOverrides::default()
        };
        let overridden = ServerConfig::load(Some(&file), overrides).unwrap();
        assert_eq!(overridden.listen.port(), 9300);
        assert_eq!(overridden.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = ServerConfig::from_toml("listen_address = \"x\"").unwrap_err();
        assert!(err.contains("unknown field `listen_address`"), "{err}");
    }

    #[test]
    fn printed_config_reads_back() {
        let config = ServerConfig::default();
        assert_eq!(ServerConfig::from_toml(&config.to_toml()).unwrap(), config);
    }
}
