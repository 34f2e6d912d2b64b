//! Resource limits of instances, where the operating system allows them.
//!
//! - **cgroup v2** (when the agent finds a unified hierarchy it can write, normally as root at
//!   `/sys/fs/cgroup`): each instance runs in a cgroup of its own,
//!   `<root>/caravan/<host>.<work-dir hash>/<instance>/`, with `memory.max` = its memory,
//!   `memory.swap.max` = 0 and `cpu.max` = its CPU (millicores over a 100 ms period), for the
//!   whole process group. The process joins it between fork and exec, before it runs anything.
//! - **Otherwise** (cgroup v1 or no write access; the agent says so once, at start): memory is
//!   limited per process with `RLIMIT_DATA` (the data segment and private writable mappings;
//!   unlike `RLIMIT_AS`, reserved but inaccessible address space is not counted, so runtimes
//!   that reserve large heaps still start). A process over it fails its allocations. CPU is not
//!   limited (`RLIMIT_CPU` bounds CPU seconds in total, not a share).
//! - **Disk** is never enforced (neither mechanism bounds a directory's usage); it is the
//!   placement's accounting only.

use std::ffi::CString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use caravan_fleet::Resources;

use crate::error::AgentError;

/// Period of `cpu.max`, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The default root of the cgroup v2 hierarchy.
pub const CGROUP_ROOT_DEFAULT: &str = "/sys/fs/cgroup";

/// `cpu.max` for `cpu_millis` millicores: the quota per [`CPU_PERIOD_US`], at least 1 ms.
pub fn cpu_max(cpu_millis: u64) -> String {
    let quota = cpu_millis
        .saturating_mul(CPU_PERIOD_US)
        .checked_div(1_000)
        .unwrap_or(0)
        .max(1_000);
    format!("{quota} {CPU_PERIOD_US}")
}

/// The cgroup under which an agent puts its instances' cgroups, with the controllers it may
/// use there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupParent {
    dir: PathBuf,
    memory: bool,
    cpu: bool,
}

impl CgroupParent {
    /// A parent at `dir` with the given controllers enabled for its children (no checks: see
    /// [`CgroupParent::detect`]).
    pub fn new(dir: PathBuf, memory: bool, cpu: bool) -> Self {
        Self { dir, memory, cpu }
    }

    /// The directory of the instances' cgroups.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finds or makes the agent's cgroup under the cgroup v2 hierarchy at `root`:
    /// `<root>/caravan/<host>.<hash of work_dir>` (several agents on one machine, as in tests,
    /// get one each; the same agent restarted gets the same), with the memory and cpu
    /// controllers enabled down to it. Fails, saying why, when `root` is not a cgroup v2
    /// hierarchy the agent can write or the memory controller is not available there.
    pub fn detect(root: &Path, host: &str, work_dir: &Path) -> Result<CgroupParent, String> {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
            .map_err(|e| format!("{} is not a cgroup v2 hierarchy ({e})", root.display()))?;
        if !has_controller(&controllers, "memory") {
            return Err(format!(
                "the memory controller is not available in {}",
                root.display()
            ));
        }
        let mut hasher = std::hash::DefaultHasher::new();
        work_dir.hash(&mut hasher);
        let name = format!("{host}.{:08x}", hasher.finish() as u32);
        let caravan = root.join("caravan");
        let dir = caravan.join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for level in [root, caravan.as_path(), dir.as_path()] {
            // Best effort: an ancestor may have them already, or refuse while it has
            // processes; what counts is what the agent's cgroup ends up with.
            let _ = std::fs::write(level.join("cgroup.subtree_control"), "+memory +cpu");
        }
        let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if !has_controller(&enabled, "memory") {
            return Err(format!(
                "cannot enable the memory controller in {}",
                dir.display()
            ));
        }
        Ok(CgroupParent {
            dir,
            memory: true,
            cpu: has_controller(&enabled, "cpu"),
        })
    }

    /// Makes (or reuses) the cgroup of `instance` with its limits; answers the path of its
    /// `cgroup.procs`, which the process joins before exec.
    pub fn prepare(&self, instance: &str, resources: &Resources) -> Result<PathBuf, AgentError> {
        let dir = self.instance_dir(instance);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(AgentError::io("cannot create", &dir, error)),
        }
        let write = |file: &str, value: String| {
            let path = dir.join(file);
            std::fs::write(&path, value).map_err(|e| AgentError::io("cannot write", &path, e))
        };
        if self.memory {
            write("memory.max", resources.memory_bytes.to_string())?;
            // Without swap a memory limit is a limit; a kernel without swap accounting has
            // no such file, which is fine.
            let _ = write("memory.swap.max", "0".to_owned());
        }
        if self.cpu {
            write("cpu.max", cpu_max(resources.cpu_millis))?;
        }
        Ok(dir.join("cgroup.procs"))
    }

    /// The cgroup directory of `instance`.
    pub fn instance_dir(&self, instance: &str) -> PathBuf {
        self.dir.join(instance)
    }
}

/// Whether a space-separated controller list holds `name` (as the kernel lists them, or as
/// they are written to enable them: `+name`).
fn has_controller(list: &str, name: &str) -> bool {
    list.split_ascii_whitespace()
        .any(|c| c.strip_prefix('+').unwrap_or(c) == name)
}

/// What the child applies to itself between fork and exec.
#[derive(Clone, Debug)]
pub struct ChildLimits {
    /// The `cgroup.procs` to join, if any.
    pub cgroup_procs: Option<CString>,
    /// `RLIMIT_DATA` to set (soft and hard), if any.
    pub data_bytes: Option<u64>,
}

impl ChildLimits {
    /// The limits of an instance with `resources`: its cgroup when the agent has cgroups
    /// (prepared here), `RLIMIT_DATA` otherwise.
    pub fn for_instance(
        cgroups: Option<&CgroupParent>,
        instance: &str,
        resources: &Resources,
    ) -> Result<ChildLimits, AgentError> {
        let Some(parent) = cgroups else {
            return Ok(ChildLimits {
                cgroup_procs: None,
                data_bytes: Some(resources.memory_bytes),
            });
        };
        let procs = parent.prepare(instance, resources)?;
        let procs = CString::new(procs.as_os_str().as_encoded_bytes())
            .map_err(|_| AgentError::Config(format!("cgroup path {procs:?} has a NUL byte")))?;
        Ok(ChildLimits {
            cgroup_procs: Some(procs),
            data_bytes: (!parent.memory).then_some(resources.memory_bytes),
        })
    }

    /// Applies the limits to the calling process. Meant for between fork and exec: only
    /// async-signal-safe calls, no allocation.
    pub fn apply_in_child(&self) -> std::io::Result<()> {
        if let Some(path) = &self.cgroup_procs {
            join_cgroup(path)?;
        }
        if let Some(bytes) = self.data_bytes {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            // SAFETY: setrlimit(2) with a valid pointer to an initialised struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Writes the calling process's pid into `procs` (a cgroup's `cgroup.procs`).
fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: getpid(2) cannot fail.
    let pid = unsafe { libc::getpid() };
    let mut buffer = [0u8; 12];
    let text = decimal(u32::try_from(pid).unwrap_or(0), &mut buffer);
    // SAFETY: open(2) with a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: write(2) of `text`, a valid slice, to the descriptor opened above.
    let written = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
    let error = std::io::Error::last_os_error();
    // SAFETY: close(2) of the descriptor opened above, once.
    unsafe { libc::close(fd) };
    if written < 0 {
        return Err(error);
    }
    Ok(())
}

/// `n` in decimal in `buffer`, without allocating.
fn decimal(mut n: u32, buffer: &mut [u8; 12]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        // `n % 10` is a digit: the cast cannot truncate.
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buffer[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(cpu_millis: u64, memory_bytes: u64) -> Resources {
        Resources {
            cpu_millis,
            memory_bytes,
            disk_bytes: 1 << 30,
        }
    }

    #[test]
    fn cpu_quotas_are_millicores_of_the_period() {
        assert_eq!(cpu_max(1_000), "100000 100000");
        assert_eq!(cpu_max(2_500), "250000 100000");
        assert_eq!(cpu_max(100), "10000 100000");
        assert_eq!(cpu_max(1), "1000 100000", "at least 1 ms");
    }

    #[test]
    fn decimals_are_written_without_allocation() {
        let mut buffer = [0u8; 12];
        assert_eq!(decimal(0, &mut buffer), b"0");
        assert_eq!(decimal(4_294_967_295, &mut buffer), b"4294967295");
        assert_eq!(decimal(120, &mut buffer), b"120");
    }

    #[test]
    fn detection_needs_a_writable_v2_hierarchy_with_memory() {
        let root = tempfile::tempdir().unwrap();
        let error = CgroupParent::detect(root.path(), "dc1-h1", Path::new("/w")).unwrap_err();
        assert!(error.contains("is not a cgroup v2 hierarchy"), "{error}");
        std::fs::write(root.path().join("cgroup.controllers"), "cpu io pids").unwrap();
        let error = CgroupParent::detect(root.path(), "dc1-h1", Path::new("/w")).unwrap_err();
        assert!(
            error.contains("memory controller is not available"),
            "{error}"
        );
        // A hierarchy like the kernel's (here, plain files stand for its interface).
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let parent = CgroupParent::detect(root.path(), "dc1-h1", Path::new("/w")).unwrap();
        assert!(parent.dir().starts_with(root.path().join("caravan")));
        let name = parent
            .dir()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(name.starts_with("dc1-h1."), "{name}");
        assert_eq!((parent.memory, parent.cpu), (true, true));
        assert_eq!(
            std::fs::read_to_string(parent.dir().join("cgroup.subtree_control")).unwrap(),
            "+memory +cpu"
        );
        // The same agent gets the same cgroup; another work directory another.
        let again = CgroupParent::detect(root.path(), "dc1-h1", Path::new("/w")).unwrap();
        assert_eq!(again, parent);
        let other = CgroupParent::detect(root.path(), "dc1-h1", Path::new("/v")).unwrap();
        assert_ne!(other.dir(), parent.dir());
    }

    #[test]
    fn an_instance_cgroup_gets_its_limits_and_rlimits_stand_in_without_cgroups() {
        let root = tempfile::tempdir().unwrap();
        let parent = CgroupParent::new(root.path().to_owned(), true, true);
        let limits =
            ChildLimits::for_instance(Some(&parent), "i-7", &resources(1_500, 64 << 20)).unwrap();
        let dir = root.path().join("i-7");
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "150000 100000"
        );
        assert_eq!(
            limits.cgroup_procs.as_deref().map(|c| c.to_bytes()),
            Some(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
        );
        assert_eq!(limits.data_bytes, None, "the cgroup limits memory");
        let without = ChildLimits::for_instance(None, "i-7", &resources(1_500, 64 << 20)).unwrap();
        assert_eq!(
            (without.cgroup_procs, without.data_bytes),
            (None, Some(64 << 20))
        );
    }
}
