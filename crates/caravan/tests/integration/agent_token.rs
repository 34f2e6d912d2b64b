//! A real agent on an agent token: it registers its host, runs an instance, reports it healthy
//! and ships its output; the same token is refused another host's desired instances, log
//! searches and service creation, and an agent started for another host stops at once.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::agent::{Agent, ok, one_data_center, sample_app_template, wait_for};
use crate::harness::{caravan_bin, free_port};
use crate::logs::LogsFixture;

/// Asserts a 403 whose reason names the agent token of dc1-h1.
fn refused(fixture: &LogsFixture, token: &str, method: &str, path: &str, body: Option<Value>) {
    let (status, answer) = fixture.server.call(method, path, Some(token), body);
    assert_eq!(status, 403, "{method} {path}: {answer}");
    let reason = answer["error"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("agent token of host dc1-h1"),
        "{method} {path}: {reason}"
    );
}

#[test]
fn an_agent_runs_on_its_own_agent_token() {
    let fixture = LogsFixture::start();
    let frontend_port = free_port();
    let talker = sample_app_template(
        "talker",
        json!({"data_center": "dc1", "frontend_port": frontend_port}),
    );
    one_data_center(&fixture.server, &fixture.admin, "10.8.0.0/24", talker);
    let created = ok(
        &fixture.server,
        &fixture.admin,
        "POST",
        "/api/v1/tokens",
        json!({"name": "agent of dc1-h1", "kind": "agent", "host": "dc1-h1"}),
    );
    assert_eq!(created["token"]["host"], "dc1-h1", "{created}");
    let token = created["secret"].as_str().unwrap().to_owned();

    // An agent started for another host with this token stops at once, saying why.
    let work = tempfile::tempdir().unwrap();
    let port = 22_000 + (std::process::id() % 400) as u16 * 10;
    let wrong = Command::new(caravan_bin())
        .args(["--server", &fixture.server.url, "--token", &token])
        .args(["agent", "--host-name", "dc2-h1", "--data-center", "dc1"])
        .args([
            "--port-range",
            &format!("{port}-{}", port + 9),
            "--work-dir",
        ])
        .arg(work.path().join("wrong"))
        .env_remove("CARAVAN_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run the agent");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "{stderr}");
    assert!(
        stderr.contains("agent token of host dc1-h1, not of host dc2-h1"),
        "{stderr}"
    );

    // The right host: it registers, runs an instance, reports it healthy, ships its logs, and
    // runs a load balancer in front of it, all on its token.
    let lb_metrics = format!("127.0.0.1:{}", free_port());
    let agent = Agent::start_with(
        &fixture.server.url,
        &token,
        work.path(),
        "dc1-h1",
        "dc1",
        (port, port + 9),
        &[
            "--advertise-ip",
            "127.0.0.1",
            "--lb",
            "--lb-bind",
            "127.0.0.1",
            "--lb-metrics-listen",
            &lb_metrics,
        ],
    );
    wait_for("dc1-h1 registered and up", || {
        let (_, host) = fixture.server.call(
            "GET",
            "/api/v1/fleet/hosts/dc1-h1",
            Some(&fixture.admin),
            None,
        );
        (host["host"]["state"] == "up").then_some(())
    });
    ok(
        &fixture.server,
        &fixture.admin,
        "POST",
        "/api/v1/fleet/services",
        json!({"name": "talker", "tenant": "payments", "templates": ["talker"], "groups": 1}),
    );
    let endpoint = wait_for("the instance healthy in the registry", || {
        let (status, registry) =
            fixture
                .server
                .call("GET", "/api/v1/fleet/registry", Some(&token), None);
        assert_eq!(status, 200, "{registry}");
        let endpoint = registry["services"][0]["endpoints"][0].clone();
        (endpoint["healthy"] == true).then_some(endpoint)
    });
    assert_eq!(endpoint["host"], "dc1-h1", "{endpoint}");
    let instance = endpoint["instance"].as_u64().unwrap();
    let through_haproxy = wait_for("HAProxy serving the instance", || {
        crate::agent::sample_get(frontend_port)
    });
    assert_eq!(through_haproxy["instance"], format!("i-{instance}"));
    wait_for("the instance's logs shipped into payments", || {
        let (status, answer) = fixture.server.call(
            "POST",
            "/api/v1/logs/search",
            Some(&fixture.payments_reader),
            Some(json!({"query": "kubernetes.node:dc1-h1 AND service:talker", "size": 1})),
        );
        assert_eq!(status, 200, "{answer}");
        (answer["total"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    assert!(!agent.log().contains("HTTP 403"), "{}", agent.log());

    // Nothing else: another host's desired instances, searches, services.
    refused(
        &fixture,
        &token,
        "GET",
        "/api/v1/fleet/hosts/dc2-h1/desired",
        None,
    );
    refused(
        &fixture,
        &token,
        "POST",
        "/api/v1/logs/search",
        Some(json!({"tenants": ["payments"], "query": "*"})),
    );
    refused(&fixture, &token, "GET", "/payments/_search", None);
    refused(
        &fixture,
        &token,
        "POST",
        "/api/v1/fleet/services",
        Some(json!({"name": "evil", "tenant": "payments", "templates": ["talker"], "groups": 1})),
    );
}
