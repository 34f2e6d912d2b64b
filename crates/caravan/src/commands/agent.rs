//! `caravan agent` and `caravan sample-app`: arguments validated into the agent crate's
//! configurations, then run until SIGTERM or SIGINT.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use caravan_agent::{AgentConfig, PortRange, SampleAppConfig, machine};
use caravan_client::{Client, ClientError};
use caravan_fleet::{DcName, HostName, Resources};
use caravan_tenancy::{TokenKind, WhoAmI};

use crate::cli::{AgentArgs, Cli, LbArgs, SampleAppArgs};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Runs the agent of one host.
pub async fn run_agent(cli: &Cli, args: &AgentArgs) -> anyhow::Result<()> {
    let token = super::required_token(cli, "the agent")?;
    let host = HostName::new(&args.host_name)?;
    check_token(&cli.server, &token, &host).await?;
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
        host,
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
        let mut lb_args = LbArgs::embedded(args.work_dir.join("lb"))?;
        lb_args.bind = args.lb_bind;
        lb_args.metrics_listen = args.lb_metrics_listen;
        let lb = super::lb::config(cli, &lb_args)?;
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

/// Refuses to start with a token that cannot run `host`'s agent: another host's agent token, a
/// tenant token, an unknown or revoked token. When the server cannot be asked, the agent starts
/// anyway (it keeps trying; the server still refuses what the token may not do).
async fn check_token(server: &str, token: &str, host: &HostName) -> anyhow::Result<()> {
    let client = Client::new(server, Some(token.to_owned()))?;
    match client.whoami().await {
        Ok(whoami) => {
            if let Some(advice) = token_fits(&whoami, host)? {
                tracing::warn!("{advice}");
            }
            Ok(())
        }
        Err(error @ ClientError::Api { status: 401, .. }) => {
            bail!("the server refuses the agent's token: {error}")
        }
        Err(error) => {
            tracing::warn!(%error, "cannot check the token at start; starting anyway");
            Ok(())
        }
    }
}

/// Whether the token `whoami` describes may run `host`'s agent: an error if it may not, advice
/// if it may but should not (an admin token).
fn token_fits(whoami: &WhoAmI, host: &HostName) -> anyhow::Result<Option<String>> {
    let create = format!("caravan token create --name agent-{host} --host {host}");
    match (whoami.kind, &whoami.host) {
        (TokenKind::Agent, Some(bound)) if bound == host => Ok(None),
        (TokenKind::Agent, Some(bound)) => bail!(
            "the token {} is the agent token of host {bound}, not of host {host}: run this \
             agent with --host-name {bound}, or give it host {host}'s token ({create})",
            whoami.token
        ),
        (TokenKind::Agent, None) => bail!(
            "the token {} is an agent token without a host",
            whoami.token
        ),
        (TokenKind::Tenant, _) => bail!(
            "the token {} is a tenant token, which cannot run an agent; create an agent token: {create}",
            whoami.token
        ),
        (TokenKind::Admin, _) => Ok(Some(format!(
            "running with an admin token: a compromised host would control the platform; \
             prefer an agent token ({create})"
        ))),
    }
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

#[cfg(test)]
mod tests {
    use caravan_tenancy::TokenId;

    use super::*;

    fn whoami(kind: TokenKind, host: Option<&str>) -> WhoAmI {
        WhoAmI {
            token: TokenId::from_string("tok_1".to_owned()),
            kind,
            tenant: None,
            host: host.map(|h| HostName::new(h).unwrap()),
            scopes: vec![],
        }
    }

    #[test]
    fn only_the_hosts_own_agent_token_fits_quietly() {
        let host = HostName::new("dc1-h1").unwrap();
        assert_eq!(
            token_fits(&whoami(TokenKind::Agent, Some("dc1-h1")), &host).unwrap(),
            None
        );
        let error = token_fits(&whoami(TokenKind::Agent, Some("dc2-h1")), &host)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("agent token of host dc2-h1, not of host dc1-h1"),
            "{error}"
        );
        let error = token_fits(&whoami(TokenKind::Tenant, None), &host)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--host dc1-h1"), "{error}");
        let advice = token_fits(&whoami(TokenKind::Admin, None), &host).unwrap();
        assert!(advice.is_some_and(|a| a.contains("prefer an agent token")));
    }
}
