//! Which coordinator instance a request goes to next, and when to give up: pure decisions,
//! unit-tested without servers ([`crate::AdminClient`] does the I/O).
//!
//! Any coordinator instance serves reads and forwards changes to the leader, so trying the
//! instances in order is enough to ride out a failover: no instance needs to be told apart.

use std::time::Duration;

/// How many passes over the instances a keyed change makes while none of them answers, or
/// while they answer 503 (between leaders): safe, because the key makes every copy after the
/// first a no-op. The waits between passes (0.3 s growing to 1.5 s, 7.5 s in all) outlast a
/// coordinator's lease (2 s) plus an etcd leader election, so an operator's change rides out
/// a failover even through one instance.
pub(crate) const CHANGE_PASSES: u32 = 8;

/// The coordinator instances to try, in the order given (each a base URL like
/// `http://127.0.0.1:7070`, without a trailing slash; never empty, no duplicates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints(Vec<String>);

impl Endpoints {
    /// Parses a comma-separated list of base URLs (`http://a:7070,https://b:7070`); blanks
    /// around items and trailing slashes are dropped, a repeated URL counts once. Refused: an
    /// empty list, an item that is not `http://` or `https://`.
    ///
    /// # Errors
    /// Says which item is wrong.
    pub fn parse(list: &str) -> Result<Endpoints, String> {
        let mut urls: Vec<String> = Vec::new();
        for item in list.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let rest = item
                .strip_prefix("http://")
                .or_else(|| item.strip_prefix("https://"));
            if rest.is_none_or(|r| r.trim_end_matches('/').is_empty()) {
                return Err(format!(
                    "coordinator URL {item:?} is not http://HOST:PORT or https://HOST:PORT"
                ));
            }
            let url = item.trim_end_matches('/').to_string();
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        if urls.is_empty() {
            return Err("no coordinator URL given".into());
        }
        Ok(Endpoints(urls))
    }

    /// The base URLs, in order.
    pub fn urls(&self) -> &[String] {
        &self.0
    }
}

/// What kind of request is being sent: it decides how far a failed one may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A `GET`: changes nothing, so it may go to every instance.
    Read,
    /// A change carrying an idempotency key: resending it anywhere applies it at most once.
    KeyedChange,
    /// A change without a key: resent only where it certainly never arrived.
    UnkeyedChange,
}

/// Why one try brought no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No connection was made (refused, unresolvable, TLS handshake failed, connect timeout):
    /// the request certainly did not arrive.
    NotSent,
    /// The request may have arrived, but no (whole) answer came back (reset, timeout).
    NoAnswer,
    /// 503: the instance answered that it cannot serve this now (no leader yet, the leader
    /// unreachable from it, etcd unavailable).
    Unavailable,
}

/// What to do after a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try the instance with this index now.
    Try(usize),
    /// A whole pass missed: wait this long, then try the instance with this index.
    Wait(Duration, usize),
    /// Stop: report what was tried.
    GiveUp,
}

/// One request's way through the instances: it starts at `start` (the instance that answered
/// last, so a dead one first in the list costs one refused connection, once), goes round the
/// list once per pass, and waits between passes.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    /// Number of instances.
    n: usize,
    /// Where every pass starts.
    start: usize,
    /// Steps taken in the current pass (0 = at `start`).
    step: usize,
    /// Passes completed.
    pass: u32,
    /// What is being sent.
    kind: Kind,
}

impl Failover {
    /// A way through `n` instances (at least one) starting at `start`.
    pub(crate) fn new(n: usize, start: usize, kind: Kind) -> Failover {
        assert!(n > 0, "at least one instance");
        Failover {
            n,
            start: start % n,
            step: 0,
            pass: 0,
            kind,
        }
    }

    /// The instance to try first.
    pub(crate) fn first(&self) -> usize {
        self.start
    }

    /// The instance being tried now.
    pub(crate) fn current(&self) -> usize {
        (self.start + self.step) % self.n
    }

    /// How many passes a request of `kind` makes at most: a keyed change waits out a
    /// failover, a read or an unkeyed change goes round once (a read answers at once from
    /// any live instance; an unkeyed change must not be repeated).
    fn passes(kind: Kind) -> u32 {
        match kind {
            Kind::KeyedChange => CHANGE_PASSES,
            Kind::Read | Kind::UnkeyedChange => 1,
        }
    }

    /// Whether a `miss` on a request of `kind` may be followed by another try: always for a
    /// read or a keyed change; an unkeyed change only when it certainly never arrived.
    pub(crate) fn may_resend(kind: Kind, miss: Miss) -> bool {
        match kind {
            Kind::Read | Kind::KeyedChange => true,
            Kind::UnkeyedChange => miss == Miss::NotSent,
        }
    }

    /// The current try missed with `miss`: the next instance in this pass, or (after a whole
    /// pass) a wait and the first again, or give up.
    pub(crate) fn after(&mut self, miss: Miss) -> Next {
        if !Self::may_resend(self.kind, miss) {
            return Next::GiveUp;
        }
        self.step += 1;
        if self.step < self.n {
            return Next::Try(self.current());
        }
        self.pass += 1;
        if self.pass >= Self::passes(self.kind) {
            return Next::GiveUp;
        }
        self.step = 0;
        Next::Wait(backoff(self.pass), self.current())
    }
}

/// The wait after `passes` whole passes missed: 0.3 s more each time, at most 1.5 s.
fn backoff(passes: u32) -> Duration {
    Duration::from_millis((300 * u64::from(passes)).min(1_500))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every step of a failover until it gives up, for one `miss` repeated.
    fn walk(n: usize, start: usize, kind: Kind, miss: Miss) -> Vec<Next> {
        let mut f = Failover::new(n, start, kind);
        let mut out = vec![Next::Try(f.first())];
        loop {
            let next = f.after(miss);
            out.push(next);
            if next == Next::GiveUp {
                return out;
            }
        }
    }

    #[test]
    fn a_read_tries_each_instance_once_in_order_from_the_last_that_answered() {
        use Next::{GiveUp, Try};
        for miss in [Miss::NotSent, Miss::NoAnswer, Miss::Unavailable] {
            assert_eq!(
                walk(3, 0, Kind::Read, miss),
                [Try(0), Try(1), Try(2), GiveUp]
            );
            assert_eq!(
                walk(3, 2, Kind::Read, miss),
                [Try(2), Try(0), Try(1), GiveUp]
            );
        }
        assert_eq!(
            walk(1, 0, Kind::Read, Miss::NotSent),
            [Try(0), GiveUp],
            "one URL: as before, one try"
        );
        assert_eq!(Failover::new(2, 5, Kind::Read).first(), 1, "start wraps");
    }

    #[test]
    fn a_keyed_change_goes_round_again_and_again_waiting_between_passes() {
        let steps = walk(2, 0, Kind::KeyedChange, Miss::Unavailable);
        let tries = steps.iter().filter(|s| **s != Next::GiveUp).count();
        assert_eq!(tries, 2 * CHANGE_PASSES as usize, "{steps:?}");
        assert_eq!(steps.last(), Some(&Next::GiveUp));
        let waits: Vec<Duration> = steps
            .iter()
            .filter_map(|s| match s {
                Next::Wait(d, at) => {
                    assert_eq!(*at, 0, "every pass starts at the same instance");
                    Some(*d)
                }
                _ => None,
            })
            .collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [300, 600, 900, 1200, 1500, 1500, 1500]);
        assert_eq!(
            waits.iter().sum::<Duration>(),
            Duration::from_millis(7_500),
            "outlasts a lease plus an election"
        );
        // Within a pass, no wait: the next instance at once.
        assert_eq!(steps[1], Next::Try(1));
        assert!(matches!(steps[2], Next::Wait(_, 0)));
    }

    #[test]
    fn an_unkeyed_change_moves_on_only_when_it_never_arrived() {
        use Next::{GiveUp, Try};
        assert_eq!(
            walk(2, 0, Kind::UnkeyedChange, Miss::NotSent),
            [Try(0), Try(1), GiveUp]
        );
        for miss in [Miss::NoAnswer, Miss::Unavailable] {
            assert_eq!(walk(2, 0, Kind::UnkeyedChange, miss), [Try(0), GiveUp]);
        }
    }

    #[test]
    fn a_mixed_failover_reaches_the_live_instance() {
        // Dead first (refused), then a standby between leaders (503), then it answers: the
        // caller stops at the first answer, so only the misses are fed in.
        let mut f = Failover::new(2, 0, Kind::KeyedChange);
        assert_eq!(f.first(), 0);
        assert_eq!(f.after(Miss::NotSent), Next::Try(1));
        assert_eq!(f.current(), 1);
        assert_eq!(
            f.after(Miss::Unavailable),
            Next::Wait(Duration::from_millis(300), 0)
        );
        assert_eq!(f.after(Miss::NotSent), Next::Try(1));
    }

    #[test]
    fn url_lists_parse_and_bad_ones_are_named() {
        let e = Endpoints::parse(" http://a:1/ , https://b:2,,http://a:1").unwrap();
        assert_eq!(e.urls(), ["http://a:1", "https://b:2"]);
        assert_eq!(
            Endpoints::parse("http://a:1").unwrap().urls(),
            ["http://a:1"]
        );
        for bad in [
            "",
            " , ",
            "a:1",
            "http://a:1,ftp://b",
            "http://",
            "https:///",
        ] {
            let err = Endpoints::parse(bad).unwrap_err();
            assert!(err.contains("URL"), "{bad:?}: {err}");
        }
        assert!(Endpoints::parse("http://a:1,b:2")
            .unwrap_err()
            .contains("\"b:2\""));
    }
}
