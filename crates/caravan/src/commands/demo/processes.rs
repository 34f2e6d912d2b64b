//! The demo's child processes: each in a process group of its own, so that a terminal's Ctrl-C
//! reaches only the demo, which stops them in order (agents first: they stop their instances;
//! the server last). Whatever is still running when a [`Managed`] is dropped is killed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long the server may take to listen.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process leading its own process group.
pub struct Managed {
    /// What it is, for messages (`server`, `agent dc1-h1`).
    pub name: String,
    child: Option<Child>,
    /// Where it logs.
    pub log: PathBuf,
}

impl Managed {
    /// Starts `command` in a new process group, standard output and error appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = log_file(log)?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Starts `caravan server` and waits until it listens; answers it and its URL (from the
    /// `caravan listening on URL` line it prints).
    pub fn spawn_server(mut command: Command, log: &Path) -> anyhow::Result<(Self, String)> {
        let mut file = log_file(log)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file.try_clone()?)
            .process_group(0);
        let mut child = command.spawn().context("cannot start the server")?;
        let stdout = child.stdout.take().context("the server's piped stdout")?;
        let mut managed = Self {
            name: "server".to_owned(),
            child: Some(child),
            log: log.to_path_buf(),
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if let Some(url) = line.strip_prefix("caravan listening on ")
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(url.to_owned());
                }
            }
        });
        // Wait for the address, or for the server to exit (a busy port, a bad data directory).
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            match receiver.recv_timeout(Duration::from_millis(200)) {
                Ok(url) => return Ok((managed, url)),
                Err(_) if !managed.running() => {
                    bail!("the server exited at start; see {}", log.display())
                }
                Err(_) if Instant::now() > deadline => {
                    managed.kill();
                    bail!(
                        "the server did not start within {} s; see {}",
                        SERVER_START_TIMEOUT.as_secs(),
                        log.display()
                    )
                }
                Err(_) => {}
            }
        }
    }

    /// Whether it is still running (an exited child is reaped).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Sends SIGTERM to its process group and waits up to `grace` for it to exit; then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(pid) = self.pid() else { return };
        signal_group(pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while self.running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.running() {
            tracing::warn!(
                "{} did not stop within {} s: killed",
                self.name,
                grace.as_secs()
            );
        }
        self.kill();
    }

    /// SIGKILL to its process group, then reaps it.
    fn kill(&mut self) {
        if let Some(pid) = self.pid() {
            signal_group(pid, libc::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pid(&self) -> Option<i32> {
        self.child
            .as_ref()
            .and_then(|child| i32::try_from(child.id()).ok())
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Sends `signal` to the process group `pgid`.
fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: killpg(2) takes plain integers and has no memory effects; `pgid` is the id of a
    // child this process spawned as the leader of its own group and has not reaped yet.
    unsafe { libc::killpg(pgid, signal) };
}

/// Kills the process groups of the instances an agent recorded under `work_dir` that are
/// still running (when an agent was killed before it could stop them). A record's process is
/// only signalled if its environment names the recorded instance, so a reused pid is spared.
pub fn sweep_instances(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir.join("instances")) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(body) = std::fs::read(entry.path().join("instance.json")) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        let (Some(pid), Some(instance)) = (
            record["pid"]
                .as_i64()
                .and_then(|pid| i32::try_from(pid).ok()),
            record["instance"].as_str(),
        ) else {
            continue;
        };
        let marker = format!("CARAVAN_INSTANCE={instance}");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if pid > 0
            && environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == marker.as_bytes())
        {
            signal_group(pid, libc::SIGKILL);
        }
    }
}
