//! `caravan lb`: arguments validated into the load-balancer driver's configuration, then run
//! until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use caravan_lb::LbConfig;
use caravan_lb::haproxy::Files;

use crate::cli::{Cli, LbArgs};

/// Runs the load balancer.
pub async fn run(cli: &Cli, args: &LbArgs) -> anyhow::Result<()> {
    let config = config(cli, args)?;
    caravan_lb::run(config, caravan_server::shutdown_signal()).await?;
    Ok(())
}

/// The driver's configuration from the command line.
pub fn config(cli: &Cli, args: &LbArgs) -> anyhow::Result<LbConfig> {
    let template = match &args.template {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the template {}", path.display()))?,
        None => caravan_lb::render::DEFAULT_TEMPLATE.to_owned(),
    };
    let attach = match (&args.attach_master_socket, &args.attach_config) {
        (Some(master_socket), Some(config)) => Some(Files {
            config: config.clone(),
            master_socket: master_socket.clone(),
            ..Files::in_dir(&args.work_dir)
        }),
        _ => None,
    };
    Ok(LbConfig {
        server_url: cli.server.clone(),
        token: super::required_token(cli, "the load balancer")?,
        work_dir: args.work_dir.clone(),
        haproxy_binary: args.haproxy.clone(),
        attach,
        template,
        bind_address: args.bind,
        prometheus_listen: args.prometheus_listen,
        metrics_listen: Some(args.metrics_listen),
        slots_min: args.slots_min,
        batch: Duration::from_millis(args.batch_ms),
        reload_interval_min: Duration::from_millis(args.reload_interval_ms),
        resync_interval: Duration::from_millis(args.resync_ms.max(100)),
    })
}

impl LbArgs {
    /// The load balancer an agent runs with `--lb`: `caravan lb`'s defaults, files in
    /// `work_dir`.
    pub fn embedded(work_dir: PathBuf) -> anyhow::Result<Self> {
        #[derive(clap::Parser)]
        struct Embedded {
            #[command(flatten)]
            args: LbArgs,
        }
        let work_dir = work_dir.into_os_string();
        let parsed = <Embedded as clap::Parser>::try_parse_from([
            std::ffi::OsString::from("lb"),
            "--work-dir".into(),
            work_dir,
        ])?;
        Ok(parsed.args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedded_load_balancer_has_the_command_defaults_in_its_own_directory() {
        let args = LbArgs::embedded(PathBuf::from("/var/lib/caravan-agent/lb")).unwrap();
        assert_eq!(args.work_dir, PathBuf::from("/var/lib/caravan-agent/lb"));
        assert_eq!(args.haproxy, PathBuf::from("haproxy"));
        assert_eq!(args.bind.to_string(), "0.0.0.0");
        assert_eq!(args.metrics_listen.to_string(), "127.0.0.1:9201");
        assert_eq!(args.resync_ms, caravan_lb::driver::RESYNC_MS_DEFAULT);
        assert!(args.template.is_none() && args.attach_master_socket.is_none());
    }
}
