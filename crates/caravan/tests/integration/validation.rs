//! Bad input gets a JSON error naming the problem, with the right status, and changes nothing.

use serde_json::json;

use crate::harness::TestServer;

fn reason(body: &serde_json::Value) -> &str {
    body["error"]["reason"].as_str().unwrap_or_default()
}

#[test]
fn bad_bodies_are_named_and_change_nothing() {
    let server = TestServer::start();
    let admin = server.admin_token();
    let admin = Some(admin.as_str());

    let (status, body) = server.call(
        "POST",
        "/api/v1/tenants",
        admin,
        Some(json!({"name": "alpha", "retention": 3})),
    );
    assert_eq!(status, 400);
    assert!(
        reason(&body).contains("unknown field `retention`"),
        "{body}"
    );
    assert_eq!(body["error"]["type"], "invalid_request");

    let (status, body) = server.call(
        "POST",
        "/api/v1/tenants",
        admin,
        Some(json!({"name": "Alpha_1"})),
    );
    assert_eq!(status, 400);
    assert!(
        reason(&body).contains("may only contain lowercase letters, digits and '-'"),
        "{body}"
    );

    let (status, body) = server.call(
        "POST",
        "/api/v1/tenants",
        admin,
        Some(json!({"name": "x".repeat(64)})),
    );
    assert_eq!(status, 400);
    assert!(reason(&body).contains("at most 63"), "{body}");

    let (status, body) = server.call(
        "POST",
        "/api/v1/tenants",
        admin,
        Some(json!({"name": "alpha", "retention_days": 0})),
    );
    assert_eq!(status, 400);
    assert!(reason(&body).contains("retention_days"), "{body}");

    let (status, body) = server.call(
        "POST",
        "/api/v1/tokens",
        admin,
        Some(json!({"name": "x", "kind": "tenant", "tenant": "ghost", "scopes": ["logs:read"]})),
    );
    assert_eq!(status, 404);
    assert!(reason(&body).contains("ghost"), "{body}");

    let (status, body) = server.call("POST", "/api/v1/tokens", admin, Some(json!({"name": "x", "kind": "tenant", "tenant": "ghost", "scopes": ["logs:everything"]})));
    assert_eq!(status, 400);
    assert!(reason(&body).contains("logs:everything"), "{body}");

    // None of the above created anything.
    let (_, tenants) = server.call("GET", "/api/v1/tenants", admin, None);
    assert_eq!(tenants, json!([]));

    server.create_tenant("alpha");
    let (status, body) = server.call(
        "PATCH",
        "/api/v1/tenants/alpha",
        admin,
        Some(json!({"display_name": "Alpha", "retention_days": 99999})),
    );
    assert_eq!(status, 400, "{body}");
    let (_, alpha) = server.call("GET", "/api/v1/tenants/alpha", admin, None);
    assert_eq!(
        alpha["display_name"], "alpha",
        "a failed update was half-applied"
    );
    assert_eq!(alpha["retention_days"], 10);

    let (status, body) = server.call(
        "PATCH",
        "/api/v1/tenants/alpha",
        admin,
        Some(json!({"daily_quota_bytes": 1000})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["daily_quota_bytes"], 1000);
    let (_, body) = server.call(
        "PATCH",
        "/api/v1/tenants/alpha",
        admin,
        Some(json!({"daily_quota_bytes": null})),
    );
    assert_eq!(body["daily_quota_bytes"], json!(null));

    let (status, body) = server.call("DELETE", "/api/v1/tenants/alpha?force=maybe", admin, None);
    assert_eq!(status, 400);
    assert!(reason(&body).contains("force"), "{body}");
}

#[test]
fn oversized_and_malformed_bodies() {
    let server = TestServer::start();
    let admin = server.admin_token();
    // No connection reuse: the server closes the connection of a refused oversized upload, and a
    // pooled client could pick that dead connection for the next request.
    let client = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/api/v1/tenants", server.url);

    let huge = format!(
        r#"{{"name":"alpha","display_name":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let response = client
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: serde_json::Value = response.json().unwrap();
    assert_eq!(body["error"]["type"], "payload_too_large");
    assert!(reason(&body).contains("1048576 bytes"), "{body}");

    let response = client
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"name": "alpha",,}"#)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().unwrap();
    assert!(reason(&body).contains("line 1 column"), "{body}");

    let response = client
        .post(&url)
        .bearer_auth(&admin)
        .body(r#"{"name": "alpha"}"#)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);

    let (status, body) = server.call("GET", "/api/v1/nothing-here", Some(&admin), None);
    assert_eq!(status, 404);
    assert!(reason(&body).contains("/api/v1/nothing-here"), "{body}");
    let (status, body) = server.call("PUT", "/api/v1/tenants", Some(&admin), None);
    assert_eq!(status, 405);
    assert_eq!(body["error"]["type"], "method_not_allowed");
}
