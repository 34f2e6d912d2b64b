//! Start-up, restart, shutdown, metrics, OpenAPI and configuration of the real server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{TestServer, caravan_bin, stdout_ok};

#[test]
fn first_start_creates_admin_token_once_and_state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut first = TestServer::start_in(&data_dir, &[]);
    let admin = first.admin_token();
    assert!(
        admin.starts_with("cvn_") && admin.len() >= 4 + 32,
        "{admin}"
    );
    assert!(
        first.stdout_lines.iter().any(|line| line.contains(&admin)),
        "the admin token is printed on first start"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    first.create_tenant("alpha");
    let tenant_token = first.create_token(json!({
        "name": "ci", "kind": "tenant", "tenant": "alpha", "scopes": ["logs:read"]
    }));
    assert!(first.terminate().success());

    let second = TestServer::start_in(&data_dir, &[]);
    assert!(
        second
            .stdout_lines
            .iter()
            .all(|line| !line.contains("cvn_")),
        "a restart must not print a token: {:?}",
        second.stdout_lines
    );
    assert_eq!(second.admin_token(), admin);
    let (status, alpha) = second.call("GET", "/api/v1/tenants/alpha", Some(&tenant_token), None);
    assert_eq!(status, 200, "{alpha}");
    assert_eq!(alpha["name"], "alpha");
}

#[test]
fn graceful_shutdown_lets_in_flight_requests_finish() {
    let mut server = TestServer::start();
    let admin = server.admin_token();
    let address = server.url.trim_start_matches("http://").to_owned();
    let body = br#"{"name":"late"}"#;
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/tenants HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // Half the body, then the signal, then the rest: the request is in flight during shutdown.
    stream.write_all(&body[..5]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the server child we spawned and still own.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[5..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status}");

    // The tenant created during shutdown was flushed to disk.
    let restarted = TestServer::start_in(&server.data_dir, &[]);
    let (status, _) = restarted.call("GET", "/api/v1/tenants/late", Some(&admin), None);
    assert_eq!(status, 200);
}

#[test]
fn metrics_pass_promtool() {
    let server = TestServer::start();
    let admin = server.admin_token();
    server.call("GET", "/api/v1/tenants", Some(&admin), None);
    server.call("GET", "/api/v1/tenants/nope", Some(&admin), None);
    server.call("GET", "/no/such/route", None, None);
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            r#"caravan_http_requests_total{method="GET",route="/api/v1/tenants",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/api/v1/tenants/{name}",status="404""#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="unmatched""#), "{metrics}");
    assert!(metrics.contains("caravan_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("process_resident_memory_bytes"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by the test command (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn openapi_describes_the_native_api() {
    let server = TestServer::start();
    let (status, doc) = server.call(
        "GET",
        "/api/v1/openapi.json",
        Some(&server.admin_token()),
        None,
    );
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/tenants",
        "/api/v1/tenants/{name}",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/whoami",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["paths"]["/api/v1/tenants"]["post"].is_object());
    assert!(doc["components"]["schemas"]["Tenant"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn readyz_and_healthz() {
    let server = TestServer::start();
    let (status, body) = server.call("GET", "/healthz", None, None);
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = server.call("GET", "/readyz", None, None);
    assert_eq!((status, body), (200, json!({"status": "ready"})));
}

#[test]
fn print_config_merges_file_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("caravan.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9300\"\nmax_body_bytes = 4096\n",
    )
    .unwrap();
    let output = Command::new(caravan_bin())
        .args(["server", "--print-config", "--config"])
        .arg(&file)
        .env("CARAVAN_DATA_DIR", "/srv/caravan")
        .output()
        .unwrap();
    let printed = stdout_ok(&output);
    assert!(printed.contains("listen = \"127.0.0.1:9300\""), "{printed}");
    assert!(printed.contains("data_dir = \"/srv/caravan\""), "{printed}");
    assert!(printed.contains("max_body_bytes = 4096"), "{printed}");

    let output = Command::new(caravan_bin())
        .args([
            "server",
            "--print-config",
            "--listen",
            "127.0.0.1:9400",
            "--config",
        ])
        .arg(&file)
        .env_remove("CARAVAN_DATA_DIR")
        .output()
        .unwrap();
    let printed = stdout_ok(&output);
    assert!(printed.contains("listen = \"127.0.0.1:9400\""), "{printed}");

    std::fs::write(&file, "listen = \"127.0.0.1:9300\"\nbody_limit = 1\n").unwrap();
    let output = Command::new(caravan_bin())
        .args(["server", "--print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("body_limit"), "{stderr}");
}
