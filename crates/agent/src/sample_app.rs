//! `caravan sample-app`: the built-in sample service for demos and tests. An HTTP server that
//! answers `GET /` with its instance and service, `GET /slow?ms=N` the same after `N`
//! milliseconds (a request in flight, for drain tests), `GET /health` with 200, and prints JSON
//! log lines on standard output, periodically and per request. Some lines carry the key drift
//! real teams produce (`user_id` beside `userId`, `http.status` as a string beside a number),
//! for the common log schema to normalise.
//!
//! It shuts down gracefully (on SIGTERM or SIGINT in `caravan sample-app`): it stops accepting
//! connections, finishes the requests in flight, then exits, so that a drained instance loses
//! no request.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::error::AgentError;

/// Default time between periodic log lines.
pub const LOG_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Longest delay `GET /slow` accepts.
pub const SLOW_MS_MAX: u64 = 60_000;

/// How the sample service runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleAppConfig {
    /// Address to listen on (loopback by default in the command line).
    pub bind: IpAddr,
    /// Port to listen on (`$PORT` from the agent); 0 picks a free one.
    pub port: u16,
    /// The instance it answers as (`$CARAVAN_INSTANCE`).
    pub instance: String,
    /// Its service (`$CARAVAN_SERVICE`).
    pub service: String,
    /// Time between periodic log lines (0: none).
    pub log_interval_ms: u64,
    /// `GET /health` answers 503 from this long after the start on (0: never), to show how an
    /// agent handles an instance that becomes unhealthy.
    pub unhealthy_after_ms: u64,
}

struct AppState {
    config: SampleAppConfig,
    requests: AtomicU64,
    started: std::time::Instant,
}

/// Serves until `shutdown` completes, then lets in-flight requests finish. Prints
/// `sample-app listening on <address>` once listening.
pub async fn run(
    config: SampleAppConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let address = SocketAddr::new(config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| AgentError::Serve {
            address: address.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| AgentError::Serve {
        address: address.to_string(),
        source,
    })?;
    let state = Arc::new(AppState {
        config,
        requests: AtomicU64::new(0),
        started: std::time::Instant::now(),
    });
    log_line(
        &state.config,
        json!({"level": "info", "message": format!("sample-app listening on {local}"), "port": local.port()}),
    );
    let ticker = tokio::spawn(tick(Arc::clone(&state)));
    let app = Router::new()
        .route("/", get(root))
        .route("/slow", get(slow))
        .route("/health", get(health))
        .with_state(Arc::clone(&state));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    ticker.abort();
    log_line(
        &state.config,
        json!({"level": "info", "message": "sample-app stopped"}),
    );
    served.map_err(|source| AgentError::Serve {
        address: local.to_string(),
        source,
    })
}

async fn root(State(state): State<Arc<AppState>>) -> Json<Value> {
    let count = state.requests.fetch_add(1, Ordering::Relaxed);
    // Half the request lines say `http.status` as a string, the other half as a number.
    let http = if count.is_multiple_of(2) {
        json!({"http.status": "200", "http.method": "GET", "url.path": "/"})
    } else {
        json!({"http": {"status": 200, "method": "GET"}, "url": {"path": "/"}})
    };
    let mut line = json!({"level": "info", "message": "request served"});
    merge(&mut line, http);
    log_line(&state.config, line);
    Json(json!({
        "instance": state.config.instance,
        "service": state.config.service,
        "requests": count + 1,
    }))
}

/// The query of `GET /slow`.
#[derive(Debug, serde::Deserialize)]
struct SlowParams {
    /// How long to take, in milliseconds (at most [`SLOW_MS_MAX`]).
    #[serde(default)]
    ms: u64,
}

/// `GET /` after `ms` milliseconds.
async fn slow(
    state: State<Arc<AppState>>,
    axum::extract::Query(params): axum::extract::Query<SlowParams>,
) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(params.ms.min(SLOW_MS_MAX))).await;
    root(state).await
}

async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    let limit_ms = state.config.unhealthy_after_ms;
    if limit_ms > 0 && state.started.elapsed() >= Duration::from_millis(limit_ms) {
        return (StatusCode::SERVICE_UNAVAILABLE, "unhealthy");
    }
    (StatusCode::OK, "ok")
}

/// Prints a line every `log_interval_ms`, alternating `user_id` (a number) and `userId` (a
/// string).
async fn tick(state: Arc<AppState>) {
    if state.config.log_interval_ms == 0 {
        return;
    }
    let mut interval = tokio::time::interval(Duration::from_millis(state.config.log_interval_ms));
    let mut count: u64 = 0;
    loop {
        interval.tick().await;
        count += 1;
        let user = 1_000 + count % 7;
        let line = if count.is_multiple_of(2) {
            json!({"level": "info", "message": "user session refreshed", "user_id": user})
        } else {
            json!({"level": "debug", "message": "user session checked", "userId": user.to_string()})
        };
        log_line(&state.config, line);
    }
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}

/// Prints one JSON line with the time, service and instance.
fn log_line(config: &SampleAppConfig, fields: Value) {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut line = json!({
        "@timestamp": timestamp,
        "service": config.service,
        "instance": config.instance,
    });
    merge(&mut line, fields);
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_with_its_instance_and_stops_on_shutdown() {
        let port = {
            let socket = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
            socket.local_addr().unwrap().port()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(
            SampleAppConfig {
                bind: "127.0.0.1".parse().unwrap(),
                port,
                instance: "i-3".to_owned(),
                service: "web".to_owned(),
                log_interval_ms: 10,
                unhealthy_after_ms: 0,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let probe = |path: &'static str| async move {
            crate::probe::run(
                &caravan_fleet::Probe::Http {
                    path: path.to_owned(),
                },
                port,
                Duration::from_secs(1),
                &std::env::temp_dir(),
                &Default::default(),
            )
            .await
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !probe("/health").await {
            assert!(std::time::Instant::now() < deadline, "not listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(probe("/").await);
        assert!(!probe("/missing").await);
        // A request in flight when the shutdown starts is answered; new connections are
        // refused meanwhile; then the server ends.
        let in_flight = tokio::spawn(get_raw(port, "/slow?ms=600"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "no longer accepting"
        );
        assert!(!server.is_finished(), "a request is in flight");
        let answer = in_flight.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""instance":"i-3""#), "{answer}");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    /// `GET path` on a fresh connection; the whole answer.
    async fn get_raw(port: u16, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }
}
