//! Starts and stops real `caravan server` processes, and talks to them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of the binary under test.
pub fn caravan_bin() -> &'static str {
    env!("CARGO_BIN_EXE_caravan")
}

/// A running server with its own data directory.
pub struct TestServer {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    /// Lines the server printed on standard output before it listened.
    pub stdout_lines: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server in a fresh temporary directory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data_dir = dir.path().join("data");
        let mut server = Self::start_in(&data_dir, &[]);
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `data_dir` (kept by the caller), with extra arguments.
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Self {
        let log = data_dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("server log file");
        let mut child = Command::new(caravan_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            .env("RUST_LOG", "info")
            .env_remove("CARAVAN_TOKEN")
            .env_remove("CARAVAN_SERVER")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn caravan server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut stdout_lines = Vec::new();
        let url = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("caravan listening on ") {
                        break url.to_owned();
                    }
                    stdout_lines.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not start; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        Self {
            child: Some(child),
            url,
            data_dir: data_dir.to_path_buf(),
            stdout_lines,
            _dir: None,
        }
    }

    /// Takes over the temporary directory, so that it outlives this server (for restarts).
    pub fn keep_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    /// The bootstrap admin token, from the data directory.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_owned()
    }

    /// The operating system's id of the server process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        self.wait_exit()
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits (at most 30 s) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes an HTTP call with an optional bearer token and JSON body; returns status and body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("request");
        let status = response.status().as_u16();
        let text = response.text().expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    /// Runs the CLI against this server with `token` (or none, for the local admin token).
    pub fn cli(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = Command::new(caravan_bin());
        command
            .args(["--server", &self.url, "--data-dir"])
            .arg(&self.data_dir)
            .args(args)
            .env_remove("CARAVAN_TOKEN")
            .env_remove("CARAVAN_SERVER")
            .env_remove("CARAVAN_DATA_DIR");
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command.output().expect("run caravan")
    }

    /// Creates a token through the API and returns its secret.
    pub fn create_token(&self, body: Value) -> String {
        let (status, created) = self.call(
            "POST",
            "/api/v1/tokens",
            Some(&self.admin_token()),
            Some(body),
        );
        assert_eq!(status, 201, "{created}");
        created["secret"].as_str().expect("secret").to_owned()
    }

    /// Creates a tenant through the API.
    pub fn create_tenant(&self, name: &str) {
        let (status, body) = self.call(
            "POST",
            "/api/v1/tenants",
            Some(&self.admin_token()),
            Some(serde_json::json!({"name": name})),
        );
        assert_eq!(status, 201, "{body}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Standard output of a CLI run that must have succeeded.
pub fn stdout_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error of a CLI run that must have failed.
pub fn stderr_failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "command unexpectedly succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGTERM to `child` and waits up to `grace` for it to exit; then SIGKILL. Answers its
/// exit status if it exited by itself in time.
pub fn terminate_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    // SAFETY: kill(2) on a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
