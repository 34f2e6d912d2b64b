//! Printing the fleet: tables for people, the API's JSON for scripts.

use caravan_api::fleet::{
    CapacityReport, FleetEvent, HostSummary, HostView, LeaseView, QuotaView, RangeView,
    ServiceSummary, ServiceView, TemplateView,
};
use caravan_fleet::{
    CheckReport, DataCenter, DesiredAction, DesiredInstance, DrainStatus, DrainStep, Instance,
    InstanceState, Migration, MoveState, Probe, Resource, ResourceOverride, Resources,
    ServiceEndpoints, ServiceName, Template, Zone,
};
use comfy_table::Table;
use comfy_table::presets::UTF8_BORDERS_ONLY;

use super::{Printer, table, timestamp};
use crate::cli::Output;

impl Printer {
    pub fn zones(&self, zones: &[Zone]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(zones);
        }
        let mut table = table(&["ZONE"]);
        for zone in zones {
            table.add_row(vec![zone.name.to_string()]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn data_centers(&self, data_centers: &[DataCenter]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(data_centers);
        }
        let mut table = table(&["DATA CENTER", "ZONE"]);
        for dc in data_centers {
            table.add_row(vec![dc.name.to_string(), dc.zone.to_string()]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn hosts(&self, hosts: &[HostSummary]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(hosts);
        }
        let mut table = table(&[
            "HOST",
            "DATA CENTER",
            "STATE",
            "CPU",
            "MEMORY",
            "DISK",
            "INSTANCES",
            "LAST HEARTBEAT",
        ]);
        for summary in hosts {
            let host = &summary.host;
            let [cpu, memory, disk] = used_of(&summary.allocated, &host.capacity);
            table.add_row(vec![
                host.name.to_string(),
                host.data_center.to_string(),
                host.state.to_string(),
                cpu,
                memory,
                disk,
                summary.instances.to_string(),
                age(host.last_heartbeat_ms),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn host(&self, view: &HostView) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(view);
        }
        let host = &view.host;
        let [cpu, memory, disk] = used_of(&view.allocated, &host.capacity);
        let labels: Vec<String> = host
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        print_fields(&[
            ("host", host.name.to_string()),
            ("data center", host.data_center.to_string()),
            ("state", host.state.to_string()),
            ("cpu (allocated / capacity)", cpu),
            ("memory", memory),
            ("disk", disk),
            ("labels", or_dash(labels.join(", "))),
            ("last heartbeat", age(host.last_heartbeat_ms)),
        ]);
        if !view.instances.is_empty() {
            println!("{}", instance_table(&view.instances, true));
        }
        Ok(())
    }

    pub fn ranges(&self, ranges: &[RangeView]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(ranges);
        }
        let mut table = table(&[
            "RANGE",
            "DATA CENTER",
            "GATEWAY",
            "RESERVED",
            "LEASED",
            "USABLE",
        ]);
        for view in ranges {
            let range = &view.range;
            let reserved: Vec<String> = range.reserved.iter().map(ToString::to_string).collect();
            table.add_row(vec![
                range.cidr.to_string(),
                range.data_center.to_string(),
                range.gateway.map_or("-".to_owned(), |g| g.to_string()),
                or_dash(reserved.join(", ")),
                view.usage.leased.to_string(),
                view.usage.usable.to_string(),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn leases(&self, leases: &[LeaseView]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(leases);
        }
        let mut table = table(&[
            "IP",
            "RANGE",
            "INSTANCE",
            "SERVICE",
            "GROUP",
            "DATA CENTER",
            "HOST",
        ]);
        for lease in leases {
            table.add_row(vec![
                lease.ip.to_string(),
                lease.range.to_string(),
                lease.instance.to_string(),
                lease.service.to_string(),
                lease.group.to_string(),
                lease.data_center.to_string(),
                lease
                    .host
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn templates(&self, templates: &[Template]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(templates);
        }
        let mut table = table(&[
            "TEMPLATE",
            "EXTENDS",
            "DATA CENTER",
            "CPU",
            "MEMORY",
            "DISK",
            "COMMAND",
            "PORT",
        ]);
        for template in templates {
            let [cpu, memory, disk] = overrides(&template.resources);
            table.add_row(vec![
                template.name.to_string(),
                template
                    .extends
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                template
                    .data_center
                    .as_ref()
                    .map_or("-".to_owned(), ToString::to_string),
                cpu,
                memory,
                disk,
                template
                    .run
                    .command
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
                template.run.port.map_or("-".to_owned(), |p| p.to_string()),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn template(&self, view: &TemplateView) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(view);
        }
        let Some(effective) = &view.effective else {
            let stored = &view.template;
            println!(
                "template {} (incomplete: {})",
                stored.name,
                view.incomplete.as_deref().unwrap_or("unknown reason")
            );
            return self.templates(std::slice::from_ref(stored));
        };
        let chain: Vec<String> = effective.chain.iter().map(ToString::to_string).collect();
        let env: Vec<String> = effective
            .run
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let health = effective.health.as_ref().map_or("-".to_owned(), |h| {
            let mut text = format!(
                "{} every {} ms, timeout {} ms, rise {}, fall {}",
                probe(&h.probe),
                h.interval_ms,
                h.timeout_ms,
                h.rise,
                h.fall
            );
            if h.warmup_ms > 0 {
                text.push_str(&format!(", warm-up {} ms", h.warmup_ms));
            }
            text
        });
        print_fields(&[
            ("template", effective.name.to_string()),
            ("chain", chain.join(" -> ")),
            ("data center", effective.data_center.to_string()),
            ("resources", effective.resources.to_string()),
            (
                "command",
                effective
                    .run
                    .command
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            ("args", or_dash(effective.run.args.join(" "))),
            ("env", or_dash(env.join(", "))),
            (
                "port",
                effective.run.port.map_or("-".to_owned(), |p| p.to_string()),
            ),
            (
                "image",
                effective
                    .run
                    .image
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            ("health", health),
            (
                "frontend port",
                effective
                    .frontend_port
                    .map_or("-".to_owned(), |p| p.to_string()),
            ),
        ]);
        Ok(())
    }

    pub fn services(&self, services: &[ServiceSummary]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(services);
        }
        let mut table = table(&[
            "SERVICE",
            "TENANT",
            "TEMPLATES",
            "GROUPS",
            "POLICY",
            "RUNNING",
            "PENDING",
            "DEMAND",
        ]);
        for service in services {
            let templates: Vec<&str> = service.templates.iter().map(|t| t.as_str()).collect();
            table.add_row(vec![
                service.name.to_string(),
                service.tenant.to_string(),
                templates.join(","),
                service.groups.to_string(),
                service.policy.to_string(),
                format!("{}/{}", service.running, service.instances),
                service.pending.to_string(),
                service.demand.to_string(),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn service(&self, view: &ServiceView) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(view);
        }
        let service = &view.service;
        println!(
            "service {} (tenant {}): {} groups, policy {}, demand {}",
            service.name, service.tenant, service.groups, service.policy, view.demand
        );
        let mut members = table(&[
            "MEMBER",
            "TEMPLATE",
            "DATA CENTER",
            "RESOURCES",
            "COMMAND",
            "PORT",
        ]);
        for (index, member) in service.members.iter().enumerate() {
            members.add_row(vec![
                index.to_string(),
                member.template.to_string(),
                member.data_center.to_string(),
                member.resources.to_string(),
                member.run.command.clone().unwrap_or_else(|| "-".to_owned()),
                member.run.port.map_or("-".to_owned(), |p| p.to_string()),
            ]);
        }
        println!("{members}");
        let instances: Vec<Instance> = view
            .groups
            .iter()
            .flat_map(|group| group.instances.iter().cloned())
            .collect();
        if !instances.is_empty() {
            println!("{}", instance_table(&instances, false));
        }
        Ok(())
    }

    pub fn instance(&self, instance: &Instance) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(instance);
        }
        println!("{}", instance_table(std::slice::from_ref(instance), true));
        Ok(())
    }

    pub fn endpoints(
        &self,
        service: &ServiceName,
        answer: &ServiceEndpoints,
    ) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(answer);
        }
        let healthy = answer
            .endpoints
            .iter()
            .filter(|e| e.healthy && !e.draining)
            .count();
        println!(
            "service {service}: {} endpoints, {healthy} healthy and not draining (version {})",
            answer.endpoints.len(),
            answer.version
        );
        let mut table = table(&[
            "INSTANCE",
            "HOST",
            "DATA CENTER",
            "IP",
            "PORT",
            "WEIGHT",
            "HEALTHY",
            "DRAINING",
        ]);
        for endpoint in &answer.endpoints {
            table.add_row(vec![
                endpoint.instance.to_string(),
                endpoint.host.to_string(),
                endpoint.data_center.to_string(),
                endpoint.ip.to_string(),
                endpoint.port.map_or("-".to_owned(), |p| p.to_string()),
                endpoint.weight.to_string(),
                yes_no(endpoint.healthy),
                yes_no(endpoint.draining),
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn check(&self, report: &CheckReport) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(report);
        }
        if report.messages.is_empty() {
            println!("service {}: no placement problems", report.service);
        } else {
            println!(
                "service {}: {} placement problem(s)",
                report.service,
                report.messages.len()
            );
            for message in &report.messages {
                println!("  - {message}");
            }
        }
        Ok(())
    }

    pub fn migration(&self, migration: &Migration) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(migration);
        }
        if migration.moves.is_empty() {
            println!("no move needed");
        } else {
            let mut table = table(&["MOVE", "INSTANCE", "FROM", "REPLACEMENT", "STATE"]);
            for move_ in &migration.moves {
                table.add_row(vec![
                    move_.id.to_string(),
                    move_.instance.to_string(),
                    move_.from_host.to_string(),
                    move_.replacement.map_or("-".to_owned(), |r| r.to_string()),
                    move_state(&move_.state),
                ]);
            }
            println!("{table}");
            println!(
                "each replacement must be reported healthy, then its old instance stopped (the agent does both)"
            );
        }
        for problem in &migration.unfixable {
            println!("not fixable by a move: {problem}");
        }
        Ok(())
    }

    pub fn drain_status(&self, status: &DrainStatus) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(status);
        }
        println!(
            "host {} is {}: {} instance(s) left; next: {}",
            status.host,
            status.state,
            status.remaining_instances,
            drain_step(&status.next)
        );
        if !status.moves.is_empty() {
            let mut table = table(&["MOVE", "INSTANCE", "SERVICE", "REPLACEMENT", "STATE"]);
            for move_ in &status.moves {
                table.add_row(vec![
                    move_.id.to_string(),
                    move_.instance.to_string(),
                    move_.service.to_string(),
                    move_.replacement.map_or("-".to_owned(), |r| r.to_string()),
                    move_state(&move_.state),
                ]);
            }
            println!("{table}");
        }
        Ok(())
    }

    pub fn desired(&self, desired: &[DesiredInstance]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(desired);
        }
        let mut table = table(&[
            "INSTANCE",
            "ACTION",
            "SERVICE",
            "TEMPLATE",
            "IP",
            "RESOURCES",
            "COMMAND",
        ]);
        for instance in desired {
            let mut command = instance
                .run
                .command
                .clone()
                .unwrap_or_else(|| "-".to_owned());
            for arg in &instance.run.args {
                command.push(' ');
                command.push_str(arg);
            }
            table.add_row(vec![
                instance.instance.to_string(),
                match instance.action {
                    DesiredAction::Run => "run".to_owned(),
                    DesiredAction::Stop => "stop".to_owned(),
                },
                instance.service.to_string(),
                instance.template.to_string(),
                instance.ip.map_or("-".to_owned(), |ip| ip.to_string()),
                instance.resources.to_string(),
                command,
            ]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn capacity(&self, report: &CapacityReport) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(report);
        }
        let mut zones = table(&[
            "ZONE / DATA CENTER",
            "HOSTS UP",
            "CPU (free / total)",
            "MEMORY",
            "DISK",
            "ADDRESSES FREE",
        ]);
        for zone in &report.zones {
            let totals = &zone.resources;
            let [cpu, memory, disk] = free_of(&totals.free, &totals.total);
            let hosts_up: usize = zone.data_centers.iter().map(|dc| dc.hosts_up).sum();
            let hosts: usize = zone.data_centers.iter().map(|dc| dc.hosts_total).sum();
            let addresses: u64 = zone
                .data_centers
                .iter()
                .fold(0, |sum, dc| sum.saturating_add(dc.addresses_free));
            zones.add_row(vec![
                zone.zone.to_string(),
                format!("{hosts_up}/{hosts}"),
                cpu,
                memory,
                disk,
                addresses.to_string(),
            ]);
            for dc in &zone.data_centers {
                let totals = &dc.resources;
                let [cpu, memory, disk] = free_of(&totals.free, &totals.total);
                zones.add_row(vec![
                    format!("  {}", dc.data_center),
                    format!("{}/{}", dc.hosts_up, dc.hosts_total),
                    cpu,
                    memory,
                    disk,
                    dc.addresses_free.to_string(),
                ]);
            }
        }
        println!("{zones}");
        if let Some(fit) = &report.fit {
            let bottleneck = fit
                .bottleneck
                .as_ref()
                .map_or(String::new(), |dc| format!(" (bottleneck: {dc})"));
            println!("{} more group(s) of this shape fit{bottleneck}", fit.groups);
            let mut members = table(&[
                "TEMPLATE",
                "DATA CENTER",
                "EACH NEEDS",
                "FIT BY HOSTS",
                "FIT BY ADDRESSES",
            ]);
            for member in &fit.members {
                members.add_row(vec![
                    member.template.to_string(),
                    member.data_center.to_string(),
                    member.resources.to_string(),
                    member.fit_by_hosts.to_string(),
                    member.fit_by_addresses.to_string(),
                ]);
            }
            println!("{members}");
        }
        Ok(())
    }

    pub fn quotas(&self, quotas: &[QuotaView]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(quotas);
        }
        let mut table = table(&["TENANT", "CPU (used / quota)", "MEMORY", "DISK"]);
        for quota in quotas {
            let cells = Resource::ALL.map(|resource| {
                let used = resource.format(quota.usage.get(resource));
                match &quota.limits {
                    Some(limits) => format!("{used} / {}", resource.format(limits.get(resource))),
                    None => format!("{used} / unlimited"),
                }
            });
            let [cpu, memory, disk] = cells;
            table.add_row(vec![quota.tenant.to_string(), cpu, memory, disk]);
        }
        println!("{table}");
        Ok(())
    }

    pub fn fleet_events(&self, events: &[FleetEvent]) -> anyhow::Result<()> {
        if self.format == Output::Json {
            return self.json(events);
        }
        let mut table = table(&["TIME", "KIND", "SERVICE", "HOST", "BY", "WHAT"]);
        for event in events {
            table.add_row(vec![
                timestamp(event.at),
                event.kind.clone(),
                event.service.clone().unwrap_or_else(|| "-".to_owned()),
                event.host.clone().unwrap_or_else(|| "-".to_owned()),
                event.by.clone().unwrap_or_else(|| "server".to_owned()),
                event.message.clone(),
            ]);
        }
        println!("{table}");
        Ok(())
    }
}

/// Instances, one per row; `with_service` adds the service column.
fn instance_table(instances: &[Instance], with_service: bool) -> Table {
    let mut header = vec!["INSTANCE"];
    if with_service {
        header.push("SERVICE");
    }
    header.extend([
        "GROUP",
        "MEMBER",
        "HOST",
        "IP",
        "PORT",
        "STATE",
        "RESOURCES",
    ]);
    let mut table = table(&header);
    for instance in instances {
        let state = match &instance.state {
            InstanceState::Pending { reason } => format!("pending: {reason}"),
            other => other.label().to_owned(),
        };
        let mut row = vec![instance.id.to_string()];
        if with_service {
            row.push(instance.service.to_string());
        }
        row.extend([
            instance.group.to_string(),
            format!("{} ({})", instance.data_center, instance.template),
            instance
                .host
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string),
            instance.ip.map_or("-".to_owned(), |ip| ip.to_string()),
            // The port its agent reported with its health ("-" until then).
            instance
                .port
                .map_or("-".to_owned(), |port| port.to_string()),
            state,
            instance.resources.to_string(),
        ]);
        table.add_row(row);
    }
    table
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

fn print_fields(fields: &[(&str, String)]) {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    for (key, value) in fields {
        table.add_row(vec![(*key).to_owned(), value.clone()]);
    }
    println!("{table}");
}

/// `used / total` per resource.
fn used_of(used: &Resources, total: &Resources) -> [String; 3] {
    Resource::ALL.map(|r| format!("{} / {}", r.format(used.get(r)), r.format(total.get(r))))
}

/// `free / total` per resource.
fn free_of(free: &Resources, total: &Resources) -> [String; 3] {
    used_of(free, total)
}

fn overrides(resources: &ResourceOverride) -> [String; 3] {
    [
        (Resource::Cpu, resources.cpu_millis),
        (Resource::Memory, resources.memory_bytes),
        (Resource::Disk, resources.disk_bytes),
    ]
    .map(|(resource, amount)| amount.map_or("-".to_owned(), |a| resource.format(a)))
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

fn probe(probe: &Probe) -> String {
    match probe {
        Probe::Tcp => "tcp".to_owned(),
        Probe::Http { path } => format!("http:{path}"),
        Probe::Exec { command } => format!("exec:{}", command.join(" ")),
    }
}

fn move_state(state: &MoveState) -> String {
    match state {
        MoveState::Queued => "queued".to_owned(),
        MoveState::Blocked { reason } => format!("blocked: {reason}"),
        MoveState::AwaitingHealthy => "awaiting healthy replacement".to_owned(),
        MoveState::StoppingOld => "stopping old instance".to_owned(),
    }
}

fn drain_step(step: &DrainStep) -> String {
    match step {
        DrainStep::NotDraining => "nothing (not draining)".to_owned(),
        DrainStep::Queued { move_id, instance } => {
            format!("move {move_id} of {instance} starts with the next change")
        }
        DrainStep::Blocked {
            move_id,
            instance,
            reason,
        } => format!("move {move_id} of {instance} is blocked: {reason}"),
        DrainStep::AwaitHealthy {
            move_id,
            replacement,
            replacement_host,
            ..
        } => format!("report {replacement} healthy on {replacement_host} (move {move_id})"),
        DrainStep::AwaitStopped { move_id, instance } => {
            format!("stop {instance} and report it stopped (move {move_id})")
        }
        DrainStep::WaitingForMoves { moves } => {
            let moves: Vec<String> = moves.iter().map(ToString::to_string).collect();
            format!("moves {} must finish first", moves.join(", "))
        }
        DrainStep::Done => "done: the host is empty and can go to maintenance".to_owned(),
    }
}

/// How long ago a time in milliseconds since the Unix epoch was.
fn age(at_ms: u64) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let seconds = now_ms.saturating_sub(at_ms) / 1000;
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86_400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}
