//! Readers of /proc: a process's memory, CPU time and user id (the daemons' privilege check,
//! the benchmark's and the soak's measurements).

/// Which process: this one or another by PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// `/proc/self`.
    This,
    /// `/proc/<pid>`.
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Self::This => "/proc/self".into(),
            Self::Other(pid) => format!("/proc/{pid}"),
        }
    }
}

/// The value of one `Key:` line of `/proc/<pid>/status` (whitespace-separated words).
pub fn status_field(pid: Pid, key: &str) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("{}/status", pid.dir())).ok()?;
    status_line(&s, key)
}

/// Resident memory (VmRSS) in KiB.
pub fn rss_kib(pid: Pid) -> Option<u64> {
    kib(pid, "VmRSS")
}

/// Peak resident memory (VmHWM) in KiB.
pub fn peak_rss_kib(pid: Pid) -> Option<u64> {
    kib(pid, "VmHWM")
}

/// The effective user id.
pub fn euid(pid: Pid) -> Option<u32> {
    status_field(pid, "Uid")?.get(1)?.parse().ok()
}

/// CPU time (user + system) in seconds.
pub fn cpu_seconds(pid: Pid) -> Option<f64> {
    let s = std::fs::read_to_string(format!("{}/stat", pid.dir())).ok()?;
    let (utime, stime) = stat_ticks(&s)?;
    Some((utime + stime) as f64 / clock_ticks())
}

fn kib(pid: Pid, key: &str) -> Option<u64> {
    status_field(pid, key)?.first()?.parse().ok()
}

fn status_line(status: &str, key: &str) -> Option<Vec<String>> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().map(str::to_string).collect())
    })
}

/// utime and stime (fields 14 and 15) of a stat line; the command name may hold spaces and
/// parentheses, so fields are counted after its last ')'.
fn stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_stat_lines_are_read() {
        let status = "Name:\tedge\nUid:\t1000\t0\t0\t0\nVmRSS:\t  8392 kB\n";
        assert_eq!(status_line(status, "VmRSS").unwrap(), ["8392", "kB"]);
        assert_eq!(status_line(status, "Uid").unwrap().get(1).unwrap(), "0");
        assert_eq!(status_line(status, "VmHWM"), None);
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1";
        assert_eq!(stat_ticks(stat), Some((17, 5)));
        assert_eq!(stat_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        assert!(rss_kib(Pid::This).is_some_and(|k| k > 0));
        assert!(peak_rss_kib(Pid::This) >= rss_kib(Pid::This));
        assert!(cpu_seconds(Pid::This).is_some());
        assert!(euid(Pid::This).is_some());
    }
}
