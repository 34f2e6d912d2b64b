//! An agent ships its instances' output into the owner tenant's logs: the real server with the
//! example schema, one real agent, `caravan sample-app` printing JSON lines with key drift and
//! plain lines; the logs become searchable, labelled with their instance, through the schema.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::agent::{ok, one_data_center};
use crate::harness::caravan_bin;
use crate::logs::LogsFixture;

/// Kills the agent (and, through its SIGTERM handling, its instances) when the test ends.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        // SIGTERM lets the agent stop its instances' process groups.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn instance_output_is_shipped_to_the_tenant_logs() {
    let fixture = LogsFixture::start();
    let talker = json!({
        "name": "talker", "data_center": "dc1",
        "resources": {"cpu_millis": 100, "memory_bytes": 64 << 20, "disk_bytes": 1 << 30},
        // JSON lines from the sample app, and one plain line from the shell first.
        "run": {"command": format!("echo 'plain start-up line'; exec '{}' sample-app", caravan_bin()),
                "args": ["--log-interval-ms", "100"]}
    });
    one_data_center(&fixture.server, &fixture.admin, "10.9.0.0/24", talker);
    let work = tempfile::tempdir().unwrap();
    let port = 21_000 + (std::process::id() % 400) as u16 * 10;
    let agent = Command::new(caravan_bin())
        .args(["--server", &fixture.server.url, "--token", &fixture.admin])
        .args(["agent", "--host-name", "dc1-h1", "--data-center", "dc1"])
        .args(["--cpu", "2", "--memory-mib", "1024", "--disk-gib", "10"])
        .args([
            "--port-range",
            &format!("{port}-{}", port + 9),
            "--work-dir",
        ])
        .arg(work.path())
        .env_remove("CARAVAN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    let _agent = AgentProcess(agent);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, host) = fixture.server.call(
            "GET",
            "/api/v1/fleet/hosts/dc1-h1",
            Some(&fixture.admin),
            None,
        );
        if host["host"]["state"] == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not register: {host}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(
        &fixture.server,
        &fixture.admin,
        "POST",
        "/api/v1/fleet/services",
        json!({"name": "talker", "tenant": "payments", "templates": ["talker"], "groups": 1}),
    );

    // The logs arrive, labelled with where they come from, through the schema: the sample
    // app's `user_id` (an alias) is searchable as `userId`, the plain line as a message.
    let search = |query: &str| {
        let (status, answer) = fixture.server.call(
            "POST",
            "/api/v1/logs/search",
            Some(&fixture.payments_reader),
            Some(json!({"query": query, "size": 5})),
        );
        assert_eq!(status, 200, "{query}: {answer}");
        answer
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let answer = search("kubernetes.pod:i-0 AND kubernetes.node:dc1-h1 AND service:talker");
        if answer["total"].as_u64().unwrap_or(0) >= 5 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "no shipped logs after 20 s: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let hit = &found["hits"][0]["_source"];
    assert_eq!(hit["kubernetes"]["namespace"], "payments", "{hit}");
    assert_eq!(hit["labels"]["data_center"], "dc1", "{hit}");
    let plain = search("message:\"plain start-up line\"");
    assert_eq!(plain["total"], 1, "the plain line, once: {plain}");
    let drifted = search("_exists_:userId AND kubernetes.pod:i-0");
    assert!(drifted["total"].as_u64().unwrap_or(0) >= 1, "{drifted}");

    // Nothing lost, nothing twice: once the service is gone and its output shipped, the
    // tenant holds exactly one document per line of the output file.
    let (status, answer) = fixture.server.call(
        "DELETE",
        "/api/v1/fleet/services/talker",
        Some(&fixture.admin),
        None,
    );
    assert!((200..300).contains(&status), "{status} {answer}");
    let instance_dir = work.path().join("instances/i-0");
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let output = std::fs::read(instance_dir.join("output.log")).unwrap_or_default();
        let shipped: usize = std::fs::read_to_string(instance_dir.join("shipped"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        let stopped = !std::process::Command::new("pgrep")
            .args(["-f", &format!("{}.*sample-app", work.path().display())])
            .status()
            .is_ok_and(|status| status.success());
        if shipped == output.len() && !output.is_empty() && stopped {
            break output
                .split(|&b| b == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .count() as u64;
        }
        assert!(Instant::now() < deadline, "the output was not all shipped");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (status, _) = fixture
        .server
        .call("POST", "/_refresh", Some(&fixture.admin), None);
    assert_eq!(status, 200);
    let (status, count) = fixture.server.call(
        "GET",
        "/payments/_count?q=kubernetes.pod:i-0",
        Some(&fixture.payments_reader),
        None,
    );
    assert_eq!(
        (status, count["count"].as_u64()),
        (200, Some(lines)),
        "{count}"
    );
}
