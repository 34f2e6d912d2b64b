//! Search against the real server: the native API, Elasticsearch's `_search` and `_count`,
//! tenant isolation, the CLI's `logs search` and `logs tail`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{caravan_bin, stderr_failed, stdout_ok};
use crate::logs::LogsFixture;

/// Ingests `count` logs a minute apart on 2026-11-22 into `index`, visible on return.
fn ingest(fixture: &LogsFixture, token: &str, index: &str, count: usize) {
    let mut body = String::new();
    for n in 0..count {
        body.push_str(
            &json!({"index": {"_index": index, "_id": format!("{index}-{n}")}}).to_string(),
        );
        body.push('\n');
        let document = json!({
            "@timestamp": format!("2026-11-22T10:{:02}:00Z", n % 60),
            "level": if n % 5 == 0 { "ERROR" } else { "INFO" },
            "msg": format!("payment {n} {}", if n % 2 == 0 { "accepted" } else { "refused by bank" }),
            "app": if n % 3 == 0 { "checkout" } else { "ledger" },
            "user_id": n % 4,
            "http": {"status": 200 + (n % 3) * 100},
            "duration_ms": n,
        });
        body.push_str(&document.to_string());
        body.push('\n');
    }
    let (status, answer) = fixture.bulk(token, "/_bulk?refresh=true", &body);
    assert_eq!(
        (status, answer["errors"].as_bool()),
        (200, Some(false)),
        "{answer}"
    );
}

fn search(fixture: &LogsFixture, token: &str, body: Value) -> (u16, Value) {
    fixture
        .server
        .call("POST", "/api/v1/logs/search", Some(token), Some(body))
}

fn ids(answer: &Value) -> Vec<String> {
    answer["hits"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|hit| hit["_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn native_search_resolves_fields_through_the_schema() {
    let fixture = LogsFixture::start();
    ingest(
        &fixture,
        &fixture.payments_writer,
        "payments-2026.11.22",
        40,
    );
    let reader = &fixture.payments_reader;
    let total = |query: &str| {
        let (status, answer) = search(&fixture, reader, json!({"query": query}));
        assert_eq!(status, 200, "{query}: {answer}");
        answer["total"].as_u64().unwrap()
    };
    // Aliases in queries, values coerced like at ingest (user_id was sent as a number).
    assert_eq!(total("user_id:1"), 10);
    assert_eq!(total("userId:\"1\""), 10);
    assert_eq!(
        total("level:error"),
        8,
        "enum values match whatever their case"
    );
    assert_eq!(total("service:ledger AND http.status:>=400"), 13);
    assert_eq!(total("http.status:[200 TO 300}"), 14);
    assert_eq!(total("refused"), 20, "bare words search the default fields");
    assert_eq!(total("message:\"refused by bank\""), 20);
    assert_eq!(total("message:\"bank by refused\""), 0);
    assert_eq!(total("service:led*"), 26);
    assert_eq!(total("_exists_:duration_ms AND NOT level:INFO"), 8);
    assert_eq!(
        total("@timestamp:[2026-11-22T10:00:00Z TO 2026-11-22T10:10:00Z}"),
        10
    );
    assert_eq!(total(""), 40);

    // Unknown fields, bad values and syntax errors say what and where.
    let (status, answer) = search(&fixture, reader, json!({"query": "usrId:1"}));
    assert_eq!(status, 400);
    let reason = answer["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("unknown field `usrId`") && reason.contains("userId"),
        "{reason}"
    );
    let (status, answer) = search(&fixture, reader, json!({"query": "http.status:abc"}));
    assert_eq!(status, 400);
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("http.status"),
        "{answer}"
    );
    let (status, answer) = search(&fixture, reader, json!({"query": "level:(ERROR OR"}));
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["type"], "parsing_exception");
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("position"),
        "{answer}"
    );
    // The place of the error is data too: UTF-8 byte offsets into the query, the clause at
    // fault for a field or value (`é` is two bytes), a point for a syntax error.
    let position = |query: &str| {
        let (status, answer) = search(&fixture, reader, json!({"query": query}));
        assert_eq!(status, 400, "{query}: {answer}");
        let position = &answer["error"]["position"];
        (position["start"].as_u64(), position["end"].as_u64())
    };
    assert_eq!(
        position("message:\"café\" AND usrId:1"),
        (Some(20), Some(27))
    );
    assert_eq!(
        position("level:ERROR AND http.status:abc"),
        (Some(16), Some(31))
    );
    assert_eq!(position("level:ERROR)"), (Some(11), Some(11)));

    // Pages with `after`, in time order, with aggregations.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let (status, page) = search(
            &fixture,
            reader,
            json!({"query": "service:ledger", "size": 7, "order": "asc", "after": after,
                   "from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}),
        );
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        match &page["next"] {
            Value::String(next) => after = json!(next),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let (status, answer) = search(
        &fixture,
        reader,
        json!({"size": 0, "from": "2026-11-22T10:00:00Z", "to": "2026-11-22T11:00:00Z",
               "aggregations": {
                   "histogram": {"date_histogram": {"buckets": 6}},
                   "services": {"terms": {"field": "app", "size": 5}},
                   "durations": {"stats": {"field": "duration_ms"}}}}),
    );
    assert_eq!(status, 200, "{answer}");
    let histogram = &answer["aggregations"]["histogram"]["date_histogram"];
    assert_eq!(histogram["interval_ms"], 600_000);
    assert_eq!(histogram["buckets"].as_array().unwrap().len(), 6);
    let services = &answer["aggregations"]["services"]["terms"]["buckets"];
    assert_eq!(services[0], json!({"key": "ledger", "count": 26}));
    assert_eq!(answer["aggregations"]["durations"]["stats"]["max"], 39.0);
}

#[test]
fn elasticsearch_search_and_count() {
    let fixture = LogsFixture::start();
    ingest(
        &fixture,
        &fixture.payments_writer,
        "payments-2026.11.22",
        30,
    );
    let reader = &fixture.payments_reader;
    let call =
        |path: &str, body: Value| fixture.server.call("POST", path, Some(reader), Some(body));
    let (status, answer) = call(
        "/payments-*/_search",
        json!({
            "query": {"bool": {
                "must": [{"match": {"message": "refused"}}],
                "filter": [{"range": {"@timestamp": {"gte": "2026-11-22T10:00:00Z", "lt": "now"}}}],
                "must_not": [{"term": {"level": "ERROR"}}],
                "should": [{"terms": {"service": ["ledger", "checkout"]}}]}},
            "size": 3,
            "sort": [{"@timestamp": {"order": "desc"}}],
            "_source": ["message", "http.*"],
            "aggs": {"per_10m": {"date_histogram": {"field": "@timestamp", "fixed_interval": "10m"}},
                     "top": {"terms": {"field": "service"}},
                     "slowest": {"max": {"field": "duration_ms"}}}
        }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["hits"]["total"],
        json!({"value": 12, "relation": "eq"})
    );
    let hits = answer["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["_id"], "payments-2026.11.22-29");
    let source = hits[0]["_source"].as_object().unwrap();
    assert!(
        source.contains_key("message")
            && source.contains_key("http")
            && !source.contains_key("service"),
        "{source:?}"
    );
    assert_eq!(answer["aggregations"]["slowest"]["value"], 29.0);
    let buckets = answer["aggregations"]["per_10m"]["buckets"]
        .as_array()
        .unwrap();
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["doc_count"].as_u64().unwrap())
            .sum::<u64>(),
        12
    );

    let (status, count) = call(
        "/payments-2026.11.22/_count",
        json!({"query": {"exists": {"field": "userId"}}}),
    );
    assert_eq!(
        (status, count["count"].as_u64()),
        (200, Some(30)),
        "{count}"
    );
    let (status, count) = fixture
        .server
        .call("GET", "/_count?q=level:ERROR", Some(reader), None);
    assert_eq!((status, count["count"].as_u64()), (200, Some(6)), "{count}");

    // Unsupported parts say what they are.
    let (status, answer) = call(
        "/payments/_search",
        json!({"query": {"fuzzy": {"message": "x"}}}),
    );
    assert_eq!(status, 400);
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("fuzzy"),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["root_cause"][0]["reason"],
        answer["error"]["reason"]
    );
    assert!(
        answer["error"]["position"].is_null(),
        "JSON has no position"
    );
    // A query string's errors have their place, with Elasticsearch's `root_cause` kept.
    let (status, answer) = call(
        "/payments/_search",
        json!({"query": {"query_string": {"query": "level:ERROR AND usrId:1"}}}),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["root_cause"][0]["type"],
        "query_shard_exception"
    );
    assert_eq!(answer["error"]["position"], json!({"start": 16, "end": 23}));
    let (status, answer) = call("/payments/_search", json!({"highlight": {}}));
    assert_eq!(status, 400);
    assert!(
        answer["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("highlight"),
        "{answer}"
    );
    let (status, answer) = call("/payments/_search", json!({"sort": [{"level": "asc"}]}));
    assert_eq!(status, 400, "{answer}");
}

#[test]
fn tenants_search_only_their_own_logs() {
    let fixture = LogsFixture::start();
    ingest(
        &fixture,
        &fixture.payments_writer,
        "payments-2026.11.22",
        10,
    );
    ingest(&fixture, &fixture.search_writer, "search-2026.11.22", 5);
    let reader = &fixture.payments_reader;
    // Whatever pattern a tenant token sends, it reaches its tenant only.
    for pattern in ["*", "search*,payments*", "*-2026.11.22"] {
        let (status, answer) = fixture.server.call(
            "GET",
            &format!("/{pattern}/_search?size=100"),
            Some(reader),
            None,
        );
        assert_eq!(status, 200, "{pattern}: {answer}");
        assert_eq!(answer["hits"]["total"]["value"], 10, "{pattern}");
    }
    let (status, _) = fixture.server.call("GET", "/_search", Some(reader), None);
    assert_eq!(status, 200);
    let (status, answer) =
        fixture
            .server
            .call("GET", "/search-2026.11.22/_search", Some(reader), None);
    assert_eq!(
        (status, answer["error"]["type"].as_str()),
        (404, Some("index_not_found_exception"))
    );
    let (status, _) = search(&fixture, reader, json!({"tenants": ["search"]}));
    assert_eq!(status, 404);
    let (status, answer) = search(&fixture, reader, json!({"tenants": ["*"]}));
    assert_eq!((status, answer["total"].as_u64()), (200, Some(10)));
    // A write-only token cannot search at all.
    let (status, _) = search(&fixture, &fixture.payments_writer, json!({}));
    assert_eq!(status, 403);
    // Admin searches several tenants at once, and must name them.
    let (status, answer) = search(&fixture, &fixture.admin, json!({"tenants": ["*"]}));
    assert_eq!((status, answer["total"].as_u64()), (200, Some(15)));
    let (status, _) = search(&fixture, &fixture.admin, json!({}));
    assert_eq!(status, 400);
}

#[test]
fn cli_searches_and_tails() {
    let fixture = LogsFixture::start();
    ingest(
        &fixture,
        &fixture.payments_writer,
        "payments-2026.11.22",
        12,
    );
    let server = &fixture.server;
    let out = stdout_ok(&server.cli(
        Some(&fixture.payments_reader),
        &[
            "logs",
            "search",
            "level:ERROR",
            "--from",
            "2026-11-22T00:00:00Z",
        ],
    ));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines()
            .all(|line| line.contains("payments") && line.contains("ERROR")),
        "{out}"
    );
    let error = stderr_failed(&server.cli(
        Some(&fixture.payments_reader),
        &["logs", "search", "levle:ERROR", "--since", "1d"],
    ));
    assert!(
        error.contains("levle") && error.contains("level"),
        "{error}"
    );

    // Tail: a log ingested now is printed within 2 s.
    let mut tail = Command::new(caravan_bin())
        .args(["--server", &server.url, "--token", &fixture.payments_reader])
        .args(["logs", "tail", "level:ERROR"])
        .env_remove("CARAVAN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tail");
    let stdout = tail.stdout.take().expect("stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    let mut body = String::new();
    for (n, level) in [(1, "INFO"), (2, "ERROR")] {
        body.push_str(&json!({"create": {"_index": "payments"}}).to_string());
        body.push('\n');
        body.push_str(&json!({"level": level, "message": format!("live {n}")}).to_string());
        body.push('\n');
    }
    let sent = Instant::now();
    let (status, _) = fixture.bulk(&fixture.payments_writer, "/_bulk", &body);
    assert_eq!(status, 200);
    let line = received
        .recv_timeout(Duration::from_secs(2))
        .expect("tail printed the log within 2 s");
    assert!(
        line.contains("live 2") && !line.contains("live 1"),
        "{line}"
    );
    assert!(sent.elapsed() < Duration::from_secs(2));
    let _ = tail.kill();
    let _ = tail.wait();
}
