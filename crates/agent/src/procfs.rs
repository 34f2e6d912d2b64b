//! What the agent reads of processes in `/proc` (Linux): a process's state, process group and
//! start time (`/proc/<pid>/stat`), its environment, and whether a process group still has a
//! live member. The start time tells a process from a later one that reuses its pid.

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// The process group id.
    pub pgrp: i32,
    /// When it started, in clock ticks since boot (field 22): with the pid, it names one
    /// process for the machine's uptime.
    pub start_ticks: u64,
}

impl Stat {
    /// Whether the process has ended (a zombie, or dead, not reaped yet).
    pub fn ended(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name is in parentheses and may contain
/// spaces and parentheses itself, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // After the name: state (field 3), ppid (4), pgrp (5), ..., starttime (22).
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(2)?.parse().ok()?;
    let start_ticks = fields.get(19)?.parse().ok()?;
    Some(Stat {
        state,
        pgrp,
        start_ticks,
    })
}

/// The stat of process `pid`, if it exists.
pub fn stat(pid: u32) -> Option<Stat> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| parse_stat(&text))
}

/// Whether process `pid` is alive and, when `start_ticks` is given, is the process that started
/// then (not a later one with the same pid).
pub fn is_alive(pid: u32, start_ticks: Option<u64>) -> bool {
    stat(pid).is_some_and(|stat| {
        !stat.ended() && start_ticks.is_none_or(|ticks| ticks == stat.start_ticks)
    })
}

/// Whether process `pid`'s environment holds `KEY=VALUE` exactly.
pub fn has_env(pid: u32, key: &str, value: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("{key}={value}");
    environ
        .split(|&b| b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// Whether process group `pgid` has a member that has not ended (zombies do not count: a
/// container's init may never reap them).
pub fn group_has_live_member(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
            .and_then(stat)
            .is_some_and(|stat| stat.pgrp == pgid && !stat.ended())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_around_odd_command_names() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                pgrp: 4242,
                start_ticks: 987_654
            })
        );
        assert!(parse_stat("4242 (sh) Z 1 7").is_none(), "too short");
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_is_alive_with_its_own_start_time_only() {
        let pid = std::process::id();
        let me = stat(pid).unwrap();
        assert!(is_alive(pid, Some(me.start_ticks)));
        assert!(is_alive(pid, None));
        assert!(!is_alive(pid, Some(me.start_ticks + 1)), "another process");
        assert!(group_has_live_member(me.pgrp));
        assert!(!is_alive(u32::MAX, None));
    }
}
