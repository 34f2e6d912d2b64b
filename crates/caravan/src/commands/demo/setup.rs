//! What the demo creates on a fresh server: the topology, the schema, the tenants and the
//! service. Everything goes through the API, as an operator's CLI would.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use caravan_api::{SchemaFileBody, SchemaPush};
use caravan_client::Client;
use caravan_fleet::{HostState, InstanceState, ServiceName, TenantName, ZoneName};
use caravan_tenancy::{Scope, TenantCreate, TokenCreate, TokenKind};
use serde_json::json;

/// The example common schema of the repository, pushed as version 1.
const EXAMPLE_SCHEMA: &str = include_str!("../../../../../examples/schema/log_schema.proto");

/// One simulated host: its name, data center and zone.
pub struct HostPlan {
    /// The host's name.
    pub name: &'static str,
    /// Its data center.
    pub data_center: &'static str,
}

/// The data centers: name, zone, address range.
pub const DATA_CENTERS: [(&str, &str, &str); 3] = [
    ("dc1", "production", "10.1.0.0/24"),
    ("dc2", "production", "10.2.0.0/24"),
    ("stg1", "staging", "10.9.0.0/24"),
];

/// The hosts, one agent each: two in each production data center, one in staging.
pub const HOSTS: [HostPlan; 5] = [
    HostPlan {
        name: "dc1-h1",
        data_center: "dc1",
    },
    HostPlan {
        name: "dc1-h2",
        data_center: "dc1",
    },
    HostPlan {
        name: "dc2-h1",
        data_center: "dc2",
    },
    HostPlan {
        name: "dc2-h2",
        data_center: "dc2",
    },
    HostPlan {
        name: "stg1-h1",
        data_center: "stg1",
    },
];

/// The tenant owning the sample service (its logs are the instances' output).
pub const SHOP: &str = "shop";
/// The tenant the log generator writes into.
pub const PAYMENTS: &str = "payments";
/// The sample service.
pub const SERVICE: &str = "storefront";

/// Creates the zones, data centers, ranges, the common schema, both tenants (with retention
/// and quotas) and the templates; answers a token of the `shop` tenant (fleet and logs).
/// The sample service's templates have `frontend_port`: HAProxy exposes it there.
pub async fn platform(
    client: &Client,
    sample_app: &str,
    frontend_port: u16,
) -> anyhow::Result<String> {
    for zone in ["production", "staging"] {
        client.create_zone(&ZoneName::new(zone)?).await?;
    }
    for (name, zone, cidr) in DATA_CENTERS {
        client
            .create_data_center(&serde_json::from_value(
                json!({"name": name, "zone": zone}),
            )?)
            .await?;
        client
            .add_range(&serde_json::from_value(
                json!({"cidr": cidr, "data_center": name}),
            )?)
            .await
            .with_context(|| format!("range {cidr}"))?;
    }
    client
        .push_schema(
            None,
            &SchemaPush {
                files: vec![SchemaFileBody {
                    name: "log_schema.proto".to_owned(),
                    content: EXAMPLE_SCHEMA.to_owned(),
                }],
                root_message: None,
            },
        )
        .await
        .context("pushing the example schema")?;
    for (name, display_name, retention_days) in
        [(SHOP, "Shop team", 3), (PAYMENTS, "Payments team", 7)]
    {
        client
            .create_tenant(&TenantCreate {
                name: caravan_tenancy::TenantName::new(name)?,
                display_name: Some(display_name.to_owned()),
                retention_days: Some(retention_days),
                daily_quota_bytes: Some(1 << 30),
            })
            .await?;
        client
            .set_quota(
                &TenantName::new(name)?,
                &serde_json::from_value(
                    json!({"cpu_millis": 4000, "memory_bytes": 4u64 << 30, "disk_bytes": 50u64 << 30}),
                )?,
            )
            .await?;
    }
    client
        .create_template(&serde_json::from_value(json!({
            "name": "storefront_base",
            "resources": {"cpu_millis": 250, "memory_bytes": 128u64 << 20, "disk_bytes": 1u64 << 30},
            "run": {"command": format!("exec '{sample_app}' sample-app"),
                "args": ["--log-interval-ms", "2000"], "port": 8080},
            "health": {"probe": {"kind": "http", "path": "/health"},
                "interval_ms": 500, "timeout_ms": 300, "rise": 2, "fall": 3},
            "frontend_port": frontend_port
        }))?)
        .await?;
    for dc in ["dc1", "dc2"] {
        client
            .create_template(&serde_json::from_value(json!({
                "name": format!("storefront_{dc}"), "extends": "storefront_base", "data_center": dc
            }))?)
            .await?;
    }
    let created = client
        .create_token(&TokenCreate {
            name: "demo shop".to_owned(),
            kind: TokenKind::Tenant,
            tenant: Some(caravan_tenancy::TenantName::new(SHOP)?),
            host: None,
            scopes: vec![
                Scope::FleetRead,
                Scope::FleetWrite,
                Scope::LogsRead,
                Scope::LogsWrite,
            ],
        })
        .await?;
    Ok(created.secret)
}

/// Creates the agent token of `host` and answers its secret.
pub async fn agent_token(client: &Client, host: &str) -> anyhow::Result<String> {
    let created = client
        .create_token(&TokenCreate {
            name: format!("demo agent {host}"),
            kind: TokenKind::Agent,
            tenant: None,
            host: Some(caravan_tenancy::HostName::new(host)?),
            scopes: Vec::new(),
        })
        .await?;
    Ok(created.secret)
}

/// Waits until every host of [`HOSTS`] is registered and up.
pub async fn hosts_up(client: &Client, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let hosts = client.hosts().await?;
        let up = HOSTS
            .iter()
            .filter(|plan| {
                hosts
                    .iter()
                    .any(|h| h.host.name.as_str() == plan.name && h.host.state == HostState::Up)
            })
            .count();
        if up == HOSTS.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {up} of {} hosts came up within {} s",
                HOSTS.len(),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the sample service: two groups, a member in each production data center.
pub async fn service(client: &Client) -> anyhow::Result<()> {
    client
        .create_service(&serde_json::from_value(json!({
            "name": SERVICE, "tenant": SHOP,
            "templates": ["storefront_dc1", "storefront_dc2"], "groups": 2
        }))?)
        .await?;
    Ok(())
}

/// Waits until HAProxy answers for the sample service on 127.0.0.1:`port` (a 200).
pub async fn frontend_serving(port: u16, timeout: Duration) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + timeout;
    loop {
        let answer = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
                .await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            std::io::Result::Ok(answer)
        };
        if let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(2), answer).await
            && answer.starts_with(b"HTTP/1.1 200")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "HAProxy does not serve {SERVICE} on 127.0.0.1:{port} after {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the sample service has instances and all of them run (healthy).
pub async fn service_running(client: &Client, timeout: Duration) -> anyhow::Result<()> {
    let name = ServiceName::new(SERVICE)?;
    let deadline = Instant::now() + timeout;
    loop {
        let view = client.service(&name).await?;
        let states: Vec<_> = view
            .groups
            .iter()
            .flat_map(|group| &group.instances)
            .map(|instance| matches!(instance.state, InstanceState::Running))
            .collect();
        if !states.is_empty() && states.iter().all(|running| *running) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{SERVICE} is not running after {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
