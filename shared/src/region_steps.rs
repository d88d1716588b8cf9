//! A region's two ledger steps as pure decisions: applying a cumulative grant and handling a
//! release request. The region node wraps them in one Postgres transaction each (the row lock,
//! the `quota_releases` record, the commit); the simulator (`quota-sim`) wraps them in its
//! modelled region. Both therefore apply the same arithmetic, and its safety argument
//! (ARCHITECTURE.md, protocol steps 4 and 6) is tested here once.

use crate::reconcile::grant_increment;

/// The applied grant `g` before and after a cumulative grant `G` was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantApplied {
    /// `g` before.
    pub before: i64,
    /// `g` after: `max(g, G)`.
    pub after: i64,
}

impl GrantApplied {
    /// Units the grant added (0 for a stale or repeated grant).
    pub fn added(&self) -> i64 {
        self.after - self.before
    }
}

/// Applies a cumulative grant `seen` (`G`) to the applied grant `applied` (`g`):
/// `g := max(g, G)`. Idempotent and order-insensitive, so re-delivered, late or reordered
/// grants (a watch restarted, a region restarted) can never add a unit twice.
pub fn apply_grant(applied: i64, seen: i64) -> GrantApplied {
    GrantApplied {
        before: applied,
        after: applied + grant_increment(applied, seen),
    }
}

/// What a region does with a release request, decided under the quota row's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseStep {
    /// The request id was handled before: nothing may happen (exactly once).
    AlreadyHandled,
    /// Take up to this many admission tokens, then record the request and `rel += taken`.
    Take(i64),
}

/// Decides a release request for `amount` units when the region has `available`
/// (`g − rel − sold`) unsold units and `handled` says whether its id is already recorded.
/// The region never gives back more than it was asked, nor more than it has unsold.
pub fn release_step(handled: bool, amount: i64, available: i64) -> ReleaseStep {
    if handled {
        ReleaseStep::AlreadyHandled
    } else {
        ReleaseStep::Take(amount.clamp(0, available.max(0)))
    }
}

/// Units actually released: what [`release_step`] wanted, limited by the admission tokens
/// (`tokens`: unsold units not admitted to any buyer in flight). Taking only tokens is what
/// keeps every purchase already admitted able to commit after `rel` grows.
pub fn release_taken(want: i64, tokens: i64) -> i64 {
    want.min(tokens).max(0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn grants_only_raise_g() {
        assert_eq!(apply_grant(10, 15).added(), 5);
        assert_eq!(
            apply_grant(15, 10),
            GrantApplied {
                before: 15,
                after: 15
            }
        );
    }

    #[test]
    fn a_handled_release_does_nothing() {
        assert_eq!(release_step(true, 5, 10), ReleaseStep::AlreadyHandled);
        assert_eq!(release_step(false, 5, 3), ReleaseStep::Take(3));
        assert_eq!(release_step(false, -1, 3), ReleaseStep::Take(0));
    }

    proptest! {
        /// Whatever is asked, a release takes no more than asked, than unsold, or than the
        /// free tokens, so `g − rel − sold` covers every admitted purchase afterwards.
        #[test]
        fn release_never_takes_what_is_sold_or_admitted(
            amount in -5i64..100, available in -5i64..100, in_flight in 0i64..100,
        ) {
            let tokens = (available - in_flight).max(0);
            let ReleaseStep::Take(want) = release_step(false, amount, available) else {
                unreachable!()
            };
            let taken = release_taken(want, tokens);
            prop_assert!(taken >= 0 && taken <= amount.max(0) && taken <= available.max(0));
            prop_assert!(available - taken >= in_flight || taken == 0);
        }
    }
}
