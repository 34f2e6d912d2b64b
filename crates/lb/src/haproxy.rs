//! The HAProxy process: started by Caravan in master-worker mode (or an existing one attached
//! to), configurations checked with `haproxy -c` before they are used, hitless reloads through
//! the master CLI.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::runtime::{self, RuntimeError};

/// How long a started or reloaded HAProxy has to answer on its runtime socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Driving HAProxy failed.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// A file or the program could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What failed.
        source: std::io::Error,
    },
    /// `haproxy -c` refused the configuration: it was not applied.
    #[error(
        "HAProxy refused the new configuration (kept serving the previous one); `haproxy -c -f {path}` said:\n{output}"
    )]
    InvalidConfig {
        /// Where the refused configuration was left, for inspection.
        path: PathBuf,
        /// What `haproxy -c` printed.
        output: String,
    },
    /// HAProxy exited, or did not come up.
    #[error("HAProxy {0}")]
    NotRunning(String),
    /// A Runtime API or master CLI command failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Where HAProxy's files are.
#[derive(Clone, Debug)]
pub struct Files {
    /// The configuration file HAProxy runs from.
    pub config: PathBuf,
    /// The master CLI socket.
    pub master_socket: PathBuf,
    /// The Runtime API socket (must match the configuration's `stats socket`).
    pub runtime_socket: PathBuf,
    /// The server-state file (must match the configuration's `server-state-file`).
    pub state_file: PathBuf,
}

impl Files {
    /// Caravan's layout of a work directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            config: dir.join("haproxy.cfg"),
            master_socket: dir.join("master.sock"),
            runtime_socket: dir.join("runtime.sock"),
            state_file: dir.join("server-state"),
        }
    }
}

/// A HAProxy in master-worker mode.
pub struct Haproxy {
    binary: PathBuf,
    files: Files,
    /// The master process, when Caravan started it (`None` when attached, or not started yet).
    child: Option<Child>,
    attached: bool,
}

impl Haproxy {
    /// A HAProxy that Caravan starts (at the first [`Haproxy::apply`]) from `binary`.
    pub fn managed(binary: PathBuf, files: Files) -> Self {
        Self {
            binary,
            files,
            child: None,
            attached: false,
        }
    }

    /// An existing HAProxy, started in master-worker mode with `files.master_socket`, running
    /// from `files.config`: Caravan rewrites that file and reloads it.
    pub fn attached(binary: PathBuf, files: Files) -> Self {
        Self {
            binary,
            files,
            child: None,
            attached: true,
        }
    }

    /// Its files.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// Whether a HAProxy is there to take commands: attached, or started and not exited.
    pub fn is_running(&mut self) -> bool {
        if self.attached {
            return true;
        }
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Checks `config` with `haproxy -c`; if it is valid, makes it HAProxy's configuration:
    /// starts HAProxy, or saves its servers' state and reloads it without dropping connections
    /// (the master starts a new worker that takes over the listening sockets; the old one
    /// finishes its connections). An invalid configuration is never applied.
    pub async fn apply(&mut self, config: &str) -> Result<(), HaproxyError> {
        let candidate = self.files.config.with_extension("cfg.new");
        write(&candidate, config).await?;
        self.check(&candidate).await?;
        if !self.files.state_file.exists() {
            write(&self.files.state_file, "").await?;
        }
        if self.is_running() {
            let state = runtime::send(&self.files.runtime_socket, "show servers state").await?;
            write(&self.files.state_file, &state).await?;
            rename(&candidate, &self.files.config).await?;
            self.reload().await
        } else {
            rename(&candidate, &self.files.config).await?;
            self.start().await
        }
    }

    async fn check(&self, config: &Path) -> Result<(), HaproxyError> {
        let output = Command::new(&self.binary)
            .arg("-c")
            .arg("-f")
            .arg(config)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| HaproxyError::Io {
                what: format!("cannot run {}", self.binary.display()),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(HaproxyError::InvalidConfig {
            path: config.to_owned(),
            output: text.trim().to_owned(),
        })
    }

    async fn start(&mut self) -> Result<(), HaproxyError> {
        if self.attached {
            return Err(HaproxyError::NotRunning(
                "attached to is not answering on its master socket".into(),
            ));
        }
        // A socket left by an earlier run would make the readiness check below pass at once.
        let _ = std::fs::remove_file(&self.files.runtime_socket);
        let _ = std::fs::remove_file(&self.files.master_socket);
        let mut command = Command::new(&self.binary);
        command
            .arg("-W")
            .arg("-S")
            .arg(&self.files.master_socket)
            .arg("-f")
            .arg(&self.files.config)
            .stdin(Stdio::null())
            // Its own process group: Ctrl-C in a terminal reaches Caravan, which stops it.
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| HaproxyError::Io {
            what: format!("cannot start {}", self.binary.display()),
            source,
        })?;
        tracing::info!(pid = child.id(), config = %self.files.config.display(), "HAProxy started");
        self.child = Some(child);
        self.wait_for_worker(None).await?;
        Ok(())
    }

    async fn reload(&mut self) -> Result<(), HaproxyError> {
        let before = runtime::worker_pid(&self.files.runtime_socket).await.ok();
        runtime::send(&self.files.master_socket, "reload").await?;
        let worker = self.wait_for_worker(before).await?;
        tracing::info!(worker, "HAProxy reloaded");
        Ok(())
    }

    /// Waits until a worker other than `previous` answers on the runtime socket.
    async fn wait_for_worker(&mut self, previous: Option<u32>) -> Result<u32, HaproxyError> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if !self.is_running() {
                return Err(HaproxyError::NotRunning(
                    "exited (see its output above)".into(),
                ));
            }
            if let Ok(pid) = runtime::worker_pid(&self.files.runtime_socket).await
                && Some(pid) != previous
            {
                return Ok(pid);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HaproxyError::NotRunning(format!(
                    "has no new worker answering on {} after {READY_TIMEOUT:?}",
                    self.files.runtime_socket.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops a HAProxy that Caravan started: SIGUSR1 to the master (soft stop: workers finish
    /// their connections, bounded by `hard-stop-after`), repeated every second (a master still
    /// starting may miss it), then SIGTERM to the whole group after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
            return; // Already reaped.
        };
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            // SAFETY: kill(2) on the master this process started and has not reaped (it is
            // reaped only by the `wait` below).
            unsafe { libc::kill(pid, libc::SIGUSR1) };
            let wait = Duration::from_secs(1).min(deadline - tokio::time::Instant::now());
            if tokio::time::timeout(wait, child.wait()).await.is_ok() {
                tracing::info!("HAProxy stopped");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        // SAFETY: as above; the whole group, workers included.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let _ = tokio::time::timeout(grace, child.wait()).await;
        tracing::warn!("HAProxy did not stop within {grace:?}: terminated");
    }
}

async fn write(path: &Path, contents: &str) -> Result<(), HaproxyError> {
    tokio::fs::write(path, contents)
        .await
        .map_err(|source| HaproxyError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })
}

async fn rename(from: &Path, to: &Path) -> Result<(), HaproxyError> {
    tokio::fs::rename(from, to)
        .await
        .map_err(|source| HaproxyError::Io {
            what: format!("cannot rename {} to {}", from.display(), to.display()),
            source,
        })
}
