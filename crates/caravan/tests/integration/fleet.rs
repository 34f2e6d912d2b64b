//! The fleet end to end: inventory, IPAM, templates, services, host loss, drains, checks and
//! migrations, capacity, quotas, access and persistence, through the API and the CLI of a real
//! server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{TestServer, stderr_failed, stdout_ok};

const GIB: u64 = 1 << 30;
/// A heartbeat timeout no test reaches: hosts stay up without heartbeats.
const NEVER_MS: u64 = 3_600_000;

/// A server with its own configuration and data directory.
struct Fleet {
    server: TestServer,
    admin: String,
    dir: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Self {
        Self::start_with(NEVER_MS, 1_000)
    }

    fn start_with(heartbeat_timeout_ms: u64, down_check_interval_ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("caravan.toml");
        std::fs::write(
            &config,
            format!(
                "[fleet]\nheartbeat_timeout_ms = {heartbeat_timeout_ms}\ndown_check_interval_ms = {down_check_interval_ms}\n"
            ),
        )
        .unwrap();
        let server = TestServer::start_in(
            &dir.path().join("data"),
            &["--config", config.to_str().unwrap()],
        );
        let admin = server.admin_token();
        Self { server, admin, dir }
    }

    /// Stops the server and starts another on the same data directory and configuration.
    fn restart(self) -> Self {
        let Fleet {
            mut server, dir, ..
        } = self;
        assert!(server.terminate().success());
        drop(server);
        let config = dir.path().join("caravan.toml");
        let server = TestServer::start_in(
            &dir.path().join("data"),
            &["--config", config.to_str().unwrap()],
        );
        let admin = server.admin_token();
        Self { server, admin, dir }
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.call(method, path, Some(&self.admin), body)
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.api(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    fn cli(&self, args: &[&str]) -> String {
        stdout_ok(&self.server.cli(None, args))
    }

    fn cli_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        self.server.cli(Some(token), args)
    }

    fn cli_err(&self, args: &[&str]) -> String {
        stderr_failed(&self.server.cli(None, args))
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        serde_json::from_str(&self.cli(&args)).unwrap()
    }

    /// Zone `production`, a data center per name with range `10.N.0.0/24` and template
    /// `web_dcN` extending `web_base` (500m, 1 GiB, 10 GiB), and the given hosts
    /// `(name, data center, cpu_millis, memory_bytes)` with 100 GiB of disk.
    fn inventory(&self, data_centers: &[&str], hosts: &[(&str, &str, u64, u64)]) {
        self.ok(
            "POST",
            "/api/v1/fleet/zones",
            Some(json!({"name": "production"})),
        );
        self.ok(
            "POST",
            "/api/v1/fleet/templates",
            Some(json!({
                "name": "web_base",
                "resources": {"cpu_millis": 500, "memory_bytes": GIB, "disk_bytes": 10 * GIB},
                "run": {"command": "/usr/bin/web", "args": ["--port=8080"], "port": 8080},
                "health": {"probe": {"kind": "http", "path": "/healthz"}}
            })),
        );
        for (index, dc) in data_centers.iter().enumerate() {
            self.ok(
                "POST",
                "/api/v1/fleet/data-centers",
                Some(json!({"name": dc, "zone": "production"})),
            );
            self.ok(
                "POST",
                "/api/v1/fleet/ranges",
                Some(json!({"cidr": format!("10.{}.0.0/24", index + 1), "data_center": dc})),
            );
            self.ok(
                "POST",
                "/api/v1/fleet/templates",
                Some(
                    json!({"name": format!("web_{dc}"), "extends": "web_base", "data_center": dc}),
                ),
            );
        }
        for (name, dc, cpu_millis, memory_bytes) in hosts {
            self.register(name, dc, *cpu_millis, *memory_bytes);
        }
    }

    fn register(&self, name: &str, dc: &str, cpu_millis: u64, memory_bytes: u64) {
        self.ok(
            "POST",
            "/api/v1/fleet/hosts",
            Some(json!({
                "name": name,
                "data_center": dc,
                "capacity": {"cpu_millis": cpu_millis, "memory_bytes": memory_bytes, "disk_bytes": 100 * GIB}
            })),
        );
    }

    fn service(&self, name: &str) -> Value {
        self.ok("GET", &format!("/api/v1/fleet/services/{name}"), None)
    }

    fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        self.server.create_token(json!({
            "name": format!("{tenant} {}", scopes.join(" ")),
            "kind": "tenant",
            "tenant": tenant,
            "scopes": scopes
        }))
    }
}

/// Every instance of a service view.
fn instances(view: &Value) -> Vec<Value> {
    view["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["instances"].as_array().unwrap().clone())
        .collect()
}

fn reason(answer: &Value) -> String {
    answer["error"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn inventory_templates_and_what_is_in_use_cannot_be_deleted() {
    let fleet = Fleet::start();
    fleet.cli(&["zone", "create", "production"]);
    fleet.cli(&["zone", "create", "staging"]);
    fleet.cli(&["dc", "create", "dc1", "--zone", "production"]);
    fleet.cli(&["data-center", "create", "dc2", "--zone", "production"]);
    let error = fleet.cli_err(&["dc", "create", "dc3", "--zone", "nope"]);
    assert!(
        error.contains("zone nope does not exist (HTTP 404"),
        "{error}"
    );
    let error = fleet.cli_err(&["zone", "create", "Prod"]);
    assert!(error.contains("invalid value 'Prod'"), "{error}");
    let (status, answer) = fleet.api(
        "POST",
        "/api/v1/fleet/zones",
        Some(json!({"name": "qa", "colour": "blue"})),
    );
    assert_eq!(status, 400);
    assert!(
        reason(&answer).contains("unknown field `colour`"),
        "{answer}"
    );
    let zones = fleet.cli(&["zone", "list"]);
    assert!(
        zones.contains("production") && zones.contains("staging"),
        "{zones}"
    );

    fleet.cli(&[
        "range",
        "add",
        "10.1.0.0/24",
        "--data-center",
        "dc1",
        "--gateway",
        "10.1.0.1",
        "--reserve",
        "10.1.0.2,10.1.0.3",
    ]);
    fleet.cli(&["range", "add", "fd00:2::/64", "--data-center", "dc2"]);
    let error = fleet.cli_err(&["range", "add", "10.1.0.128/25", "--data-center", "dc2"]);
    assert!(
        error.contains("address range 10.1.0.128/25 overlaps 10.1.0.0/24 (in data center dc1)"),
        "{error}"
    );
    let error = fleet.cli_err(&["range", "add", "10.1.0.1/24", "--data-center", "dc2"]);
    assert!(error.contains("did you mean 10.1.0.0/24?"), "{error}");
    let ranges = fleet.cli_json(&["range", "list"]);
    assert_eq!(ranges[0]["range"]["cidr"], "10.1.0.0/24");
    assert_eq!(
        ranges[0]["usage"]["usable"], 251,
        "256 - network, broadcast, gateway, 2 reserved"
    );

    fleet.cli(&[
        "host",
        "register",
        "dc1-h1",
        "--data-center",
        "dc1",
        "--cpu",
        "8",
        "--memory",
        "16GiB",
        "--disk",
        "200GiB",
        "--label",
        "rack=r1",
    ]);
    fleet.cli(&[
        "host",
        "register",
        "dc2-h1",
        "--data-center",
        "dc2",
        "--cpu",
        "2500m",
        "--memory",
        "8GiB",
        "--disk",
        "1TiB",
    ]);
    let host = fleet.cli_json(&["host", "show", "dc1-h1"]);
    assert_eq!(
        host["host"]["capacity"],
        json!({"cpu_millis": 8000, "memory_bytes": 16 * GIB, "disk_bytes": 200 * GIB})
    );
    assert_eq!(host["host"]["labels"], json!({"rack": "r1"}));
    let updated = fleet.cli_json(&[
        "host", "update", "dc1-h1", "--cpu", "16", "--label", "rack=r2",
    ]);
    assert_eq!(updated["host"]["capacity"]["cpu_millis"], 16000);
    assert_eq!(updated["host"]["capacity"]["memory_bytes"], 16 * GIB);
    assert_eq!(updated["host"]["labels"], json!({"rack": "r2"}));
    let hosts = fleet.cli(&["host", "list"]);
    assert!(
        hosts.contains("dc1-h1") && hosts.contains("2500m"),
        "{hosts}"
    );
    let error = fleet.cli_err(&[
        "host",
        "register",
        "dc1-h1",
        "--data-center",
        "dc1",
        "--cpu",
        "1",
        "--memory",
        "1GiB",
        "--disk",
        "1GiB",
    ]);
    assert!(
        error.contains("host dc1-h1 already exists (HTTP 409, conflict)"),
        "{error}"
    );

    // Templates from flags, from a file, extended and updated.
    fleet.cli(&[
        "template",
        "create",
        "web_base",
        "--cpu",
        "1",
        "--memory",
        "2GiB",
        "--disk",
        "10GiB",
        "--command",
        "/usr/bin/web",
        "--arg",
        "--port=8080",
        "--port",
        "8080",
        "--health",
        "http:/healthz",
        "--env",
        "MODE=prod",
    ]);
    fleet.cli(&[
        "template",
        "create",
        "web_dc1",
        "--extends",
        "web_base",
        "--data-center",
        "dc1",
        "--memory",
        "4GiB",
    ]);
    let shown = fleet.cli_json(&["template", "show", "web_dc1"]);
    let effective = &shown["effective"];
    assert_eq!(effective["chain"], json!(["web_dc1", "web_base"]));
    assert_eq!(
        effective["resources"],
        json!({"cpu_millis": 1000, "memory_bytes": 4 * GIB, "disk_bytes": 10 * GIB})
    );
    assert_eq!(effective["run"]["args"], json!(["--port=8080"]));
    assert_eq!(effective["run"]["env"], json!({"MODE": "prod"}));
    assert_eq!(
        effective["health"]["probe"],
        json!({"kind": "http", "path": "/healthz"})
    );
    assert_eq!(effective["health"]["interval_ms"], 10_000, "the default");
    let base = fleet.cli_json(&["template", "show", "web_base"]);
    assert!(base["effective"].is_null());
    assert!(
        base["incomplete"].as_str().unwrap().contains("data_center"),
        "{base}"
    );
    let file = fleet.dir.path().join("web_dc2.toml");
    std::fs::write(
        &file,
        "extends = \"web_base\"\ndata_center = \"dc2\"\n[health]\nrise = 5\n[health.probe]\nkind = \"tcp\"\n",
    )
    .unwrap();
    fleet.cli(&[
        "template",
        "create",
        "web_dc2",
        "--from-file",
        file.to_str().unwrap(),
        "--cpu",
        "2",
    ]);
    fleet.cli(&["template", "update", "web_dc2", "--port", "9090"]);
    let shown = fleet.cli_json(&["template", "show", "web_dc2"]);
    assert_eq!(
        shown["template"]["extends"], "web_base",
        "update keeps what it does not set"
    );
    assert_eq!(shown["effective"]["resources"]["cpu_millis"], 2000);
    assert_eq!(shown["effective"]["run"]["port"], 9090);
    assert_eq!(shown["effective"]["health"]["rise"], 5);
    assert_eq!(
        shown["effective"]["health"]["probe"],
        json!({"kind": "tcp"})
    );
    let error = fleet.cli_err(&["template", "update", "web_base", "--extends", "web_dc1"]);
    assert!(
        error.contains("template cycle: web_base -> web_dc1 -> web_base"),
        "{error}"
    );
    let error = fleet.cli_err(&["template", "create", "web_dc1"]);
    assert!(error.contains("template web_dc1 already exists"), "{error}");
    let list = fleet.cli(&["template", "list"]);
    assert!(
        list.contains("web_dc2") && list.contains("/usr/bin/web"),
        "{list}"
    );

    // Nothing in use can be deleted: the error lists what uses it.
    let error = fleet.cli_err(&["zone", "delete", "production"]);
    assert!(
        error.contains("cannot delete zone production: it is used by data centers dc1, dc2"),
        "{error}"
    );
    let error = fleet.cli_err(&["dc", "delete", "dc1"]);
    assert!(
        error.contains(
            "cannot delete data center dc1: it is used by host dc1-h1 and template web_dc1 and address range 10.1.0.0/24"
        ),
        "{error}"
    );
    let error = fleet.cli_err(&["template", "delete", "web_base"]);
    assert!(
        error.contains("templates web_dc1, web_dc2 (extending it)"),
        "{error}"
    );
    fleet.cli(&["zone", "delete", "staging"]);
    fleet.cli(&["template", "delete", "web_dc2"]);
    fleet.cli(&["host", "delete", "dc2-h1"]);
    fleet.cli(&["range", "remove", "fd00:2::/64"]);
    fleet.cli(&["dc", "delete", "dc2"]);
    let dcs = fleet.cli_json(&["dc", "list"]);
    assert_eq!(dcs, json!([{"name": "dc1", "zone": "production"}]));
}

#[test]
fn services_are_placed_refused_as_a_whole_scaled_resized_and_owned() {
    let fleet = Fleet::start();
    fleet.inventory(
        &["dc1", "dc2"],
        &[
            ("dc1-h1", "dc1", 64_000, 256 * GIB),
            ("dc1-h2", "dc1", 64_000, 256 * GIB),
            ("dc1-h3", "dc1", 64_000, 256 * GIB),
            ("dc2-h1", "dc2", 8_000, 2 * GIB),
            ("dc2-h2", "dc2", 8_000, 3 * GIB),
            ("dc2-h3", "dc2", 8_000, GIB * 31 / 10 + 1),
        ],
    );
    fleet.server.create_tenant("payments");
    fleet.server.create_tenant("beta");

    // One explanation per member that cannot be placed; nothing is created.
    let error = fleet.cli_err(&[
        "service",
        "create",
        "web",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1,web_dc2",
        "--groups",
        "3",
        "--memory",
        "4GiB",
    ]);
    assert!(error.contains("service web cannot be placed:"), "{error}");
    assert!(
        error.contains(
            "group 3, member dc2 (template web_dc2): no host with 4.0 GiB free memory in dc2; the best, dc2-h3, has 3.1 GiB free"
        ),
        "{error}"
    );
    assert!(
        error.contains("group 1, member dc2") && error.contains("(HTTP 409, insufficient)"),
        "{error}"
    );
    assert!(
        !error.contains("member dc1"),
        "dc1 members could be placed: {error}"
    );
    assert_eq!(fleet.ok("GET", "/api/v1/fleet/services", None), json!([]));

    let created = fleet.cli_json(&[
        "service",
        "create",
        "web",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1,web_dc2",
        "--groups",
        "3",
    ]);
    assert_eq!(created["groups"].as_array().unwrap().len(), 3);
    let mut ips = BTreeSet::new();
    let mut dc1_hosts = BTreeSet::new();
    for group in created["groups"].as_array().unwrap() {
        let members: Vec<&str> = group["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["data_center"].as_str().unwrap())
            .collect();
        assert_eq!(
            members,
            ["dc1", "dc2"],
            "one member per data center: {group}"
        );
        for instance in group["instances"].as_array().unwrap() {
            assert!(ips.insert(instance["ip"].as_str().unwrap().to_owned()));
            if instance["data_center"] == "dc1" {
                dc1_hosts.insert(instance["host"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(
        dc1_hosts.len(),
        3,
        "members of a service go to distinct hosts"
    );
    let shown = fleet.cli(&["service", "show", "web"]);
    assert!(
        shown.contains("service web (tenant payments): 3 groups"),
        "{shown}"
    );
    assert!(
        shown.contains("dc2 (web_dc2)") && shown.contains("placed"),
        "{shown}"
    );

    // Scaling adds and removes whole groups, highest first; resizing keeps groups whole.
    let scaled = fleet.cli_json(&["service", "scale", "web", "--groups", "1"]);
    let groups: Vec<u64> = scaled["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_u64().unwrap())
        .collect();
    assert_eq!(groups, [1]);
    assert_eq!(instances(&scaled).len(), 2);
    let resized = fleet.cli_json(&["service", "resize", "web", "--memory", "2GiB"]);
    assert!(
        instances(&resized)
            .iter()
            .all(|i| i["resources"]["memory_bytes"] == 2 * GIB)
    );
    let error = fleet.cli_err(&["service", "resize", "web", "--memory", "3.5GiB"]);
    assert!(
        error.contains("no host with 3.5 GiB free memory in dc2"),
        "{error}"
    );
    assert_eq!(
        instances(&fleet.service("web"))[1]["resources"]["memory_bytes"],
        2 * GIB,
        "a refused resize changes nothing"
    );
    let scaled = fleet.cli_json(&["service", "scale", "web", "--groups", "2"]);
    assert_eq!(instances(&scaled).len(), 4);
    let list = fleet.cli(&["service", "list"]);
    assert!(
        list.contains("web_dc1,web_dc2") && list.contains("payments"),
        "{list}"
    );

    // Quotas.
    fleet.cli(&[
        "quota", "set", "payments", "--cpu", "2500m", "--memory", "100GiB", "--disk", "1TiB",
    ]);
    let error = fleet.cli_err(&[
        "service",
        "create",
        "api",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1",
        "--groups",
        "2",
    ]);
    assert!(
        error.contains(
            "tenant payments: CPU quota exceeded by service api: usage would be 3000m (quota 2500m, 2000m used without this request)"
        ),
        "{error}"
    );
    let quotas = fleet.cli_json(&["quota", "list"]);
    assert_eq!(quotas[0]["tenant"], "payments");
    assert_eq!(quotas[0]["usage"]["cpu_millis"], 2000);
    assert_eq!(quotas[0]["limits"]["cpu_millis"], 2500);

    // Tenant tokens: their own services only; another tenant's are 404 like missing ones.
    let payments = fleet.token("payments", &["fleet:read", "fleet:write"]);
    let payments_reader = fleet.token("payments", &["fleet:read"]);
    let beta = fleet.token("beta", &["fleet:read", "fleet:write"]);
    let (status, missing) =
        fleet
            .server
            .call("GET", "/api/v1/fleet/services/nope", Some(&beta), None);
    assert_eq!(status, 404);
    let (status, hidden) =
        fleet
            .server
            .call("GET", "/api/v1/fleet/services/web", Some(&beta), None);
    assert_eq!(status, 404);
    assert_eq!(reason(&hidden), reason(&missing).replace("nope", "web"));
    let (status, _) = fleet
        .server
        .call("GET", "/api/v1/fleet/services/web", Some(&payments), None);
    assert_eq!(status, 200);
    let (status, _) = fleet.server.call(
        "DELETE",
        "/api/v1/fleet/services/web",
        Some(&payments_reader),
        None,
    );
    assert_eq!(status, 403);
    let stolen = json!({"name": "b2", "tenant": "payments", "templates": ["web_dc1"], "groups": 1});
    let (status, answer) =
        fleet
            .server
            .call("POST", "/api/v1/fleet/services", Some(&beta), Some(stolen));
    assert_eq!(status, 404, "{answer}");
    // The tenant defaults to the token's.
    let output = fleet.cli_as(
        &beta,
        &[
            "service",
            "create",
            "b1",
            "--templates",
            "web_dc1",
            "--groups",
            "1",
        ],
    );
    assert!(stdout_ok(&output).contains("service b1 (tenant beta)"));
    let output = fleet.cli_as(&beta, &["service", "list"]);
    let listed = stdout_ok(&output);
    assert!(
        listed.contains("b1") && !listed.contains("payments"),
        "{listed}"
    );
    let error = stderr_failed(&fleet.cli_as(&payments, &["service", "show", "b1"]));
    assert!(error.contains("service b1 does not exist"), "{error}");
    let error = stderr_failed(&fleet.cli_as(&beta, &["zone", "create", "mine"]));
    assert!(error.contains("HTTP 403"), "{error}");
    let hosts = stdout_ok(&fleet.cli_as(&beta, &["host", "list"]));
    assert!(
        hosts.contains("dc2-h3"),
        "fleet:read sees the inventory: {hosts}"
    );

    // Leases both ways, and hidden from other tenants.
    let first = &instances(&fleet.service("web"))[0];
    let ip = first["ip"].as_str().unwrap();
    let id = format!("i-{}", first["id"]);
    let by_ip = fleet.cli_json(&["lease", "show", "--ip", ip]);
    assert_eq!(by_ip[0]["instance"], first["id"]);
    assert_eq!(by_ip[0]["service"], "web");
    let by_instance = fleet.cli_json(&["lease", "show", "--instance", &id]);
    assert_eq!(by_instance[0]["ip"], ip);
    let error = fleet.cli_err(&["lease", "show", "--ip", "10.9.9.9"]);
    assert!(
        error.contains("no instance holds the address 10.9.9.9"),
        "{error}"
    );
    let (status, answer) = fleet.server.call(
        "GET",
        &format!("/api/v1/fleet/leases?ip={ip}"),
        Some(&beta),
        None,
    );
    assert_eq!(
        (status, reason(&answer)),
        (404, format!("no instance holds the address {ip}"))
    );
    let own = stdout_ok(&fleet.cli_as(&payments, &["lease", "show", "--ip", ip]));
    assert!(own.contains(&id), "{own}");

    // Capacity, and how many more groups of a shape fit.
    let capacity = fleet.cli_json(&[
        "capacity",
        "--templates",
        "web_dc1,web_dc2",
        "--memory",
        "4GiB",
    ]);
    assert_eq!(capacity["fit"]["groups"], 0);
    assert_eq!(capacity["fit"]["bottleneck"], "dc2");
    let capacity = fleet.cli_json(&["capacity", "--service", "web"]);
    let dc2 = &capacity["zones"][0]["data_centers"][1];
    assert_eq!(dc2["data_center"], "dc2");
    assert_eq!(dc2["hosts_up"], 3);
    assert_eq!(
        capacity["fit"]["members"][1]["fit_by_hosts"], 1,
        "only dc2-h3 has 2 GiB free"
    );
    let table = fleet.cli(&["capacity", "--service", "web"]);
    assert!(
        table.contains("1 more group(s) of this shape fit (bottleneck: dc2)"),
        "{table}"
    );

    // The audit log, per service and per host, with who asked.
    let events = fleet.cli_json(&["fleet", "events", "--service", "web"]);
    let kinds: BTreeSet<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains("service_created") && kinds.contains("instance_placed"),
        "{kinds:?}"
    );
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["service"] == "web")
    );
    assert!(events[0]["by"].as_str().unwrap().starts_with("tok_"));
    let host_events = fleet.cli_json(&["fleet", "events", "--host", "dc2-h3", "--limit", "2"]);
    assert_eq!(host_events.as_array().unwrap().len(), 2);
    assert!(
        host_events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["host"] == "dc2-h3")
    );
    let beta_events = stdout_ok(&fleet.cli_as(&beta, &["fleet", "events"]));
    assert!(
        beta_events.contains("service b1 created") && !beta_events.contains("service web"),
        "{beta_events}"
    );
}

#[test]
fn concurrent_service_creations_get_distinct_leases() {
    const SERVICES: usize = 50;
    let fleet = Fleet::start();
    fleet.inventory(
        &["dc1", "dc2"],
        &[
            ("dc1-h1", "dc1", 64_000, 256 * GIB),
            ("dc1-h2", "dc1", 64_000, 256 * GIB),
            ("dc2-h1", "dc2", 64_000, 256 * GIB),
            ("dc2-h2", "dc2", 64_000, 256 * GIB),
        ],
    );
    fleet.server.create_tenant("payments");
    let url = fleet.server.url.clone();
    let threads: Vec<_> = (0..SERVICES)
        .map(|i| {
            let (url, token) = (url.clone(), fleet.admin.clone());
            std::thread::spawn(move || {
                let response = reqwest::blocking::Client::new()
                    .post(format!("{url}/api/v1/fleet/services"))
                    .bearer_auth(token)
                    .json(&json!({
                        "name": format!("svc{i}"), "tenant": "payments",
                        "templates": ["web_dc1", "web_dc2"], "groups": 1,
                        "resources": {"cpu_millis": 100, "memory_bytes": 64 << 20, "disk_bytes": GIB}
                    }))
                    .send()
                    .unwrap();
                response.status().as_u16()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 201);
    }
    let leases = fleet.ok("GET", "/api/v1/fleet/leases", None);
    let leases = leases.as_array().unwrap();
    assert_eq!(leases.len(), 2 * SERVICES);
    let ips: BTreeSet<&str> = leases.iter().map(|l| l["ip"].as_str().unwrap()).collect();
    assert_eq!(ips.len(), 2 * SERVICES, "every lease is distinct");
    let by_instance: BTreeMap<u64, &str> = leases
        .iter()
        .map(|l| (l["instance"].as_u64().unwrap(), l["ip"].as_str().unwrap()))
        .collect();
    // Every instance holds exactly the lease the lease table has for it, in its data center.
    for i in 0..SERVICES {
        let view = fleet.service(&format!("svc{i}"));
        for instance in instances(&view) {
            let ip = instance["ip"].as_str().unwrap();
            assert_eq!(by_instance[&instance["id"].as_u64().unwrap()], ip);
            let prefix = if instance["data_center"] == "dc1" {
                "10.1.0."
            } else {
                "10.2.0."
            };
            assert!(ip.starts_with(prefix), "{instance}");
        }
        let check = fleet.ok("GET", &format!("/api/v1/fleet/services/svc{i}/check"), None);
        assert_eq!(check["findings"], json!([]), "{check}");
    }
    let ranges = fleet.ok("GET", "/api/v1/fleet/ranges", None);
    for range in ranges.as_array().unwrap() {
        assert_eq!(range["usage"]["leased"], SERVICES);
    }
}

#[test]
fn state_and_id_counters_survive_a_restart() {
    let fleet = Fleet::start();
    fleet.inventory(
        &["dc1", "dc2"],
        &[
            ("dc1-h1", "dc1", 16_000, 64 * GIB),
            ("dc2-h1", "dc2", 16_000, 64 * GIB),
        ],
    );
    fleet.server.create_tenant("payments");
    fleet.cli(&[
        "service",
        "create",
        "web",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1,web_dc2",
        "--groups",
        "3",
    ]);
    // Scaling down frees the highest ids: a restarted server must not hand them out again.
    fleet.cli(&["service", "scale", "web", "--groups", "1"]);
    fleet.cli(&[
        "quota", "set", "payments", "--cpu", "8", "--memory", "32GiB", "--disk", "1TiB",
    ]);
    let read = |fleet: &Fleet| {
        let mut hosts = fleet.ok("GET", "/api/v1/fleet/hosts", None);
        for host in hosts.as_array_mut().unwrap() {
            host["host"]["last_heartbeat_ms"] = json!(0);
        }
        json!({
            "service": fleet.service("web"),
            "hosts": hosts,
            "ranges": fleet.ok("GET", "/api/v1/fleet/ranges", None),
            "leases": fleet.ok("GET", "/api/v1/fleet/leases", None),
            "templates": fleet.ok("GET", "/api/v1/fleet/templates", None),
            "quotas": fleet.ok("GET", "/api/v1/fleet/quotas", None),
            "zones": fleet.ok("GET", "/api/v1/fleet/zones", None),
        })
    };
    let before = read(&fleet);
    let events_before = fleet.ok("GET", "/api/v1/fleet/events?limit=1000", None);

    let fleet = fleet.restart();
    assert_eq!(read(&fleet), before);
    let events_after = fleet.ok("GET", "/api/v1/fleet/events?limit=1000", None);
    assert_eq!(
        events_after, events_before,
        "the audit log survives, unchanged"
    );

    let created = fleet.cli_json(&[
        "service",
        "create",
        "api",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1,web_dc2",
        "--groups",
        "1",
    ]);
    let new_ids: Vec<u64> = instances(&created)
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        new_ids,
        [6, 7],
        "ids 0 to 5 were handed out before the restart"
    );
    let leases = fleet.ok("GET", "/api/v1/fleet/leases", None);
    let ips: BTreeSet<&str> = leases
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 4);
}

/// Sends heartbeats for `hosts` every 200 ms until dropped.
struct Heartbeats {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeats {
    fn start(fleet: &Fleet, hosts: &[&str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, token, flag) = (fleet.server.url.clone(), fleet.admin.clone(), stop.clone());
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            while !flag.load(Ordering::Relaxed) {
                for host in &hosts {
                    let _ = client
                        .post(format!("{url}/api/v1/fleet/hosts/{host}/heartbeat"))
                        .bearer_auth(&token)
                        .send();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_silent_host_goes_down_and_its_instances_move_within_its_data_center() {
    const TIMEOUT_MS: u64 = 1_500;
    let fleet = Fleet::start_with(TIMEOUT_MS, 100);
    let _heartbeats = Heartbeats::start(&fleet, &["dc1-h2", "dc2-h1"]);
    fleet.inventory(
        &["dc1", "dc2"],
        &[
            ("dc1-h1", "dc1", 16_000, 64 * GIB),
            ("dc1-h2", "dc1", 16_000, 64 * GIB),
            ("dc2-h1", "dc2", 16_000, 64 * GIB),
        ],
    );
    let registered = Instant::now();
    fleet.server.create_tenant("payments");
    fleet.cli(&[
        "service",
        "create",
        "web",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1,web_dc2",
        "--groups",
        "2",
    ]);
    let before = instances(&fleet.service("web"));
    let lost = before
        .iter()
        .find(|i| i["host"] == "dc1-h1")
        .unwrap()
        .clone();
    let lost_ip = lost["ip"].as_str().unwrap().to_owned();

    // dc1-h1 never heartbeats: it goes down within the timeout and a check interval.
    let down_at = loop {
        let host = fleet.ok("GET", "/api/v1/fleet/hosts/dc1-h1", None);
        if host["host"]["state"] == "down" {
            break registered.elapsed();
        }
        assert!(
            registered.elapsed() < Duration::from_millis(TIMEOUT_MS + 3_000),
            "dc1-h1 never went down"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(down_at >= Duration::from_millis(TIMEOUT_MS), "{down_at:?}");
    assert_eq!(
        fleet.ok("GET", "/api/v1/fleet/hosts/dc2-h1", None)["host"]["state"],
        "up"
    );

    let after = instances(&fleet.service("web"));
    assert_eq!(after.len(), 4);
    assert!(after.iter().all(|i| i["host"] != "dc1-h1"));
    let replacement = after
        .iter()
        .find(|i| i["group"] == lost["group"] && i["data_center"] == "dc1")
        .unwrap();
    assert_eq!(
        replacement["host"], "dc1-h2",
        "rescheduled in the same data center"
    );
    assert_ne!(replacement["id"], lost["id"]);
    assert_ne!(replacement["ip"], lost["ip"], "a new address");
    assert!(replacement["ip"].as_str().unwrap().starts_with("10.1.0."));
    let error = fleet.cli_err(&["lease", "show", "--ip", &lost_ip]);
    assert!(
        error.contains(&format!("no instance holds the address {lost_ip}")),
        "the old address is released: {error}"
    );
    for group in fleet.service("web")["groups"].as_array().unwrap() {
        let dcs: BTreeSet<&str> = group["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["data_center"].as_str().unwrap())
            .collect();
        assert_eq!(
            dcs.len(),
            2,
            "a group keeps one member per data center: {group}"
        );
    }
    let events = fleet.ok("GET", "/api/v1/fleet/events?host=dc1-h1", None);
    let down = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "host_state_changed")
        .unwrap();
    assert!(down["by"].is_null(), "the server decided: {down}");
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .contains("no heartbeat for"),
        "{down}"
    );

    // Back from the dead: up and empty; what it still runs must stop.
    let answer = fleet.cli(&["host", "heartbeat", "dc1-h1"]);
    assert!(answer.contains("host dc1-h1 is up"), "{answer}");
    assert_eq!(
        fleet.ok("GET", "/api/v1/fleet/hosts/dc1-h1/desired", None),
        json!([])
    );
    let (status, _) = fleet.api(
        "GET",
        &format!("/api/v1/fleet/instances/{}", lost["id"]),
        None,
    );
    assert_eq!(status, 404, "the lost instance is gone, never duplicated");
}

#[test]
fn draining_moves_instances_one_at_a_time_through_health_reports() {
    let fleet = Fleet::start();
    fleet.inventory(
        &["dc1"],
        &[
            ("dc1-h1", "dc1", 16_000, 64 * GIB),
            ("dc1-h2", "dc1", 16_000, 64 * GIB),
            ("dc1-h3", "dc1", 16_000, 64 * GIB),
        ],
    );
    fleet.server.create_tenant("payments");
    fleet.cli(&[
        "service",
        "create",
        "web",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1",
        "--groups",
        "2",
    ]);
    let before = instances(&fleet.service("web"));
    let (old, other) = (&before[0], &before[1]);
    let old_id = old["id"].as_u64().unwrap();
    let drained_host = old["host"].as_str().unwrap().to_owned();
    let free_host = ["dc1-h1", "dc1-h2", "dc1-h3"]
        .into_iter()
        .find(|h| *h != drained_host && other["host"] != *h)
        .unwrap();

    let drained = fleet.cli(&["host", "drain", &drained_host]);
    assert!(
        drained.contains(&format!(
            "host {drained_host} is draining: 1 instance(s) left; next: report i-"
        )),
        "{drained}"
    );
    let status = fleet.ok(
        "GET",
        &format!("/api/v1/fleet/hosts/{drained_host}/drain"),
        None,
    );
    assert_eq!(status["next"]["step"], "await_healthy", "{status}");
    let replacement = status["next"]["replacement"].as_u64().unwrap();
    assert_eq!(
        status["next"]["replacement_host"], free_host,
        "the free host, not the one with web already"
    );
    // Make before break: the old instance still runs until its replacement is healthy.
    assert_eq!(instances(&fleet.service("web")).len(), 3);
    let error = fleet.cli_err(&["host", "update", &drained_host, "--state", "maintenance"]);
    assert!(error.contains("drain it first"), "{error}");
    let error = fleet.cli_err(&["instance", "stopped", &old_id.to_string()]);
    assert!(error.contains("it is placed, not stopping"), "{error}");

    fleet.cli(&["instance", "healthy", &format!("i-{replacement}")]);
    let status = fleet.cli_json(&["host", "drain-status", &drained_host]);
    assert_eq!(status["next"]["step"], "await_stopped", "{status}");
    assert_eq!(status["next"]["instance"], old_id);
    let desired = fleet.ok(
        "GET",
        &format!("/api/v1/fleet/hosts/{drained_host}/desired"),
        None,
    );
    assert_eq!(desired[0]["instance"], old_id);
    assert_eq!(desired[0]["action"], "stop");
    assert_eq!(
        fleet.cli_json(&["instance", "show", &format!("i-{replacement}")])["state"]["state"],
        "running"
    );

    fleet.cli(&["instance", "stopped", &format!("i-{old_id}")]);
    let status = fleet.cli(&["host", "drain-status", &drained_host]);
    assert!(
        status.contains("0 instance(s) left; next: done"),
        "{status}"
    );
    assert_eq!(instances(&fleet.service("web")).len(), 2);
    let (status, _) = fleet.api(
        "GET",
        &format!("/api/v1/fleet/leases?instance={old_id}"),
        None,
    );
    assert_eq!(status, 404, "the old lease is released");
    let host = fleet.cli_json(&["host", "update", &drained_host, "--state", "maintenance"]);
    assert_eq!(host["host"]["state"], "maintenance");
    let events = fleet.cli(&["fleet", "events", "--host", &drained_host]);
    assert!(
        events.contains("move_completed") || events.contains("host_drained"),
        "{events}"
    );
}

#[test]
fn check_reports_shared_hosts_and_migrate_fixes_them() {
    let fleet = Fleet::start();
    fleet.inventory(&["dc1"], &[("dc1-h1", "dc1", 16_000, 64 * GIB)]);
    fleet.server.create_tenant("payments");
    fleet.cli(&[
        "service",
        "create",
        "web",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1",
        "--groups",
        "2",
    ]);
    let clean = fleet.cli(&["service", "check", "web"]);
    assert!(
        clean.contains("service web: no placement problems"),
        "sharing is unavoidable with one host: {clean}"
    );

    fleet.register("dc1-h2", "dc1", 16_000, 64 * GIB);
    let output = fleet.server.cli(None, &["service", "check", "web"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = stderr_failed(&output);
    assert!(
        stdout.contains("2 instances share host dc1-h1")
            && stdout.contains("although other hosts have room"),
        "{stdout}"
    );
    assert!(
        stderr.contains("service web has 1 placement problem(s)"),
        "{stderr}"
    );
    // Every visible service's problems at once (the UI's alerts): the owner's and the
    // admin's view, none for another tenant.
    let checks = fleet.ok("GET", "/api/v1/fleet/checks", None);
    assert_eq!(checks.as_array().unwrap().len(), 1, "{checks}");
    assert_eq!(checks[0]["service"], "web");
    assert!(
        checks[0]["messages"][0]
            .as_str()
            .unwrap()
            .contains("2 instances share host dc1-h1"),
        "{checks}"
    );
    let owner = fleet.token("payments", &["fleet:read"]);
    let (status, owner_checks) =
        fleet
            .server
            .call("GET", "/api/v1/fleet/checks", Some(&owner), None);
    assert_eq!((status, &owner_checks), (200, &checks));
    fleet.server.create_tenant("other");
    let other = fleet.token("other", &["fleet:read"]);
    let (status, other_checks) =
        fleet
            .server
            .call("GET", "/api/v1/fleet/checks", Some(&other), None);
    assert_eq!((status, other_checks), (200, json!([])));
    let logs_only = fleet.token("payments", &["logs:read"]);
    let (status, _) = fleet
        .server
        .call("GET", "/api/v1/fleet/checks", Some(&logs_only), None);
    assert_eq!(status, 403);

    let error = fleet.cli_err(&["service", "migrate", "web", "--to-host", "nope"]);
    assert!(error.contains("nope"), "{error}");
    let migration = fleet.cli_json(&["service", "migrate", "web", "--to-host", "dc1-h2"]);
    let moves = migration["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 1, "{migration}");
    let (old, replacement) = (
        moves[0]["instance"].as_u64().unwrap(),
        moves[0]["replacement"].as_u64().unwrap(),
    );
    assert_eq!(
        fleet.ok(
            "GET",
            &format!("/api/v1/fleet/instances/{replacement}"),
            None
        )["host"],
        "dc1-h2"
    );
    fleet.ok(
        "POST",
        &format!("/api/v1/fleet/instances/{replacement}/healthy"),
        None,
    );
    fleet.ok(
        "POST",
        &format!("/api/v1/fleet/instances/{old}/stopped"),
        None,
    );
    let clean = fleet.cli(&["service", "check", "web"]);
    assert!(clean.contains("no placement problems"), "{clean}");
    assert_eq!(fleet.ok("GET", "/api/v1/fleet/checks", None), json!([]));
    let hosts: BTreeSet<String> = instances(&fleet.service("web"))
        .iter()
        .map(|i| i["host"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hosts.len(), 2);
}

#[test]
fn a_tenant_owning_services_is_deleted_only_with_force() {
    let fleet = Fleet::start();
    fleet.inventory(&["dc1"], &[("dc1-h1", "dc1", 16_000, 64 * GIB)]);
    fleet.server.create_tenant("payments");
    let ghost = json!({"name": "web", "tenant": "ghost", "templates": ["web_dc1"], "groups": 1});
    let (status, answer) = fleet.api("POST", "/api/v1/fleet/services", Some(ghost));
    assert_eq!(
        (status, reason(&answer)),
        (404, "tenant \"ghost\" not found".to_owned())
    );
    fleet.cli(&[
        "service",
        "create",
        "web",
        "--tenant",
        "payments",
        "--templates",
        "web_dc1",
        "--groups",
        "2",
    ]);
    fleet.cli(&[
        "quota", "set", "payments", "--cpu", "8", "--memory", "32GiB", "--disk", "1TiB",
    ]);
    fleet.token("payments", &["fleet:read"]);

    let error = fleet.cli_err(&["tenant", "delete", "payments"]);
    assert!(
        error.contains("tenant \"payments\" is in use: it owns 1 services (web), 1 active tokens; delete those first or force"),
        "{error}"
    );
    assert_eq!(
        instances(&fleet.service("web")).len(),
        2,
        "a refused deletion changes nothing"
    );

    fleet.cli(&["tenant", "delete", "payments", "--force"]);
    let (status, _) = fleet.api("GET", "/api/v1/fleet/services/web", None);
    assert_eq!(status, 404);
    assert_eq!(fleet.ok("GET", "/api/v1/fleet/leases", None), json!([]));
    assert_eq!(fleet.ok("GET", "/api/v1/fleet/quotas", None), json!([]));
    let events = fleet.ok("GET", "/api/v1/fleet/events?service=web", None);
    assert_eq!(
        events[0]["kind"], "service_deleted",
        "the audit log keeps the story"
    );
    let (status, _) = fleet.api("GET", "/api/v1/tenants/payments", None);
    assert_eq!(status, 404);
}

#[test]
fn the_openapi_document_describes_the_fleet() {
    let fleet = Fleet::start();
    let document = fleet.ok("GET", "/api/v1/openapi.json", None);
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/fleet/zones",
        "/api/v1/fleet/data-centers/{name}",
        "/api/v1/fleet/hosts/{name}/heartbeat",
        "/api/v1/fleet/hosts/{name}/desired",
        "/api/v1/fleet/hosts/{name}/drain",
        "/api/v1/fleet/ranges/{network}/{prefix_len}",
        "/api/v1/fleet/leases",
        "/api/v1/fleet/templates/{name}",
        "/api/v1/fleet/services/{name}/check",
        "/api/v1/fleet/checks",
        "/api/v1/fleet/services/{name}/migrate",
        "/api/v1/fleet/instances/{id}/healthy",
        "/api/v1/fleet/instances/{id}/stopped",
        "/api/v1/fleet/capacity",
        "/api/v1/fleet/quotas/{tenant}",
        "/api/v1/fleet/events",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(paths["/api/v1/fleet/services/{name}"]["patch"].is_object());
}
