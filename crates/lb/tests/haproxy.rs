//! The driver's HAProxy side against a real HAProxy (Debian's `haproxy`, installed by the
//! README's commands): start, Runtime API changes, a reload that keeps the servers' state, and
//! a refused configuration that leaves the running one serving.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use caravan_fleet::{
    DcName, Endpoint, HostName, InstanceId, RegisteredService, ServiceName, TenantName,
};
use caravan_lb::haproxy::{Files, Haproxy, HaproxyError};
use caravan_lb::model::{Assignment, Desired, plan};
use caravan_lb::render::{DEFAULT_TEMPLATE, Renderer, Settings};
use caravan_lb::{runtime, sync};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An HTTP server answering every request with `name`.
async fn backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

async fn get(port: u16) -> String {
    let mut stream = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

/// The names answering `requests` requests through the frontend, sorted and deduplicated.
async fn answering(port: u16, requests: usize) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..requests {
        names.push(get(port).await);
    }
    names.sort();
    names.dedup();
    names
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn service(name: &str, frontend_port: u16, endpoints: &[(u64, u16, bool)]) -> RegisteredService {
    RegisteredService {
        name: ServiceName::new(name).unwrap(),
        tenant: TenantName::new("shop").unwrap(),
        frontend_port: Some(frontend_port),
        endpoints: endpoints
            .iter()
            .map(|&(id, port, draining)| Endpoint {
                instance: InstanceId(id),
                host: HostName::new("dc1-h1").unwrap(),
                data_center: DcName::new("dc1").unwrap(),
                ip: LOCALHOST,
                port: Some(port),
                weight: 100,
                healthy: true,
                draining,
            })
            .collect(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    haproxy: Haproxy,
    settings: Settings,
    renderer: Renderer,
    runtime_socket: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::in_dir(dir.path());
        let settings = Settings::in_dir(dir.path(), LOCALHOST);
        Self {
            runtime_socket: files.runtime_socket.clone(),
            haproxy: Haproxy::managed(PathBuf::from("haproxy"), files),
            settings,
            renderer: Renderer::new(DEFAULT_TEMPLATE.into()).unwrap(),
            _dir: dir,
        }
    }

    async fn apply(&mut self, desired: &Desired) -> Result<(), HaproxyError> {
        let config = self.renderer.render(&self.settings, desired).unwrap();
        self.haproxy.apply(&config).await
    }

    async fn sync(&self, desired: &Desired) -> Vec<String> {
        let state = runtime::send(&self.runtime_socket, "show servers state")
            .await
            .unwrap();
        let found = sync::commands(desired, &sync::parse_servers_state(&state).unwrap());
        assert!(found.missing.is_empty(), "{found:?}");
        runtime::apply(&self.runtime_socket, &found.commands)
            .await
            .unwrap();
        found.commands
    }
}

#[tokio::test]
async fn haproxy_follows_the_desired_state_without_reload_then_reloads_keeping_it() {
    let (a, b) = (backend("a").await, backend("b").await);
    let web_port = free_port();
    let mut lb = Fixture::new();

    let desired = plan(
        &[service("web", web_port, &[(1, a, false)])],
        &Assignment::default(),
        4,
    );
    lb.apply(&desired).await.unwrap();
    assert!(
        lb.sync(&desired).await.is_empty(),
        "the configuration holds the servers"
    );
    assert_eq!(answering(web_port, 4).await, ["a"]);
    let worker = runtime::worker_pid(&lb.runtime_socket).await.unwrap();

    // A second endpoint: Runtime API only, same worker.
    let two = plan(
        &[service("web", web_port, &[(1, a, false), (2, b, false)])],
        &desired.assignment(),
        4,
    );
    assert_eq!(two.layout, desired.layout);
    let commands = lb.sync(&two).await;
    assert_eq!(commands.len(), 3, "address, weight, state: {commands:?}");
    assert_eq!(answering(web_port, 6).await, ["a", "b"]);

    // Draining the first: no new requests reach it.
    let drained = plan(
        &[service("web", web_port, &[(1, a, true), (2, b, false)])],
        &two.assignment(),
        4,
    );
    lb.sync(&drained).await;
    assert_eq!(answering(web_port, 6).await, ["b"]);
    assert_eq!(
        runtime::worker_pid(&lb.runtime_socket).await.unwrap(),
        worker
    );

    // A new service changes the layout: a reload, and the drain survives it.
    let api_port = free_port();
    let grown = plan(
        &[
            service("api", api_port, &[(3, a, false)]),
            service("web", web_port, &[(1, a, true), (2, b, false)]),
        ],
        &drained.assignment(),
        4,
    );
    assert_ne!(grown.layout, drained.layout);
    lb.apply(&grown).await.unwrap();
    assert_ne!(
        runtime::worker_pid(&lb.runtime_socket).await.unwrap(),
        worker,
        "a new worker"
    );
    assert!(
        lb.sync(&grown).await.is_empty(),
        "state kept across the reload"
    );
    assert_eq!(answering(web_port, 6).await, ["b"]);
    assert_eq!(answering(api_port, 2).await, ["a"]);

    // A configuration HAProxy refuses is not applied: the running one keeps serving.
    lb.renderer = Renderer::new(format!(
        "{DEFAULT_TEMPLATE}\nbackend broken\n    nonsense here\n"
    ))
    .unwrap();
    let error = lb.apply(&grown).await.unwrap_err();
    assert!(
        matches!(error, HaproxyError::InvalidConfig { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("nonsense"), "{error}");
    assert_eq!(answering(web_port, 2).await, ["b"]);

    lb.haproxy.stop(Duration::from_secs(5)).await;
    assert!(
        TcpStream::connect(SocketAddr::new(LOCALHOST, web_port))
            .await
            .is_err(),
        "stopped"
    );
}

#[tokio::test]
async fn haproxy_starts_without_any_service() {
    let mut lb = Fixture::new();
    lb.apply(&Desired::default()).await.unwrap();
    assert!(lb.haproxy.is_running());
    lb.haproxy.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_attached_haproxy_is_reloaded_through_its_master_socket() {
    let a = backend("a").await;
    let web_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    // An operator's HAProxy, started by hand in master-worker mode with a master socket.
    std::fs::write(
        &files.config,
        format!(
            "global\n    master-worker\n    stats socket {} mode 600 level admin\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend existing\n    bind 127.0.0.1:{}\n    http-request return status 200\n",
            files.runtime_socket.display(),
            free_port()
        ),
    )
    .unwrap();
    let mut operator = tokio::process::Command::new("haproxy")
        .arg("-W")
        .arg("-S")
        .arg(&files.master_socket)
        .arg("-f")
        .arg(&files.config)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = tokio::time::Instant::now();
    while runtime::worker_pid(&files.runtime_socket).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the operator's HAProxy did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut haproxy = Haproxy::attached(PathBuf::from("haproxy"), files.clone());
    assert!(haproxy.is_running());
    let settings = Settings::in_dir(dir.path(), LOCALHOST);
    let desired = plan(
        &[service("web", web_port, &[(1, a, false)])],
        &Assignment::default(),
        4,
    );
    let config = Renderer::new(DEFAULT_TEMPLATE.into())
        .unwrap()
        .render(&settings, &desired)
        .unwrap();
    haproxy.apply(&config).await.unwrap();
    assert_eq!(answering(web_port, 2).await, ["a"]);
    assert!(
        std::fs::read_to_string(&files.config)
            .unwrap()
            .contains("backend svc_web"),
        "its configuration file is rewritten"
    );
    operator.kill().await.unwrap();
}

#[tokio::test]
async fn haproxy_exports_its_own_prometheus_metrics_when_asked() {
    let a = backend("a").await;
    let (web_port, prometheus_port) = (free_port(), free_port());
    let mut lb = Fixture::new();
    lb.settings.prometheus_listen = Some(SocketAddr::new(LOCALHOST, prometheus_port));
    let desired = plan(
        &[service("web", web_port, &[(1, a, false)])],
        &Assignment::default(),
        4,
    );
    lb.apply(&desired).await.unwrap();
    let mut stream = TcpStream::connect((LOCALHOST, prometheus_port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.contains("haproxy_backend_"), "{response}");
    assert!(response.contains("proxy=\"svc_web\""), "{response}");
    lb.haproxy.stop(Duration::from_secs(5)).await;
}
