//! Real shippers and clients, unchanged, against the real server on loopback: rsyslog with
//! omelasticsearch, and the official Elasticsearch JavaScript client. `make test` installs
//! them (scripts/install-deps.sh and tests/node).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::logs::LogsFixture;

/// How long a shipper may take to deliver, or a client script to run.
const DEADLINE: Duration = Duration::from_secs(20);

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A program started by a test: stopped with SIGTERM (SIGKILL after 5 s) when dropped.
struct Spawned {
    child: Option<Child>,
}

impl Spawned {
    fn start(name: &'static str, command: &mut Command, output: &Path) -> Self {
        let log = File::create(output).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}; `make test` installs it"));
        Self { child: Some(child) }
    }

    /// The exit status, if the program has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    /// Waits at most `limit` for the program to exit by itself; `None` (and the program
    /// stopped) when it did not.
    fn wait(mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the program with SIGTERM and returns how it exited.
    fn stop(mut self) -> ExitStatus {
        let child = self.child.take().expect("running");
        stop(child)
    }
}

fn stop(mut child: Child) -> ExitStatus {
    // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap()
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }
}

/// Polls `probe` until it returns `Some`, for at most `DEADLINE`; panics with `what` and the
/// last state seen (from `state`) after that.
fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>, state: impl Fn() -> String) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}\n{}",
            state()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The rsyslogd binary, which `make test` installs (Debian packages rsyslog and
/// rsyslog-elasticsearch).
fn rsyslogd() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let binary = ["/usr/sbin".into(), "/sbin".into()]
        .into_iter()
        .chain(in_path)
        .map(|dir: PathBuf| dir.join("rsyslogd"))
        .find(|path| path.is_file());
    let omelasticsearch = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("rsyslog/omelasticsearch.so"))
        .chain([PathBuf::from("/usr/lib/rsyslog/omelasticsearch.so")])
        .any(|path| path.is_file());
    match binary {
        Some(binary) if omelasticsearch => binary,
        _ => panic!(
            "rsyslogd or its omelasticsearch module is missing: `make test` installs them \
             (scripts/install-deps.sh: Debian packages rsyslog and rsyslog-elasticsearch)"
        ),
    }
}

/// One JSON log line as an application writes it, with the schema's aliases (`msg`, `user_id`)
/// and a number where the schema has a string (`userId`).
fn rsyslog_line(n: usize) -> String {
    let line = json!({
        "@timestamp": format!("2026-11-23T09:{:02}:00Z", n),
        "level": if n.is_multiple_of(4) { "ERROR" } else { "INFO" },
        "msg": format!("payment {n} shipped by rsyslog"),
        "service": "checkout",
        "user_id": n,
        "http": {"method": "POST", "status": 200 + n % 2 * 302},
    });
    format!("{line}\n")
}

#[test]
fn rsyslog_omelasticsearch_ships_json_lines() {
    const BEFORE_START: usize = 20;
    const TOTAL: usize = 40;
    let rsyslogd = rsyslogd();
    let fixture = LogsFixture::start();
    let port = fixture
        .server
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::create_dir(path("work")).unwrap();
    let mut input = File::create(path("app.jsonl")).unwrap();
    for n in 0..BEFORE_START {
        input.write_all(rsyslog_line(n).as_bytes()).unwrap();
    }
    input.flush().unwrap();
    // The file's JSON lines, parsed by mmjsonparse and sent as they are ($!all-json) in bulk
    // requests, with basic auth and the tenant token as the password. `esVersion.major="8"`
    // drops the `_type` that rsyslog sends by default, which Elasticsearch 8 refuses too.
    let conf = format!(
        r#"global(workDirectory="{work}")
module(load="imfile")
module(load="mmjsonparse")
module(load="omelasticsearch")
template(name="document" type="string" string="%$!all-json%")
input(type="imfile" file="{input}" tag="payments" addMetadata="off" ruleset="to-caravan")
ruleset(name="to-caravan") {{
    action(type="mmjsonparse" cookie="")
    if $parsesuccess == "OK" then {{
        action(type="omelasticsearch" server="127.0.0.1" serverport="{port}"
               uid="rsyslog" pwd="{token}" searchIndex="payments-2026.11.23"
               esVersion.major="8" bulkmode="on" template="document"
               errorfile="{errors}" action.resumeRetryCount="-1" action.resumeInterval="1")
    }} else {{
        action(type="omfile" file="{unparsed}")
    }}
}}
"#,
        work = path("work").display(),
        input = path("app.jsonl").display(),
        token = fixture.payments_writer,
        errors = path("errors.json").display(),
        unparsed = path("unparsed.log").display(),
    );
    std::fs::write(path("rsyslog.conf"), conf).unwrap();
    let started = Instant::now();
    let mut rsyslog = Spawned::start(
        "rsyslogd",
        Command::new(&rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(path("rsyslog.conf"))
            .arg("-i")
            .arg(path("rsyslogd.pid")),
        &path("rsyslogd.out"),
    );
    let reader = fixture.payments_reader.clone();
    let count = || {
        let (status, answer) =
            fixture
                .server
                .call("GET", "/payments-2026.11.23/_count", Some(&reader), None);
        match status {
            200 => answer["count"].as_u64(),
            404 => Some(0), // no document yet
            _ => panic!("count: {status} {answer}"),
        }
    };
    let state = || {
        format!(
            "count: {:?}\nrsyslogd output:\n{}\nerror file:\n{}\nunparsed:\n{}",
            count(),
            read_or_empty(&path("rsyslogd.out")),
            read_or_empty(&path("errors.json")),
            read_or_empty(&path("unparsed.log")),
        )
    };
    let mut wait_for = |expected: usize| {
        poll(
            &format!("{expected} documents shipped by rsyslog"),
            || {
                if let Some(status) = rsyslog.exited() {
                    panic!("rsyslogd exited: {status}\n{}", state());
                }
                count()
                    .filter(|&count| count >= expected as u64)
                    .map(|count| assert_eq!(count, expected as u64, "{}", state()))
            },
            state,
        )
    };
    wait_for(BEFORE_START);
    let first = started.elapsed();
    // Lines appended while rsyslog runs are shipped too.
    for n in BEFORE_START..TOTAL {
        input.write_all(rsyslog_line(n).as_bytes()).unwrap();
    }
    input.flush().unwrap();
    wait_for(TOTAL);
    let status = rsyslog.stop();
    eprintln!(
        "rsyslog: first {BEFORE_START} documents after {first:?}, all {TOTAL} after {:?}",
        started.elapsed()
    );
    assert!(status.success(), "rsyslogd: {status}\n{}", state());
    assert_eq!(count(), Some(TOTAL as u64), "{}", state());
    assert_eq!(read_or_empty(&path("errors.json")), "", "{}", state());
    assert_eq!(read_or_empty(&path("unparsed.log")), "", "{}", state());

    // The documents are searchable, normalised against the schema like any other.
    let (status, answer) = fixture.server.call(
        "POST",
        "/api/v1/logs/search",
        Some(&reader),
        Some(json!({"tenants": ["payments"], "query": "message:rsyslog AND level:ERROR"})),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["total"], TOTAL as u64 / 4, "{answer}");
    let (status, answer) = fixture.server.call(
        "GET",
        "/payments-2026.11.23/_search?q=userId:7",
        Some(&reader),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    let hits = answer["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{answer}");
    let source = &hits[0]["_source"];
    assert_eq!(
        source["message"], "payment 7 shipped by rsyslog",
        "{answer}"
    );
    assert_eq!(source["userId"], "7", "{answer}");
    assert_eq!(source["http"]["status"], 502, "{answer}");
    assert_eq!(source["@timestamp"], "2026-11-23T09:07:00.000Z", "{answer}");
    assert!(source.get("msg").is_none(), "{answer}");
}

/// The health check rsyslog makes before it resumes after a failure (HTTP OK expected), and the
/// `_refresh` that the JavaScript client's bulk helper calls on completion.
#[test]
fn cat_health_and_refresh_answer() {
    let fixture = LogsFixture::start();
    let http = reqwest::blocking::Client::new();
    let url = &fixture.server.url;
    let writer = &fixture.payments_writer;
    let health = http
        .get(format!("{url}/_cat/health"))
        .basic_auth("rsyslog", Some(writer))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["content-type"],
        "text/plain; charset=UTF-8"
    );
    let text = health.text().unwrap();
    assert!(
        text.contains(" caravan green 1 1 ") && text.ends_with('\n'),
        "{text}"
    );
    let head = http
        .head(format!("{url}/_cat/health"))
        .basic_auth("rsyslog", Some(writer))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    let (status, rows) =
        fixture
            .server
            .call("GET", "/_cat/health?format=json&v", Some(writer), None);
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows[0]["status"], "green", "{rows}");
    assert_eq!(rows[0]["cluster"], "caravan", "{rows}");
    let (status, _) = fixture.server.call("GET", "/_cat/health", None, None);
    assert_eq!(status, 401);

    let mut body = String::new();
    for n in 0..10 {
        body.push_str(
            &json!({"create": {"_index": "payments-2026.11.24", "_id": format!("r-{n}")}})
                .to_string(),
        );
        body.push('\n');
        body.push_str(
            &json!({"@timestamp": "2026-11-24T08:00:00Z", "message": format!("refresh {n}")})
                .to_string(),
        );
        body.push('\n');
    }
    let (status, answer) = fixture.bulk(writer, "/_bulk", &body);
    assert_eq!(
        (status, answer["errors"].as_bool()),
        (200, Some(false)),
        "{answer}"
    );
    for (method, path) in [
        ("GET", "/payments-2026.11.24/_refresh"),
        ("POST", "/_refresh"),
        ("POST", "/_all/_refresh"),
    ] {
        let (status, answer) = fixture.server.call(method, path, Some(writer), None);
        assert_eq!(status, 200, "{method} {path}: {answer}");
        assert_eq!(answer["_shards"]["failed"], 0, "{answer}");
        let (status, count) = fixture.server.call(
            "GET",
            "/payments-2026.11.24/_count",
            Some(&fixture.payments_reader),
            None,
        );
        assert_eq!(
            (status, count["count"].as_u64()),
            (200, Some(10)),
            "{count}"
        );
    }
    // Like `?refresh=true` on ingestion, it takes logs:write.
    let (status, answer) =
        fixture
            .server
            .call("POST", "/_refresh", Some(&fixture.payments_reader), None);
    assert_eq!(status, 403, "{answer}");
    let (status, _) = fixture.server.call("POST", "/_refresh", None, None);
    assert_eq!(status, 401);
}

#[test]
fn official_javascript_client() {
    let node_dir = workspace_root().join("tests/node");
    assert!(
        node_dir
            .join("node_modules/@elastic/elasticsearch/package.json")
            .exists(),
        "{} is missing: `make test` installs it (cd tests/node && npm ci)",
        node_dir
            .join("node_modules/@elastic/elasticsearch")
            .display()
    );
    let fixture = LogsFixture::start();
    let token = fixture.server.create_token(json!({
        "name": "node", "kind": "tenant", "tenant": "payments", "scopes": ["logs:write", "logs:read"]
    }));
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("node.out");
    let started = Instant::now();
    let node = Spawned::start(
        "node",
        Command::new("node")
            .arg("es_client.mjs")
            .current_dir(&node_dir)
            .env("CARAVAN_URL", &fixture.server.url)
            .env("CARAVAN_TOKEN", &token),
        &output,
    );
    let status = node.wait(DEADLINE);
    let printed = read_or_empty(&output);
    match status {
        Some(status) => assert!(status.success(), "javascript client: {status}\n{printed}"),
        None => panic!("javascript client: still running after {DEADLINE:?}\n{printed}"),
    }
    assert!(
        printed.contains("official javascript client: ok"),
        "{printed}"
    );
    eprintln!("javascript client: ok in {:?}", started.elapsed());
}
