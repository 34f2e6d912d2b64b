//! The warm-up weight ramp and the drain before a stop, end to end: a real server, one real
//! agent and `caravan sample-app`. A healthy instance's weight climbs 10, 25, 50, 75, 100 in the
//! registry over its template's `warmup_ms`, each step a new version that wakes watchers; an
//! instance the server removes keeps serving for the agent's drain delay, then finishes the
//! request in flight when it gets SIGTERM, and only then exits. Its memory limit is in force.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::{Agent, DRAIN_DELAY_MS, alive, endpoints, ok, sample_get, wait_for};
use crate::harness::{TestServer, caravan_bin};

/// The template's warm-up.
const WARMUP_MS: u64 = 1_200;

/// `GET /slow?ms=` of a sample app on `port`: status and body.
fn slow_get(port: u16, ms: u64) -> Result<(u16, Value), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://127.0.0.1:{port}/slow?ms={ms}"))
        .send()
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.json().map_err(|e| e.to_string())?))
}

#[test]
fn instances_warm_up_in_steps_and_drain_before_they_stop() {
    let server = TestServer::start();
    let admin = server.admin_token();
    let post = |path: &str, body: Value| ok(&server, &admin, "POST", path, body);
    post("/api/v1/fleet/zones", json!({"name": "production"}));
    post(
        "/api/v1/fleet/data-centers",
        json!({"name": "dc1", "zone": "production"}),
    );
    post(
        "/api/v1/fleet/ranges",
        json!({"cidr": "10.1.0.0/24", "data_center": "dc1"}),
    );
    post(
        "/api/v1/fleet/templates",
        json!({
            "name": "warm_dc1",
            "data_center": "dc1",
            "resources": {"cpu_millis": 100, "memory_bytes": 64 << 20, "disk_bytes": 1 << 30},
            "run": {
                "command": format!("exec '{}' sample-app", caravan_bin()),
                "args": ["--log-interval-ms", "0"],
                "port": 8080
            },
            "health": {"probe": {"kind": "http", "path": "/health"},
                "interval_ms": 100, "timeout_ms": 100, "rise": 2, "fall": 3,
                "warmup_ms": WARMUP_MS}
        }),
    );
    server.create_tenant("payments");
    let dir = tempfile::tempdir().unwrap();
    let first_port = 24_000 + (std::process::id() % 100) as u16 * 20;
    let agent = Agent::start(
        &server.url,
        &admin,
        dir.path(),
        "dc1-h1",
        "dc1",
        (first_port, first_port + 19),
    );
    wait_for("the host registered", || {
        let (status, _) = server.call("GET", "/api/v1/fleet/hosts/dc1-h1", Some(&admin), None);
        (status == 200).then_some(())
    });

    // Deploy, and watch the registry: every weight the healthy endpoint shows, in order.
    post(
        "/api/v1/fleet/services",
        json!({"name": "warm", "tenant": "payments", "templates": ["warm_dc1"], "groups": 1}),
    );
    let (status, mut answer, _) = endpoints(&server.url, &admin, "warm", None);
    assert_eq!(status, 200, "{answer}");
    let mut steps: Vec<(u64, String, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(endpoint) = answer["endpoints"].get(0)
            && endpoint["healthy"] == true
        {
            let weight = endpoint["weight"].as_u64().unwrap();
            if steps.last().is_none_or(|(last, _, _)| *last != weight) {
                steps.push((
                    weight,
                    answer["version"].as_str().unwrap().to_owned(),
                    Instant::now(),
                ));
            }
            if weight == 100 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "ramp not done: {steps:?}");
        let version = answer["version"].as_str().unwrap().to_owned();
        let (status, next, _) = endpoints(&server.url, &admin, "warm", Some((&version, 5_000)));
        assert_eq!(status, 200, "{next}");
        answer = next;
    }
    let weights: Vec<u64> = steps.iter().map(|(weight, _, _)| *weight).collect();
    assert_eq!(weights, [10, 25, 50, 75, 100], "{}", agent.log());
    let mut versions: Vec<&String> = steps.iter().map(|(_, version, _)| version).collect();
    versions.dedup();
    assert_eq!(versions.len(), 5, "each step is a new version");
    let ramp = steps[4].2 - steps[0].2;
    assert!(
        ramp >= Duration::from_millis(WARMUP_MS * 3 / 4) && ramp < Duration::from_secs(10),
        "the ramp took {ramp:?} (warm-up {WARMUP_MS} ms)"
    );
    let endpoint = answer["endpoints"][0].clone();
    let port = endpoint["port"].as_u64().unwrap() as u16;
    let id = format!("i-{}", endpoint["instance"]);
    let pid = agent.records()[&id].pid;
    assert!(
        agent.log().contains("instance warming up"),
        "{}",
        agent.log()
    );

    // Its memory (64 MiB) is enforced: by its own cgroup where the agent has cgroup v2, by
    // RLIMIT_DATA otherwise.
    let log = agent.log();
    if log.contains("instances get cgroups of their own") {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cgroup.contains("/caravan/dc1-h1.") && cgroup.contains(&id),
            "{cgroup}"
        );
    } else {
        assert!(log.contains("no cgroup v2 limits"), "{log}");
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let data = limits
            .lines()
            .find(|line| line.starts_with("Max data size"))
            .unwrap();
        assert!(data.contains(&(64u64 << 20).to_string()), "{data}");
    }

    // Drain: a request in flight, then the service is deleted. The instance leaves the
    // registry at once, keeps serving through the drain delay, then gets SIGTERM and answers
    // the request in flight before it exits.
    let in_flight = std::thread::spawn(move || slow_get(port, DRAIN_DELAY_MS + 700));
    std::thread::sleep(Duration::from_millis(100));
    let deleting = Instant::now();
    let (status, answer) = server.call("DELETE", "/api/v1/fleet/services/warm", Some(&admin), None);
    assert_eq!(status, 204, "{answer}");
    // Half-way through the drain delay, new connections are still served (without the delay,
    // the SIGTERM would have closed the listener by now).
    std::thread::sleep(
        (deleting + Duration::from_millis(DRAIN_DELAY_MS / 2))
            .saturating_duration_since(Instant::now()),
    );
    let served = sample_get(port);
    assert_eq!(
        served.map(|answer| answer["instance"].clone()),
        Some(json!(id)),
        "still serving during the drain delay"
    );
    wait_for("the drained instance stopped", || {
        (!alive(pid)).then_some(())
    });
    let stopped_after = deleting.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(DRAIN_DELAY_MS),
        "stopped {stopped_after:?} after the delete, before the drain delay"
    );
    let (status, body) = in_flight.join().unwrap().expect("the request in flight");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instance"], json!(id), "{body}");
    let log = agent.log();
    assert!(
        log.contains(&format!("drain_ms={DRAIN_DELAY_MS}")),
        "the agent waited its drain delay: {log}"
    );
    let output = std::fs::read_to_string(
        dir.path()
            .join("dc1-h1/instances")
            .join(&id)
            .join("output.log"),
    )
    .unwrap();
    assert!(output.contains("sample-app stopped"), "{output}");
}
