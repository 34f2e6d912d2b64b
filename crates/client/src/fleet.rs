//! The fleet endpoints (`/api/v1/fleet/...`): inventory, ranges and leases, templates,
//! services and their endpoints (the service registry), drains, capacity, quotas and the audit
//! log.

use std::net::IpAddr;
use std::time::Duration;

use caravan_api::fleet::{
    CapacityReport, FleetEvent, HostPatch, HostSummary, HostView, LeaseView, MigrateRequest,
    QuotaView, RangeView, RegistryView, ServicePatch, ServiceSummary, ServiceView, TemplateView,
};
use caravan_fleet::{
    AddressRange, CheckReport, Cidr, DataCenter, DcName, DesiredInstance, DrainStatus, GroupShape,
    HealthReport, Host, HostName, HostSpec, Instance, InstanceId, Migration, Resources,
    ServiceEndpoints, ServiceName, ServiceSpec, Template, TemplateName, TenantName, Zone, ZoneName,
};
use reqwest::{Method, StatusCode};

use crate::{Client, ClientError};

/// The answer of a long-polling request for a host's desired instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredAnswer {
    /// The desired instances, changed since the version given (or first asked).
    Changed {
        /// What the host must run or stop.
        desired: Vec<DesiredInstance>,
        /// Their version, to pass to the next request.
        version: Option<String>,
    },
    /// Nothing changed within the wait.
    Unchanged,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events about this service.
    pub service: Option<ServiceName>,
    /// Only events about this host.
    pub host: Option<HostName>,
    /// At most this many (the server's default when `None`).
    pub limit: Option<usize>,
}

impl Client {
    /// Zones.
    pub async fn zones(&self) -> Result<Vec<Zone>, ClientError> {
        self.get("/api/v1/fleet/zones").await
    }

    /// Creates a zone.
    pub async fn create_zone(&self, name: &ZoneName) -> Result<Zone, ClientError> {
        let zone = Zone { name: name.clone() };
        self.send_json(Method::POST, "/api/v1/fleet/zones", &zone)
            .await
    }

    /// Deletes a zone.
    pub async fn delete_zone(&self, name: &ZoneName) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/fleet/zones/{name}")).await
    }

    /// Data centers.
    pub async fn data_centers(&self) -> Result<Vec<DataCenter>, ClientError> {
        self.get("/api/v1/fleet/data-centers").await
    }

    /// Creates a data center in a zone.
    pub async fn create_data_center(
        &self,
        data_center: &DataCenter,
    ) -> Result<DataCenter, ClientError> {
        self.send_json(Method::POST, "/api/v1/fleet/data-centers", data_center)
            .await
    }

    /// Deletes a data center.
    pub async fn delete_data_center(&self, name: &DcName) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/fleet/data-centers/{name}"))
            .await
    }

    /// Hosts with what is allocated on them.
    pub async fn hosts(&self) -> Result<Vec<HostSummary>, ClientError> {
        self.get("/api/v1/fleet/hosts").await
    }

    /// One host and its instances.
    pub async fn host(&self, name: &HostName) -> Result<HostView, ClientError> {
        self.get(&format!("/api/v1/fleet/hosts/{name}")).await
    }

    /// Registers a host.
    pub async fn register_host(&self, spec: &HostSpec) -> Result<HostView, ClientError> {
        self.send_json(Method::POST, "/api/v1/fleet/hosts", spec)
            .await
    }

    /// Changes a host's capacity, labels or state.
    pub async fn update_host(
        &self,
        name: &HostName,
        patch: &HostPatch,
    ) -> Result<HostView, ClientError> {
        self.send_json(Method::PATCH, &format!("/api/v1/fleet/hosts/{name}"), patch)
            .await
    }

    /// Deletes a host.
    pub async fn delete_host(&self, name: &HostName) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/fleet/hosts/{name}")).await
    }

    /// Sends a heartbeat for a host (what its agent does).
    pub async fn heartbeat(&self, name: &HostName) -> Result<Host, ClientError> {
        self.send(self.request(
            Method::POST,
            &format!("/api/v1/fleet/hosts/{name}/heartbeat"),
        ))
        .await
    }

    /// Starts draining a host; answers the drain status.
    pub async fn drain_host(&self, name: &HostName) -> Result<DrainStatus, ClientError> {
        self.send(self.request(Method::POST, &format!("/api/v1/fleet/hosts/{name}/drain")))
            .await
    }

    /// Where the drain of a host is.
    pub async fn drain_status(&self, name: &HostName) -> Result<DrainStatus, ClientError> {
        self.get(&format!("/api/v1/fleet/hosts/{name}/drain")).await
    }

    /// What a host must run or stop.
    pub async fn desired_instances(
        &self,
        name: &HostName,
    ) -> Result<Vec<DesiredInstance>, ClientError> {
        self.get(&format!("/api/v1/fleet/hosts/{name}/desired"))
            .await
    }

    /// What a host must run or stop, long-polling: with the `version` of the last answer, the
    /// server waits up to `wait_ms` (it bounds it to 30 s) for a change and answers
    /// [`DesiredAnswer::Unchanged`] if there is none.
    pub async fn desired_instances_since(
        &self,
        name: &HostName,
        version: Option<&str>,
        wait_ms: u64,
    ) -> Result<DesiredAnswer, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base_url.clone(),
            message: e.to_string(),
        };
        let mut request = self
            .request(Method::GET, &format!("/api/v1/fleet/hosts/{name}/desired"))
            .query(&[("wait_ms", wait_ms)])
            .timeout(crate::REQUEST_TIMEOUT + Duration::from_millis(wait_ms));
        if let Some(version) = version {
            request = request.header(reqwest::header::IF_NONE_MATCH, version);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(DesiredAnswer::Unchanged);
        }
        let version = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(crate::api_error(status, &body));
        }
        let desired =
            serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(DesiredAnswer::Changed { desired, version })
    }

    /// One instance.
    pub async fn instance(&self, id: InstanceId) -> Result<Instance, ClientError> {
        self.get(&format!("/api/v1/fleet/instances/{}", id.0)).await
    }

    /// Reports an instance healthy (what its agent does).
    pub async fn instance_healthy(&self, id: InstanceId) -> Result<(), ClientError> {
        self.send(self.request(
            Method::POST,
            &format!("/api/v1/fleet/instances/{}/healthy", id.0),
        ))
        .await
    }

    /// Reports an instance healthy, listening on `port`: the port its agent gave it, which
    /// the service registry publishes (what its agent does).
    pub async fn instance_healthy_at(&self, id: InstanceId, port: u16) -> Result<(), ClientError> {
        self.instance_health_report(
            id,
            &HealthReport {
                port: Some(port),
                ..HealthReport::default()
            },
        )
        .await
    }

    /// Reports an instance healthy with its port and warm-up weight (each optional): what its
    /// agent does when it becomes healthy and at each step of its warm-up ramp.
    pub async fn instance_health_report(
        &self,
        id: InstanceId,
        report: &HealthReport,
    ) -> Result<(), ClientError> {
        self.send(
            self.request(
                Method::POST,
                &format!("/api/v1/fleet/instances/{}/healthy", id.0),
            )
            .json(report),
        )
        .await
    }

    /// A service's endpoints (the service registry) and their version.
    pub async fn service_endpoints(
        &self,
        name: &ServiceName,
    ) -> Result<ServiceEndpoints, ClientError> {
        self.get(&format!("/api/v1/fleet/services/{name}/endpoints"))
            .await
    }

    /// A service's endpoints, long-polling: the server answers as soon as they differ from
    /// `version` (the version of a previous answer), or after `wait_ms` (it bounds it to 30 s)
    /// with the same version.
    pub async fn service_endpoints_since(
        &self,
        name: &ServiceName,
        version: &str,
        wait_ms: u64,
    ) -> Result<ServiceEndpoints, ClientError> {
        self.send(
            self.request(
                Method::GET,
                &format!("/api/v1/fleet/services/{name}/endpoints"),
            )
            .query(&[("version", version)])
            .query(&[("wait_ms", wait_ms)])
            .timeout(crate::REQUEST_TIMEOUT + Duration::from_millis(wait_ms)),
        )
        .await
    }

    /// The service registry (the services this token may read), long-polling when `since` is
    /// given: the server answers as soon as it differs from that version (of a previous answer),
    /// or after `wait_ms` (it bounds it to 30 s) with the same version.
    pub async fn registry(
        &self,
        since: Option<&str>,
        wait_ms: u64,
    ) -> Result<RegistryView, ClientError> {
        let mut request = self.request(Method::GET, "/api/v1/fleet/registry");
        if let Some(version) = since {
            request = request
                .query(&[("version", version)])
                .query(&[("wait_ms", wait_ms)])
                .timeout(crate::REQUEST_TIMEOUT + Duration::from_millis(wait_ms));
        }
        self.send(request).await
    }

    /// Reports a running instance unhealthy (what its agent does after `fall` failed probes).
    pub async fn instance_unhealthy(&self, id: InstanceId) -> Result<(), ClientError> {
        self.send(self.request(
            Method::POST,
            &format!("/api/v1/fleet/instances/{}/unhealthy", id.0),
        ))
        .await
    }

    /// Reports a stopping instance stopped (what its agent does).
    pub async fn instance_stopped(&self, id: InstanceId) -> Result<(), ClientError> {
        self.send(self.request(
            Method::POST,
            &format!("/api/v1/fleet/instances/{}/stopped", id.0),
        ))
        .await
    }

    /// Address ranges with their usage.
    pub async fn ranges(&self) -> Result<Vec<RangeView>, ClientError> {
        self.get("/api/v1/fleet/ranges").await
    }

    /// Adds an address range.
    pub async fn add_range(&self, range: &AddressRange) -> Result<RangeView, ClientError> {
        self.send_json(Method::POST, "/api/v1/fleet/ranges", range)
            .await
    }

    /// Removes an address range.
    pub async fn remove_range(&self, cidr: &Cidr) -> Result<(), ClientError> {
        self.delete(&format!(
            "/api/v1/fleet/ranges/{}/{}",
            cidr.network(),
            cidr.prefix_len()
        ))
        .await
    }

    /// Who holds an address.
    pub async fn lease_of_ip(&self, ip: IpAddr) -> Result<Vec<LeaseView>, ClientError> {
        self.send(
            self.request(Method::GET, "/api/v1/fleet/leases")
                .query(&[("ip", ip.to_string())]),
        )
        .await
    }

    /// Which address an instance holds.
    pub async fn lease_of_instance(
        &self,
        instance: InstanceId,
    ) -> Result<Vec<LeaseView>, ClientError> {
        self.get(&format!("/api/v1/fleet/leases?instance={}", instance.0))
            .await
    }

    /// Every lease the token may see.
    pub async fn leases(&self) -> Result<Vec<LeaseView>, ClientError> {
        self.get("/api/v1/fleet/leases").await
    }

    /// Templates as stored.
    pub async fn templates(&self) -> Result<Vec<Template>, ClientError> {
        self.get("/api/v1/fleet/templates").await
    }

    /// One template, as stored and resolved.
    pub async fn template(&self, name: &TemplateName) -> Result<TemplateView, ClientError> {
        self.get(&format!("/api/v1/fleet/templates/{name}")).await
    }

    /// Creates a template.
    pub async fn create_template(&self, template: &Template) -> Result<TemplateView, ClientError> {
        self.send_json(Method::POST, "/api/v1/fleet/templates", template)
            .await
    }

    /// Replaces a template.
    pub async fn replace_template(&self, template: &Template) -> Result<TemplateView, ClientError> {
        self.send_json(
            Method::PUT,
            &format!("/api/v1/fleet/templates/{}", template.name),
            template,
        )
        .await
    }

    /// Deletes a template.
    pub async fn delete_template(&self, name: &TemplateName) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/fleet/templates/{name}"))
            .await
    }

    /// Services the token may see.
    pub async fn services(&self) -> Result<Vec<ServiceSummary>, ClientError> {
        self.get("/api/v1/fleet/services").await
    }

    /// One service and its instances by group.
    pub async fn service(&self, name: &ServiceName) -> Result<ServiceView, ClientError> {
        self.get(&format!("/api/v1/fleet/services/{name}")).await
    }

    /// Creates a service and places it.
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceView, ClientError> {
        self.send_json(Method::POST, "/api/v1/fleet/services", spec)
            .await
    }

    /// Scales, resizes or otherwise changes a service.
    pub async fn update_service(
        &self,
        name: &ServiceName,
        patch: &ServicePatch,
    ) -> Result<ServiceView, ClientError> {
        self.send_json(
            Method::PATCH,
            &format!("/api/v1/fleet/services/{name}"),
            patch,
        )
        .await
    }

    /// Deletes a service.
    pub async fn delete_service(&self, name: &ServiceName) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/fleet/services/{name}")).await
    }

    /// A service's placement problems.
    pub async fn check_service(&self, name: &ServiceName) -> Result<CheckReport, ClientError> {
        self.get(&format!("/api/v1/fleet/services/{name}/check"))
            .await
    }

    /// Fixes a service's placement problems, to a host if given.
    pub async fn migrate_service(
        &self,
        name: &ServiceName,
        to_host: Option<&HostName>,
    ) -> Result<Migration, ClientError> {
        let request = MigrateRequest {
            to_host: to_host.cloned(),
        };
        self.send_json(
            Method::POST,
            &format!("/api/v1/fleet/services/{name}/migrate"),
            &request,
        )
        .await
    }

    /// Capacity per zone and data center, and the fit of a shape if given.
    pub async fn capacity(
        &self,
        shape: Option<&GroupShape>,
    ) -> Result<CapacityReport, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(shape) = shape {
            let templates: Vec<&str> = shape.templates.iter().map(TemplateName::as_str).collect();
            query.push(("templates", templates.join(",")));
            let overrides = &shape.resources;
            for (key, value) in [
                ("cpu_millis", overrides.cpu_millis),
                ("memory_bytes", overrides.memory_bytes),
                ("disk_bytes", overrides.disk_bytes),
            ] {
                if let Some(value) = value {
                    query.push((key, value.to_string()));
                }
            }
        }
        self.send(
            self.request(Method::GET, "/api/v1/fleet/capacity")
                .query(&query),
        )
        .await
    }

    /// Quotas and usage the token may see.
    pub async fn quotas(&self) -> Result<Vec<QuotaView>, ClientError> {
        self.get("/api/v1/fleet/quotas").await
    }

    /// Sets a tenant's quota.
    pub async fn set_quota(
        &self,
        tenant: &TenantName,
        limits: &Resources,
    ) -> Result<QuotaView, ClientError> {
        self.send_json(
            Method::PUT,
            &format!("/api/v1/fleet/quotas/{tenant}"),
            limits,
        )
        .await
    }

    /// Removes a tenant's quota.
    pub async fn remove_quota(&self, tenant: &TenantName) -> Result<(), ClientError> {
        self.delete(&format!("/api/v1/fleet/quotas/{tenant}")).await
    }

    /// Audit events, newest first.
    pub async fn fleet_events(&self, query: &EventQuery) -> Result<Vec<FleetEvent>, ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(service) = &query.service {
            params.push(("service", service.to_string()));
        }
        if let Some(host) = &query.host {
            params.push(("host", host.to_string()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        self.send(
            self.request(Method::GET, "/api/v1/fleet/events")
                .query(&params),
        )
        .await
    }
}
