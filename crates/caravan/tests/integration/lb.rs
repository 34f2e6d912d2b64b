//! Load balancing end to end: the real server, four real agents (2 data centers x 2 hosts)
//! running `caravan sample-app`, `caravan lb` driving a real HAProxy, and wrk sending traffic
//! through HAProxy at a bounded rate while the fleet changes under it: (a) a host drained,
//! (c) the service scaled up then down, (d) an instance crashed, (e) a new service (a reload),
//! (b) an agent killed with SIGKILL. Every phase must lose no request; each prints its requests,
//! errors, p99 latency, and the run prints the delay from registry change to HAProxy applied.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caravan_lb::model::ServerState;
use caravan_lb::sync::{ActualServer, parse_servers_state};
use serde_json::json;

use crate::agent::{
    fast_host_loss_server, four_agents, ok, sample_app_template, two_data_centers, wait_for,
};
use crate::harness::{TestServer, caravan_bin, free_port, terminate_child};

/// The pause wrk's connections make between two requests: 4 connections, at most ~800 req/s.
const WRK_DELAY_MS: u64 = 5;

/// A `caravan lb` process; stopped when dropped.
struct Lb {
    child: Child,
    dir: PathBuf,
    metrics: String,
}

impl Lb {
    fn start(server_url: &str, token: &str, dir: &Path) -> Lb {
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("lb.log")).unwrap();
        let work_dir = dir.join("lb");
        let child = Command::new(caravan_bin())
            .args(["--server", server_url, "--token", token, "lb"])
            .args(["--bind", "127.0.0.1", "--metrics-listen", &metrics])
            .args(["--resync-ms", "1000"])
            .arg("--work-dir")
            .arg(&work_dir)
            .env("RUST_LOG", "info,caravan_lb=debug")
            .env_remove("CARAVAN_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn caravan lb");
        Lb {
            child,
            dir: work_dir,
            metrics,
        }
    }

    /// Sends a Runtime API command, answers HAProxy's answer (`None` if HAProxy is not there).
    fn try_runtime(&self, command: &str) -> Option<String> {
        let mut socket = UnixStream::connect(self.dir.join("runtime.sock")).ok()?;
        socket.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// HAProxy's servers, read as the driver reads them.
    fn servers(&self) -> Option<Vec<ActualServer>> {
        parse_servers_state(&self.try_runtime("show servers state")?).ok()
    }

    /// HAProxy's servers that take traffic (ready, not draining, not in maintenance):
    /// `backend ip:port`.
    fn ready_servers(&self) -> Option<BTreeSet<String>> {
        let servers = self.servers()?;
        Some(
            servers
                .iter()
                .filter(|server| server.state == ServerState::Ready)
                .filter_map(described)
                .collect(),
        )
    }

    /// The slot (`sN`) holding `backend ip:port`.
    fn slot_of(&self, server: &str) -> Option<String> {
        let servers = self.servers()?;
        servers
            .into_iter()
            .find(|actual| described(actual).as_deref() == Some(server))
            .map(|actual| actual.name)
    }

    fn metrics(&self) -> String {
        reqwest::blocking::get(format!("http://{}/metrics", self.metrics))
            .and_then(|response| response.text())
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.parent().unwrap().join("lb.log")).unwrap_or_default()
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        terminate_child(&mut self.child, Duration::from_secs(10));
    }
}

/// `backend ip:port` of a server HAProxy has.
fn described(server: &ActualServer) -> Option<String> {
    Some(format!(
        "{} {}:{}",
        server.backend, server.addr?, server.port
    ))
}

/// What wrk measured.
#[derive(Debug)]
struct WrkReport {
    requests: u64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses.
    errors: u64,
    p99_ms: f64,
    output: String,
}

/// Runs wrk against `port` until `action` has returned and one more second has passed (at most
/// 60 s), at a bounded rate (4 connections, each pausing between requests).
fn under_load(dir: &Path, port: u16, action: impl FnOnce()) -> WrkReport {
    let script = dir.join("pace.lua");
    std::fs::write(
        &script,
        format!("function delay()\n  return {WRK_DELAY_MS}\nend\n"),
    )
    .unwrap();
    let wrk = Command::new("wrk")
        .args(["-t1", "-c4", "-d60s", "--latency", "--timeout", "5s", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk (Debian package wrk)");
    std::thread::sleep(Duration::from_secs(1));
    action();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill(2) on a child we spawned and have not reaped; wrk reports on SIGINT.
    unsafe { libc::kill(wrk.id() as i32, libc::SIGINT) };
    let output = wrk.wait_with_output().unwrap();
    let output = String::from_utf8_lossy(&output.stdout).into_owned();
    parse_wrk(&output)
}

fn parse_wrk(output: &str) -> WrkReport {
    let mut report = WrkReport {
        requests: 0,
        errors: 0,
        p99_ms: f64::NAN,
        output: output.to_owned(),
    };
    for line in output.lines().map(str::trim) {
        if let Some((count, _)) = line.split_once(" requests in ") {
            report.requests = count.trim().parse().unwrap_or(0);
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            report.errors += errors
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.errors += count.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(latency) = line.strip_prefix("99%") {
            report.p99_ms = duration_ms(latency.trim());
        }
    }
    report
}

/// `3.21ms`, `812.00us`, `1.02s` in milliseconds.
fn duration_ms(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => value / 1_000.0,
        "ms" => value,
        "s" => value * 1_000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}

/// The service's endpoints that should take traffic: `backend ip:port` of the healthy and
/// not draining ones with a port.
fn registry_ready(server: &TestServer, admin: &str, service: &str) -> BTreeSet<String> {
    let (_, answer) = server.call(
        "GET",
        &format!("/api/v1/fleet/services/{service}/endpoints"),
        Some(admin),
        None,
    );
    answer["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["healthy"] == json!(true) && e["draining"] == json!(false))
        .filter_map(|e| {
            Some(format!(
                "svc_{service} {}:{}",
                e["ip"].as_str()?,
                e["port"].as_u64()?
            ))
        })
        .collect()
}

/// Waits until the service has `count` endpoints taking traffic in the registry, none on
/// `not_on` hosts, and HAProxy has exactly them ready.
fn wait_balanced(server: &TestServer, admin: &str, lb: &Lb, count: usize, not_on: &[&str]) {
    wait_for(
        &format!("{count} endpoints ready in the registry and HAProxy"),
        || {
            let (_, answer) = server.call(
                "GET",
                "/api/v1/fleet/services/web/endpoints",
                Some(admin),
                None,
            );
            let endpoints = answer["endpoints"].as_array()?.clone();
            if endpoints
                .iter()
                .any(|e| not_on.iter().any(|host| e["host"] == json!(host)))
            {
                return None;
            }
            let registry = registry_ready(server, admin, "web");
            let haproxy: BTreeSet<String> = lb
                .ready_servers()?
                .into_iter()
                .filter(|server| server.starts_with("svc_web "))
                .collect();
            (registry.len() == count && endpoints.len() == count && registry == haproxy)
                .then_some(())
        },
    );
}

fn report(phase: &str, wrk: &WrkReport) {
    eprintln!(
        "lb phase {phase}: {} requests, {} errors, p99 {:.2} ms",
        wrk.requests, wrk.errors, wrk.p99_ms
    );
}

#[test]
fn haproxy_follows_the_registry_without_losing_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = fast_host_loss_server(dir.path());
    let admin = server.admin_token();
    let web_port = free_port();
    let api_port = free_port();
    let base = sample_app_template("app_base", json!({"frontend_port": web_port}));
    two_data_centers(&server, &admin, base);
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/templates",
        json!({"name": "api_dc1", "extends": "app_dc1", "frontend_port": api_port}),
    );
    server.create_tenant("payments");

    // Instances listen on loopback: the agents advertise 127.0.0.1 instead of the leases. Ports
    // below the ranges of the other agent tests, and of ephemeral ports.
    let base = 10_000 + (std::process::id() % 100) as u16 * 100;
    let advertise = ["--advertise-ip", "127.0.0.1"];
    // Agents and the load balancer act on tokens of their hosts, not the admin's.
    let agent_token = |host: &str| {
        server.create_token(json!({"name": format!("agent {host}"), "kind": "agent", "host": host}))
    };
    let mut agents = four_agents(
        &server,
        &server.url,
        &admin,
        agent_token,
        dir.path(),
        base,
        &advertise,
    );
    ok(
        &server,
        &admin,
        "POST",
        "/api/v1/fleet/services",
        json!({"name": "web", "tenant": "payments", "templates": ["app_dc1", "app_dc2"], "groups": 2}),
    );
    let lb = Lb::start(&server.url, &agent_token("dc2-h2"), dir.path());
    wait_balanced(&server, &admin, &lb, 4, &[]);
    let seen: BTreeSet<String> = (0..40)
        .filter_map(|_| crate::agent::sample_get(web_port))
        .map(|answer| answer["instance"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(seen.len(), 4, "round robin over the 4 instances: {seen:?}");

    // (a) Drain a host: its instances move (replacement healthy first, then drained, then
    // stopped after the agents' drain delay).
    let drain = under_load(dir.path(), web_port, || {
        ok(
            &server,
            &admin,
            "POST",
            "/api/v1/fleet/hosts/dc1-h1/drain",
            json!({}),
        );
        wait_balanced(&server, &admin, &lb, 4, &["dc1-h1"]);
    });
    report("(a) drain dc1-h1", &drain);

    // (c) Scale up to 3 groups, then back down to 2.
    let scale = under_load(dir.path(), web_port, || {
        ok(
            &server,
            &admin,
            "PATCH",
            "/api/v1/fleet/services/web",
            json!({"groups": 3}),
        );
        wait_balanced(&server, &admin, &lb, 6, &["dc1-h1"]);
        ok(
            &server,
            &admin,
            "PATCH",
            "/api/v1/fleet/services/web",
            json!({"groups": 2}),
        );
        wait_balanced(&server, &admin, &lb, 4, &["dc1-h1"]);
    });
    report("(c) scale 2 -> 3 -> 2 groups", &scale);

    // (d) Crash an instance: HAProxy retries on another server until the registry says so.
    let crash = under_load(dir.path(), web_port, || {
        let records = agents[3].records();
        let (_, victim) = records.iter().next().expect("an instance on dc2-h2");
        // SAFETY: kill(2) on a sample app of this test (its record's pid, checked alive).
        unsafe { libc::kill(victim.pid, libc::SIGKILL) };
        let old_pid = victim.pid;
        wait_for("the crashed instance restarted", || {
            agents[3]
                .records()
                .values()
                .all(|r| r.pid != old_pid)
                .then_some(())
        });
        wait_balanced(&server, &admin, &lb, 4, &["dc1-h1"]);
    });
    report("(d) crash an instance", &crash);

    // (e) A new service with its own frontend: a reload, hitless for the service in use.
    let reload = under_load(dir.path(), web_port, || {
        ok(
            &server,
            &admin,
            "POST",
            "/api/v1/fleet/services",
            json!({"name": "api", "tenant": "payments", "templates": ["api_dc1"], "groups": 1}),
        );
        wait_for("the new frontend serving", || {
            crate::agent::sample_get(api_port).filter(|answer| answer["service"] == json!("api"))
        });
    });
    report("(e) new service (reload)", &reload);

    // (b) Kill an agent: its host goes down after the heartbeat timeout, its instances are
    // replaced on the other host of its data center. Its old instances keep running meanwhile.
    let mut replaced_after = Duration::ZERO;
    let kill = under_load(dir.path(), web_port, || {
        let killed_at = Instant::now();
        agents[2].kill9();
        wait_balanced(&server, &admin, &lb, 4, &["dc1-h1", "dc2-h1"]);
        replaced_after = killed_at.elapsed();
    });
    report("(b) kill -9 the agent of dc2-h1", &kill);
    eprintln!("lb: kill -9 to replacement ready in HAProxy: {replaced_after:?}");

    // A change HAProxy lost (here: an operator's command): the periodic full reconciliation
    // (every second in this test) puts it back.
    let corrections = |lb: &Lb| metric_value(&lb.metrics(), "caravan_lb_resync_corrections_total");
    let corrected_before = corrections(&lb);
    let ready = lb.ready_servers().unwrap();
    let tampered = ready
        .iter()
        .find(|server| server.starts_with("svc_web "))
        .unwrap();
    let slot = lb.slot_of(tampered).unwrap();
    lb.try_runtime(&format!("set server svc_web/{slot} state maint"))
        .unwrap();
    assert!(!lb.ready_servers().unwrap().contains(tampered));
    wait_balanced(&server, &admin, &lb, 4, &["dc1-h1", "dc2-h1"]);
    assert_eq!(corrections(&lb), corrected_before + 1.0, "{}", lb.log());

    let metrics = lb.metrics();
    let metric = |name: &str| metric_value(&metrics, name);
    let applied = metric("caravan_lb_change_applied_seconds_count");
    let applied_mean_ms = metric("caravan_lb_change_applied_seconds_sum") / applied * 1_000.0;
    let reloads = metric("caravan_lb_reloads_total");
    eprintln!(
        "lb: {applied} registry changes applied, mean delay from the fleet change {applied_mean_ms:.1} ms; {reloads} reloads"
    );
    assert!(applied >= 5.0, "{metrics}");
    assert_eq!(
        reloads, 2.0,
        "the start and the new service only: {metrics}"
    );
    assert!(
        metrics.contains("caravan_lb_server_sessions_total{backend=\"svc_web\""),
        "HAProxy's statistics per server: {metrics}"
    );

    let log = lb.log();
    for (phase, wrk) in [
        ("drain", &drain),
        ("scale", &scale),
        ("crash", &crash),
        ("reload", &reload),
        ("kill", &kill),
    ] {
        assert!(wrk.requests > 100, "{phase}: wrk ran: {}", wrk.output);
        assert_eq!(
            wrk.errors, 0,
            "{phase}: no request lost: {}\n{log}",
            wrk.output
        );
    }
    drop(lb);
    drop(agents);
}

/// The value of an unlabelled metric in a Prometheus text exposition (NaN if absent).
fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(f64::NAN)
}

#[test]
fn a_refused_token_stops_the_load_balancer_with_the_reason() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let output = Command::new(caravan_bin())
        .args(["--server", &server.url, "--token", "cvn_not_a_token", "lb"])
        .args(["--bind", "127.0.0.1", "--metrics-listen", &metrics])
        .arg("--work-dir")
        .arg(dir.path())
        .env_remove("CARAVAN_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(
        !stderr.contains("cvn_not_a_token"),
        "the secret is not printed: {stderr}"
    );
}
