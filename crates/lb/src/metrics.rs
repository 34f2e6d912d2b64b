//! The driver's Prometheus metrics: its own counters, and HAProxy's per backend and server
//! statistics (`show stat`) read at each scrape.

use std::collections::BTreeMap;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The driver's own metrics.
pub struct Metrics {
    registry: Registry,
    /// Configurations applied by starting or reloading HAProxy.
    pub reloads: IntCounter,
    /// Runtime API commands sent.
    pub runtime_commands: IntCounter,
    /// Corrections the periodic reconciliation made (HAProxy differed from the registry).
    pub resync_corrections: IntCounter,
    /// Failures, by kind (`invalid_config`, `haproxy`, `registry`).
    pub errors: IntCounterVec,
    /// From a registry change (the fleet change's time) to HAProxy holding it.
    pub change_applied: Histogram,
}

impl Metrics {
    /// Fresh metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reloads = IntCounter::new(
            "caravan_lb_reloads_total",
            "HAProxy configurations applied by a start or a hitless reload.",
        )?;
        let runtime_commands = IntCounter::new(
            "caravan_lb_runtime_commands_total",
            "Runtime API commands sent to HAProxy (server address, weight, state).",
        )?;
        let resync_corrections = IntCounter::new(
            "caravan_lb_resync_corrections_total",
            "Servers the periodic full reconciliation found differing from the registry.",
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "caravan_lb_errors_total",
                "Failures of the driver, by kind.",
            ),
            &["kind"],
        )?;
        let change_applied = Histogram::with_opts(
            HistogramOpts::new(
                "caravan_lb_change_applied_seconds",
                "Time from a fleet change that changed the registry to HAProxy holding it.",
            )
            .buckets(prometheus::exponential_buckets(0.005, 2.0, 12)?),
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(runtime_commands.clone()))?;
        registry.register(Box::new(resync_corrections.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(change_applied.clone()))?;
        Ok(Self {
            registry,
            reloads,
            runtime_commands,
            resync_corrections,
            errors,
            change_applied,
        })
    }

    /// The text exposition of the driver's metrics and of HAProxy's `show stat` (CSV), whose
    /// servers are labelled with the instance in their slot (`instances`: `backend/server` ->
    /// instance).
    pub fn render(
        &self,
        haproxy_stat: Option<&str>,
        instances: &BTreeMap<String, String>,
    ) -> Result<String, prometheus::Error> {
        let mut families = self.registry.gather();
        if let Some(stat) = haproxy_stat {
            families.extend(haproxy_families(stat, instances)?);
        }
        prometheus::TextEncoder::new().encode_to_string(&families)
    }
}

/// HAProxy's statistics that matter per backend and server: (CSV column, metric, help, is a
/// counter).
const STAT_COLUMNS: &[(&str, &str, &str, bool)] = &[
    ("scur", "sessions_current", "Current sessions.", false),
    (
        "stot",
        "sessions_total",
        "Sessions since HAProxy started.",
        true,
    ),
    (
        "qcur",
        "queued_requests",
        "Requests waiting for a server.",
        false,
    ),
    (
        "econ",
        "connection_errors_total",
        "Failed connections to servers.",
        true,
    ),
    (
        "eresp",
        "response_errors_total",
        "Failed responses from servers.",
        true,
    ),
    (
        "wretr",
        "retries_total",
        "Connection or request retries.",
        true,
    ),
    (
        "wredis",
        "redispatches_total",
        "Requests sent again to another server.",
        true,
    ),
    (
        "hrsp_2xx",
        "http_responses_2xx_total",
        "HTTP responses with a 2xx status.",
        true,
    ),
    (
        "hrsp_5xx",
        "http_responses_5xx_total",
        "HTTP responses with a 5xx status.",
        true,
    ),
    ("weight", "weight", "Effective weight.", false),
];

fn haproxy_families(
    stat: &str,
    instances: &BTreeMap<String, String>,
) -> Result<Vec<prometheus::proto::MetricFamily>, prometheus::Error> {
    let registry = Registry::new();
    let mut lines = stat.lines();
    let Some(header) = lines.next().and_then(|line| line.strip_prefix("# ")) else {
        return Ok(Vec::new());
    };
    let columns: Vec<&str> = header.split(',').collect();
    let at = |name: &str| columns.iter().position(|column| *column == name);
    let mut backend_metrics = Vec::new();
    let mut server_metrics = Vec::new();
    for &(column, name, help, counter) in STAT_COLUMNS {
        let Some(index) = at(column) else { continue };
        let backend = StatMetric::new(
            &registry,
            counter,
            Opts::new(format!("caravan_lb_backend_{name}"), help),
            &["backend"],
        )?;
        let server = StatMetric::new(
            &registry,
            counter,
            Opts::new(format!("caravan_lb_server_{name}"), help),
            &["backend", "server", "instance"],
        )?;
        backend_metrics.push((index, backend));
        server_metrics.push((index, server));
    }
    let up = IntGaugeVec::new(
        Opts::new(
            "caravan_lb_server_up",
            "1 if the server takes traffic (UP), else 0.",
        ),
        &["backend", "server", "instance"],
    )?;
    registry.register(Box::new(up.clone()))?;
    let status = at("status");
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(&proxy), Some(&server)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        if !proxy.starts_with("svc_") || server == "FRONTEND" {
            continue;
        }
        let value = |index: usize| fields.get(index).and_then(|v| v.parse::<i64>().ok());
        if server == "BACKEND" {
            for (index, metric) in &backend_metrics {
                if let Some(value) = value(*index) {
                    metric.set(&[proxy], value);
                }
            }
            continue;
        }
        let instance = instances
            .get(&format!("{proxy}/{server}"))
            .map_or("", String::as_str);
        let labels = [proxy, server, instance];
        for (index, metric) in &server_metrics {
            if let Some(value) = value(*index) {
                metric.set(&labels, value);
            }
        }
        let is_up = status
            .and_then(|index| fields.get(index))
            .is_some_and(|status| status.starts_with("UP") || *status == "no check");
        up.with_label_values(&labels).set(i64::from(is_up));
    }
    Ok(registry.gather())
}

/// One of HAProxy's statistics as a metric family: a counter or a gauge, per label values.
enum StatMetric {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
}

impl StatMetric {
    fn new(
        registry: &Registry,
        counter: bool,
        opts: Opts,
        labels: &[&str],
    ) -> Result<Self, prometheus::Error> {
        let metric = if counter {
            let vec = IntCounterVec::new(opts, labels)?;
            registry.register(Box::new(vec.clone()))?;
            Self::Counter(vec)
        } else {
            let vec = IntGaugeVec::new(opts, labels)?;
            registry.register(Box::new(vec.clone()))?;
            Self::Gauge(vec)
        };
        Ok(metric)
    }

    /// Sets the value for these labels (a counter is fresh at each scrape: it is increased from
    /// zero to HAProxy's value).
    fn set(&self, labels: &[&str], value: i64) {
        match self {
            Self::Counter(vec) => vec
                .with_label_values(labels)
                .inc_by(u64::try_from(value).unwrap_or(0)),
            Self::Gauge(vec) => vec.with_label_values(labels).set(value),
        }
    }
}
