//! The fleet's command line: zones, data centers, hosts, ranges, leases, templates, services,
//! instances, capacity, quotas and events. Sizes are human-friendly here (`4GiB`, `2` CPUs or
//! `2000m`) and plain bytes and millicores in the API.

use std::net::IpAddr;
use std::path::PathBuf;

use caravan_fleet::{Cidr, DcName, HostName, ServiceName, TemplateName, TenantName, ZoneName};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Create a zone (an environment, such as production or staging).
    Create {
        /// Name: lowercase letters, digits, '-' and '_', starting with a letter.
        name: ZoneName,
    },
    /// List zones.
    List,
    /// Delete a zone; refused while data centers are in it.
    Delete {
        /// Zone name.
        name: ZoneName,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataCenterCommand {
    /// Create a data center in a zone.
    Create {
        /// Name, such as dc1.
        name: DcName,
        /// Its zone.
        #[arg(long)]
        zone: ZoneName,
    },
    /// List data centers.
    List,
    /// Delete a data center; refused while hosts, templates, ranges or services use it.
    Delete {
        /// Data center name.
        name: DcName,
    },
}

/// A host's capacity; every dimension is required at registration.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// CPU: cores (`16`, `0.5`) or millicores (`1500m`).
    #[arg(long, value_parser = parse_cpu_millis)]
    pub cpu: Option<u64>,
    /// Memory: bytes or a size such as `64GiB`, `512MiB`, `4G`.
    #[arg(long, value_parser = parse_bytes)]
    pub memory: Option<u64>,
    /// Disk: bytes or a size such as `1TiB`, `200GiB`.
    #[arg(long, value_parser = parse_bytes)]
    pub disk: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Register a host (its agent will do it in a later version); it counts as a heartbeat.
    Register {
        /// Host name, such as dc1-h1.
        name: HostName,
        /// Its data center.
        #[arg(long)]
        data_center: DcName,
        #[command(flatten)]
        capacity: CapacityArgs,
        /// A label `KEY=VALUE` (repeatable).
        #[arg(long = "label", value_parser = parse_key_value)]
        labels: Vec<(String, String)>,
        /// Initial state [default: up].
        #[arg(long, value_enum)]
        state: Option<HostStateArg>,
    },
    /// List hosts with what is allocated on them.
    List,
    /// Show a host and its instances.
    Show {
        /// Host name.
        name: HostName,
    },
    /// Change a host's capacity, labels or state.
    Update {
        /// Host name.
        name: HostName,
        #[command(flatten)]
        capacity: CapacityArgs,
        /// Replace the labels with these `KEY=VALUE` (repeatable).
        #[arg(long = "label", value_parser = parse_key_value, conflicts_with = "clear_labels")]
        labels: Vec<(String, String)>,
        /// Remove every label.
        #[arg(long)]
        clear_labels: bool,
        /// New state: `draining` starts a drain, `down` reschedules its instances, `up` cancels
        /// a drain, `maintenance` needs an empty host.
        #[arg(long, value_enum)]
        state: Option<HostStateArg>,
    },
    /// Delete a host that runs nothing.
    Delete {
        /// Host name.
        name: HostName,
    },
    /// Start draining a host: its instances move away one at a time, each replacement healthy
    /// before the old instance stops.
    Drain {
        /// Host name.
        name: HostName,
    },
    /// Show where a host's drain is and what must happen next.
    DrainStatus {
        /// Host name.
        name: HostName,
    },
    /// Send a heartbeat for a host (what its agent does every second).
    Heartbeat {
        /// Host name.
        name: HostName,
    },
    /// Show what a host must run or stop.
    Desired {
        /// Host name.
        name: HostName,
    },
}

/// A host state, as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostStateArg {
    /// Receives instances.
    Up,
    /// Moves its instances away; receives none.
    Draining,
    /// Lost: its instances are rescheduled.
    Down,
    /// Out of service on purpose (must be empty).
    Maintenance,
}

#[derive(Debug, Subcommand)]
pub enum RangeCommand {
    /// Add an address range (IPv4 or IPv6 CIDR) to a data center.
    Add {
        /// The network, such as 10.1.0.0/16 or fd00:1::/64.
        cidr: Cidr,
        /// Its data center.
        #[arg(long)]
        data_center: DcName,
        /// The gateway, never leased.
        #[arg(long)]
        gateway: Option<IpAddr>,
        /// Other addresses never leased (repeatable, or comma-separated).
        #[arg(long = "reserve", value_delimiter = ',')]
        reserved: Vec<IpAddr>,
    },
    /// List address ranges and how much of each is leased.
    List,
    /// Remove an address range without leases.
    Remove {
        /// The network, such as 10.1.0.0/16.
        cidr: Cidr,
    },
}

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Who holds an address (`--ip`), or which address an instance holds (`--instance`).
    Show {
        /// The address.
        #[arg(
            long,
            required_unless_present = "instance",
            conflicts_with = "instance"
        )]
        ip: Option<IpAddr>,
        /// The instance: `i-42` or `42`.
        #[arg(long)]
        instance: Option<String>,
    },
    /// List every lease.
    List,
}

/// A template's fields; each one given overrides the file and, for `update`, what is stored.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// Start from this template file (JSON or TOML, the API's template fields).
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    /// The template this one extends (its unset fields are inherited).
    #[arg(long)]
    pub extends: Option<TemplateName>,
    /// The data center its members run in.
    #[arg(long)]
    pub data_center: Option<DcName>,
    #[command(flatten)]
    pub resources: CapacityArgs,
    /// The program to run (process driver).
    #[arg(long)]
    pub command: Option<String>,
    /// An argument of the program (repeatable, in order; replaces the inherited list).
    #[arg(long = "arg", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment variable `KEY=VALUE` (repeatable; merged over the inherited ones).
    #[arg(long = "env", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// The port the process listens on.
    #[arg(long)]
    pub port: Option<u16>,
    /// An image, for drivers that run images.
    #[arg(long)]
    pub image: Option<String>,
    /// The health check: `tcp`, `http:/PATH` or `exec:COMMAND ARGS...`.
    #[arg(long)]
    pub health: Option<String>,
    /// Time between health probes, in milliseconds.
    #[arg(long)]
    pub health_interval_ms: Option<u64>,
    /// Time a health probe may take, in milliseconds.
    #[arg(long)]
    pub health_timeout_ms: Option<u64>,
    /// Consecutive successes to become healthy.
    #[arg(long)]
    pub health_rise: Option<u32>,
    /// Consecutive failures to become unhealthy.
    #[arg(long)]
    pub health_fall: Option<u32>,
    /// Time over which a healthy instance's weight ramps up to full, in milliseconds (0: full
    /// weight at once).
    #[arg(long)]
    pub health_warmup_ms: Option<u64>,
    /// The port the load balancer exposes for the service.
    #[arg(long)]
    pub frontend_port: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Create a template from flags and/or a file.
    Create {
        /// Template name, such as web_dc1.
        name: TemplateName,
        #[command(flatten)]
        fields: TemplateArgs,
    },
    /// Change a template: each flag given overrides the stored value (`--from-file` replaces
    /// it as a whole first).
    Update {
        /// Template name.
        name: TemplateName,
        #[command(flatten)]
        fields: TemplateArgs,
    },
    /// List templates as stored.
    List,
    /// Show a template as stored and as resolved through its `extends` chain.
    Show {
        /// Template name.
        name: TemplateName,
    },
    /// Delete a template no service uses and no template extends.
    Delete {
        /// Template name.
        name: TemplateName,
    },
}

/// A placement policy, as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Prefer the host with the most free capacity.
    Spread,
    /// Prefer the fullest host that fits.
    Pack,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service: `groups` instance groups, each with one member per template (one per
    /// data center). Refused as a whole if any member cannot be placed.
    Create {
        /// Service name.
        name: ServiceName,
        /// The owner tenant [default: the token's tenant].
        #[arg(long)]
        tenant: Option<TenantName>,
        /// Templates, one per member of a group, in distinct data centers (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        templates: Vec<TemplateName>,
        /// Number of instance groups.
        #[arg(long)]
        groups: u32,
        #[command(flatten)]
        resources: CapacityArgs,
        /// Placement policy [default: spread].
        #[arg(long, value_enum)]
        policy: Option<PolicyArg>,
    },
    /// Change the number of groups (whole groups are added or removed, highest first).
    Scale {
        /// Service name.
        name: ServiceName,
        /// New number of instance groups.
        #[arg(long)]
        groups: u32,
    },
    /// Change the resources of every instance (rescheduled where they no longer fit).
    Resize {
        /// Service name.
        name: ServiceName,
        #[command(flatten)]
        resources: CapacityArgs,
    },
    /// Change a service's templates or placement policy.
    Update {
        /// Service name.
        name: ServiceName,
        /// New templates (comma-separated).
        #[arg(long, value_delimiter = ',')]
        templates: Vec<TemplateName>,
        /// New placement policy.
        #[arg(long, value_enum)]
        policy: Option<PolicyArg>,
    },
    /// Delete a service, its instances and their leases.
    Delete {
        /// Service name.
        name: ServiceName,
    },
    /// List services.
    List,
    /// Show a service and its instances by group.
    Show {
        /// Service name.
        name: ServiceName,
    },
    /// Show a service's endpoints (the service registry): instance, host, data center, ip,
    /// port, weight, healthy, draining.
    Endpoints {
        /// Service name.
        name: ServiceName,
        /// Print them again on every change, until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Report placement problems; exits non-zero when there are some.
    Check {
        /// Service name.
        name: ServiceName,
    },
    /// Fix what `check` reports by moving instances (make before break).
    Migrate {
        /// Service name.
        name: ServiceName,
        /// Move to this host.
        #[arg(long)]
        to_host: Option<HostName>,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Show an instance.
    Show {
        /// Instance id: `i-42` or `42`.
        id: String,
    },
    /// Report an instance healthy (what its agent does): a replacement's old instance is then
    /// told to stop.
    Healthy {
        /// Instance id.
        id: String,
    },
    /// Report a running instance unhealthy (what its agent does): it leaves the registry's
    /// healthy endpoints until reported healthy again.
    Unhealthy {
        /// Instance id.
        id: String,
    },
    /// Report a stopping instance stopped (what its agent does): it is removed.
    Stopped {
        /// Instance id.
        id: String,
    },
}

/// `caravan capacity`: totals, and optionally how many more groups of a shape fit.
#[derive(Debug, Args)]
pub struct CapacityCommand {
    /// A shape: its templates, one per member (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "service")]
    pub templates: Vec<TemplateName>,
    /// A shape: the one of this service (its templates and resources).
    #[arg(long)]
    pub service: Option<ServiceName>,
    #[command(flatten)]
    pub resources: CapacityArgs,
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set a tenant's fleet quota: the most its services may ask for in all.
    Set {
        /// Tenant name.
        tenant: TenantName,
        #[command(flatten)]
        limits: CapacityArgs,
    },
    /// List quotas and usage.
    List,
    /// Remove a tenant's quota (unlimited).
    Remove {
        /// Tenant name.
        tenant: TenantName,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Show the audit log of placement decisions, newest first.
    Events {
        /// Only about this service.
        #[arg(long)]
        service: Option<ServiceName>,
        /// Only about this host.
        #[arg(long)]
        host: Option<HostName>,
        /// At most this many [default: 100, at most 1000].
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// Parses `KEY=VALUE`.
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

/// Parses a CPU amount into millicores: `2` or `0.5` cores, or `1500m`.
pub fn parse_cpu_millis(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Some(millis) = text.strip_suffix('m') {
        return millis.parse().map_err(|_| {
            format!("invalid CPU {text:?}: expected cores (2, 0.5) or millicores (1500m)")
        });
    }
    scaled(text, 1000).ok_or_else(|| {
        format!("invalid CPU {text:?}: expected cores (2, 0.5) or millicores (1500m)")
    })
}

/// Parses a size into bytes: plain bytes, binary units (`KiB`, `MiB`, `GiB`, `TiB`, also `Ki`,
/// `Gi`...), or decimal units (`KB`, `MB`, `GB`, `TB`, also `K`, `G`...); case-insensitive,
/// fractions allowed (`1.5GiB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    const UNITS: [(&str, u64); 13] = [
        ("kib", 1 << 10),
        ("mib", 1 << 20),
        ("gib", 1 << 30),
        ("tib", 1 << 40),
        ("ki", 1 << 10),
        ("mi", 1 << 20),
        ("gi", 1 << 30),
        ("ti", 1 << 40),
        ("kb", 1_000),
        ("mb", 1_000_000),
        ("gb", 1_000_000_000),
        ("tb", 1_000_000_000_000),
        ("b", 1),
    ];
    const SHORT: [(&str, u64); 4] = [
        ("k", 1_000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
        ("t", 1_000_000_000_000),
    ];
    let invalid =
        || format!("invalid size {text:?}: expected bytes or a size such as 4GiB, 512MiB, 20G");
    let lower = text.trim().to_ascii_lowercase();
    for (suffix, factor) in UNITS.iter().chain(SHORT.iter()) {
        if let Some(number) = lower.strip_suffix(suffix) {
            return scaled(number.trim(), *factor).ok_or_else(invalid);
        }
    }
    scaled(&lower, 1).ok_or_else(invalid)
}

/// `number * factor` for a decimal number such as `1.5`, exactly (no floating point), when the
/// result is a whole number that fits in a `u64`.
fn scaled(number: &str, factor: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let digits = u32::try_from(fraction.len()).ok().filter(|d| *d <= 18)?;
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let denominator = 10u128.pow(digits);
    let numerator = whole * denominator * u128::from(factor) + fraction_value * u128::from(factor);
    if !numerator.is_multiple_of(denominator) {
        return None;
    }
    u64::try_from(numerator / denominator).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("4GiB"), Ok(4 << 30));
        assert_eq!(parse_bytes("4gib"), Ok(4 << 30));
        assert_eq!(parse_bytes("512Mi"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("20G"), Ok(20_000_000_000));
        assert_eq!(parse_bytes("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("10B"), Ok(10));
        assert!(parse_bytes("0.5B").is_err());
        assert!(parse_bytes("GiB").is_err());
        assert!(parse_bytes("-1GiB").is_err());
        assert!(parse_bytes("4 parsecs").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
    }

    #[test]
    fn cpus_parse() {
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("2000m"), Ok(2000));
        assert_eq!(parse_cpu_millis("1.25"), Ok(1250));
        assert!(parse_cpu_millis("0.0001").is_err());
        assert!(parse_cpu_millis("two").is_err());
    }

    #[test]
    fn labels_parse() {
        assert_eq!(
            parse_key_value("rack=r1=a"),
            Ok(("rack".to_owned(), "r1=a".to_owned()))
        );
        assert!(parse_key_value("rack").is_err());
    }
}
