//! The command line: definitions only. Values are parsed here and validated by the commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use caravan_tenancy::{Scope, TenantName};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Caravan: self-service infrastructure for service-oriented teams.
#[derive(Debug, Parser)]
#[command(name = "caravan", version, propagate_version = true)]
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
        #[arg(long, conflicts_with_all = ["tenant", "scopes"], required_unless_present = "tenant")]
        admin: bool,
        /// The tenant a tenant token acts for.
        #[arg(long, requires = "scopes")]
        tenant: Option<TenantName>,
        /// Scopes of a tenant token: logs:write, logs:read, fleet:read, fleet:write.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<Scope>,
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
