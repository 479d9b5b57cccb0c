//! What a process costs, from `/proc`: resident memory, its peak, open files, CPU time.
//! nginx is a master and its workers: every figure is summed over the process and its children.

use std::time::Duration;

/// One reading of a process (and its children).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcStat {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub fds: u64,
    /// User and system CPU time so far.
    pub user: Duration,
    pub system: Duration,
}

/// `/proc` reports CPU time in clock ticks; Linux's USER_HZ is 100 on every architecture
/// this runs on.
const TICKS_PER_SECOND: u64 = 100;

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (parent pid, utime ticks, stime ticks) from `/proc/PID/stat`.
fn stat_fields(pid: u32) -> Option<(u32, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: the fields start after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.get(11)?.parse().ok()?,
        f.get(12)?.parse().ok()?,
    ))
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat_fields(p).is_some_and(|(ppid, ..)| ppid == pid))
        .collect()
}

fn one(pid: u32) -> ProcStat {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    let (_, utime, stime) = stat_fields(pid).unwrap_or_default();
    let tick = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    ProcStat {
        rss_kib: status_kib(&status, "VmRSS:"),
        peak_rss_kib: status_kib(&status, "VmHWM:"),
        fds,
        user: tick(utime),
        system: tick(stime),
    }
}

/// The process `pid` and its children, summed.
pub fn read(pid: u32) -> ProcStat {
    let mut total = one(pid);
    for child in children(pid) {
        let c = one(child);
        total.rss_kib += c.rss_kib;
        total.peak_rss_kib += c.peak_rss_kib;
        total.fds += c.fds;
        total.user += c.user;
        total.system += c.system;
    }
    total
}

/// Resets the peak RSS (`VmHWM`) of `pid` and its children to their current RSS (`5` to
/// `/proc/PID/clear_refs`, Linux 4.0+), so that a later [`read`] shows the peak of what ran
/// in between. `Err` when the kernel refuses (another user's process, an old kernel).
pub fn reset_peak(pid: u32) -> std::io::Result<()> {
    for p in std::iter::once(pid).chain(children(pid)) {
        std::fs::write(format!("/proc/{p}/clear_refs"), "5")?;
    }
    Ok(())
}
