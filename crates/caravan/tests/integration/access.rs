//! Every access rule, as a table of (token kind x endpoint x expected status).

use serde_json::{Value, json};

use crate::harness::TestServer;

struct Tokens {
    admin: String,
    second_admin: String,
    alpha_all: String,
    alpha_logs_write: String,
    revoked: String,
    /// The agent token of host dc1-h1.
    agent: String,
}

fn setup(server: &TestServer) -> Tokens {
    server.create_tenant("alpha");
    server.create_tenant("beta");
    let second_admin = server.create_token(json!({"name": "ops", "kind": "admin"}));
    let alpha_all = server.create_token(json!({
        "name": "alpha all", "kind": "tenant", "tenant": "alpha",
        "scopes": ["logs:write", "logs:read", "fleet:read", "fleet:write"]
    }));
    let alpha_logs_write = server.create_token(json!({
        "name": "filebeat", "kind": "tenant", "tenant": "alpha", "scopes": ["logs:write"]
    }));
    let revoked = server.create_token(json!({
        "name": "old", "kind": "tenant", "tenant": "alpha", "scopes": ["logs:read"]
    }));
    let agent = server.create_token(json!({"name": "agent", "kind": "agent", "host": "dc1-h1"}));
    let admin = server.admin_token();
    let (_, tokens) = server.call("GET", "/api/v1/tokens", Some(&admin), None);
    let revoked_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "old")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = server.call(
        "DELETE",
        &format!("/api/v1/tokens/{revoked_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(status, 200);
    Tokens {
        admin,
        second_admin,
        alpha_all,
        alpha_logs_write,
        revoked,
        agent,
    }
}

#[test]
fn access_rules_table() {
    let server = TestServer::start();
    let tokens = setup(&server);
    let invalid = "cvn_000000000000000000000000000000000000000000000000".to_owned();
    let token = |kind: &str| -> Option<String> {
        match kind {
            "none" => None,
            "invalid" => Some(invalid.clone()),
            "revoked" => Some(tokens.revoked.clone()),
            "admin" => Some(tokens.admin.clone()),
            "admin2" => Some(tokens.second_admin.clone()),
            "alpha" => Some(tokens.alpha_all.clone()),
            "alpha-w" => Some(tokens.alpha_logs_write.clone()),
            "agent" => Some(tokens.agent.clone()),
            other => panic!("unknown token kind {other}"),
        }
    };
    let patch = Some(json!({"retention_days": 20}));
    let new_tenant = |name: &str| Some(json!({"name": name}));
    let new_token = Some(json!({"name": "x", "kind": "admin"}));
    // (token, method, path, body, expected status)
    let table: Vec<(&str, &str, &str, Option<Value>, u16)> = vec![
        // Unauthenticated endpoints.
        ("none", "GET", "/healthz", None, 200),
        ("none", "GET", "/readyz", None, 200),
        ("none", "GET", "/metrics", None, 200),
        // The web UI's files: public (the UI asks for a token, and calls the API with it).
        ("none", "GET", "/ui/", None, 200),
        ("none", "GET", "/ui/js/main.js", None, 200),
        // No valid token: 401 everywhere else, including unknown routes' neighbours.
        ("none", "GET", "/api/v1/whoami", None, 401),
        ("invalid", "GET", "/api/v1/whoami", None, 401),
        ("revoked", "GET", "/api/v1/whoami", None, 401),
        ("none", "GET", "/api/v1/tenants", None, 401),
        ("none", "POST", "/api/v1/tenants", new_tenant("gamma"), 401),
        ("invalid", "GET", "/api/v1/tenants/alpha", None, 401),
        ("revoked", "GET", "/api/v1/tenants/alpha", None, 401),
        ("none", "GET", "/api/v1/tokens", None, 401),
        ("none", "GET", "/api/v1/openapi.json", None, 401),
        // Admins.
        ("admin", "GET", "/api/v1/whoami", None, 200),
        ("admin2", "GET", "/api/v1/tenants", None, 200),
        (
            "admin2",
            "POST",
            "/api/v1/tenants",
            new_tenant("gamma"),
            201,
        ),
        ("admin", "GET", "/api/v1/tenants/beta", None, 200),
        ("admin", "PATCH", "/api/v1/tenants/beta", patch.clone(), 200),
        ("admin", "GET", "/api/v1/tenants/nope", None, 404),
        ("admin", "GET", "/api/v1/tokens", None, 200),
        ("admin2", "POST", "/api/v1/tokens", new_token.clone(), 201),
        ("admin", "DELETE", "/api/v1/tokens/tok_nope", None, 404),
        ("admin", "GET", "/api/v1/openapi.json", None, 200),
        ("admin", "DELETE", "/api/v1/tenants/gamma", None, 204),
        // A tenant token: its own tenant is visible, whatever its scopes.
        ("alpha", "GET", "/api/v1/whoami", None, 200),
        ("alpha", "GET", "/api/v1/tenants", None, 200),
        ("alpha", "GET", "/api/v1/tenants/alpha", None, 200),
        ("alpha-w", "GET", "/api/v1/tenants/alpha", None, 200),
        ("alpha", "GET", "/api/v1/openapi.json", None, 200),
        // ... but managing it needs an admin: 403.
        (
            "alpha",
            "PATCH",
            "/api/v1/tenants/alpha",
            patch.clone(),
            403,
        ),
        ("alpha", "DELETE", "/api/v1/tenants/alpha", None, 403),
        ("alpha", "POST", "/api/v1/tenants", new_tenant("delta"), 403),
        ("alpha", "GET", "/api/v1/tokens", None, 403),
        ("alpha", "POST", "/api/v1/tokens", new_token.clone(), 403),
        ("alpha-w", "DELETE", "/api/v1/tokens/tok_nope", None, 403),
        // Another tenant's resources do not exist for it: 404, never 403.
        ("alpha", "GET", "/api/v1/tenants/beta", None, 404),
        ("alpha", "PATCH", "/api/v1/tenants/beta", patch.clone(), 404),
        ("alpha", "DELETE", "/api/v1/tenants/beta", None, 404),
        ("alpha-w", "GET", "/api/v1/tenants/beta", None, 404),
        ("alpha", "GET", "/api/v1/tenants/nope", None, 404),
        // Fleet: inventory and capacity are readable with fleet:read, changed by admins only.
        ("none", "GET", "/api/v1/fleet/hosts", None, 401),
        (
            "admin",
            "POST",
            "/api/v1/fleet/zones",
            Some(json!({"name": "production"})),
            201,
        ),
        ("admin", "GET", "/api/v1/fleet/zones", None, 200),
        ("alpha", "GET", "/api/v1/fleet/zones", None, 200),
        ("alpha", "GET", "/api/v1/fleet/hosts", None, 200),
        ("alpha-w", "GET", "/api/v1/fleet/hosts", None, 403),
        ("alpha", "GET", "/api/v1/fleet/capacity", None, 200),
        ("alpha-w", "GET", "/api/v1/fleet/capacity", None, 403),
        (
            "alpha",
            "POST",
            "/api/v1/fleet/zones",
            Some(json!({"name": "staging"})),
            403,
        ),
        (
            "alpha",
            "DELETE",
            "/api/v1/fleet/zones/production",
            None,
            403,
        ),
        ("alpha", "POST", "/api/v1/fleet/hosts/nope/drain", None, 403),
        ("admin", "POST", "/api/v1/fleet/hosts/nope/drain", None, 404),
        // ... agent calls are for admins and the host's agent token, not tenant tokens.
        (
            "alpha",
            "POST",
            "/api/v1/fleet/hosts/nope/heartbeat",
            None,
            403,
        ),
        (
            "alpha",
            "POST",
            "/api/v1/fleet/instances/i-1/healthy",
            None,
            403,
        ),
        (
            "admin",
            "POST",
            "/api/v1/fleet/instances/i-1/healthy",
            None,
            404,
        ),
        // Quotas: set by admins, read by the tenant; another tenant's is 404.
        (
            "alpha",
            "PUT",
            "/api/v1/fleet/quotas/alpha",
            Some(json!({"cpu_millis": 1000, "memory_bytes": 1024, "disk_bytes": 1024})),
            403,
        ),
        (
            "admin",
            "PUT",
            "/api/v1/fleet/quotas/alpha",
            Some(json!({"cpu_millis": 1000, "memory_bytes": 1024, "disk_bytes": 1024})),
            200,
        ),
        ("alpha", "GET", "/api/v1/fleet/quotas/alpha", None, 200),
        ("alpha", "GET", "/api/v1/fleet/quotas/beta", None, 404),
        ("admin", "GET", "/api/v1/fleet/quotas/nope", None, 404),
        // Services: a tenant's own with fleet:read/fleet:write; another tenant's is 404.
        ("alpha", "GET", "/api/v1/fleet/services", None, 200),
        ("alpha-w", "GET", "/api/v1/fleet/services", None, 403),
        ("none", "GET", "/api/v1/fleet/checks", None, 401),
        ("alpha", "GET", "/api/v1/fleet/checks", None, 200),
        ("alpha-w", "GET", "/api/v1/fleet/checks", None, 403),
        ("admin", "GET", "/api/v1/fleet/checks", None, 200),
        ("alpha", "GET", "/api/v1/fleet/services/nope", None, 404),
        (
            "alpha",
            "POST",
            "/api/v1/fleet/services",
            Some(json!({"name": "web", "tenant": "beta", "templates": ["t"], "groups": 1})),
            404,
        ),
        (
            "alpha-w",
            "POST",
            "/api/v1/fleet/services",
            Some(json!({"name": "web", "tenant": "alpha", "templates": ["t"], "groups": 1})),
            403,
        ),
        ("alpha", "GET", "/api/v1/fleet/events", None, 200),
        (
            "admin",
            "GET",
            "/api/v1/fleet/events?service=web",
            None,
            200,
        ),
        // Agent tokens: created by admins, bound to a host.
        (
            "admin",
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "a2", "kind": "agent", "host": "dc2-h1"})),
            201,
        ),
        (
            "admin",
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "a3", "kind": "agent"})),
            400,
        ),
        (
            "admin",
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "a4", "kind": "agent", "host": "dc1-h1", "tenant": "alpha"})),
            400,
        ),
        ("agent", "GET", "/api/v1/whoami", None, 200),
        ("agent", "GET", "/api/v1/openapi.json", None, 200),
        // ... its own host's agent calls, none of another host's (403, not 404).
        (
            "admin",
            "POST",
            "/api/v1/fleet/data-centers",
            Some(json!({"name": "dc1", "zone": "production"})),
            201,
        ),
        (
            "agent",
            "POST",
            "/api/v1/fleet/hosts",
            Some(host_spec("dc1-h1")),
            201,
        ),
        (
            "agent",
            "POST",
            "/api/v1/fleet/hosts",
            Some(host_spec("dc1-h2")),
            403,
        ),
        (
            "agent",
            "POST",
            "/api/v1/fleet/hosts/dc1-h1/heartbeat",
            None,
            200,
        ),
        (
            "agent",
            "POST",
            "/api/v1/fleet/hosts/dc1-h2/heartbeat",
            None,
            403,
        ),
        ("agent", "GET", "/api/v1/fleet/hosts/dc1-h1", None, 200),
        ("agent", "GET", "/api/v1/fleet/hosts/dc1-h2", None, 403),
        (
            "agent",
            "GET",
            "/api/v1/fleet/hosts/dc1-h1/desired",
            None,
            200,
        ),
        (
            "agent",
            "GET",
            "/api/v1/fleet/hosts/dc1-h2/desired",
            None,
            403,
        ),
        (
            "alpha",
            "GET",
            "/api/v1/fleet/hosts/dc1-h1/desired",
            None,
            403,
        ),
        (
            "agent",
            "PATCH",
            "/api/v1/fleet/hosts/dc1-h1",
            Some(json!({"labels": {"rack": "r1"}})),
            200,
        ),
        (
            "agent",
            "PATCH",
            "/api/v1/fleet/hosts/dc1-h1",
            Some(json!({"state": "draining"})),
            403,
        ),
        (
            "agent",
            "POST",
            "/api/v1/fleet/hosts/dc1-h1/drain",
            None,
            403,
        ),
        ("agent", "DELETE", "/api/v1/fleet/hosts/dc1-h1", None, 403),
        (
            "agent",
            "POST",
            "/api/v1/fleet/instances/i-99/healthy",
            None,
            404,
        ),
        (
            "agent",
            "POST",
            "/api/v1/fleet/instances/i-99/stopped",
            None,
            404,
        ),
        // ... the service registry, nothing else of the fleet.
        ("agent", "GET", "/api/v1/fleet/registry", None, 200),
        ("alpha-w", "GET", "/api/v1/fleet/registry", None, 403),
        (
            "agent",
            "GET",
            "/api/v1/fleet/services/nope/endpoints",
            None,
            404,
        ),
        ("agent", "GET", "/api/v1/fleet/hosts", None, 403),
        ("agent", "GET", "/api/v1/fleet/zones", None, 403),
        (
            "agent",
            "POST",
            "/api/v1/fleet/zones",
            Some(json!({"name": "z"})),
            403,
        ),
        ("agent", "GET", "/api/v1/fleet/capacity", None, 403),
        ("agent", "GET", "/api/v1/fleet/checks", None, 403),
        ("agent", "GET", "/api/v1/fleet/services", None, 403),
        ("agent", "GET", "/api/v1/fleet/services/nope", None, 404),
        (
            "agent",
            "POST",
            "/api/v1/fleet/services",
            Some(json!({"name": "web", "tenant": "alpha", "templates": ["t"], "groups": 1})),
            403,
        ),
        ("agent", "GET", "/api/v1/fleet/events", None, 403),
        ("agent", "GET", "/api/v1/fleet/quotas", None, 403),
        ("agent", "GET", "/api/v1/fleet/quotas/alpha", None, 403),
        ("agent", "GET", "/api/v1/fleet/templates", None, 403),
        ("agent", "GET", "/api/v1/fleet/leases", None, 403),
        // ... no tenants, tokens or schemas.
        ("agent", "GET", "/api/v1/tenants", None, 403),
        ("agent", "GET", "/api/v1/tenants/alpha", None, 403),
        (
            "agent",
            "PATCH",
            "/api/v1/tenants/alpha",
            patch.clone(),
            403,
        ),
        ("agent", "POST", "/api/v1/tenants", new_tenant("delta"), 403),
        ("agent", "DELETE", "/api/v1/tenants/alpha", None, 403),
        ("agent", "GET", "/api/v1/tokens", None, 403),
        ("agent", "POST", "/api/v1/tokens", new_token.clone(), 403),
        (
            "agent",
            "GET",
            "/api/v1/tenants/alpha/schema/dictionary",
            None,
            403,
        ),
        (
            "agent",
            "POST",
            "/api/v1/tenants/alpha/schema",
            Some(json!({"files": []})),
            403,
        ),
        (
            "agent",
            "POST",
            "/api/v1/schema",
            Some(json!({"files": []})),
            403,
        ),
        (
            "agent",
            "GET",
            "/api/v1/tenants/alpha/logs/usage",
            None,
            403,
        ),
        // ... log writes, no reads (search, count, documents) and no log configuration.
        ("agent", "POST", "/api/v1/logs/search", Some(json!({})), 403),
        (
            "agent",
            "POST",
            "/api/v1/logs/search",
            Some(json!({"tenants": ["*"]})),
            403,
        ),
        ("agent", "GET", "/alpha-app/_search", None, 403),
        ("agent", "GET", "/_search", None, 403),
        ("agent", "GET", "/*/_count", None, 403),
        ("agent", "GET", "/alpha-app/_doc/x", None, 403),
        ("agent", "GET", "/_index_template", None, 403),
        ("agent", "PUT", "/_index_template/t", Some(json!({})), 403),
        ("agent", "POST", "/_refresh", None, 403),
        ("alpha", "GET", "/_index_template", None, 200),
    ];
    let mut failures = Vec::new();
    for (kind, method, path, body, expected) in table {
        let (status, response) = server.call(method, path, token(kind).as_deref(), body);
        if status != expected {
            failures.push(format!(
                "{kind} {method} {path}: expected {expected}, got {status}: {response}"
            ));
        } else if status >= 400 {
            let reason = response["error"]["reason"].as_str().unwrap_or_default();
            let kind_field = response["error"]["type"].as_str().unwrap_or_default();
            if reason.is_empty() || kind_field.is_empty() {
                failures.push(format!("{kind} {method} {path}: error body is not {{error:{{type,reason}}}}: {response}"));
            }
            // An agent token's refusals say what the token is.
            if kind == "agent" && status == 403 && !reason.contains("agent token of host dc1-h1") {
                failures.push(format!(
                    "{kind} {method} {path}: the refusal does not name the token: {reason}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access rule violations:\n{}",
        failures.join("\n")
    );
}

/// A host registration body for data center dc1.
fn host_spec(name: &str) -> Value {
    json!({"name": name, "data_center": "dc1",
        "capacity": {"cpu_millis": 1000, "memory_bytes": 1 << 30, "disk_bytes": 1 << 30}})
}

#[test]
fn tenant_token_lists_only_its_tenant_and_basic_auth_works() {
    let server = TestServer::start();
    let tokens = setup(&server);
    let (status, tenants) = server.call("GET", "/api/v1/tenants", Some(&tokens.alpha_all), None);
    assert_eq!(status, 200);
    let names: Vec<&str> = tenants
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha"]);

    // Log shippers send basic auth with the token as password and any user name.
    let client = reqwest::blocking::Client::new();
    let response = client
        .get(format!("{}/api/v1/whoami", server.url))
        .basic_auth("filebeat", Some(&tokens.alpha_logs_write))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let whoami: Value = response.json().unwrap();
    assert_eq!(whoami["tenant"], "alpha");
    assert_eq!(whoami["scopes"], json!(["logs:write"]));
    let response = client
        .get(format!("{}/api/v1/whoami", server.url))
        .basic_auth("filebeat", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[test]
fn deleting_a_host_revokes_its_agent_tokens() {
    let server = TestServer::start();
    let admin = server.admin_token();
    for (path, body) in [
        ("/api/v1/fleet/zones", json!({"name": "production"})),
        (
            "/api/v1/fleet/data-centers",
            json!({"name": "dc1", "zone": "production"}),
        ),
    ] {
        let (status, answer) = server.call("POST", path, Some(&admin), Some(body));
        assert_eq!(status, 201, "{answer}");
    }
    let agent = server.create_token(json!({"name": "h1", "kind": "agent", "host": "dc1-h1"}));
    let other = server.create_token(json!({"name": "h2", "kind": "agent", "host": "dc1-h2"}));
    for (token, host) in [(&agent, "dc1-h1"), (&other, "dc1-h2")] {
        let (status, answer) = server.call(
            "POST",
            "/api/v1/fleet/hosts",
            Some(token),
            Some(host_spec(host)),
        );
        assert_eq!(status, 201, "{answer}");
    }

    let (status, _) = server.call("DELETE", "/api/v1/fleet/hosts/dc1-h1", Some(&admin), None);
    assert_eq!(status, 204);
    let (_, tokens) = server.call("GET", "/api/v1/tokens", Some(&admin), None);
    let revoked_at = |name: &str| {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["revoked_at"]
            .clone()
    };
    assert!(revoked_at("h1").is_string(), "{tokens}");
    assert!(
        revoked_at("h2").is_null(),
        "another host's token stays: {tokens}"
    );

    // A machine registered later under the same name does not inherit the old token.
    let (status, answer) = server.call(
        "POST",
        "/api/v1/fleet/hosts",
        Some(&agent),
        Some(host_spec("dc1-h1")),
    );
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = server.call(
        "POST",
        "/api/v1/fleet/hosts",
        Some(&admin),
        Some(host_spec("dc1-h1")),
    );
    assert_eq!(status, 201, "{answer}");
    let (status, _) = server.call(
        "POST",
        "/api/v1/fleet/hosts/dc1-h1/heartbeat",
        Some(&agent),
        None,
    );
    assert_eq!(status, 401);
    let (status, _) = server.call(
        "POST",
        "/api/v1/fleet/hosts/dc1-h2/heartbeat",
        Some(&other),
        None,
    );
    assert_eq!(status, 200);
}

#[test]
fn revocation_takes_effect_at_once() {
    let server = TestServer::start();
    server.create_tenant("alpha");
    let secret = server.create_token(json!({
        "name": "ci", "kind": "tenant", "tenant": "alpha", "scopes": ["logs:read"]
    }));
    let (status, whoami) = server.call("GET", "/api/v1/whoami", Some(&secret), None);
    assert_eq!(status, 200);
    let id = whoami["token"].as_str().unwrap().to_owned();
    let output = server.cli(None, &["token", "revoke", &id]);
    assert!(output.status.success(), "{output:?}");
    let (status, body) = server.call("GET", "/api/v1/whoami", Some(&secret), None);
    assert_eq!(status, 401);
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
}

#[test]
fn tokens_are_stored_hashed() {
    let server = TestServer::start();
    server.create_tenant("alpha");
    let secret = server.create_token(json!({
        "name": "ci", "kind": "tenant", "tenant": "alpha", "scopes": ["logs:read"]
    }));
    let (_, tokens) = server.call("GET", "/api/v1/tokens", Some(&server.admin_token()), None);
    assert!(
        !tokens.to_string().contains(&secret),
        "listing leaks a secret"
    );
    let mut database = Vec::new();
    for file in ["caravan.db", "caravan.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data_dir.join(file)) {
            database.extend(bytes);
        }
    }
    let haystack = String::from_utf8_lossy(&database);
    assert!(!haystack.contains(&secret), "a secret is stored in clear");
    assert!(
        !haystack.contains(&server.admin_token()),
        "the admin secret is stored in clear"
    );
    let log = std::fs::read_to_string(server.data_dir.with_extension("log")).unwrap();
    assert!(!log.contains(&secret), "a secret reached the log");
}
