//! The live progress line on stderr, once a second: what is happening right now.
//!
//! `line` is pure (formatting and the per-second rate); `ticker` reads the recorder's live
//! counters and prints. On a terminal the line is rewritten in place, otherwise one per second.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::recorder::Recorder;

/// The live counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// Seconds since start.
    pub elapsed_s: f64,
    /// Requests answered so far.
    pub attempts: u64,
    /// 201s so far.
    pub created: u64,
    /// 410s so far.
    pub sold_out: u64,
    /// 503s so far.
    pub unavailable: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Arrivals dropped by the concurrency cap so far.
    pub dropped: u64,
    /// P99 request latency so far, ms.
    pub p99_ms: f64,
}

impl Snapshot {
    /// Reads the recorder.
    pub(crate) fn of(rec: &Recorder) -> Snapshot {
        let l = &rec.live;
        Snapshot {
            elapsed_s: rec.t0().elapsed().as_secs_f64(),
            attempts: l.attempts.load(Ordering::Relaxed),
            created: l.created.load(Ordering::Relaxed),
            sold_out: l.sold_out.load(Ordering::Relaxed),
            unavailable: l.unavailable.load(Ordering::Relaxed),
            in_flight: l.in_flight.load(Ordering::Relaxed),
            dropped: l.dropped.load(Ordering::Relaxed),
            p99_ms: rec.p99_ms(),
        }
    }
}

/// The progress line for `now`, with the attempt rate since `prev`.
pub(crate) fn line(prev: &Snapshot, now: &Snapshot) -> String {
    let dt = now.elapsed_s - prev.elapsed_s;
    let rate = if dt > 0.0 {
        now.attempts.saturating_sub(prev.attempts) as f64 / dt
    } else {
        0.0
    };
    let mut s = format!(
        "[{:6.1}s] {:8.0} att/s  201: {}  410: {}  503: {}  in-flight: {}  p99: {:.1} ms",
        now.elapsed_s, rate, now.created, now.sold_out, now.unavailable, now.in_flight, now.p99_ms
    );
    if now.dropped > 0 {
        s.push_str(&format!("  dropped: {}", now.dropped));
    }
    s
}

/// Prints the line every second until `done`.
pub(crate) async fn ticker(rec: Arc<Recorder>, done: CancellationToken) {
    let in_place = std::io::stderr().is_terminal();
    let mut prev = Snapshot::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Snapshot::of(&rec);
        let text = line(&prev, &now);
        let mut err = std::io::stderr().lock();
        let _ = if in_place {
            write!(err, "\r{text}\x1b[K")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
        prev = now;
    }
    if in_place {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_rate_and_counts() {
        let prev = Snapshot {
            elapsed_s: 1.0,
            attempts: 1000,
            ..Snapshot::default()
        };
        let now = Snapshot {
            elapsed_s: 2.0,
            attempts: 3000,
            created: 10,
            sold_out: 5,
            unavailable: 2,
            in_flight: 7,
            dropped: 0,
            p99_ms: 12.34,
        };
        let l = line(&prev, &now);
        assert!(l.contains("2000 att/s"), "{l}");
        assert!(l.contains("201: 10") && l.contains("410: 5") && l.contains("503: 2"));
        assert!(l.contains("in-flight: 7") && l.contains("p99: 12.3 ms"));
        assert!(!l.contains("dropped"));
        let l = line(&now, &Snapshot { dropped: 3, ..now });
        assert!(l.contains("0 att/s") && l.contains("dropped: 3"));
    }
}
