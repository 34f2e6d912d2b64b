//! The command line: definitions only. Values are parsed here and validated by the commands.

pub mod fleet;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use caravan_tenancy::{HostName, Scope, TenantName};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Caravan: self-service infrastructure for service-oriented teams.
#[derive(Debug, Parser)]
#[command(name = "caravan", version)]
pub struct Cli {
    /// Server to talk to.
    #[arg(
        long,
        global = true,
        env = "CARAVAN_SERVER",
        default_value = "http://127.0.0.1:9200"
    )]
    pub server: String,
    /// API token. Without one, a command talking to a local server reads `<data-dir>/admin.token`.
    #[arg(long, global = true, env = "CARAVAN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory of the server (default `./caravan-data`).
    #[arg(long, global = true, env = "CARAVAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format of client commands.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

/// How client commands print their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// JSON, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Caravan server.
    Server(ServerArgs),
    /// Manage tenants (teams).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write, compile, check and publish the common log schema.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Tenants' logs: usage accounting and purges.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Manage zones (environments grouping data centers).
    #[command(subcommand)]
    Zone(fleet::ZoneCommand),
    /// Manage data centers.
    #[command(subcommand, name = "data-center", visible_alias = "dc")]
    DataCenter(fleet::DataCenterCommand),
    /// Manage hosts: register, update, drain, delete.
    #[command(subcommand)]
    Host(fleet::HostCommand),
    /// Manage address ranges (IPAM) of data centers.
    #[command(subcommand)]
    Range(fleet::RangeCommand),
    /// Look up address leases both ways.
    #[command(subcommand)]
    Lease(fleet::LeaseCommand),
    /// Manage templates: how to run one member of a service.
    #[command(subcommand)]
    Template(fleet::TemplateCommand),
    /// Manage services: create, scale, resize, check, migrate, delete.
    #[command(subcommand)]
    Service(fleet::ServiceCommand),
    /// Show and report instances (what agents do).
    #[command(subcommand)]
    Instance(fleet::InstanceCommand),
    /// Show the fleet's capacity, and how many more groups of a shape fit.
    Capacity(fleet::CapacityCommand),
    /// Manage tenants' fleet quotas (CPU, memory, disk).
    #[command(subcommand)]
    Quota(fleet::QuotaCommand),
    /// The fleet's audit log.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Run the agent of one host: register it, heartbeat, run and health-check its instances.
    Agent(AgentArgs),
    /// Run the built-in sample HTTP service (for demos and tests of the agent).
    SampleApp(SampleAppArgs),
    /// Run the whole platform on this machine with sample data: a server, agents simulating
    /// hosts in three data centers, tenants, a service and logs. Ctrl-C stops it all.
    Demo(DemoArgs),
    /// Run a load balancer: a local HAProxy whose frontends and backends follow the service
    /// registry (one per service with a frontend port).
    Lb(LbArgs),
    /// Show who the current token is.
    Whoami,
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:9200].
    #[arg(long, env = "CARAVAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file; flags and environment variables win over it.
    #[arg(long, env = "CARAVAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// `caravan agent`: the global `--server` and `--token` say which server and as whom.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Name of the host this agent is.
    #[arg(long, env = "CARAVAN_HOST_NAME")]
    pub host_name: String,
    /// Its data center.
    #[arg(long, env = "CARAVAN_DATA_CENTER")]
    pub data_center: String,
    /// CPU cores offered to instances (fractions allowed) [default: the CPUs this process may use].
    #[arg(long)]
    pub cpu: Option<f64>,
    /// Memory offered to instances, in MiB [default: the machine's total].
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// Disk offered to instances, in GiB [default: the size of the work directory's file system].
    #[arg(long)]
    pub disk_gib: Option<u64>,
    /// A label of the host, `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Directory of the instances' working directories and output.
    #[arg(
        long,
        env = "CARAVAN_AGENT_WORK_DIR",
        default_value = "./caravan-agent"
    )]
    pub work_dir: PathBuf,
    /// Ports given to instances (`$PORT`), FIRST-LAST.
    #[arg(long, default_value = "20000-20099")]
    pub port_range: String,
    /// Time between heartbeats, in milliseconds.
    #[arg(long, default_value_t = caravan_agent::agent::HEARTBEAT_MS_DEFAULT)]
    pub heartbeat_ms: u64,
    /// Time an instance gets between SIGTERM and SIGKILL, in milliseconds.
    #[arg(long, default_value_t = caravan_agent::agent::STOP_GRACE_MS_DEFAULT)]
    pub stop_grace_ms: u64,
    /// Time between the decision to stop a healthy instance (scaled down, replaced) and its
    /// SIGTERM, in milliseconds: load balancers watching the registry take it out of rotation
    /// first.
    #[arg(long, default_value_t = caravan_agent::agent::DRAIN_DELAY_MS_DEFAULT)]
    pub drain_delay_ms: u64,
    /// The cgroup v2 hierarchy under which instances get cgroups of their own (memory.max,
    /// cpu.max); without a usable one, memory is limited per process (RLIMIT_DATA).
    #[arg(long, default_value = caravan_agent::limits::CGROUP_ROOT_DEFAULT)]
    pub cgroup_root: PathBuf,
    /// Do not use cgroups (memory is still limited per process with RLIMIT_DATA).
    #[arg(long)]
    pub no_cgroups: bool,
    /// The address instances are reached at, published in the registry instead of their
    /// leases (the process driver configures no lease on an interface; instances listen on the
    /// host's addresses, e.g. 127.0.0.1 when several agents simulate hosts on one machine).
    #[arg(long)]
    pub advertise_ip: Option<IpAddr>,
    /// Also run a load balancer in this process (as `caravan lb` with its defaults, on the
    /// agent's token, its files under `<work-dir>/lb`).
    #[arg(long)]
    pub lb: bool,
    /// With --lb: the address its frontends listen on.
    #[arg(long, requires = "lb", default_value = "0.0.0.0")]
    pub lb_bind: IpAddr,
    /// With --lb: where it serves `/metrics`.
    #[arg(long, requires = "lb", default_value = "127.0.0.1:9201")]
    pub lb_metrics_listen: SocketAddr,
}

/// `caravan lb`.
#[derive(Debug, Args)]
pub struct LbArgs {
    /// Directory of HAProxy's configuration, sockets and server-state file.
    #[arg(long, env = "CARAVAN_LB_WORK_DIR", default_value = "./caravan-lb")]
    pub work_dir: PathBuf,
    /// The HAProxy program.
    #[arg(long, default_value = "haproxy")]
    pub haproxy: PathBuf,
    /// The address frontends listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// A minijinja template of HAProxy's configuration replacing Caravan's default (see
    /// `crates/lb/templates/haproxy.cfg.j2` for what it must keep).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Where to serve `/metrics`: the driver's metrics and HAProxy's statistics per backend and
    /// server.
    #[arg(long, default_value = "127.0.0.1:9201")]
    pub metrics_listen: SocketAddr,
    /// Where HAProxy's own Prometheus exporter listens, if anywhere.
    #[arg(long)]
    pub prometheus_listen: Option<SocketAddr>,
    /// Drive an existing HAProxy (master-worker mode) through this master socket instead of
    /// starting one; needs --attach-config.
    #[arg(long, requires = "attach_config", value_name = "SOCKET")]
    pub attach_master_socket: Option<PathBuf>,
    /// The configuration file the attached HAProxy runs from (Caravan rewrites it).
    #[arg(long, requires = "attach_master_socket", value_name = "FILE")]
    pub attach_config: Option<PathBuf>,
    /// Server slots a backend has at least (room to scale without a reload).
    #[arg(long, default_value_t = caravan_lb::model::SLOTS_MIN_DEFAULT)]
    pub slots_min: u32,
    /// How long registry changes gather before they are applied, in milliseconds.
    #[arg(long, default_value_t = caravan_lb::driver::BATCH_MS_DEFAULT)]
    pub batch_ms: u64,
    /// The shortest time between two reloads, in milliseconds.
    #[arg(long, default_value_t = caravan_lb::driver::RELOAD_INTERVAL_MS_DEFAULT)]
    pub reload_interval_ms: u64,
    /// The time between two full reconciliations of HAProxy with the registry, in milliseconds.
    #[arg(long, default_value_t = caravan_lb::driver::RESYNC_MS_DEFAULT)]
    pub resync_ms: u64,
}

/// `caravan sample-app`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory of the demo's state: the server's data, the agents' work directories, logs.
    /// A second run in the same directory resumes the fleet it left.
    #[arg(long, default_value = "./caravan-demo")]
    pub dir: PathBuf,
    /// Address the server listens on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:9200")]
    pub listen: String,
    /// First port of the agents' port ranges (each agent takes the next 20 ports).
    #[arg(long, default_value_t = 21000)]
    pub agent_ports: u16,
    /// Documents the log generator sends per second (0: no generator).
    #[arg(long, default_value_t = 20)]
    pub logs_per_second: u32,
    /// The port HAProxy exposes the sample service on, on 127.0.0.1 (set when the demo's
    /// fleet is first created).
    #[arg(long, default_value_t = 18080)]
    pub frontend_port: u16,
    /// Where the load balancer serves its metrics (`/metrics`; port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:9201")]
    pub lb_metrics_listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct SampleAppArgs {
    /// Port to listen on.
    #[arg(long, env = "PORT")]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Instance it answers as.
    #[arg(long, env = "CARAVAN_INSTANCE", default_value = "i-0")]
    pub instance: String,
    /// Service it answers as.
    #[arg(long, env = "CARAVAN_SERVICE", default_value = "sample")]
    pub service: String,
    /// Time between periodic log lines, in milliseconds (0: none).
    #[arg(long, default_value_t = caravan_agent::sample_app::LOG_INTERVAL_MS_DEFAULT)]
    pub log_interval_ms: u64,
    /// Fail health checks (`GET /health` answers 503) from this many milliseconds after the
    /// start on (0: never).
    #[arg(long, default_value_t = 0)]
    pub unhealthy_after_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Name: a DNS label (lowercase letters, digits, '-').
        name: TenantName,
        /// Human-readable name [default: the name].
        #[arg(long)]
        display_name: Option<String>,
        /// Days of logs kept [default: 10].
        #[arg(long)]
        retention_days: Option<u32>,
        /// Bytes of logs accepted per UTC day [default: unlimited].
        #[arg(long)]
        daily_quota_bytes: Option<u64>,
    },
    /// List tenants.
    List,
    /// Show a tenant.
    Show {
        /// Tenant name.
        name: TenantName,
    },
    /// Change a tenant.
    Update {
        /// Tenant name.
        name: TenantName,
        /// New display name.
        #[arg(long)]
        display_name: Option<String>,
        /// New retention, in days.
        #[arg(long)]
        retention_days: Option<u32>,
        /// New daily log quota, in bytes.
        #[arg(long, conflicts_with = "unlimited_quota")]
        daily_quota_bytes: Option<u64>,
        /// Remove the daily log quota.
        #[arg(long)]
        unlimited_quota: bool,
    },
    /// Delete a tenant; refused while it owns anything, unless --force.
    Delete {
        /// Tenant name.
        name: TenantName,
        /// Also delete everything the tenant owns.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// An admin token (every scope, every tenant).
        #[arg(long, conflicts_with_all = ["tenant", "scopes", "host"], required_unless_present_any = ["tenant", "host"])]
        admin: bool,
        /// The tenant a tenant token acts for.
        #[arg(long, requires = "scopes", conflicts_with = "host")]
        tenant: Option<TenantName>,
        /// Scopes of a tenant token: logs:write, logs:read, fleet:read, fleet:write.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<Scope>,
        /// An agent token for this host: what `caravan agent --host-name HOST` (and `caravan lb`)
        /// run with. It registers and reports for that host only, ships logs into any tenant,
        /// reads the service registry, and nothing else.
        #[arg(long, conflicts_with = "scopes")]
        host: Option<HostName>,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this tenant's tokens.
        #[arg(long)]
        tenant: Option<TenantName>,
    },
    /// Revoke a token, at once.
    Revoke {
        /// Token id (`tok_...`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Log usage per day: documents, bytes, coerced and ignored values, rejections, unknown keys.
    Usage {
        /// The tenant.
        #[arg(long)]
        tenant: TenantName,
        /// How many days back, today included.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// Search logs: `caravan logs search 'level:ERROR AND http.status:>=500' --since 1h`.
    Search {
        /// The query (Lucene / Kibana syntax); empty for every log.
        #[arg(default_value = "")]
        query: String,
        #[command(flatten)]
        tenants: TenantsArg,
        /// Only logs of the last DURATION (`15m`, `1h`, `7d`); default 15m unless --from.
        #[arg(long, conflicts_with = "from")]
        since: Option<String>,
        /// Start of the range: a date or date math (`now-2h`, `2026-11-23T10:00:00Z`).
        #[arg(long)]
        from: Option<String>,
        /// End of the range (exclusive), same forms.
        #[arg(long)]
        to: Option<String>,
        /// How many logs (at most 10000).
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Oldest first.
        #[arg(long)]
        asc: bool,
        /// Continue after this cursor (a previous `-o json` answer's `next`).
        #[arg(long)]
        after: Option<String>,
    },
    /// Print new logs matching a query as they arrive, until interrupted.
    Tail {
        /// The query (Lucene / Kibana syntax); empty for every log.
        #[arg(default_value = "")]
        query: String,
        #[command(flatten)]
        tenants: TenantsArg,
        /// Also print the logs of the last DURATION first (`5m`).
        #[arg(long)]
        since: Option<String>,
    },
    /// Drop a day, or every day before a date, of a tenant's logs (admin).
    Purge {
        /// The tenant.
        #[arg(long)]
        tenant: TenantName,
        /// The UTC day to drop, YYYY-MM-DD.
        #[arg(long, conflicts_with = "before", required_unless_present = "before")]
        day: Option<String>,
        /// Drop every UTC day strictly before this one, YYYY-MM-DD.
        #[arg(long)]
        before: Option<String>,
    },
}

/// Which tenants a search reaches.
#[derive(Debug, clap::Args)]
pub struct TenantsArg {
    /// The tenant (repeatable; globs such as `pay*` or `*`). A tenant token may omit it.
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write a starter schema (`log_schema.proto`) and `caravan/options.proto` into a directory.
    Init {
        /// Where to write them.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Compile .proto files into the field dictionary or an Elasticsearch template, locally.
    Compile {
        /// The .proto files (every file the schema needs; `caravan/options.proto` and the
        /// well-known types are built in).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        source: SchemaSourceArgs,
        /// What to produce: dictionary, es-template or es-legacy-template.
        #[arg(long, default_value = "dictionary")]
        format: caravan_schema::Format,
        /// Index patterns of a template, such as `payments-*` (repeatable).
        #[arg(long = "index-pattern")]
        index_patterns: Vec<String>,
        /// Leave `@timestamp` out of a template's mappings.
        #[arg(long)]
        no_timestamp: bool,
        /// ILM policy name set as `index.lifecycle.name`.
        #[arg(long)]
        lifecycle_policy: Option<String>,
        /// Retention recorded in the template's `_meta`.
        #[arg(long)]
        retention_days: Option<u32>,
        /// Template priority (composable) or order (legacy).
        #[arg(long)]
        priority: Option<u32>,
        /// A minijinja template to render instead of the built-in one.
        #[arg(long)]
        template: Option<PathBuf>,
        /// Write the output to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two schemas; exits non-zero when an existing key changes type (a mapping conflict).
    Diff {
        /// The schema in use: a .proto file, or a dictionary .json from `schema compile`.
        old: PathBuf,
        /// The proposed schema: a .proto file, or a dictionary .json.
        new: PathBuf,
        #[command(flatten)]
        source: SchemaSourceArgs,
    },
    /// Push a schema to the server: the common one, or a tenant's extension with --tenant.
    Push {
        /// The .proto files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        source: SchemaSourceArgs,
        /// Push the extension schema of this tenant instead of the common schema.
        #[arg(long)]
        tenant: Option<TenantName>,
    },
    /// Show the schema in force (or a version), its versions, or a tenant's dictionary/template.
    Show {
        /// The extension of this tenant; with --view dictionary or a template, what is in force
        /// for it (common plus extension).
        #[arg(long)]
        tenant: Option<TenantName>,
        /// A version number [default: the latest].
        #[arg(long)]
        version: Option<u64>,
        /// What to show.
        #[arg(long, value_enum, default_value_t = SchemaView::Keys)]
        view: SchemaView,
    },
}

/// Where .proto files are imported from, and the root message.
#[derive(Debug, Args)]
pub struct SchemaSourceArgs {
    /// The import root: files are named relative to it, as in their `import` lines
    /// [default: each file's own directory].
    #[arg(long)]
    pub proto_path: Option<PathBuf>,
    /// The root message [default: LogSchema].
    #[arg(long)]
    pub root: Option<String>,
}

/// What `schema show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaView {
    /// The keys, their types, aliases and flags.
    Keys,
    /// The versions pushed.
    Versions,
    /// The pushed .proto sources.
    Sources,
    /// The field dictionary (in force for --tenant, if given).
    Dictionary,
    /// The composable Elasticsearch index template for --tenant.
    EsTemplate,
    /// The legacy Elasticsearch index template for --tenant.
    EsLegacyTemplate,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
