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
    /// Log ingestion and storage.
    pub logs: LogsConfig,
    /// The fleet: host loss detection.
    pub fleet: FleetConfig,
}

/// The `[fleet]` section: when a host counts as lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// A host whose last heartbeat is older than this goes `down` and its instances are
    /// rescheduled, in milliseconds. Default 5,000; 100 to 604,800,000 (a week, for trying the
    /// fleet without agents).
    pub heartbeat_timeout_ms: u64,
    /// How often hosts are checked for lost heartbeats, in milliseconds. Default 1,000; 10 to
    /// `heartbeat_timeout_ms`.
    pub down_check_interval_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout_ms: caravan_fleet::HEARTBEAT_TIMEOUT_MS_DEFAULT,
            down_check_interval_ms: 1_000,
        }
    }
}

/// The `[logs]` section: ingestion limits, routing to tenants, storage bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Largest `_bulk` body as received (compressed or not), in bytes. Default 100 MiB.
    pub bulk_body_bytes_max: usize,
    /// Largest `_bulk` body once decompressed, in bytes. Default 256 MiB.
    pub bulk_decompressed_bytes_max: usize,
    /// Largest document (one source line), in bytes. Default 1 MiB.
    pub document_bytes_max: usize,
    /// Deepest nesting of objects and arrays in a document. Default 20.
    pub depth_max: usize,
    /// Most keys in one document, at every level. Default 1,000.
    pub keys_max: usize,
    /// A regular expression with a `tenant` capture group mapping index names to tenants,
    /// instead of the default rule (the longest tenant name the index equals or starts with
    /// followed by `-`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_pattern: Option<String>,
    /// A document key (such as `kubernetes.namespace`) whose value names the tenant; it wins
    /// over the index name when present and naming a tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_field: Option<String>,
    /// Create a tenant named after the index prefix (up to the first `-`) when none matches.
    pub auto_create_tenants: bool,
    /// Most bytes of write-ahead log not yet indexed before ingestion answers 429. Default 1 GiB.
    pub wal_bytes_max: u64,
    /// Memory shared by all open index writers, in bytes. Default 1 GiB (below, writers get less
    /// than 32 MiB per indexing thread and index markedly slower).
    pub indexing_memory_bytes: usize,
    /// How often partitions past their tenant's retention are dropped, in seconds. Default 600.
    pub retention_interval_seconds: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            bulk_body_bytes_max: 100 * 1024 * 1024,
            bulk_decompressed_bytes_max: 256 * 1024 * 1024,
            document_bytes_max: 1024 * 1024,
            depth_max: 20,
            keys_max: 1_000,
            index_pattern: None,
            routing_field: None,
            auto_create_tenants: false,
            wal_bytes_max: 1024 * 1024 * 1024,
            indexing_memory_bytes: 1024 * 1024 * 1024,
            retention_interval_seconds: 600,
        }
    }
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
            logs: LogsConfig::default(),
            fleet: FleetConfig::default(),
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
        // that is not UTF-8, which is reported in place of the document.
        toml::to_string(self)
            .unwrap_or_else(|error| format!("# cannot show the configuration: {error}\n"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(format!(
                "max_body_bytes must be at least 1024, got {}",
                self.max_body_bytes
            )));
        }
        let logs = &self.logs;
        if let Some(pattern) = &logs.index_pattern {
            let regex = regex::Regex::new(pattern).map_err(|e| {
                ConfigError::Invalid(format!(
                    "logs.index_pattern is not a regular expression: {e}"
                ))
            })?;
            if !regex.capture_names().flatten().any(|name| name == "tenant") {
                return Err(ConfigError::Invalid(
                    "logs.index_pattern needs a capture group named tenant: (?P<tenant>...)"
                        .to_owned(),
                ));
            }
        }
        for (name, value, min) in [
            ("logs.document_bytes_max", logs.document_bytes_max, 1024),
            ("logs.bulk_body_bytes_max", logs.bulk_body_bytes_max, 1024),
            (
                "logs.bulk_decompressed_bytes_max",
                logs.bulk_decompressed_bytes_max,
                logs.bulk_body_bytes_max.min(1024),
            ),
            ("logs.depth_max", logs.depth_max, 1),
            ("logs.keys_max", logs.keys_max, 1),
            (
                "logs.indexing_memory_bytes",
                logs.indexing_memory_bytes,
                16 * 1024 * 1024,
            ),
        ] {
            if value < min {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be at least {min}, got {value}"
                )));
            }
        }
        let fleet = &self.fleet;
        if !(100..=7 * 24 * 3_600_000).contains(&fleet.heartbeat_timeout_ms) {
            return Err(ConfigError::Invalid(format!(
                "fleet.heartbeat_timeout_ms must be 100 to 604800000 (a week), got {}",
                fleet.heartbeat_timeout_ms
            )));
        }
        if !(10..=fleet.heartbeat_timeout_ms).contains(&fleet.down_check_interval_ms) {
            return Err(ConfigError::Invalid(format!(
                "fleet.down_check_interval_ms must be 10 to fleet.heartbeat_timeout_ms ({}), got {}",
                fleet.heartbeat_timeout_ms, fleet.down_check_interval_ms
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

    #[test]
    fn fleet_timings_are_bounded() {
        let mut config = ServerConfig::from_toml("[fleet]\nheartbeat_timeout_ms = 1500\n").unwrap();
        assert_eq!(config.fleet.heartbeat_timeout_ms, 1500);
        assert_eq!(config.fleet.down_check_interval_ms, 1000, "the default");
        assert!(config.validate().is_ok());
        config.fleet.down_check_interval_ms = 2000;
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("fleet.down_check_interval_ms must be 10 to"),
            "{error}"
        );
        config.fleet.heartbeat_timeout_ms = 50;
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("fleet.heartbeat_timeout_ms must be 100"),
            "{error}"
        );
    }
}
