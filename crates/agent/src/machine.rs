//! The machine's capacity, the default of what a host offers: CPUs the process may use,
//! `MemTotal` of `/proc/meminfo`, and the size of the file system holding the work directory.

use std::path::Path;

use crate::error::AgentError;

/// CPUs this process may use, in thousandths of a core.
pub fn cpu_millis() -> u64 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    u64::try_from(cpus).unwrap_or(1).saturating_mul(1_000)
}

/// Total memory in bytes, from `/proc/meminfo`.
pub fn memory_bytes() -> Result<u64, AgentError> {
    let path = Path::new("/proc/meminfo");
    let meminfo =
        std::fs::read_to_string(path).map_err(|e| AgentError::io("cannot read", path, e))?;
    parse_mem_total(&meminfo).ok_or_else(|| {
        AgentError::Config("no MemTotal in /proc/meminfo: give --memory-mib".to_owned())
    })
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

/// Size in bytes of the file system holding `path`.
pub fn disk_bytes(path: &Path) -> Result<u64, AgentError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| AgentError::Config(format!("{} contains a NUL byte", path.display())))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `stats` is a valid, writable statvfs.
    let result = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if result != 0 {
        return Err(AgentError::io(
            "cannot statvfs",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let bytes = u64::from(stats.f_blocks).saturating_mul(u64::from(stats.f_frsize));
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_kib() {
        let meminfo = "MemFree: 10 kB\nMemTotal:       16318480 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(16_318_480 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: x kB\n"), None);
    }

    #[test]
    fn this_machine_has_capacity() {
        assert!(cpu_millis() >= 1_000);
        assert!(memory_bytes().unwrap() > 0);
        assert!(disk_bytes(&std::env::temp_dir()).unwrap() > 0);
    }
}
