//! `caravan agent` and `caravan sample-app`: arguments validated into the agent crate's
//! configurations, then run until SIGTERM or SIGINT.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use caravan_agent::{AgentConfig, PortRange, SampleAppConfig, machine};
use caravan_fleet::{DcName, HostName, Resources};

use crate::cli::{AgentArgs, Cli, LbArgs, SampleAppArgs};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Runs the agent of one host.
pub async fn run_agent(cli: &Cli, args: &AgentArgs) -> anyhow::Result<()> {
    let token = super::required_token(cli, "the agent")?;
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("cannot create {}", args.work_dir.display()))?;
    let cpu_millis = match args.cpu {
        Some(cores) if cores.is_finite() && cores > 0.0 => (cores * 1_000.0).round() as u64,
        Some(cores) => bail!("--cpu must be a positive number of cores, got {cores}"),
        None => machine::cpu_millis(),
    };
    let memory_bytes = match args.memory_mib {
        Some(mib) => mib.checked_mul(MIB).context("--memory-mib is too large")?,
        None => machine::memory_bytes()?,
    };
    let disk_bytes = match args.disk_gib {
        Some(gib) => gib.checked_mul(GIB).context("--disk-gib is too large")?,
        None => machine::disk_bytes(&args.work_dir)?,
    };
    let mut labels = BTreeMap::new();
    for label in &args.labels {
        let (key, value) = label
            .split_once('=')
            .with_context(|| format!("label {label:?}: expected KEY=VALUE"))?;
        labels.insert(key.to_owned(), value.to_owned());
    }
    let config = AgentConfig {
        server_url: cli.server.clone(),
        token,
        host: HostName::new(&args.host_name)?,
        data_center: DcName::new(&args.data_center)?,
        capacity: Resources {
            cpu_millis,
            memory_bytes,
            disk_bytes,
        },
        labels,
        work_dir: args.work_dir.clone(),
        ports: args.port_range.parse::<PortRange>()?,
        heartbeat_ms: args.heartbeat_ms,
        stop_grace_ms: args.stop_grace_ms,
        drain_delay_ms: args.drain_delay_ms,
        cgroup_root: (!args.no_cgroups).then(|| args.cgroup_root.clone()),
        advertise_ip: args.advertise_ip,
    };
    if args.lb {
        let lb = super::lb::config(cli, &LbArgs::embedded(args.work_dir.join("lb"))?)?;
        tokio::try_join!(
            async {
                caravan_agent::run(config, caravan_server::shutdown_signal())
                    .await
                    .map_err(anyhow::Error::from)
            },
            async {
                caravan_lb::run(lb, caravan_server::shutdown_signal())
                    .await
                    .map_err(anyhow::Error::from)
            },
        )?;
    } else {
        caravan_agent::run(config, caravan_server::shutdown_signal()).await?;
    }
    Ok(())
}

/// Runs the sample HTTP service.
pub async fn run_sample_app(args: &SampleAppArgs) -> anyhow::Result<()> {
    let config = SampleAppConfig {
        bind: args.bind,
        port: args.port,
        instance: args.instance.clone(),
        service: args.service.clone(),
        log_interval_ms: args.log_interval_ms,
        unhealthy_after_ms: args.unhealthy_after_ms,
    };
    caravan_agent::sample_app::run(config, caravan_server::shutdown_signal()).await?;
    Ok(())
}
