//! CPU accounting from /proc: which process was saturated during a measurement.
//!
//! A process's CPU time is `utime + stime` from `/proc/<pid>/stat` (clock ticks); Postgres
//! serves each connection in a child of the postmaster, so a "process" here is a pid plus all
//! its descendants.

use std::collections::BTreeMap;
use std::fs;

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

/// Snapshot of named process trees.
pub(crate) struct Meter {
    start: Vec<(String, u32, f64)>,
    self_start: f64,
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
        }
    }

    /// Cores used per process over `wall` seconds (1.0 = one core busy), plus "loadgen".
    pub(crate) fn stop(&self, wall: f64) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (n, p, s) in &self.start {
            out.insert(n.clone(), round2((tree_seconds(*p) - s) / wall));
        }
        out.insert(
            "loadgen".into(),
            round2((self_seconds() - self.self_start) / wall),
        );
        out
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
