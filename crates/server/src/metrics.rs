//! Prometheus metrics: HTTP requests per route and status, plus the standard process metrics.
//!
//! Labels stay low-cardinality: the route is the matched path template (`/api/v1/tenants/{name}`),
//! never the raw path; requests that match no route share the route `unmatched`. Capabilities
//! register their own series in [`Metrics::registry`].

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::AppState;

/// The route label of requests that matched no route.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";
const REQUEST_LABELS: [&str; 3] = ["method", "route", "status"];

/// The server's metric registry and the handles to update it.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
}

/// Why the metrics could not be set up or encoded.
pub(crate) type MetricsError = prometheus::Error;

impl Metrics {
    pub(crate) fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "caravan_http_requests_total",
                "HTTP requests served, by method, route and status.",
            ),
            &REQUEST_LABELS,
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "caravan_http_request_duration_seconds",
                "Time to serve HTTP requests, by method, route and status.",
            )
            // 0.5 ms to about 16 s.
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
            &REQUEST_LABELS,
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            requests,
            request_duration,
        })
    }

    /// The registry, for capabilities to register their own series.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn observe(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method.as_str(), route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.request_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// The text exposition (format 0.0.4) of every metric.
    pub(crate) fn encode(&self) -> Result<String, MetricsError> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

/// Middleware recording every routed request.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    state.metrics().observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_requests_and_process_metrics() {
        let metrics = Metrics::new().unwrap();
        metrics.observe(&Method::GET, "/api/v1/tenants", 200, 0.003);
        let text = metrics.encode().unwrap();
        assert!(text.contains(
            r#"caravan_http_requests_total{method="GET",route="/api/v1/tenants",status="200"} 1"#
        ));
        assert!(text.contains("caravan_http_request_duration_seconds_bucket"));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"));
    }
}
