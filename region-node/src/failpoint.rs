//! Fault injection for the tests that must hit one exact point (a process kill, a lost answer)
//! instead of hoping a random fault lands there. Parsed once from `--failpoint` /
//! `QUOTA_FAILPOINT`; unset in production, where every check is one `match` on `None`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One injected fault.
#[derive(Debug)]
pub(crate) enum Failpoint {
    /// `crash_after_release_commit`: abort right after a release's Postgres commit, before
    /// `R` is published.
    CrashAfterReleaseCommit,
    /// `crash_after_cancel_commit`: abort right after a cancellation's Postgres commit, before
    /// the reconciler is poked and before the answer (the units are back in Postgres only).
    CrashAfterCancelCommit,
    /// `stall_in_release:MS`: every release pauses `MS` ms holding the quota row lock, idle
    /// in its transaction — what Postgres sees of a process paused there.
    StallInRelease(Duration),
    /// `lost_commit_answer[:MS]`: the first purchase commits, then (after `MS` ms) reports the
    /// connection lost, as if the commit's answer never arrived; its retries run normally.
    /// `lost_commit_answer_then_down[:MS]`: the same, and every retry finds the pool down.
    LostCommitAnswer {
        /// Pause between the commit and the lost answer (e.g. to let the sale end).
        delay: Duration,
        /// Retries fail at once with "unavailable" (no connection).
        then_down: bool,
        /// Fires for the first purchase only.
        fired: AtomicBool,
    },
}

/// What the purchase path must do to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptFault {
    /// Run it normally.
    None,
    /// Run it, then (after the delay) report the connection lost.
    LoseAnswer(Duration),
    /// Do not run it: the pool is down.
    PoolDown,
}

impl Failpoint {
    /// Parses the flag; an unknown name is an error, so a typo in a test cannot silently
    /// test nothing.
    pub(crate) fn parse(raw: &str) -> Result<Failpoint, String> {
        let (name, arg) = raw.split_once(':').unwrap_or((raw, "0"));
        let delay = || {
            arg.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("failpoint {name}: {arg:?} is not milliseconds"))
        };
        match name {
            "crash_after_release_commit" => Ok(Failpoint::CrashAfterReleaseCommit),
            "crash_after_cancel_commit" => Ok(Failpoint::CrashAfterCancelCommit),
            "stall_in_release" => Ok(Failpoint::StallInRelease(delay()?)),
            "lost_commit_answer" | "lost_commit_answer_then_down" => {
                Ok(Failpoint::LostCommitAnswer {
                    delay: delay()?,
                    then_down: name == "lost_commit_answer_then_down",
                    fired: AtomicBool::new(false),
                })
            }
            other => Err(format!("unknown failpoint {other:?}")),
        }
    }

    /// The fault for attempt `attempt` (0 = first) of one purchase; the first attempt of the
    /// first purchase sets `claimed` (one per purchase): that purchase is the one faulted.
    pub(crate) fn purchase_attempt(&self, attempt: u32, claimed: &AtomicBool) -> AttemptFault {
        let Failpoint::LostCommitAnswer {
            delay,
            then_down,
            fired,
        } = self
        else {
            return AttemptFault::None;
        };
        if attempt == 0 {
            let mine = !fired.swap(true, Ordering::SeqCst);
            claimed.store(mine, Ordering::SeqCst);
            return if mine {
                AttemptFault::LoseAnswer(*delay)
            } else {
                AttemptFault::None
            };
        }
        if claimed.load(Ordering::SeqCst) && *then_down {
            AttemptFault::PoolDown
        } else {
            AttemptFault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_typos_are_refused() {
        assert!(matches!(
            Failpoint::parse("crash_after_release_commit"),
            Ok(Failpoint::CrashAfterReleaseCommit)
        ));
        assert!(Failpoint::parse("lost_commit_answer:1500").is_ok());
        assert!(Failpoint::parse("lost_commit_answer:soon").is_err());
        assert!(Failpoint::parse("crash_after_relase_commit").is_err());
    }

    #[test]
    fn only_the_first_purchase_loses_its_answer() {
        let f = Failpoint::parse("lost_commit_answer_then_down:5").unwrap();
        let first = AtomicBool::new(false);
        let d = Duration::from_millis(5);
        assert_eq!(f.purchase_attempt(0, &first), AttemptFault::LoseAnswer(d));
        assert_eq!(f.purchase_attempt(1, &first), AttemptFault::PoolDown);
        let second = AtomicBool::new(false);
        assert_eq!(f.purchase_attempt(0, &second), AttemptFault::None);
        assert_eq!(f.purchase_attempt(1, &second), AttemptFault::None);
    }
}
