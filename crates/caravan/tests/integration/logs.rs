//! Logs ingestion through the Elasticsearch-compatible API, against the real server.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::harness::TestServer;

/// A server with the example schema, tenants `payments` and `search`, and tokens.
pub struct LogsFixture {
    pub server: TestServer,
    pub admin: String,
    pub payments_writer: String,
    pub payments_reader: String,
    pub search_writer: String,
}

impl LogsFixture {
    pub fn start() -> Self {
        let server = TestServer::start();
        let admin = server.admin_token();
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schema/log_schema.proto");
        let source = std::fs::read_to_string(example).unwrap();
        let (status, body) = server.call(
            "POST",
            "/api/v1/schema",
            Some(&admin),
            Some(json!({"files": [{"name": "log_schema.proto", "content": source}]})),
        );
        assert_eq!(status, 201, "{body}");
        server.create_tenant("payments");
        server.create_tenant("search");
        let token = |tenant: &str, scopes: &[&str]| {
            server.create_token(json!({"name": format!("{tenant} {scopes:?}"), "kind": "tenant", "tenant": tenant, "scopes": scopes}))
        };
        Self {
            payments_writer: token("payments", &["logs:write"]),
            payments_reader: token("payments", &["logs:read"]),
            search_writer: token("search", &["logs:write", "logs:read"]),
            admin,
            server,
        }
    }

    /// POSTs an NDJSON body to `path` with basic auth (as shippers do); returns status and JSON.
    pub fn bulk(&self, token: &str, path: &str, body: &str) -> (u16, Value) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.server.url))
            .basic_auth("shipper", Some(token))
            .header("content-type", "application/x-ndjson")
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn get_doc(&self, token: &str, index: &str, id: &str) -> (u16, Value) {
        self.server
            .call("GET", &format!("/{index}/_doc/{id}"), Some(token), None)
    }
}

fn ndjson(lines: &[Value]) -> String {
    let mut body = String::new();
    for line in lines {
        body.push_str(&line.to_string());
        body.push('\n');
    }
    body
}

fn statuses(answer: &Value) -> Vec<u64> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item.as_object().unwrap().values().next().unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn item_error(answer: &Value, index: usize) -> (String, String) {
    let item = answer["items"][index]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    (
        item["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        item["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn elasticsearch_discovery_answers() {
    let fixture = LogsFixture::start();
    let response = reqwest::blocking::Client::new()
        .get(&fixture.server.url)
        .basic_auth("elastic", Some(&fixture.payments_writer))
        .send()
        .unwrap();
    assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
    let info: Value = response.json().unwrap();
    assert!(
        info["version"]["number"]
            .as_str()
            .unwrap()
            .starts_with("8.")
    );
    assert_eq!(info["version"]["build_flavor"], "default");
    assert!(info["cluster_uuid"].as_str().is_some_and(|u| !u.is_empty()));
    let (status, license) =
        fixture
            .server
            .call("GET", "/_license", Some(&fixture.payments_writer), None);
    assert_eq!(
        (status, license["license"]["status"].as_str()),
        (200, Some("active"))
    );
    let (status, _) = fixture.server.call("GET", "/", None, None);
    assert_eq!(status, 401);

    // Templates are stored per tenant and shown back.
    let (status, _) = fixture.server.call(
        "PUT",
        "/_index_template/filebeat-8.11",
        Some(&fixture.payments_writer),
        Some(json!({"index_patterns": ["filebeat-*"]})),
    );
    assert_eq!(status, 200);
    let (status, templates) = fixture.server.call(
        "GET",
        "/_index_template/filebeat-8.11",
        Some(&fixture.payments_writer),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(templates["index_templates"][0]["name"], "filebeat-8.11");
    let (status, _) = fixture.server.call(
        "GET",
        "/_index_template/filebeat-8.11",
        Some(&fixture.search_writer),
        None,
    );
    assert_eq!(status, 404, "another tenant's template is not visible");
    for path in [
        "/_cluster/health",
        "/_nodes",
        "/_xpack",
        "/_ilm/policy",
        "/_ingest/pipeline",
        "/_data_stream",
        "/_template",
    ] {
        let (status, body) = fixture
            .server
            .call("GET", path, Some(&fixture.payments_writer), None);
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[test]
fn bulk_normalises_and_never_drops_a_batch_for_one_bad_field() {
    let fixture = LogsFixture::start();
    let body = ndjson(&[
        json!({"index": {"_index": "payments-2026.11.22", "_id": "a"}}),
        json!({"@timestamp": "2026-11-22T10:00:00Z", "userId": "123", "http": {"status": "200"}, "message": "paid"}),
        json!({"index": {"_index": "payments-2026.11.22", "_id": "b"}}),
        json!({"@timestamp": "2026-11-22T10:00:01Z", "user_id": 123, "http.status": 200, "message": "paid again"}),
        json!({"index": {"_index": "payments-2026.11.22", "_id": "c"}}),
        json!({"@timestamp": "2026-11-22T10:00:02Z", "user-id": "abc", "http": {"status": "abc"}, "colour": "blue"}),
    ]);
    let (status, answer) = fixture.bulk(&fixture.payments_writer, "/_bulk?refresh=true", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errors"], false, "{answer}");
    assert_eq!(statuses(&answer), [201, 201, 201]);

    let (status, a) = fixture.get_doc(&fixture.payments_reader, "payments-2026.11.22", "a");
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["_source"]["userId"], "123");
    assert_eq!(a["_source"]["http"]["status"], 200);
    let (_, b) = fixture.get_doc(&fixture.payments_reader, "payments-2026.11.22", "b");
    assert_eq!(
        b["_source"]["userId"], "123",
        "alias renamed, number coerced to keyword: {b}"
    );
    assert_eq!(b["_source"]["http"]["status"], 200);
    let (_, c) = fixture.get_doc(&fixture.payments_reader, "payments-2026.11.22", "c");
    assert_eq!(c["_source"]["userId"], "abc");
    assert_eq!(c["_source"]["colour"], "blue", "unknown keys are kept");
    let ignored = c["_source"]["_ignored"]
        .as_array()
        .expect("an _ignored record");
    assert!(
        ignored.iter().any(|i| i["key"] == "http.status"
            && i["value"] == "abc"
            && i["reason"].as_str().is_some_and(|r| !r.is_empty())),
        "{c}"
    );

    let (status, usage) = fixture.server.call(
        "GET",
        "/api/v1/tenants/payments/logs/usage",
        Some(&fixture.payments_reader),
        None,
    );
    assert_eq!(status, 200, "{usage}");
    let today = &usage[0];
    assert_eq!(today["documents_accepted"], 3, "{usage}");
    assert_eq!(today["documents_with_ignored"], 1);
    assert!(today["documents_coerced"].as_u64().unwrap() >= 2, "{usage}");
    assert_eq!(today["unknown_keys"]["colour"], 1);
}

#[test]
fn bulk_item_errors_are_precise() {
    let fixture = LogsFixture::start();
    let deep = (0..30).fold(json!("x"), |inner, _| json!({"a": inner}));
    let many: serde_json::Map<String, Value> =
        (0..1_100).map(|i| (format!("k{i}"), json!(i))).collect();
    let big = json!({"message": "x".repeat(1_100_000)});
    let long_id = "i".repeat(513);
    let body = format!(
        "{}{}{}{}{}{}{}{}{}{}{}{}",
        ndjson(&[
            json!({"create": {"_index": "payments-x", "_id": "dup"}}),
            json!({"message": "first"})
        ]),
        ndjson(&[
            json!({"create": {"_index": "payments-x", "_id": "dup"}}),
            json!({"message": "second"})
        ]),
        "{\"index\": {\"_index\": \"payments-x\"\n{\"message\": \"orphan\"}\n",
        ndjson(&[json!({"delete": {"_index": "payments-x", "_id": "dup"}})]),
        ndjson(&[
            json!({"index": {"_index": "search-x"}}),
            json!({"message": "not mine"})
        ]),
        ndjson(&[
            json!({"index": {"_index": "nobody-x"}}),
            json!({"message": "no tenant"})
        ]),
        ndjson(&[json!({"index": {"_index": "payments-x"}}), deep]),
        ndjson(&[
            json!({"index": {"_index": "payments-x"}}),
            Value::Object(many)
        ]),
        ndjson(&[json!({"index": {"_index": "payments-x"}}), big]),
        "{\"index\": {\"_index\": \"payments-x\"}}\n{\"message\": \"broken\",}\n",
        ndjson(&[
            json!({"index": {"_index": "payments-x", "_id": long_id}}),
            json!({"message": "long id"})
        ]),
        ndjson(&[
            json!({"index": {"_index": "payments-x"}}),
            json!({"message": "fine"})
        ]),
    );
    let (status, answer) = fixture.bulk(&fixture.payments_writer, "/_bulk", &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errors"], true);
    assert_eq!(
        statuses(&answer),
        [201, 409, 400, 400, 404, 404, 400, 400, 400, 400, 400, 201],
        "{answer}"
    );
    assert_eq!(
        item_error(&answer, 1).0,
        "version_conflict_engine_exception"
    );
    assert!(
        item_error(&answer, 2).1.contains("line 5"),
        "{:?}",
        item_error(&answer, 2)
    );
    assert!(
        item_error(&answer, 3).1.contains("not supported"),
        "{:?}",
        item_error(&answer, 3)
    );
    assert_eq!(
        item_error(&answer, 4).0,
        "index_not_found_exception",
        "another tenant's index does not exist for this token"
    );
    assert!(
        item_error(&answer, 6).1.contains("20"),
        "depth limit named: {:?}",
        item_error(&answer, 6)
    );
    assert!(
        item_error(&answer, 7).1.contains("1000"),
        "key limit named: {:?}",
        item_error(&answer, 7)
    );
    assert!(
        item_error(&answer, 8).1.contains("1048576"),
        "size limit named: {:?}",
        item_error(&answer, 8)
    );
    assert!(
        item_error(&answer, 9).1.contains("line 19"),
        "source line named: {:?}",
        item_error(&answer, 9)
    );
    let (kind, reason) = item_error(&answer, 10);
    assert!(
        kind == "illegal_argument_exception"
            && reason.contains("line 20")
            && reason.contains("513 bytes"),
        "an _id over 512 bytes fails its item: {kind} {reason}"
    );

    // filter_path keeps only the errors.
    let body = ndjson(&[
        json!({"create": {"_index": "payments-x", "_id": "dup"}}),
        json!({"message": "again"}),
    ]);
    let (_, filtered) = fixture.bulk(
        &fixture.payments_writer,
        "/_bulk?filter_path=errors,items.*.error",
        &body,
    );
    assert_eq!(filtered["errors"], true);
    assert!(filtered.get("took").is_none(), "{filtered}");
    assert_eq!(
        filtered["items"][0]["create"]["error"]["type"], "version_conflict_engine_exception",
        "{filtered}"
    );

    // A read-only token may not write: 403 per item.
    let body = ndjson(&[
        json!({"index": {"_index": "payments-x"}}),
        json!({"message": "ro"}),
    ]);
    let (_, answer) = fixture.bulk(&fixture.payments_reader, "/_bulk", &body);
    assert_eq!(statuses(&answer), [403]);
}

#[test]
fn gzip_bodies_and_limits() {
    let fixture = LogsFixture::start();
    let body = ndjson(&[
        json!({"index": {"_index": "payments-2026.11.22", "_id": "gz"}}),
        json!({"message": "compressed", "level": "info"}),
    ]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).unwrap();
    let compressed = encoder.finish().unwrap();
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/_bulk?refresh=wait_for", fixture.server.url))
        .bearer_auth(&fixture.payments_writer)
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().unwrap();
    assert_eq!(statuses(&answer), [201], "{answer}");
    let (_, doc) = fixture.get_doc(&fixture.payments_reader, "payments-2026.11.22", "gz");
    assert_eq!(doc["_source"]["level"], "INFO", "{doc}");

    // A gzip bomb: small on the wire, over the decompressed limit.
    let zeros = vec![b' '; 300 * 1024 * 1024];
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&zeros).unwrap();
    let bomb = encoder.finish().unwrap();
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/_bulk", fixture.server.url))
        .bearer_auth(&fixture.payments_writer)
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let answer: Value = response.json().unwrap();
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("decompressed"),
        "{answer}"
    );
}

#[test]
fn single_document_endpoints() {
    let fixture = LogsFixture::start();
    let token = Some(fixture.payments_writer.as_str());
    let (status, created) = fixture.server.call(
        "POST",
        "/payments-2026.11.22/_doc?refresh=true",
        token,
        Some(json!({"message": "one"})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["result"], "created");
    let id = created["_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 20);
    let (status, _) = fixture.server.call(
        "PUT",
        "/payments-2026.11.22/_create/fixed",
        token,
        Some(json!({"message": "two"})),
    );
    assert_eq!(status, 201);
    let (status, conflict) = fixture.server.call(
        "PUT",
        "/payments-2026.11.22/_create/fixed",
        token,
        Some(json!({"message": "three"})),
    );
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(
        conflict["error"]["type"],
        "version_conflict_engine_exception"
    );
    let (status, _) = fixture.server.call(
        "PUT",
        "/payments-2026.11.22/_doc/fixed?refresh=true",
        token,
        Some(json!({"message": "replaced"})),
    );
    assert_eq!(status, 201);
    let (_, doc) = fixture.get_doc(&fixture.payments_reader, "payments-2026.11.22", "fixed");
    assert_eq!(
        doc["_source"]["message"], "replaced",
        "index with an existing id replaces it: {doc}"
    );
    let (status, _) = fixture.get_doc(&fixture.search_writer, "payments-2026.11.22", "fixed");
    assert_eq!(status, 404, "another tenant cannot read it");
}

#[test]
fn daily_quota_refuses_items_with_429() {
    let fixture = LogsFixture::start();
    let (status, _) = fixture.server.call(
        "PATCH",
        "/api/v1/tenants/payments",
        Some(&fixture.admin),
        Some(json!({"daily_quota_bytes": 350})),
    );
    assert_eq!(status, 200);
    let line = json!({"message": "x".repeat(90)});
    let mut lines = Vec::new();
    for _ in 0..5 {
        lines.push(json!({"index": {"_index": "payments-q"}}));
        lines.push(line.clone());
    }
    let (_, answer) = fixture.bulk(&fixture.payments_writer, "/_bulk", &ndjson(&lines));
    let statuses = statuses(&answer);
    assert_eq!(&statuses[..3], [201, 201, 201], "{answer}");
    assert_eq!(&statuses[3..], [429, 429], "{answer}");
    let (kind, reason) = item_error(&answer, 4);
    assert_eq!(kind, "quota_exceeded_exception");
    assert!(
        reason.contains("payments") && reason.contains("350"),
        "{reason}"
    );
    let (_, usage) = fixture.server.call(
        "GET",
        "/api/v1/tenants/payments/logs/usage",
        Some(&fixture.admin),
        None,
    );
    assert_eq!(usage[0]["rejected"]["quota"], 2, "{usage}");
}

#[test]
fn acknowledged_documents_survive_a_restart_and_purge_drops_days() {
    let mut fixture = LogsFixture::start();
    // Keep a January document past the default retention of 10 days.
    let (status, _) = fixture.server.call(
        "PATCH",
        "/api/v1/tenants/payments",
        Some(&fixture.admin),
        Some(json!({"retention_days": 3650})),
    );
    assert_eq!(status, 200);
    let body = ndjson(&[
        json!({"index": {"_index": "payments-a", "_id": "old"}}),
        json!({"@timestamp": "2026-01-02T00:00:00Z", "message": "old"}),
        json!({"index": {"_index": "payments-a", "_id": "new"}}),
        json!({"@timestamp": "2026-11-20T00:00:00Z", "message": "new"}),
    ]);
    let (_, answer) = fixture.bulk(&fixture.payments_writer, "/_bulk", &body);
    assert_eq!(statuses(&answer), [201, 201]);
    assert!(fixture.server.terminate().success());
    let _dir = fixture.server.keep_dir();
    let data_dir = fixture.server.data_dir.clone();
    let restarted = TestServer::start_in(&data_dir, &[]);
    let reader = fixture.payments_reader.clone();
    fixture.server = restarted;
    let (status, doc) = fixture.get_doc(&reader, "payments-a", "old");
    assert_eq!(status, 200, "{doc}");
    let (status, purged) = fixture.server.call(
        "POST",
        "/api/v1/tenants/payments/logs/purge",
        Some(&fixture.admin),
        Some(json!({"before": "2026-11-01"})),
    );
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged[0]["day"], "2026-01-02");
    let (status, _) = fixture.get_doc(&reader, "payments-a", "old");
    assert_eq!(status, 404);
    let (status, _) = fixture.get_doc(&reader, "payments-a", "new");
    assert_eq!(status, 200);
    let (status, _) = fixture.server.call(
        "POST",
        "/api/v1/tenants/payments/logs/purge",
        Some(&reader),
        Some(json!({"day": "2026-11-20"})),
    );
    assert_eq!(status, 403);
}

#[test]
fn unknown_index_creates_a_tenant_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("caravan.toml");
    std::fs::write(&config, "[logs]\nauto_create_tenants = true\n").unwrap();
    let server = TestServer::start_in(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let admin = server.admin_token();
    let body = ndjson(&[
        json!({"index": {"_index": "billing-2026.11.23"}}),
        json!({"message": "hello"}),
    ]);
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/_bulk", server.url))
        .bearer_auth(&admin)
        .body(body)
        .send()
        .unwrap();
    let answer: Value = response.json().unwrap();
    assert_eq!(statuses(&answer), [201], "{answer}");
    let (status, tenant) = server.call("GET", "/api/v1/tenants/billing", Some(&admin), None);
    assert_eq!(status, 200, "{tenant}");
}
