//! The process driver: runs an instance as `sh -c '<command> <args...>'` in a process group of
//! its own, in `<work-dir>/instances/<id>/`, output appended to `output.log` there, with the
//! environment `CARAVAN_SERVICE`, `CARAVAN_INSTANCE`, `CARAVAN_IP` (when the instance has an
//! address), `CARAVAN_HOST`, `CARAVAN_DATA_CENTER` and `PORT` over the template's `env`.
//!
//! Stopping sends SIGTERM to the whole group, then SIGKILL after the grace period; when the
//! group's leader exits by itself, what is left of its group is killed, so that a restart never
//! finds the port held by an orphan.
//!
//! Resource limits: none are enforced yet (no cgroups, no rlimits); the resources an instance
//! was placed with are only passed on by the server's accounting. The address (`CARAVAN_IP`)
//! is not configured on any interface: instances listen on loopback or wherever their command
//! says, on the allocated `PORT` (the template's `run.port` is ignored by this driver, since
//! several instances share one machine).
//!
//! Each started process is recorded in `instance.json` beside its output, so that an agent
//! restarted after a crash kills what its predecessor left ([`kill_leftovers`]) instead of
//! running a second copy.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use caravan_fleet::{DcName, HostName, InstanceId, RunSpec, ServiceName};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::AgentError;
use crate::health::Transition;

/// Name of the file recording a started process, in the instance's directory.
pub const INSTANCE_FILE: &str = "instance.json";
/// Name of the file receiving an instance's standard output and error.
pub const OUTPUT_FILE: &str = "output.log";
/// How often a leftover process group is checked while it is given time to stop.
const LEFTOVER_POLL_MS: u64 = 50;

/// What happened to an instance's process, as the driver and the health checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The process exited (by itself, or because it was stopped).
    Exited {
        /// The instance.
        instance: InstanceId,
        /// Which start of the instance this process was.
        generation: u64,
        /// How it ended, for the logs.
        status: String,
    },
    /// The health checks saw a transition.
    Health {
        /// The instance.
        instance: InstanceId,
        /// Which start of the instance was checked.
        generation: u64,
        /// The transition.
        transition: Transition,
    },
}

/// Everything needed to start one instance.
#[derive(Clone, Debug)]
pub struct LaunchSpec<'a> {
    /// The instance.
    pub instance: InstanceId,
    /// Its service.
    pub service: &'a ServiceName,
    /// Its address, if it has one.
    pub ip: Option<IpAddr>,
    /// The port allocated to it.
    pub port: u16,
    /// The template's command, arguments and environment.
    pub run: &'a RunSpec,
    /// The agent's host.
    pub host: &'a HostName,
    /// The agent's data center.
    pub data_center: &'a DcName,
    /// The instance's working directory.
    pub dir: PathBuf,
}

/// The record of a started process, in `instance.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance (`i-42`).
    pub instance: String,
    /// The process id, which is also its process group id.
    pub pid: u32,
    /// The port it was given.
    pub port: u16,
    /// Which start of the instance it is.
    pub generation: u64,
}

/// A started process group.
#[derive(Debug)]
pub struct Process {
    pgid: i32,
    exited: Arc<AtomicBool>,
}

impl Process {
    /// The process (and process group) id.
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    /// Sends SIGTERM to the group, and SIGKILL after `grace` if the leader has not exited.
    /// Returns at once; the exit arrives as [`Event::Exited`].
    pub fn terminate(&self, grace: Duration) {
        if self.exited.load(Ordering::Acquire) {
            return;
        }
        signal_group(self.pgid, libc::SIGTERM);
        let exited = Arc::clone(&self.exited);
        let pgid = self.pgid;
        // Bounded by `grace`; owns nothing but the flag.
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if !exited.load(Ordering::Acquire) {
                signal_group(pgid, libc::SIGKILL);
            }
        });
    }
}

/// The environment of an instance: the template's, then Caravan's variables over it.
pub fn instance_env(spec: &LaunchSpec<'_>) -> BTreeMap<String, String> {
    let mut env = spec.run.env.clone();
    env.insert("CARAVAN_SERVICE".to_owned(), spec.service.to_string());
    env.insert("CARAVAN_INSTANCE".to_owned(), spec.instance.to_string());
    env.insert("CARAVAN_HOST".to_owned(), spec.host.to_string());
    env.insert(
        "CARAVAN_DATA_CENTER".to_owned(),
        spec.data_center.to_string(),
    );
    if let Some(ip) = spec.ip {
        env.insert("CARAVAN_IP".to_owned(), ip.to_string());
    }
    env.insert("PORT".to_owned(), spec.port.to_string());
    env
}

/// The shell script of a run specification: the command as written (it may use the shell),
/// then each argument quoted. `None` without a command.
pub fn shell_script(run: &RunSpec) -> Option<String> {
    let command = run.command.as_deref()?.trim();
    if command.is_empty() {
        return None;
    }
    let mut script = command.to_owned();
    for arg in &run.args {
        script.push(' ');
        script.push_str(&shell_quote(arg));
    }
    Some(script)
}

/// `word` quoted for `sh` when it needs to be.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Starts an instance; its exit will be sent on `events` tagged with `generation`.
pub fn spawn(
    spec: &LaunchSpec<'_>,
    generation: u64,
    events: mpsc::Sender<Event>,
) -> Result<Process, AgentError> {
    let spawn_error = |reason: String| AgentError::Spawn {
        instance: spec.instance.to_string(),
        reason,
    };
    let script = shell_script(spec.run)
        .ok_or_else(|| spawn_error("its template has no command".to_owned()))?;
    std::fs::create_dir_all(&spec.dir)
        .map_err(|e| AgentError::io("cannot create", &spec.dir, e))?;
    let output_path = spec.dir.join(OUTPUT_FILE);
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&output_path)
        .map_err(|e| AgentError::io("cannot open", &output_path, e))?;
    let errors = output
        .try_clone()
        .map_err(|e| AgentError::io("cannot open", &output_path, e))?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .envs(instance_env(spec))
        .current_dir(&spec.dir)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .process_group(0)
        .spawn()
        .map_err(|e| spawn_error(format!("sh: {e}")))?;
    let Some(pid) = child.id() else {
        return Err(spawn_error(
            "it exited before it could be watched".to_owned(),
        ));
    };
    let record = InstanceRecord {
        instance: spec.instance.to_string(),
        pid,
        port: spec.port,
        generation,
    };
    let record_path = spec.dir.join(INSTANCE_FILE);
    if let Err(error) = write_record(&record_path, &record) {
        tracing::warn!(instance = %spec.instance, %error, "cannot record the process");
    }
    let pgid = i32::try_from(pid).map_err(|_| spawn_error(format!("pid {pid} out of range")))?;
    let exited = Arc::new(AtomicBool::new(false));
    let instance = spec.instance;
    let exited_flag = Arc::clone(&exited);
    // Owned by the child: ends when the process exits (stopping the agent stops them all).
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(status) => status.to_string(),
            Err(error) => format!("cannot wait: {error}"),
        };
        exited_flag.store(true, Ordering::Release);
        // What the leader left behind in its group (a shell's children) goes with it.
        signal_group(pgid, libc::SIGKILL);
        let _ = events
            .send(Event::Exited {
                instance,
                generation,
                status,
            })
            .await;
    });
    Ok(Process { pgid, exited })
}

fn write_record(path: &Path, record: &InstanceRecord) -> Result<(), AgentError> {
    let body = serde_json::to_vec(record)
        .map_err(|e| AgentError::io("cannot encode", path, std::io::Error::other(e)))?;
    std::fs::write(path, body).map_err(|e| AgentError::io("cannot write", path, e))
}

/// Sends `signal` to process group `pgid`; a group that no longer exists is not an error.
fn signal_group(pgid: i32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg(2) takes plain integers; pgid > 1 is a group this agent created.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Whether process `pid` has ended: gone, or a zombie (an orphan's new parent may be slow to
/// reap it, or never do so in a container whose init does not reap).
fn process_ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the group exists.
    pgid > 1 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// Whether process `pid` runs instance `instance` (its environment says so), so that a stale
/// record with a reused pid never gets an unrelated process killed.
fn runs_instance(pid: u32, instance: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("CARAVAN_INSTANCE={instance}");
    environ
        .split(|&b| b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// Stops the processes a previous agent left in `instances_dir` (a crashed or killed agent's
/// instances keep running in their own groups): SIGTERM, SIGKILL after `grace`. Answers how
/// many groups were stopped.
pub async fn kill_leftovers(instances_dir: &Path, grace: Duration) -> Result<usize, AgentError> {
    let entries = match std::fs::read_dir(instances_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(AgentError::io("cannot read", instances_dir, error)),
    };
    let mut groups = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join(INSTANCE_FILE);
        let Ok(body) = std::fs::read(&path) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<InstanceRecord>(&body) else {
            continue;
        };
        let Ok(pgid) = i32::try_from(record.pid) else {
            continue;
        };
        if group_alive(pgid) && runs_instance(record.pid, &record.instance) {
            tracing::info!(instance = %record.instance, pid = record.pid, "stopping a leftover instance");
            signal_group(pgid, libc::SIGTERM);
            groups.push(pgid);
        }
        let _ = std::fs::remove_file(&path);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while groups.iter().any(|&pgid| !process_ended(pgid)) && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(LEFTOVER_POLL_MS)).await;
    }
    // Whatever is left of each group (the leader's children, or a leader that ignored SIGTERM).
    for &pgid in &groups {
        if group_alive(pgid) {
            signal_group(pgid, libc::SIGKILL);
        }
    }
    Ok(groups.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_quote_arguments() {
        let run = RunSpec {
            command: Some("exec /usr/bin/web".to_owned()),
            args: vec!["--port=8080".to_owned(), "it's".to_owned(), String::new()],
            ..RunSpec::default()
        };
        assert_eq!(
            shell_script(&run).as_deref(),
            Some(r"exec /usr/bin/web --port=8080 'it'\''s' ''")
        );
        assert_eq!(shell_script(&RunSpec::default()), None);
    }

    fn spec<'a>(
        run: &'a RunSpec,
        names: &'a (ServiceName, HostName, DcName),
        dir: &Path,
    ) -> LaunchSpec<'a> {
        LaunchSpec {
            instance: InstanceId(7),
            service: &names.0,
            ip: Some("10.1.0.7".parse().unwrap()),
            port: 20_007,
            run,
            host: &names.1,
            data_center: &names.2,
            dir: dir.join("i-7"),
        }
    }

    fn names() -> (ServiceName, HostName, DcName) {
        (
            ServiceName::new("web").unwrap(),
            HostName::new("dc1-h1").unwrap(),
            DcName::new("dc1").unwrap(),
        )
    }

    #[tokio::test]
    async fn a_process_gets_its_environment_and_stops_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunSpec {
            command: Some(
                "echo \"$CARAVAN_SERVICE $CARAVAN_INSTANCE $CARAVAN_IP $PORT $GREETING\"; sleep 30 & sleep 30"
                    .to_owned(),
            ),
            env: [("GREETING".to_owned(), "hi".to_owned())].into(),
            ..RunSpec::default()
        };
        let names = names();
        let spec = spec(&run, &names, dir.path());
        let (sender, mut receiver) = mpsc::channel(8);
        let process = spawn(&spec, 3, sender).unwrap();
        let record: InstanceRecord =
            serde_json::from_slice(&std::fs::read(spec.dir.join(INSTANCE_FILE)).unwrap()).unwrap();
        assert_eq!(record.pid as i32, process.pid());
        assert_eq!((record.port, record.generation), (20_007, 3));
        let output = spec.dir.join(OUTPUT_FILE);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&output)
            .unwrap_or_default()
            .is_empty()
        {
            assert!(std::time::Instant::now() < deadline, "no output");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            std::fs::read_to_string(&output).unwrap(),
            "web i-7 10.1.0.7 20007 hi\n"
        );
        process.terminate(Duration::from_secs(5));
        let event = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                event,
                Event::Exited {
                    instance: InstanceId(7),
                    generation: 3,
                    ..
                }
            ),
            "{event:?}"
        );
        // The background sleep went with the group (once its new parent reaped it).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while group_alive(process.pid()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the group outlived its leader"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn leftovers_of_a_previous_agent_are_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunSpec {
            command: Some("trap '' TERM; sleep 30".to_owned()),
            ..RunSpec::default()
        };
        let names = names();
        let spec = spec(&run, &names, dir.path());
        let (sender, _receiver) = mpsc::channel(8);
        let process = spawn(&spec, 1, sender).unwrap();
        // Wait until the shell runs with its environment.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !runs_instance(process.pid() as u32, "i-7") {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stopped = kill_leftovers(dir.path(), Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(stopped, 1);
        assert!(!spec.dir.join(INSTANCE_FILE).exists());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while group_alive(process.pid()) {
            assert!(
                std::time::Instant::now() < deadline,
                "SIGKILL after the grace period"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(kill_leftovers(dir.path(), Duration::ZERO).await.unwrap(), 0);
    }
}
