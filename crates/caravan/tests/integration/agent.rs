//! The agent end to end: a real server and four real `caravan agent` processes on loopback
//! (two data centers of two hosts), running `caravan sample-app` instances. Deploy, a server
//! restart under running instances, scale up and down, an instance crash, the loss of a host (its
//! instances rescheduled and started by another agent, timed), agent restarts that never
//! duplicate an instance, an instance turning unhealthy, a service deleted, an agent stopped; the
//! service registry throughout (its endpoints, its watch and how fast it learns of a change).
//! And the long poll of desired instances.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{TestServer, caravan_bin, terminate_child};

/// Time without heartbeat after which the server declares a host down.
const HEARTBEAT_TIMEOUT_MS: u64 = 3_000;
/// Agents' heartbeat interval.
const AGENT_HEARTBEAT_MS: u64 = 200;
/// Agents' drain delay (between the decision to stop a healthy instance and its SIGTERM).
pub(crate) const DRAIN_DELAY_MS: u64 = 300;
/// Longest wait for anything the test expects.
const WAIT: Duration = Duration::from_secs(20);

/// `instance.json`, as the agent's process driver writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) pid: i32,
    pub(crate) port: u16,
}

/// A `caravan agent` process; killed (with what it runs) when dropped, also on panic.
pub(crate) struct Agent {
    child: Option<Child>,
    pub(crate) name: String,
    data_center: String,
    work_dir: PathBuf,
    ports: String,
    server_url: String,
    token: String,
    log: PathBuf,
    /// More arguments of `caravan agent`.
    extra: Vec<String>,
}

impl Agent {
    pub(crate) fn start(
        server_url: &str,
        token: &str,
        root: &Path,
        name: &str,
        data_center: &str,
        ports: (u16, u16),
    ) -> Agent {
        Self::start_with(server_url, token, root, name, data_center, ports, &[])
    }

    /// [`Agent::start`] with more arguments of `caravan agent`.
    pub(crate) fn start_with(
        server_url: &str,
        token: &str,
        root: &Path,
        name: &str,
        data_center: &str,
        ports: (u16, u16),
        extra: &[&str],
    ) -> Agent {
        let mut agent = Agent {
            child: None,
            name: name.to_owned(),
            data_center: data_center.to_owned(),
            work_dir: root.join(name),
            ports: format!("{}-{}", ports.0, ports.1),
            server_url: server_url.to_owned(),
            token: token.to_owned(),
            log: root.join(format!("{name}.log")),
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
        };
        agent.spawn();
        agent
    }

    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let heartbeat_ms = AGENT_HEARTBEAT_MS.to_string();
        let child = Command::new(caravan_bin())
            .args([
                "--server",
                &self.server_url,
                "--token",
                &self.token,
                "agent",
            ])
            .args([
                "--host-name",
                &self.name,
                "--data-center",
                &self.data_center,
            ])
            .args(["--cpu", "2", "--memory-mib", "4096", "--disk-gib", "20"])
            .args(["--port-range", &self.ports, "--heartbeat-ms", &heartbeat_ms])
            .args(["--stop-grace-ms", "2000", "--drain-delay-ms"])
            .arg(DRAIN_DELAY_MS.to_string())
            .arg("--work-dir")
            .arg(&self.work_dir)
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .env_remove("CARAVAN_TOKEN")
            .env_remove("CARAVAN_SERVER")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn caravan agent");
        self.child = Some(child);
    }

    /// Sends SIGTERM and waits (at most 10 s) for the agent to exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        terminate_child(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("agent {} did not stop within 10 s", self.name))
    }

    /// Kills the agent with SIGKILL, as a crash would; its instances keep running.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Its instances' records (`i-N` -> pid and port) that name a live process.
    pub(crate) fn records(&self) -> BTreeMap<String, Record> {
        let mut records = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.work_dir.join("instances")) else {
            return records;
        };
        for entry in entries.flatten() {
            let Ok(body) = std::fs::read(entry.path().join("instance.json")) else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<Value>(&body) else {
                continue;
            };
            let pid = record["pid"].as_i64().unwrap() as i32;
            if alive(pid) {
                records.insert(
                    record["instance"].as_str().unwrap().to_owned(),
                    Record {
                        pid,
                        port: record["port"].as_u64().unwrap() as u16,
                    },
                );
            }
        }
        records
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the agent stops its instances; SIGKILL if it takes too long.
            terminate_child(&mut child, Duration::from_secs(5));
        }
        // Whatever is left (the instances of a killed agent) goes too.
        for record in self.records().values() {
            // SAFETY: killpg(2) on a process group the agent created for an instance; the
            // record's pid was checked alive and is an instance of this test.
            unsafe { libc::killpg(record.pid, libc::SIGKILL) };
        }
    }
}

/// A TCP forwarder on a fixed loopback port to a server whose port changes when it restarts.
/// While the target is down, connections are accepted and closed at once.
struct Proxy {
    address: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    stopping: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target_url: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(url_address(target_url)));
        let stopping = Arc::new(AtomicBool::new(false));
        let (accept_target, accept_stopping) = (Arc::clone(&target), Arc::clone(&stopping));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stopping.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                let upstream_address = *accept_target.lock().unwrap();
                let Ok(upstream) = TcpStream::connect(upstream_address) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            address,
            target,
            stopping,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn set_target(&self, target_url: &str) {
        *self.target.lock().unwrap() = url_address(target_url);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wakes the accepting thread up so that it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

fn url_address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Whether `pid` is a live process (a zombie counts as dead).
pub(crate) fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls `check` every 50 ms until it answers `Some`, at most [`WAIT`].
pub(crate) fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET http://127.0.0.1:{port}/` of a sample app, if it answers.
pub(crate) fn sample_get(port: u16) -> Option<Value> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let response = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().ok()
}

/// A service's instances: `(id "i-N", data center, host, state)`, by id.
fn instances(
    server: &TestServer,
    admin: &str,
    service: &str,
) -> Vec<(String, String, String, String)> {
    let (status, view) = server.call(
        "GET",
        &format!("/api/v1/fleet/services/{service}"),
        Some(admin),
        None,
    );
    assert_eq!(status, 200, "{view}");
    let mut instances: Vec<_> = view["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["instances"].as_array().unwrap().clone())
        .map(|instance| {
            (
                format!("i-{}", instance["id"]),
                instance["data_center"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                instance["host"].as_str().unwrap_or_default().to_owned(),
                instance["state"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    instances.sort();
    instances
}

/// Waits until the service has exactly `count` instances, all running, each answering on
/// its agent's port as itself; answers instance -> (host, record).
fn wait_serving(
    server: &TestServer,
    admin: &str,
    agents: &[&Agent],
    count: usize,
) -> BTreeMap<String, (String, Record)> {
    wait_for(&format!("{count} healthy instances serving"), || {
        let listed = instances(server, admin, "web");
        if listed.len() != count || listed.iter().any(|i| i.3 != "running") {
            return None;
        }
        let mut serving = BTreeMap::new();
        for (id, _, host, _) in &listed {
            let agent = agents.iter().find(|a| &a.name == host)?;
            let record = agent.records().remove(id)?;
            let answer = sample_get(record.port)?;
            assert_eq!(answer["instance"], json!(id), "{answer}");
            assert_eq!(answer["service"], "web", "{answer}");
            serving.insert(id.clone(), (host.clone(), record));
        }
        // Every agent runs exactly what the server placed on it, nothing more.
        let running: usize = agents.iter().map(|a| a.records().len()).sum();
        (running == count).then_some(serving)
    })
}

/// `GET /api/v1/fleet/services/{service}/endpoints` (the service registry), long-polling from
/// `since` (version, wait_ms) if given: status, body, and when the answer arrived.
pub(crate) fn endpoints(
    url: &str,
    token: &str,
    service: &str,
    since: Option<(&str, u64)>,
) -> (u16, Value, Instant) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let mut address = format!("{url}/api/v1/fleet/services/{service}/endpoints");
    if let Some((version, wait_ms)) = since {
        address.push_str(&format!("?version={version}&wait_ms={wait_ms}"));
    }
    let response = client.get(address).bearer_auth(token).send().unwrap();
    let status = response.status().as_u16();
    let body = response.json().unwrap_or(Value::Null);
    (status, body, Instant::now())
}

/// `caravan service endpoints SERVICE --watch`, its standard output collected; killed when
/// dropped.
struct CliWatch {
    child: Option<Child>,
    output: Arc<Mutex<String>>,
}

impl CliWatch {
    fn start(url: &str, token: &str, service: &str) -> CliWatch {
        let mut child = Command::new(caravan_bin())
            .args(["--server", url, "--token", token])
            .args(["service", "endpoints", service, "--watch"])
            .env_remove("CARAVAN_TOKEN")
            .env_remove("CARAVAN_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn caravan service endpoints --watch");
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = std::io::Read::read(&mut stdout, &mut buffer) {
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        CliWatch {
            child: Some(child),
            output,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for CliWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The instance id of an endpoint, as `i-N`.
fn endpoint_id(endpoint: &Value) -> String {
    format!("i-{}", endpoint["instance"])
}

/// Whether the registry of `web` lists exactly the serving instances: on their hosts and data
/// centers, with addresses of their data center's range, on the ports that answer, healthy, not
/// draining, full weight. Answers the registry's answer, or what differs.
fn registry_matches(
    server: &TestServer,
    admin: &str,
    serving: &BTreeMap<String, (String, Record)>,
) -> Result<Value, String> {
    let (status, answer, _) = endpoints(&server.url, admin, "web", None);
    if status != 200 {
        return Err(format!("{status} {answer}"));
    }
    let listed = answer["endpoints"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = listed.iter().map(endpoint_id).collect();
    if ids != serving.keys().cloned().collect::<Vec<_>>() {
        return Err(format!("endpoints {ids:?}, serving {:?}", serving.keys()));
    }
    for endpoint in &listed {
        let id = endpoint_id(endpoint);
        let (host, record) = &serving[&id];
        let data_center = &host[..3];
        let range = format!("10.{}.0.", &data_center[2..]);
        let expected = (
            json!(host),
            json!(data_center),
            json!(record.port),
            json!(true),
            json!(false),
            json!(100),
        );
        let actual = (
            endpoint["host"].clone(),
            endpoint["data_center"].clone(),
            endpoint["port"].clone(),
            endpoint["healthy"].clone(),
            endpoint["draining"].clone(),
            endpoint["weight"].clone(),
        );
        if actual != expected
            || !endpoint["ip"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&range)
        {
            return Err(format!(
                "{id}: {endpoint}, expected {expected:?} in {range}*"
            ));
        }
        match sample_get(record.port) {
            Some(answer) if answer["instance"] == json!(id) => {}
            other => return Err(format!("{id} on port {}: {other:?}", record.port)),
        }
    }
    Ok(answer)
}

/// Waits (at most [`WAIT`]) until [`registry_matches`]; the registry may lag a process by one
/// agent round (its healthy report).
fn wait_registry(
    server: &TestServer,
    admin: &str,
    serving: &BTreeMap<String, (String, Record)>,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        match registry_matches(server, admin, serving) {
            Ok(answer) => return answer,
            Err(why) if Instant::now() >= deadline => panic!("registry: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A server in `root` that declares a host down after [`HEARTBEAT_TIMEOUT_MS`] without a
/// heartbeat, checking every 50 ms.
pub(crate) fn fast_host_loss_server(root: &Path) -> TestServer {
    let config = root.join("caravan.toml");
    std::fs::write(
        &config,
        format!(
            "[fleet]\nheartbeat_timeout_ms = {HEARTBEAT_TIMEOUT_MS}\ndown_check_interval_ms = 50\n"
        ),
    )
    .unwrap();
    TestServer::start_in(&root.join("data"), &["--config", config.to_str().unwrap()])
}

/// A template (`name`) running `caravan sample-app` on `$PORT`, checked over HTTP every 100 ms
/// (rise 2, fall 3), with 0.1 CPU, 64 MiB and 1 GiB; `extra`'s keys added or replaced.
pub(crate) fn sample_app_template(name: &str, extra: Value) -> Value {
    let mut template = json!({
        "name": name,
        "resources": {"cpu_millis": 100, "memory_bytes": 64 << 20, "disk_bytes": 1 << 30},
        "run": {
            "command": format!("exec '{}' sample-app", caravan_bin()),
            "args": ["--log-interval-ms", "1000"],
            // Required by the fleet for an http check; the process driver gives each
            // instance a port of its agent's range instead (`$PORT`), and probes that one.
            "port": 8080
        },
        "health": {"probe": {"kind": "http", "path": "/health"},
            "interval_ms": 100, "timeout_ms": 100, "rise": 2, "fall": 3}
    });
    if let (Some(template), Value::Object(extra)) = (template.as_object_mut(), extra) {
        template.extend(extra);
    }
    template
}

/// Zone `production` with data centers `dc1` and `dc2` (ranges 10.1.0.0/24 and 10.2.0.0/24),
/// the template `base` (named `app_base`), and `app_dc1`/`app_dc2` extending it in each.
pub(crate) fn two_data_centers(server: &TestServer, admin: &str, base: Value) {
    ok(
        server,
        admin,
        "POST",
        "/api/v1/fleet/zones",
        json!({"name": "production"}),
    );
    ok(server, admin, "POST", "/api/v1/fleet/templates", base);
    for (index, dc) in ["dc1", "dc2"].iter().enumerate() {
        ok(
            server,
            admin,
            "POST",
            "/api/v1/fleet/data-centers",
            json!({"name": dc, "zone": "production"}),
        );
        ok(
            server,
            admin,
            "POST",
            "/api/v1/fleet/ranges",
            json!({"cidr": format!("10.{}.0.0/24", index + 1), "data_center": dc}),
        );
        ok(
            server,
            admin,
            "POST",
            "/api/v1/fleet/templates",
            json!({"name": format!("app_{dc}"), "extends": "app_base", "data_center": dc}),
        );
    }
}

/// Zone `production` with data center `dc1` (addresses from `cidr`) and the template `template`.
pub(crate) fn one_data_center(server: &TestServer, admin: &str, cidr: &str, template: Value) {
    ok(
        server,
        admin,
        "POST",
        "/api/v1/fleet/zones",
        json!({"name": "production"}),
    );
    ok(
        server,
        admin,
        "POST",
        "/api/v1/fleet/data-centers",
        json!({"name": "dc1", "zone": "production"}),
    );
    ok(
        server,
        admin,
        "POST",
        "/api/v1/fleet/ranges",
        json!({"cidr": cidr, "data_center": "dc1"}),
    );
    ok(server, admin, "POST", "/api/v1/fleet/templates", template);
}

/// Four agents, hosts `dc1-h1`, `dc1-h2`, `dc2-h1`, `dc2-h2`, with 20 ports each from `base`,
/// talking to `server_url` (the server's, or a forwarder's) with the token `token_of` gives
/// each host; waits (reading with `admin`) until the four hosts are up.
pub(crate) fn four_agents(
    server: &TestServer,
    server_url: &str,
    admin: &str,
    token_of: impl Fn(&str) -> String,
    root: &Path,
    base: u16,
    extra: &[&str],
) -> Vec<Agent> {
    let hosts = [
        ("dc1-h1", "dc1"),
        ("dc1-h2", "dc1"),
        ("dc2-h1", "dc2"),
        ("dc2-h2", "dc2"),
    ];
    let agents = hosts
        .iter()
        .enumerate()
        .map(|(index, (name, dc))| {
            let first = base + index as u16 * 20;
            Agent::start_with(
                server_url,
                &token_of(name),
                root,
                name,
                dc,
                (first, first + 19),
                extra,
            )
        })
        .collect();
    wait_for("four hosts registered and up", || {
        let (_, hosts) = server.call("GET", "/api/v1/fleet/hosts", Some(admin), None);
        let up = hosts
            .as_array()?
            .iter()
            .filter(|h| h["host"]["state"] == "up")
            .count();
        (up == 4).then_some(())
    });
    agents
}

pub(crate) fn ok(server: &TestServer, admin: &str, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = server.call(method, path, Some(admin), Some(body));
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

#[test]
fn agents_run_scale_restart_and_reschedule_sample_apps() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = fast_host_loss_server(dir.path());
    let admin = server.admin_token();
    // Agents reach the server through a forwarder whose port outlives server restarts.
    let proxy = Proxy::start(&server.url);

    // Inventory: two data centers, a template running the sample app, checked over HTTP.
    two_data_centers(&server, &admin, sample_app_template("app_base", json!({})));
    server.create_tenant("payments");

    // Four agents with port ranges of their own (offset by the test's pid, to stay clear of
    // other test runs; an agent skips ports it cannot bind anyway).
    let base = 20_000 + (std::process::id() % 200) as u16 * 100;
    let admin_token = |_: &str| admin.clone();
    let mut agents = four_agents(
        &server,
        &proxy.url(),
        &admin,
        admin_token,
        dir.path(),
        base,
        &[],
    );
    let (_, host) = server.call("GET", "/api/v1/fleet/hosts/dc1-h1", Some(&admin), None);
    assert_eq!(
        host["host"]["capacity"],
        json!({"cpu_millis": 2000, "memory_bytes": 4096u64 << 20, "disk_bytes": 20u64 << 30})
    );

    // Deploy: one group, a member per data center, each started, healthy and serving.
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/services",
        json!({"name": "web", "tenant": "payments", "templates": ["app_dc1", "app_dc2"], "groups": 1}),
    );
    let serving = wait_serving(&server, &admin, &agents.iter().collect::<Vec<_>>(), 2);
    let first_ids: Vec<String> = serving.keys().cloned().collect();

    // The registry lists both, where they run, on the ports that answer, healthy; for the
    // owner tenant's `fleet:read` tokens (another tenant's get 404), and in the CLI.
    let registry = wait_registry(&server, &admin, &serving);
    server.create_tenant("other");
    for (tenant, expected) in [("payments", 200), ("other", 404)] {
        let token = server.create_token(json!({"name": format!("{tenant} reader"),
            "kind": "tenant", "tenant": tenant, "scopes": ["fleet:read"]}));
        let (status, answer, _) = endpoints(&server.url, &token, "web", None);
        assert_eq!(status, expected, "{tenant}: {answer}");
        if status == 200 {
            assert_eq!(answer, registry);
        }
    }
    let table =
        crate::harness::stdout_ok(&server.cli(Some(&admin), &["service", "endpoints", "web"]));
    for (id, (host, record)) in &serving {
        assert!(
            table.contains(id.as_str()) && table.contains(host.as_str()),
            "{table}"
        );
        assert!(table.contains(&record.port.to_string()), "{table}");
    }
    // `service show` has each instance's port too.
    let shown = crate::harness::stdout_ok(&server.cli(Some(&admin), &["service", "show", "web"]));
    assert!(shown.contains("PORT"), "{shown}");
    for (id, (_, record)) in &serving {
        let row = shown
            .lines()
            .find(|line| line.contains(&format!(" {id} ")))
            .unwrap_or_else(|| panic!("{id} in {shown}"));
        assert!(row.contains(&format!(" {} ", record.port)), "{row}");
    }

    // The server restarts: the instances keep running through the outage, the agents notice,
    // reconnect and heartbeat again, and nothing is restarted or moved.
    assert!(server.terminate().success());
    for (id, (_, record)) in &serving {
        assert_eq!(sample_get(record.port).unwrap()["instance"], json!(id));
    }
    wait_for("every agent noticing the outage", || {
        agents
            .iter()
            .all(|a| a.log().contains("server round failed"))
            .then_some(())
    });
    server = fast_host_loss_server(dir.path());
    proxy.set_target(&server.url);
    wait_for("every agent reconnected", || {
        agents
            .iter()
            .all(|a| a.log().matches("connected to the server").count() >= 2)
            .then_some(())
    });
    let after_restart = wait_serving(&server, &admin, &agents.iter().collect::<Vec<_>>(), 2);
    assert_eq!(after_restart, serving, "same instances, same processes");
    // The ports were persisted with the instances.
    assert_eq!(
        registry_matches(&server, &admin, &serving).unwrap()["endpoints"],
        registry["endpoints"]
    );

    // A watch without change answers the same version once its wait is over (heartbeats keep
    // changing the fleet meanwhile, not the endpoints)...
    let version = registry["version"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let (status, same, _) = endpoints(&server.url, &admin, "web", Some((&version, 300)));
    assert_eq!((status, &same["version"]), (200, &registry["version"]));
    assert!(started.elapsed() >= Duration::from_millis(300));
    // ... and a change (the scale-up below) wakes a waiting watch at once; the CLI's watch
    // prints the table again.
    let mut cli_watch = CliWatch::start(&server.url, &admin, "web");
    wait_for("the CLI watch's first table", || {
        cli_watch.output().contains("2 endpoints").then_some(())
    });
    let watcher = {
        let (url, admin, version) = (server.url.clone(), admin.clone(), version.clone());
        std::thread::spawn(move || endpoints(&url, &admin, "web", Some((&version, 20_000))))
    };
    std::thread::sleep(Duration::from_millis(200));
    let changed_at = Instant::now();

    // Scale up to two groups, then back down to one: the removed instances' processes end.
    ok(
        &server,
        &admin,
        "PATCH",
        "/api/v1/fleet/services/web",
        json!({"groups": 2}),
    );
    let (status, changed, answered_at) = watcher.join().unwrap();
    let latency = answered_at.saturating_duration_since(changed_at);
    println!("registry watch: a scale-up reached a waiting watcher {latency:?} after the request");
    assert_eq!(status, 200, "{changed}");
    assert_ne!(changed["version"], registry["version"]);
    let listed = changed["endpoints"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "{changed}");
    let new_ones: Vec<&Value> = listed
        .iter()
        .filter(|e| !serving.contains_key(&endpoint_id(e)))
        .collect();
    assert_eq!(new_ones.len(), 2, "{changed}");
    assert!(new_ones.iter().all(|e| e["healthy"] == false), "{changed}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    let scaled = wait_serving(&server, &admin, &agents.iter().collect::<Vec<_>>(), 4);
    wait_registry(&server, &admin, &scaled);
    wait_for("the CLI watch showing the scale-up", || {
        cli_watch
            .output()
            .contains("4 endpoints, 4 healthy")
            .then_some(())
    });
    cli_watch.stop();
    ok(
        &server,
        &admin,
        "PATCH",
        "/api/v1/fleet/services/web",
        json!({"groups": 1}),
    );
    let serving = wait_serving(&server, &admin, &agents.iter().collect::<Vec<_>>(), 2);
    assert_eq!(serving.keys().cloned().collect::<Vec<_>>(), first_ids);
    for (id, (_, record)) in &scaled {
        if !serving.contains_key(id) {
            wait_for(&format!("{id} stopped after the scale-down"), || {
                (!alive(record.pid)).then_some(())
            });
        }
    }

    // Crash: kill an instance's process; its agent starts it again, same instance, same port.
    let (crashed, (crashed_host, crashed_record)) = serving
        .iter()
        .find(|(_, (host, _))| host.starts_with("dc2"))
        .map(|(id, v)| (id.clone(), v.clone()))
        .unwrap();
    // SAFETY: kill(2) on the pid of an instance this test deployed.
    unsafe { libc::kill(crashed_record.pid, libc::SIGKILL) };
    let agent = agents.iter().find(|a| a.name == crashed_host).unwrap();
    let restarted = wait_for("the crashed instance restarted", || {
        let record = agent.records().remove(&crashed)?;
        (record.pid != crashed_record.pid && sample_get(record.port).is_some()).then_some(record)
    });
    assert_eq!(restarted.port, crashed_record.port);
    assert!(agent.log().contains("instance exited"), "{}", agent.log());

    // Host loss: kill -9 the agent running the dc1 member; after the heartbeat timeout its
    // instance is rescheduled on the other dc1 host and started by that agent.
    let (lost, (lost_host, lost_record)) = serving
        .iter()
        .find(|(_, (host, _))| host.starts_with("dc1"))
        .map(|(id, v)| (id.clone(), v.clone()))
        .unwrap();
    let lost_index = agents.iter().position(|a| a.name == lost_host).unwrap();
    let before_loss = wait_registry(&server, &admin, &serving);
    let killed_at = Instant::now();
    agents[lost_index].kill9();
    // A consumer watching the registry: the lost endpoint goes, a healthy replacement in the
    // same data center comes.
    let registry_watch = {
        let (url, admin) = (server.url.clone(), admin.clone());
        let (lost, lost_host) = (lost.clone(), lost_host.clone());
        let mut version = before_loss["version"].as_str().unwrap().to_owned();
        std::thread::spawn(move || {
            let mut gone = None;
            loop {
                let (status, answer, _) = endpoints(&url, &admin, "web", Some((&version, 5_000)));
                assert_eq!(status, 200, "{answer}");
                let listed = answer["endpoints"].as_array().unwrap().clone();
                if gone.is_none() && !listed.iter().any(|e| endpoint_id(e) == lost) {
                    gone = Some(killed_at.elapsed());
                }
                let replacement = listed.iter().find(|e| {
                    e["data_center"] == "dc1"
                        && e["host"] != json!(lost_host)
                        && e["healthy"] == true
                });
                if let (Some(gone), Some(replacement)) = (gone, replacement) {
                    return (gone, killed_at.elapsed(), replacement.clone());
                }
                assert!(
                    killed_at.elapsed() < WAIT,
                    "registry after the loss: {answer}"
                );
                version = answer["version"].as_str().unwrap().to_owned();
            }
        })
    };
    let replacement = wait_for("a healthy replacement of the lost instance", || {
        instances(&server, &admin, "web")
            .into_iter()
            .find(|(id, dc, host, state)| {
                dc == "dc1" && id != &lost && host != &lost_host && state == "running"
            })
    });
    let replaced_ms = killed_at.elapsed().as_millis();
    println!(
        "host loss: {lost_host} killed, replacement {} healthy on {} after {replaced_ms} ms \
         (heartbeat timeout {HEARTBEAT_TIMEOUT_MS} ms)",
        replacement.0, replacement.2
    );
    let survivors: Vec<&Agent> = agents
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != lost_index)
        .map(|(_, agent)| agent)
        .collect();
    let new_agent = survivors.iter().find(|a| a.name == replacement.2).unwrap();
    let record = wait_for("the replacement serving", || {
        let record = new_agent.records().remove(&replacement.0)?;
        sample_get(record.port).is_some().then_some(record)
    });
    assert!(record.port > 0);
    let (gone_after, healthy_after, endpoint) = registry_watch.join().unwrap();
    println!(
        "registry after the host loss: {lost} gone after {} ms, replacement {} healthy after {} ms \
         (since the kill; heartbeat timeout {HEARTBEAT_TIMEOUT_MS} ms)",
        gone_after.as_millis(),
        endpoint_id(&endpoint),
        healthy_after.as_millis()
    );
    assert_eq!(endpoint_id(&endpoint), replacement.0, "{endpoint}");
    assert_eq!(endpoint["host"], json!(replacement.2), "{endpoint}");
    assert_eq!(endpoint["port"], json!(record.port), "{endpoint}");
    // The killed agent's instance still runs (nothing told it otherwise).
    assert!(alive(lost_record.pid));

    // The lost host's agent comes back: it adopts what its predecessor left, then stops it
    // and runs nothing, since its instance now runs elsewhere.
    agents[lost_index].spawn();
    wait_for("the lost host back up and its leftover stopped", || {
        let (_, host) = server.call(
            "GET",
            &format!("/api/v1/fleet/hosts/{lost_host}"),
            Some(&admin),
            None,
        );
        (host["host"]["state"] == "up" && !alive(lost_record.pid)).then_some(())
    });
    let serving = wait_serving(&server, &admin, &agents.iter().collect::<Vec<_>>(), 2);
    assert!(serving.contains_key(&replacement.0));
    assert!(agents[lost_index].records().is_empty());
    wait_registry(&server, &admin, &serving);

    // An agent killed and restarted before the timeout adopts its instance: the same process
    // keeps running, once, health-checked again, and nothing else starts.
    let (kept, (kept_host, kept_record)) = serving
        .iter()
        .find(|(_, (host, _))| host.starts_with("dc2"))
        .map(|(id, v)| (id.clone(), v.clone()))
        .unwrap();
    let kept_index = agents.iter().position(|a| a.name == kept_host).unwrap();
    agents[kept_index].kill9();
    let log_before = agents[kept_index].log().len();
    agents[kept_index].spawn();
    wait_for("the restarted agent adopting its instance", || {
        agents[kept_index].log()[log_before..]
            .contains(&format!(
                "adopted an instance a previous agent started instance={kept}"
            ))
            .then_some(())
    });
    // Long enough for a second copy to start and turn healthy (two probes 100 ms apart), if
    // the agent were to start one.
    std::thread::sleep(Duration::from_millis(1_500));
    let serving = wait_serving(&server, &admin, &agents.iter().collect::<Vec<_>>(), 2);
    assert_eq!(
        serving[&kept],
        (kept_host.clone(), kept_record.clone()),
        "the same process, on the same port"
    );
    assert!(alive(kept_record.pid));
    let log = agents[kept_index].log()[log_before..].to_owned();
    assert!(!log.contains("instance started"), "{log}");
    assert!(!log.contains("stopping instance"), "{log}");
    // Exactly one process runs the instance: one sample app working in its directory (other
    // tests on this machine may run instances of the same id elsewhere).
    let instance_dir = agents[kept_index].work_dir.join("instances").join(&kept);
    let copies = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                return false;
            };
            cmdline.split(|&b| b == 0).any(|arg| arg == b"sample-app")
                && std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == instance_dir)
        })
        .count();
    assert_eq!(copies, 1, "one sample-app process for {kept}");
    assert_eq!(instances(&server, &admin, "web").len(), 2);
    wait_registry(&server, &admin, &serving);

    // An instance that turns unhealthy (`fall` failed probes) is stopped and started again.
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/templates",
        json!({"name": "flaky_dc2", "extends": "app_base", "data_center": "dc2",
            "run": {"args": ["--log-interval-ms", "0", "--unhealthy-after-ms", "1000"]}}),
    );
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/services",
        json!({"name": "flaky", "tenant": "payments", "templates": ["flaky_dc2"], "groups": 1}),
    );
    let flaky = wait_for("the flaky instance running", || {
        instances(&server, &admin, "flaky")
            .into_iter()
            .find(|i| i.3 == "running")
    });
    let flaky_agent = agents.iter().find(|a| a.name == flaky.2).unwrap();
    let first = wait_for("the flaky instance's process", || {
        flaky_agent.records().remove(&flaky.0)
    });
    wait_for("the unhealthy instance restarted", || {
        let record = flaky_agent.records().remove(&flaky.0)?;
        (record.pid != first.pid).then_some(())
    });
    // Its agent reported it: an event, and it left the healthy endpoints meanwhile.
    wait_for("the unhealthy report in the fleet's events", || {
        let (_, events) = server.call(
            "GET",
            "/api/v1/fleet/events?service=flaky",
            Some(&admin),
            None,
        );
        events.as_array()?.iter().find(|event| {
            event["kind"] == "instance_unhealthy" && event["instance"] == flaky.0.as_str()
        })?;
        Some(())
    });
    assert!(
        flaky_agent.log().contains(&format!(
            "instance unhealthy: restarting it instance={}",
            flaky.0
        )),
        "{}",
        flaky_agent.log()
    );

    // Deleting a service stops its instances.
    let (status, answer) =
        server.call("DELETE", "/api/v1/fleet/services/flaky", Some(&admin), None);
    assert_eq!(status, 204, "{answer}");
    wait_for("the deleted service's process stopped", || {
        (!flaky_agent.records().contains_key(&flaky.0)).then_some(())
    });

    // SIGTERM: an agent stops its instances before it exits.
    let (_, (host, record)) = serving.iter().next().unwrap();
    let index = agents.iter().position(|a| &a.name == host).unwrap();
    let status = agents[index].terminate();
    assert!(status.success(), "{status}");
    assert!(!alive(record.pid), "{}", agents[index].log());
}

/// `GET /api/v1/fleet/hosts/{host}/desired?wait_ms=` with `If-None-Match: version`: status,
/// `ETag`, body and how long the answer took.
fn desired(
    url: &str,
    admin: &str,
    host: &str,
    version: Option<&str>,
    wait_ms: u64,
) -> (u16, String, Value, Duration) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut request = client
        .get(format!(
            "{url}/api/v1/fleet/hosts/{host}/desired?wait_ms={wait_ms}"
        ))
        .bearer_auth(admin);
    if let Some(version) = version {
        request = request.header("If-None-Match", version);
    }
    let started = Instant::now();
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, etag, body, started.elapsed())
}

#[test]
fn desired_instances_are_long_polled_by_version() {
    let server = TestServer::start();
    let admin = server.admin_token();
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/zones",
        json!({"name": "production"}),
    );
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/data-centers",
        json!({"name": "dc1", "zone": "production"}),
    );
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/ranges",
        json!({"cidr": "10.1.0.0/24", "data_center": "dc1"}),
    );
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/templates",
        json!({"name": "job_dc1", "data_center": "dc1", "run": {"command": "true"},
            "resources": {"cpu_millis": 100, "memory_bytes": 1 << 20, "disk_bytes": 1 << 20}}),
    );
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/hosts",
        json!({"name": "dc1-h1", "data_center": "dc1",
            "capacity": {"cpu_millis": 1000, "memory_bytes": 1 << 30, "disk_bytes": 1 << 30}}),
    );
    server.create_tenant("payments");

    let (status, version, body, _) = desired(&server.url, &admin, "dc1-h1", None, 0);
    assert_eq!((status, &body), (200, &json!([])));
    assert!(version.starts_with('"') && version.len() > 2, "{version}");
    // The current version: 304 at once without a wait, after the wait with one.
    let (status, same, _, _) = desired(&server.url, &admin, "dc1-h1", Some(&version), 0);
    assert_eq!((status, &same), (304, &version));
    let (status, _, _, took) = desired(&server.url, &admin, "dc1-h1", Some(&version), 300);
    assert_eq!(status, 304);
    assert!(took >= Duration::from_millis(300), "{took:?}");

    // A change during the wait is answered at once, with its new version.
    let waiter = {
        let (url, admin, version) = (server.url.clone(), admin.clone(), version.clone());
        std::thread::spawn(move || desired(&url, &admin, "dc1-h1", Some(&version), 20_000))
    };
    std::thread::sleep(Duration::from_millis(200));
    let placed_at = Instant::now();
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/services",
        json!({"name": "job", "tenant": "payments", "templates": ["job_dc1"], "groups": 1}),
    );
    let (status, changed, body, took) = waiter.join().unwrap();
    let propagation = placed_at.elapsed();
    println!("desired instances: a placement reached a waiting agent request in {propagation:?}");
    assert_eq!(status, 200);
    assert_ne!(changed, version);
    assert_eq!(body[0]["action"], "run", "{body}");
    assert_eq!(body[0]["service"], "job", "{body}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(propagation < Duration::from_secs(2), "{propagation:?}");

    // Healthy reports: the body (`{"port": N}`) is optional; the port goes to the registry.
    let path = format!("/api/v1/fleet/instances/{}/healthy", body[0]["instance"]);
    let (status, answer) = server.call("POST", &path, Some(&admin), Some(json!({"bogus": 1})));
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server.call("POST", &path, Some(&admin), Some(json!({"port": 20_123})));
    assert_eq!(status, 204, "{answer}");
    let (status, answer) = server.call("POST", &path, Some(&admin), None);
    assert_eq!(status, 204, "{answer}");
    let (_, registry, _) = endpoints(&server.url, &admin, "job", None);
    assert_eq!(registry["endpoints"][0]["port"], 20_123, "{registry}");
    assert_eq!(registry["endpoints"][0]["healthy"], true, "{registry}");
}
