//! The process driver: runs an instance as `sh -c '<command> <args...>'` in a process group of
//! its own, in `<work-dir>/instances/<id>/`, output appended to `output.log` there, with the
//! environment `CARAVAN_SERVICE`, `CARAVAN_INSTANCE`, `CARAVAN_IP` (when the instance has an
//! address), `CARAVAN_HOST`, `CARAVAN_DATA_CENTER` and `PORT` over the template's `env`.
//!
//! Stopping waits the agent's drain delay (load balancers take the instance out of rotation),
//! then sends SIGTERM to the whole group, then SIGKILL after the grace period to what is left.
//! When the group's leader exits by itself, what is left of its group is killed at once, so
//! that a restart never finds the port held by an orphan; when it exits because it was told to
//! stop, the rest of the group keeps its grace period (a shell dies at once on SIGTERM, while
//! the server it started finishes its requests).
//!
//! Resource limits (see [`crate::limits`]): the instance's cgroup v2 (`memory.max`, `cpu.max`)
//! when the agent has cgroups, else `RLIMIT_DATA` = its memory per process; disk is not
//! enforced. They apply between fork and exec. The address (`CARAVAN_IP`)
//! is not configured on any interface: instances listen on loopback or wherever their command
//! says, on the allocated `PORT` (the template's `run.port` is ignored by this driver, since
//! several instances share one machine).
//!
//! Each started process is recorded in `instance.json` beside its output (pid, which is also
//! its process group, start time, port), so that an agent restarted after a crash adopts what
//! its predecessor left ([`leftovers`], [`Process::adopt`]) instead of running a second copy.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use caravan_fleet::{DcName, HostName, InstanceId, Resources, RunSpec, ServiceName};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::AgentError;
use crate::health::Transition;
use crate::limits::{CgroupParent, ChildLimits};
use crate::procfs;

/// Name of the file recording a started process, in the instance's directory.
pub const INSTANCE_FILE: &str = "instance.json";
/// How often an adopted process is checked for its end.
const ADOPTED_POLL_MS: u64 = 100;
/// How often a group whose leader ended is checked for live members while it stops.
const GROUP_POLL_MS: u64 = 50;
/// Name of the file receiving an instance's standard output and error.
pub const OUTPUT_FILE: &str = "output.log";

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
    /// What it was placed with: the limits it gets.
    pub resources: Resources,
    /// The agent's cgroup, when it has one: the instance gets a cgroup of its own under it.
    pub cgroups: Option<&'a CgroupParent>,
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
    /// When the process started, in clock ticks since boot (`/proc/<pid>/stat`): a later
    /// process with the same pid is not this one. `None` in records of older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
}

impl InstanceRecord {
    /// Whether the recorded process still runs: alive, started when recorded, and running
    /// its instance (its environment says so), so that a stale record whose pid was reused
    /// never names an unrelated process.
    pub fn is_running(&self) -> bool {
        procfs::is_alive(self.pid, self.start_ticks)
            && procfs::has_env(self.pid, "CARAVAN_INSTANCE", &self.instance)
    }
}

/// What a [`Process`] and its supervising task share.
#[derive(Debug, Default)]
struct Shared {
    /// The whole group is gone (set just before [`Event::Exited`] is sent).
    exited: AtomicBool,
    /// The agent asked it to stop.
    stopping: AtomicBool,
}

/// A started (or adopted) process group.
#[derive(Debug)]
pub struct Process {
    pgid: i32,
    shared: Arc<Shared>,
}

impl Process {
    /// The process (and process group) id.
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    /// Stops the group: waits `drain` (so that load balancers take the instance out of
    /// rotation first), sends SIGTERM to the group, and SIGKILL after `grace` if some of it is
    /// left. Returns at once; the end arrives as [`Event::Exited`]. A second call does nothing.
    pub fn terminate(&self, drain: Duration, grace: Duration) {
        if self.shared.exited.load(Ordering::Acquire)
            || self.shared.stopping.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let pgid = self.pgid;
        // Bounded by `drain + grace`; owns nothing but the flags.
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            if shared.exited.load(Ordering::Acquire) {
                return;
            }
            signal_group(pgid, libc::SIGTERM);
            tokio::time::sleep(grace).await;
            if !shared.exited.load(Ordering::Acquire) {
                signal_group(pgid, libc::SIGKILL);
            }
        });
    }

    /// Watches a process a previous agent started (it is not this agent's child: its end is
    /// seen by polling `/proc`). Its end arrives on `events` tagged with `generation`, like a
    /// started one's.
    pub fn adopt(
        record: &InstanceRecord,
        instance: InstanceId,
        generation: u64,
        events: mpsc::Sender<Event>,
        cgroups: Option<&CgroupParent>,
    ) -> Result<Process, AgentError> {
        let pgid = i32::try_from(record.pid).map_err(|_| AgentError::Spawn {
            instance: record.instance.clone(),
            reason: format!("pid {} out of range", record.pid),
        })?;
        let (pid, start_ticks) = (record.pid, record.start_ticks);
        let leader_end = async move {
            while procfs::is_alive(pid, start_ticks) {
                tokio::time::sleep(Duration::from_millis(ADOPTED_POLL_MS)).await;
            }
            "exited (adopted: status unknown)".to_owned()
        };
        let cgroup = cgroups.map(|parent| parent.instance_dir(&record.instance));
        Ok(supervise(
            pgid, instance, generation, events, leader_end, cgroup,
        ))
    }
}

/// Starts the task that waits for `leader_end` and then for the rest of the group, and sends
/// [`Event::Exited`]. A leader that ends while the group is being stopped leaves the others
/// their grace period (a shell dies at once on SIGTERM while the server it started drains its
/// requests); one that ends by itself takes what is left of its group with it, so that a
/// restart never finds the port held by an orphan. Then the instance's cgroup, if any, is
/// removed.
fn supervise(
    pgid: i32,
    instance: InstanceId,
    generation: u64,
    events: mpsc::Sender<Event>,
    leader_end: impl Future<Output = String> + Send + 'static,
    cgroup: Option<PathBuf>,
) -> Process {
    let shared = Arc::new(Shared::default());
    let process = Process {
        pgid,
        shared: Arc::clone(&shared),
    };
    // Ends when the group has ended (stopping the agent stops them all).
    tokio::spawn(async move {
        let status = leader_end.await;
        if shared.stopping.load(Ordering::Acquire) {
            // `terminate` sends SIGKILL at the end of the grace period if needed.
            while procfs::group_has_live_member(pgid) {
                tokio::time::sleep(Duration::from_millis(GROUP_POLL_MS)).await;
            }
        } else {
            signal_group(pgid, libc::SIGKILL);
        }
        if let Some(dir) = cgroup {
            // Best effort: the next start of the instance reuses it anyway.
            let _ = std::fs::remove_dir(dir);
        }
        shared.exited.store(true, Ordering::Release);
        let _ = events
            .send(Event::Exited {
                instance,
                generation,
                status,
            })
            .await;
    });
    process
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
    let instance_name = spec.instance.to_string();
    let limits = ChildLimits::for_instance(spec.cgroups, &instance_name, &spec.resources)?;
    let mut command = tokio::process::Command::new("sh");
    // SAFETY: between fork and exec the closure only calls getpid, open, write, close and
    // setrlimit (async-signal-safe) on data prepared before the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || limits.apply_in_child());
    }
    let mut child = command
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
    // The child is not reaped before `wait` below: its pid names it.
    let record = InstanceRecord {
        instance: spec.instance.to_string(),
        pid,
        port: spec.port,
        generation,
        start_ticks: procfs::stat(pid).map(|stat| stat.start_ticks),
    };
    let record_path = spec.dir.join(INSTANCE_FILE);
    if let Err(error) = write_record(&record_path, &record) {
        tracing::warn!(instance = %spec.instance, %error, "cannot record the process");
    }
    let pgid = i32::try_from(pid).map_err(|_| spawn_error(format!("pid {pid} out of range")))?;
    let leader_end = async move {
        match child.wait().await {
            Ok(status) => status.to_string(),
            Err(error) => format!("cannot wait: {error}"),
        }
    };
    let cgroup = spec
        .cgroups
        .map(|parent| parent.instance_dir(&instance_name));
    Ok(supervise(
        pgid,
        spec.instance,
        generation,
        events,
        leader_end,
        cgroup,
    ))
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

/// The processes a previous agent left running in `instances_dir` (a crashed or killed agent's
/// instances keep running in their own groups), to adopt: each record whose process still runs
/// (see [`InstanceRecord::is_running`]). Records of processes that are gone are deleted.
pub fn leftovers(instances_dir: &Path) -> Result<Vec<InstanceRecord>, AgentError> {
    let entries = match std::fs::read_dir(instances_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(AgentError::io("cannot read", instances_dir, error)),
    };
    let mut running = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join(INSTANCE_FILE);
        let Ok(body) = std::fs::read(&path) else {
            continue;
        };
        match serde_json::from_slice::<InstanceRecord>(&body) {
            Ok(record) if record.is_running() => running.push(record),
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    running.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(running)
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
            resources: Resources {
                cpu_millis: 500,
                memory_bytes: 64 << 20,
                disk_bytes: 1 << 30,
            },
            cgroups: None,
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
        assert_eq!(
            record.start_ticks,
            procfs::stat(record.pid).map(|s| s.start_ticks)
        );
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
        process.terminate(Duration::ZERO, Duration::from_secs(5));
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
        while procfs::group_has_live_member(process.pid()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the group outlived its leader"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (at most 10 s) for `condition`.
    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn stopping_drains_first_and_leaves_the_group_its_grace_after_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        // The shell dies at once on SIGTERM; its child takes 300 ms to finish, then says so.
        let run = RunSpec {
            command: Some(
                "sh -c 'trap \"sleep 0.3; echo drained; exit 0\" TERM; echo up; while :; do sleep 0.05; done'"
                    .to_owned(),
            ),
            ..RunSpec::default()
        };
        let names = names();
        let spec = spec(&run, &names, dir.path());
        let (sender, mut receiver) = mpsc::channel(8);
        let process = spawn(&spec, 1, sender).unwrap();
        let output = spec.dir.join(OUTPUT_FILE);
        until("the child up", || {
            std::fs::read_to_string(&output).unwrap_or_default() == "up\n"
        })
        .await;
        let asked = std::time::Instant::now();
        process.terminate(Duration::from_millis(400), Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            procfs::is_alive(process.pid() as u32, None),
            "no signal during the drain delay"
        );
        let event = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(event, Event::Exited { .. }), "{event:?}");
        assert!(
            asked.elapsed() >= Duration::from_millis(700),
            "drain (400 ms) then the child's own 300 ms: {:?}",
            asked.elapsed()
        );
        // (The inner shell may also say its `sleep` was terminated.)
        let said = std::fs::read_to_string(&output).unwrap();
        assert!(
            said.ends_with("drained\n"),
            "the child finished after its shell died: {said:?}"
        );
        assert!(!procfs::group_has_live_member(process.pid()));
    }

    #[tokio::test]
    async fn a_new_agent_adopts_running_leftovers_and_forgets_dead_ones() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunSpec {
            command: Some("trap '' TERM; sleep 30".to_owned()),
            ..RunSpec::default()
        };
        let names = names();
        let spec = spec(&run, &names, dir.path());
        let (sender, _receiver) = mpsc::channel(8);
        let process = spawn(&spec, 1, sender).unwrap();
        let pid = process.pid() as u32;
        until("the shell runs with its environment", || {
            procfs::has_env(pid, "CARAVAN_INSTANCE", "i-7")
        })
        .await;
        // A stale record: a pid that exists (this test) but another start time.
        let stale_dir = dir.path().join("i-8");
        std::fs::create_dir_all(&stale_dir).unwrap();
        let me = std::process::id();
        let stale = InstanceRecord {
            instance: "i-8".into(),
            pid: me,
            port: 20_008,
            generation: 1,
            start_ticks: procfs::stat(me).map(|s| s.start_ticks + 1),
        };
        write_record(&stale_dir.join(INSTANCE_FILE), &stale).unwrap();

        let found = leftovers(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].instance.as_str(), found[0].pid), ("i-7", pid));
        assert!(
            !stale_dir.join(INSTANCE_FILE).exists(),
            "the stale record is gone"
        );
        assert!(spec.dir.join(INSTANCE_FILE).exists(), "the live one stays");

        // Adopted, it is watched like a child: stopping it (SIGKILL after the grace period, as
        // it ignores SIGTERM) ends in an exit event.
        let (sender, mut receiver) = mpsc::channel(8);
        let adopted = Process::adopt(&found[0], InstanceId(7), 9, sender, None).unwrap();
        assert_eq!(adopted.pid(), process.pid());
        adopted.terminate(Duration::ZERO, Duration::from_millis(200));
        let event = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                event,
                Event::Exited {
                    instance: InstanceId(7),
                    generation: 9,
                    ..
                }
            ),
            "{event:?}"
        );
        until("the group gone", || {
            !procfs::group_has_live_member(process.pid())
        })
        .await;
        assert!(leftovers(dir.path()).unwrap().is_empty());
    }

    /// Runs `script` as instance i-7 (64 MiB of memory) until it exits; answers its output.
    async fn run_to_end(dir: &Path, script: &str, cgroups: Option<&CgroupParent>) -> String {
        let run = RunSpec {
            command: Some(script.to_owned()),
            ..RunSpec::default()
        };
        let names = names();
        let mut spec = spec(&run, &names, dir);
        spec.cgroups = cgroups;
        let (sender, mut receiver) = mpsc::channel(8);
        let _process = spawn(&spec, 1, sender).unwrap();
        tokio::time::timeout(Duration::from_secs(20), receiver.recv())
            .await
            .unwrap()
            .unwrap();
        std::fs::read_to_string(spec.dir.join(OUTPUT_FILE)).unwrap()
    }

    #[tokio::test]
    async fn without_cgroups_memory_is_limited_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let said = run_to_end(dir.path(), "ulimit -d", None).await;
        assert_eq!(said, "65536\n", "RLIMIT_DATA = 64 MiB, in KiB");
        let python = Path::new("/usr/bin/python3");
        if python.exists() {
            let script = "/usr/bin/python3 -c 'b = bytearray(8 << 20); print(\"small ok\")'; \
                 /usr/bin/python3 -c 'b = bytearray(200 << 20); print(\"big ok\")' 2>/dev/null \
                 || echo big refused";
            let said = run_to_end(dir.path(), script, None).await;
            assert!(said.ends_with("small ok\nbig refused\n"), "{said}");
        }
    }

    #[tokio::test]
    async fn with_cgroups_an_instance_joins_its_cgroup_before_it_runs() {
        // A directory standing for the cgroup filesystem: the kernel would provide
        // `cgroup.procs` and read what is written into it.
        let cgroups = tempfile::tempdir().unwrap();
        std::fs::create_dir(cgroups.path().join("i-7")).unwrap();
        std::fs::write(cgroups.path().join("i-7/cgroup.procs"), "").unwrap();
        let parent = CgroupParent::new(cgroups.path().to_owned(), true, true);
        let dir = tempfile::tempdir().unwrap();
        let said = run_to_end(dir.path(), "echo $$; ulimit -d", Some(&parent)).await;
        let (pid, data) = said.split_once('\n').unwrap();
        let joined = std::fs::read_to_string(cgroups.path().join("i-7/cgroup.procs")).unwrap();
        assert_eq!(joined, pid, "the shell wrote its own pid before exec");
        let limits = std::fs::read_to_string(cgroups.path().join("i-7/memory.max")).unwrap();
        assert_eq!(limits, (64u64 << 20).to_string());
        let inherited = unsafe {
            let mut limit = std::mem::zeroed::<libc::rlimit>();
            libc::getrlimit(libc::RLIMIT_DATA, &mut limit);
            limit.rlim_cur
        };
        if inherited == libc::RLIM_INFINITY {
            assert_eq!(
                data, "unlimited\n",
                "the cgroup limits memory, not RLIMIT_DATA"
            );
        }
    }
}
