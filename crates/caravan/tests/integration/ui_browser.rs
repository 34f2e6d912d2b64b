//! The web UI in a real browser, against a real `caravan demo` (server, five agents, sample
//! service, log generator): `tests/ui/ui.mjs` drives headless Chromium (Debian's `chromium`)
//! with playwright-core. Screenshots go to `target/ui-screenshots/`. Then the demo is stopped
//! as Ctrl-C would, and must leave no process behind.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{caravan_bin, free_port};

/// How long the demo may take to be ready (server, agents, healthy instances).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Debian's Chromium, which `make test` (scripts/install-deps.sh) installs.
const CHROMIUM: &str = "/usr/bin/chromium";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `caravan demo`; killed (its process group) if the test fails.
struct Demo {
    child: Option<Child>,
    url: String,
    admin_token: String,
    /// A token of the `shop` tenant (fleet and logs).
    shop_token: String,
    dir: PathBuf,
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        // Ports of the agents' ranges: clear of other test runs (an agent skips busy ports).
        let agent_ports = 30_000 + (std::process::id() % 300) as u16 * 100;
        let mut child = Command::new(caravan_bin())
            .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .args(["--agent-ports", &agent_ports.to_string()])
            .args(["--frontend-port", &free_port().to_string()])
            .args(["--lb-metrics-listen", "127.0.0.1:0"])
            .env_remove("CARAVAN_TOKEN")
            .env_remove("CARAVAN_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("spawn caravan demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end: the demo prints while it stops too.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("demo: {line}");
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let (mut url, mut admin_token, mut shop_token) = (None, None, None);
        let mut demo = Demo {
            child: Some(child),
            url: String::new(),
            admin_token: String::new(),
            shop_token: String::new(),
            dir: dir.to_path_buf(),
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = receiver
                .recv_timeout(remaining)
                .unwrap_or_else(|_| panic!("the demo was not ready within {READY_TIMEOUT:?}"));
            if let Some(rest) = line.trim().strip_prefix("UI:") {
                url = Some(rest.trim().trim_end_matches("/ui/").to_owned());
            } else if let Some(rest) = line.trim().strip_prefix("admin token:") {
                admin_token = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.trim().strip_prefix("shop token:") {
                shop_token = rest.split_whitespace().next().map(str::to_owned);
            } else if line == "caravan demo ready" {
                break;
            }
        }
        demo.url = url.expect("the demo printed the UI address");
        demo.admin_token = admin_token.expect("the demo printed the admin token");
        demo.shop_token = shop_token.expect("the demo printed the shop token");
        demo
    }

    /// SIGINT (Ctrl-C) to the demo alone; it must stop everything and exit 0 within 30 s.
    fn interrupt(&mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "the demo exited with {status}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Processes whose command line mentions `needle` (from /proc).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Instance processes started for this demo (they run in its agents' work directories).
fn instances_left(dir: &Path) -> Vec<String> {
    let marker = dir.join("agents");
    let marker = marker.to_string_lossy();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && cwd.to_string_lossy().starts_with(marker.as_ref())
        {
            found.push(format!(
                "{} in {}",
                entry.file_name().to_string_lossy(),
                cwd.display()
            ));
        }
    }
    found
}

#[test]
fn ui_in_a_real_browser_against_the_demo() {
    let root = workspace_root().canonicalize().unwrap();
    let modules = root.join("tests/ui/node_modules/playwright-core");
    assert!(
        modules.exists(),
        "{} is missing: `make test` installs it (cd tests/ui && npm ci)",
        modules.display()
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `make test` installs it (scripts/install-deps.sh: apt-get install chromium)"
    );
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let mut demo = Demo::start(&demo_dir);
    let screenshots = root.join("target/ui-screenshots");
    let output = Command::new("node")
        .arg(root.join("tests/ui/ui.mjs"))
        .current_dir(root.join("tests/ui"))
        .env("CARAVAN_URL", &demo.url)
        .env("CARAVAN_TOKEN", &demo.admin_token)
        .env("CARAVAN_TENANT_TOKEN", &demo.shop_token)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "the browser test failed (screenshots in {}):\n{}\n{}",
        screenshots.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(screenshots.join("service-scaled.png").exists());

    // Ctrl-C stops the server, the agents and every instance they ran.
    demo.interrupt();
    let demo_dir_text = demo.dir.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_mentioning(&demo_dir_text);
        let instances = instances_left(&demo.dir);
        if left.is_empty() && instances.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left running after Ctrl-C: {left:?} {instances:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
