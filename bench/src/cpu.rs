//! CPU accounting from /proc: which process was saturated during a measurement.
//!
//! A process's CPU time is `utime + stime` from `/proc/<pid>/stat` (clock ticks); Postgres
//! serves each connection in a child of the postmaster, so a "process" here is a pid plus all
//! its descendants.

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux/x86-64 and arm64).
const TICKS: f64 = 100.0;

fn stat(pid: u32) -> Option<(u32, f64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after the closing paren are fixed.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((ppid, (utime + stime) / TICKS))
}

/// CPU seconds used so far by `root` and every descendant alive now.
pub(crate) fn tree_seconds(root: u32) -> f64 {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut own: BTreeMap<u32, f64> = BTreeMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if let Some((ppid, secs)) = stat(pid) {
                    children.entry(ppid).or_default().push(pid);
                    own.insert(pid, secs);
                }
            }
        }
    }
    let mut total = 0.0;
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        total += own.get(&p).copied().unwrap_or(0.0);
        if let Some(c) = children.get(&p) {
            stack.extend(c);
        }
    }
    total
}

/// CPU seconds of this process (the load generator runs in it).
pub(crate) fn self_seconds() -> f64 {
    stat(std::process::id()).map_or(0.0, |s| s.1)
}

/// CPU used by named process trees (and this process, the generator, as `loadgen`) over one
/// measurement.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuUse {
    /// Wall-clock seconds measured.
    pub wall_s: f64,
    /// CPU seconds per process name.
    pub seconds: BTreeMap<String, f64>,
}

impl CpuUse {
    /// Cores used per process (1.0 = one core busy the whole time), rounded to 0.01.
    pub(crate) fn cores(&self) -> BTreeMap<String, f64> {
        self.seconds
            .iter()
            .map(|(n, s)| (n.clone(), round2(s / self.wall_s.max(1e-9))))
            .collect()
    }

    /// CPU seconds of every process whose name starts with `prefix`.
    pub(crate) fn seconds_of(&self, prefix: &str) -> f64 {
        self.seconds
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, s)| s)
            .sum()
    }

    /// The busiest process and its cores, e.g. `node-east (0.93 cores)`.
    pub(crate) fn busiest(&self) -> String {
        self.cores()
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(n, c)| format!("{n} ({c:.2} cores)"))
            .unwrap_or_default()
    }
}

/// CPU seconds per 1,000 of `count` (None when nothing was counted): a cost per attempt that
/// compares across machines far better than attempts per second does.
pub(crate) fn per_1000(seconds: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| (seconds * 1000.0 / count as f64 * 1e4).round() / 1e4)
}

/// Snapshot of named process trees.
pub(crate) struct Meter {
    start: Vec<(String, u32, f64)>,
    self_start: f64,
    wall: Instant,
}

impl Meter {
    /// Starts measuring `procs` (name, pid).
    pub(crate) fn start(procs: &[(String, u32)]) -> Meter {
        Meter {
            start: procs
                .iter()
                .map(|(n, p)| (n.clone(), *p, tree_seconds(*p)))
                .collect(),
            self_start: self_seconds(),
            wall: Instant::now(),
        }
    }

    /// CPU seconds per process since the start, plus `loadgen` (this process).
    pub(crate) fn stop(&self) -> CpuUse {
        let mut seconds = BTreeMap::new();
        for (n, p, s) in &self.start {
            seconds.insert(n.clone(), tree_seconds(*p) - s);
        }
        seconds.insert("loadgen".into(), self_seconds() - self.self_start);
        CpuUse {
            wall_s: self.wall.elapsed().as_secs_f64(),
            seconds,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_busiest_and_cost_per_attempt() {
        let u = CpuUse {
            wall_s: 2.0,
            seconds: [
                ("node-east".to_string(), 1.5),
                ("redis-east".to_string(), 0.1),
                ("loadgen".to_string(), 1.0),
            ]
            .into(),
        };
        assert_eq!(u.cores()["node-east"], 0.75);
        assert_eq!(u.busiest(), "node-east (0.75 cores)");
        assert!((u.seconds_of("node") - 1.5).abs() < 1e-12);
        assert_eq!(per_1000(1.5, 3000), Some(0.5));
        assert_eq!(per_1000(1.5, 0), None);
    }
}
