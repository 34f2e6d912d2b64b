//! `caravan zone|data-center|host|range|lease|template|service|instance|capacity|quota|fleet`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use caravan_api::fleet::{HostPatch, ServicePatch};
use caravan_client::{Client, EventQuery};
use caravan_fleet::{
    AddressRange, DataCenter, GroupShape, HealthOverride, HostSpec, HostState, InstanceId,
    PlacementPolicy, Probe, ResourceOverride, Resources, ServiceSpec, Template, TemplateName,
    TenantName,
};

use crate::cli::Command;
use crate::cli::fleet::{
    CapacityArgs, CapacityCommand, DataCenterCommand, FleetCommand, HostCommand, HostStateArg,
    InstanceCommand, LeaseCommand, PolicyArg, QuotaCommand, RangeCommand, ServiceCommand,
    TemplateArgs, TemplateCommand, ZoneCommand,
};
use crate::output::Printer;

/// Runs a fleet command.
/// How long each request of `caravan service endpoints --watch` waits for a change (the
/// server's longest long poll).
const ENDPOINTS_WATCH_WAIT_MS: u64 = 30_000;

pub async fn run(client: &Client, printer: &Printer, command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Zone(command) => zone(client, printer, command).await,
        Command::DataCenter(command) => data_center(client, printer, command).await,
        Command::Host(command) => host(client, printer, command).await,
        Command::Range(command) => range(client, printer, command).await,
        Command::Lease(command) => lease(client, printer, command).await,
        Command::Template(command) => template(client, printer, command).await,
        Command::Service(command) => service(client, printer, command).await,
        Command::Instance(command) => instance(client, printer, command).await,
        Command::Capacity(command) => capacity(client, printer, command).await,
        Command::Quota(command) => quota(client, printer, command).await,
        Command::Fleet(FleetCommand::Events {
            service,
            host,
            limit,
        }) => {
            let query = EventQuery {
                service: service.clone(),
                host: host.clone(),
                limit: *limit,
            };
            printer.fleet_events(&client.fleet_events(&query).await?)
        }
        _ => bail!("not a fleet command"),
    }
}

async fn zone(client: &Client, printer: &Printer, command: &ZoneCommand) -> anyhow::Result<()> {
    match command {
        ZoneCommand::Create { name } => printer.zones(&[client.create_zone(name).await?]),
        ZoneCommand::List => printer.zones(&client.zones().await?),
        ZoneCommand::Delete { name } => {
            client.delete_zone(name).await?;
            printer.done(&format!("zone {name} deleted"))
        }
    }
}

async fn data_center(
    client: &Client,
    printer: &Printer,
    command: &DataCenterCommand,
) -> anyhow::Result<()> {
    match command {
        DataCenterCommand::Create { name, zone } => {
            let data_center = DataCenter {
                name: name.clone(),
                zone: zone.clone(),
            };
            printer.data_centers(&[client.create_data_center(&data_center).await?])
        }
        DataCenterCommand::List => printer.data_centers(&client.data_centers().await?),
        DataCenterCommand::Delete { name } => {
            client.delete_data_center(name).await?;
            printer.done(&format!("data center {name} deleted"))
        }
    }
}

fn host_state(state: HostStateArg) -> HostState {
    match state {
        HostStateArg::Up => HostState::Up,
        HostStateArg::Draining => HostState::Draining,
        HostStateArg::Down => HostState::Down,
        HostStateArg::Maintenance => HostState::Maintenance,
    }
}

async fn host(client: &Client, printer: &Printer, command: &HostCommand) -> anyhow::Result<()> {
    match command {
        HostCommand::Register {
            name,
            data_center,
            capacity,
            labels,
            state,
        } => {
            let (Some(cpu_millis), Some(memory_bytes), Some(disk_bytes)) =
                (capacity.cpu, capacity.memory, capacity.disk)
            else {
                bail!("--cpu, --memory and --disk are all needed to register a host");
            };
            let spec = HostSpec {
                name: name.clone(),
                data_center: data_center.clone(),
                capacity: Resources {
                    cpu_millis,
                    memory_bytes,
                    disk_bytes,
                },
                labels: labels.iter().cloned().collect(),
                state: state.map(host_state).unwrap_or_default(),
            };
            printer.host(&client.register_host(&spec).await?)
        }
        HostCommand::List => printer.hosts(&client.hosts().await?),
        HostCommand::Show { name } => printer.host(&client.host(name).await?),
        HostCommand::Update {
            name,
            capacity,
            labels,
            clear_labels,
            state,
        } => {
            let mut patch = HostPatch {
                state: state.map(host_state),
                ..HostPatch::default()
            };
            if capacity.cpu.is_some() || capacity.memory.is_some() || capacity.disk.is_some() {
                let current = client.host(name).await?.host.capacity;
                patch.capacity = Some(override_of(capacity).apply_to(&current));
            }
            if *clear_labels {
                patch.labels = Some(BTreeMap::new());
            } else if !labels.is_empty() {
                patch.labels = Some(labels.iter().cloned().collect());
            }
            if patch == HostPatch::default() {
                bail!(
                    "nothing to change: give --cpu, --memory, --disk, --label, --clear-labels or --state"
                );
            }
            printer.host(&client.update_host(name, &patch).await?)
        }
        HostCommand::Delete { name } => {
            client.delete_host(name).await?;
            printer.done(&format!("host {name} deleted"))
        }
        HostCommand::Drain { name } => printer.drain_status(&client.drain_host(name).await?),
        HostCommand::DrainStatus { name } => {
            printer.drain_status(&client.drain_status(name).await?)
        }
        HostCommand::Heartbeat { name } => {
            let host = client.heartbeat(name).await?;
            printer.done(&format!("host {name} is {}", host.state))
        }
        HostCommand::Desired { name } => printer.desired(&client.desired_instances(name).await?),
    }
}

async fn range(client: &Client, printer: &Printer, command: &RangeCommand) -> anyhow::Result<()> {
    match command {
        RangeCommand::Add {
            cidr,
            data_center,
            gateway,
            reserved,
        } => {
            let range = AddressRange {
                cidr: *cidr,
                data_center: data_center.clone(),
                gateway: *gateway,
                reserved: reserved.iter().copied().collect(),
            };
            printer.ranges(&[client.add_range(&range).await?])
        }
        RangeCommand::List => printer.ranges(&client.ranges().await?),
        RangeCommand::Remove { cidr } => {
            client.remove_range(cidr).await?;
            printer.done(&format!("address range {cidr} removed"))
        }
    }
}

fn instance_id(text: &str) -> anyhow::Result<InstanceId> {
    text.strip_prefix("i-")
        .unwrap_or(text)
        .parse()
        .map(InstanceId)
        .with_context(|| format!("invalid instance id {text:?}: expected i-42 or 42"))
}

async fn lease(client: &Client, printer: &Printer, command: &LeaseCommand) -> anyhow::Result<()> {
    match command {
        LeaseCommand::Show { ip, instance } => {
            let leases = match (ip, instance) {
                (Some(ip), _) => client.lease_of_ip(*ip).await?,
                (None, Some(instance)) => client.lease_of_instance(instance_id(instance)?).await?,
                (None, None) => bail!("give --ip or --instance"),
            };
            printer.leases(&leases)
        }
        LeaseCommand::List => printer.leases(&client.leases().await?),
    }
}

async fn template(
    client: &Client,
    printer: &Printer,
    command: &TemplateCommand,
) -> anyhow::Result<()> {
    match command {
        TemplateCommand::Create { name, fields } => {
            let template = build_template(name, Template::named(name.clone()), fields)?;
            printer.template(&client.create_template(&template).await?)
        }
        TemplateCommand::Update { name, fields } => {
            let current = if fields.from_file.is_some() {
                Template::named(name.clone())
            } else {
                client.template(name).await?.template
            };
            let template = build_template(name, current, fields)?;
            printer.template(&client.replace_template(&template).await?)
        }
        TemplateCommand::List => printer.templates(&client.templates().await?),
        TemplateCommand::Show { name } => printer.template(&client.template(name).await?),
        TemplateCommand::Delete { name } => {
            client.delete_template(name).await?;
            printer.done(&format!("template {name} deleted"))
        }
    }
}

/// `base` (or the file, if given), then every flag given on top.
fn build_template(
    name: &TemplateName,
    base: Template,
    fields: &TemplateArgs,
) -> anyhow::Result<Template> {
    let mut template = match &fields.from_file {
        Some(path) => read_template_file(name, path)?,
        None => base,
    };
    if let Some(extends) = &fields.extends {
        template.extends = Some(extends.clone());
    }
    if let Some(data_center) = &fields.data_center {
        template.data_center = Some(data_center.clone());
    }
    template.resources = override_of(&fields.resources).over(&template.resources);
    let run = &mut template.run;
    if let Some(command) = &fields.command {
        run.command = Some(command.clone());
    }
    if !fields.args.is_empty() {
        run.args = Some(fields.args.clone());
    }
    run.env.extend(fields.env.iter().cloned());
    if let Some(port) = fields.port {
        run.port = Some(port);
    }
    if let Some(image) = &fields.image {
        run.image = Some(image.clone());
    }
    let health_given = fields.health.is_some()
        || fields.health_interval_ms.is_some()
        || fields.health_timeout_ms.is_some()
        || fields.health_rise.is_some()
        || fields.health_fall.is_some()
        || fields.health_warmup_ms.is_some();
    if health_given {
        let health = template.health.get_or_insert_with(HealthOverride::default);
        if let Some(probe) = &fields.health {
            health.probe = Some(parse_probe(probe)?);
        }
        if let Some(interval_ms) = fields.health_interval_ms {
            health.interval_ms = Some(interval_ms);
        }
        if let Some(timeout_ms) = fields.health_timeout_ms {
            health.timeout_ms = Some(timeout_ms);
        }
        if let Some(rise) = fields.health_rise {
            health.rise = Some(rise);
        }
        if let Some(fall) = fields.health_fall {
            health.fall = Some(fall);
        }
        if let Some(warmup_ms) = fields.health_warmup_ms {
            health.warmup_ms = Some(warmup_ms);
        }
    }
    if let Some(port) = fields.frontend_port {
        template.frontend_port = Some(port);
    }
    Ok(template)
}

/// A template file: JSON (`.json`, or text starting with `{`) or TOML, with the API's fields;
/// `name` may be left out (the command's name is used) but must match if present.
fn read_template_file(name: &TemplateName, path: &Path) -> anyhow::Result<Template> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read template file {}", path.display()))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let mut value: serde_json::Value = if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?
    };
    let Some(object) = value.as_object_mut() else {
        bail!(
            "{}: a template is an object (a JSON object or a TOML table)",
            path.display()
        );
    };
    match object.get("name").and_then(serde_json::Value::as_str) {
        Some(named) if named != name.as_str() => {
            bail!(
                "{} names template {named}, the command {name}",
                path.display()
            )
        }
        Some(_) => {}
        None => {
            object.insert("name".to_owned(), name.as_str().into());
        }
    }
    serde_json::from_value(value)
        .with_context(|| format!("{} is not a valid template", path.display()))
}

/// `tcp`, `http:/PATH` or `exec:COMMAND ARGS...`.
fn parse_probe(text: &str) -> anyhow::Result<Probe> {
    if text == "tcp" {
        return Ok(Probe::Tcp);
    }
    if let Some(path) = text.strip_prefix("http:") {
        if !path.starts_with('/') {
            bail!(
                "invalid health check {text:?}: the HTTP path starts with '/', as in http:/healthz"
            );
        }
        return Ok(Probe::Http {
            path: path.to_owned(),
        });
    }
    if let Some(command) = text.strip_prefix("exec:") {
        let command: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        if command.is_empty() {
            bail!("invalid health check {text:?}: exec: needs a command");
        }
        return Ok(Probe::Exec { command });
    }
    bail!("invalid health check {text:?}: expected tcp, http:/PATH or exec:COMMAND ARGS...")
}

fn override_of(args: &CapacityArgs) -> ResourceOverride {
    ResourceOverride {
        cpu_millis: args.cpu,
        memory_bytes: args.memory,
        disk_bytes: args.disk,
    }
}

fn policy(policy: PolicyArg) -> PlacementPolicy {
    match policy {
        PolicyArg::Spread => PlacementPolicy::Spread,
        PolicyArg::Pack => PlacementPolicy::Pack,
    }
}

async fn service(
    client: &Client,
    printer: &Printer,
    command: &ServiceCommand,
) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Create {
            name,
            tenant,
            templates,
            groups,
            resources,
            policy: chosen,
        } => {
            let tenant = match tenant {
                Some(tenant) => tenant.clone(),
                None => own_tenant(client).await?,
            };
            let spec = ServiceSpec {
                name: name.clone(),
                tenant,
                templates: templates.clone(),
                groups: *groups,
                resources: override_of(resources),
                policy: chosen.map(policy).unwrap_or_default(),
            };
            printer.service(&client.create_service(&spec).await?)
        }
        ServiceCommand::Scale { name, groups } => {
            let patch = ServicePatch {
                groups: Some(*groups),
                ..ServicePatch::default()
            };
            printer.service(&client.update_service(name, &patch).await?)
        }
        ServiceCommand::Resize { name, resources } => {
            let resources = override_of(resources);
            if resources == ResourceOverride::default() {
                bail!("nothing to change: give --cpu, --memory or --disk");
            }
            let patch = ServicePatch {
                resources: Some(resources),
                ..ServicePatch::default()
            };
            printer.service(&client.update_service(name, &patch).await?)
        }
        ServiceCommand::Update {
            name,
            templates,
            policy: chosen,
        } => {
            let patch = ServicePatch {
                templates: (!templates.is_empty()).then(|| templates.clone()),
                policy: chosen.map(policy),
                ..ServicePatch::default()
            };
            if patch == ServicePatch::default() {
                bail!("nothing to change: give --templates or --policy");
            }
            printer.service(&client.update_service(name, &patch).await?)
        }
        ServiceCommand::Delete { name } => {
            client.delete_service(name).await?;
            printer.done(&format!("service {name} deleted"))
        }
        ServiceCommand::List => printer.services(&client.services().await?),
        ServiceCommand::Show { name } => printer.service(&client.service(name).await?),
        ServiceCommand::Endpoints { name, watch } => {
            let mut known = client.service_endpoints(name).await?;
            printer.endpoints(name, &known)?;
            if !*watch {
                return Ok(());
            }
            // Until interrupted (or an error: the service deleted, the server gone).
            loop {
                let next = client
                    .service_endpoints_since(name, &known.version, ENDPOINTS_WATCH_WAIT_MS)
                    .await?;
                if next.version != known.version {
                    printer.endpoints(name, &next)?;
                }
                known = next;
            }
        }
        ServiceCommand::Check { name } => {
            let report = client.check_service(name).await?;
            printer.check(&report)?;
            if !report.findings.is_empty() {
                bail!(
                    "service {name} has {} placement problem(s); `caravan service migrate {name}` fixes what a move can fix",
                    report.findings.len()
                );
            }
            Ok(())
        }
        ServiceCommand::Migrate { name, to_host } => {
            printer.migration(&client.migrate_service(name, to_host.as_ref()).await?)
        }
    }
}

/// The tenant of a tenant token; admins must name one.
async fn own_tenant(client: &Client) -> anyhow::Result<TenantName> {
    let whoami = client.whoami().await?;
    let Some(tenant) = whoami.tenant else {
        bail!("--tenant is needed with an admin token: which tenant owns the service?");
    };
    TenantName::new(tenant.as_str()).with_context(|| format!("tenant {tenant} cannot own services"))
}

async fn instance(
    client: &Client,
    printer: &Printer,
    command: &InstanceCommand,
) -> anyhow::Result<()> {
    match command {
        InstanceCommand::Show { id } => printer.instance(&client.instance(instance_id(id)?).await?),
        InstanceCommand::Healthy { id } => {
            let id = instance_id(id)?;
            client.instance_healthy(id).await?;
            printer.done(&format!("instance {id} reported healthy"))
        }
        InstanceCommand::Unhealthy { id } => {
            let id = instance_id(id)?;
            client.instance_unhealthy(id).await?;
            printer.done(&format!("instance {id} reported unhealthy"))
        }
        InstanceCommand::Stopped { id } => {
            let id = instance_id(id)?;
            client.instance_stopped(id).await?;
            printer.done(&format!("instance {id} reported stopped"))
        }
    }
}

async fn capacity(
    client: &Client,
    printer: &Printer,
    command: &CapacityCommand,
) -> anyhow::Result<()> {
    let overrides = override_of(&command.resources);
    let shape = match (&command.service, command.templates.is_empty()) {
        (Some(service), _) => {
            let service = client.service(service).await?.service;
            Some(GroupShape {
                templates: service.members.iter().map(|m| m.template.clone()).collect(),
                resources: overrides.over(&service.resources),
            })
        }
        (None, false) => Some(GroupShape {
            templates: command.templates.clone(),
            resources: overrides,
        }),
        (None, true) if overrides != ResourceOverride::default() => {
            bail!("--cpu, --memory and --disk describe a shape: give --templates or --service too")
        }
        (None, true) => None,
    };
    printer.capacity(&client.capacity(shape.as_ref()).await?)
}

async fn quota(client: &Client, printer: &Printer, command: &QuotaCommand) -> anyhow::Result<()> {
    match command {
        QuotaCommand::Set { tenant, limits } => {
            let (Some(cpu_millis), Some(memory_bytes), Some(disk_bytes)) =
                (limits.cpu, limits.memory, limits.disk)
            else {
                bail!("--cpu, --memory and --disk are all needed for a quota");
            };
            let limits = Resources {
                cpu_millis,
                memory_bytes,
                disk_bytes,
            };
            printer.quotas(&[client.set_quota(tenant, &limits).await?])
        }
        QuotaCommand::List => printer.quotas(&client.quotas().await?),
        QuotaCommand::Remove { tenant } => {
            client.remove_quota(tenant).await?;
            printer.done(&format!("quota of tenant {tenant} removed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_parse() {
        assert_eq!(parse_probe("tcp").unwrap(), Probe::Tcp);
        assert_eq!(
            parse_probe("http:/healthz").unwrap(),
            Probe::Http {
                path: "/healthz".into()
            }
        );
        assert_eq!(
            parse_probe("exec:check --fast").unwrap(),
            Probe::Exec {
                command: vec!["check".into(), "--fast".into()]
            }
        );
        assert!(parse_probe("http:healthz").is_err());
        assert!(parse_probe("udp").is_err());
    }

    #[test]
    fn template_files_fill_in_the_name_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.toml");
        std::fs::write(
            &file,
            "data_center = \"dc1\"\n[resources]\ncpu_millis = 500\n[run]\ncommand = \"/bin/web\"\n",
        )
        .unwrap();
        let name: TemplateName = "web_dc1".parse().unwrap();
        let fields = TemplateArgs {
            from_file: Some(file),
            extends: None,
            data_center: None,
            resources: CapacityArgs {
                cpu: Some(2000),
                memory: None,
                disk: None,
            },
            command: None,
            args: vec!["--port=8080".into()],
            env: vec![],
            port: Some(8080),
            image: None,
            health: Some("http:/healthz".into()),
            health_interval_ms: None,
            health_timeout_ms: None,
            health_rise: None,
            health_fall: None,
            health_warmup_ms: Some(30_000),
            frontend_port: None,
        };
        let template = build_template(&name, Template::named(name.clone()), &fields).unwrap();
        assert_eq!(template.name, name);
        assert_eq!(template.data_center.unwrap().as_str(), "dc1");
        assert_eq!(template.resources.cpu_millis, Some(2000));
        assert_eq!(template.run.command.as_deref(), Some("/bin/web"));
        assert_eq!(template.run.args, Some(vec!["--port=8080".to_owned()]));
        let health = template.health.unwrap();
        assert!(health.probe.is_some());
        assert_eq!(health.warmup_ms, Some(30_000));
    }
}
