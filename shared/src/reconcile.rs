//! Pure arithmetic for keeping Redis (the admission filter) consistent with Postgres (the truth).
//!
//! Redis holds, per product, `stock` (admission tokens) and the set of in-flight purchase
//! tickets (admitted by Redis, not yet finished). Postgres holds `g`, `rel` and `sold`.
//! The invariant the region keeps is
//!
//! ```text
//!     stock + Σ qty(in-flight tickets not yet committed) ≤ g − rel − sold
//! ```
//!
//! i.e. Redis never admits more buyers than Postgres can accept. The reconciler re-derives
//! `stock` from Postgres while it holds the quota row's lock (so no purchase of that product
//! can commit in between), using [`target_stock`].

/// Units Postgres can still accept: `g − rel − sold` (never negative in a healthy database:
/// a CHECK constraint enforces it).
pub fn pg_available(granted: i64, released: i64, sold: i64) -> i64 {
    granted - released - sold
}

/// The admission stock Redis should hold: what Postgres can accept minus what is already
/// admitted and not yet committed. Clamped at 0 (a negative stock would be a debt that a later
/// grant silently pays off, hiding the drift from the metrics).
pub fn target_stock(pg_available: i64, uncommitted_in_flight: i64) -> i64 {
    (pg_available - uncommitted_in_flight).max(0)
}

/// How many units a newly seen cumulative grant `G` adds over the applied `g`
/// (`g := max(g, G)` is idempotent and order-insensitive).
pub fn grant_increment(applied: i64, seen: i64) -> i64 {
    (seen - applied).max(0)
}

/// A purchase ticket as stored in Redis: `"{ticket}|{user}|{qty}"`, scored by admission time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The ticket id, which is also the order id the purchase inserts.
    pub id: String,
    /// The buyer.
    pub user_id: i64,
    /// Units admitted.
    pub quantity: i64,
}

impl Ticket {
    /// The Redis sorted-set member for this ticket.
    pub fn member(&self) -> String {
        format!("{}|{}|{}", self.id, self.user_id, self.quantity)
    }

    /// Parses a sorted-set member; `None` for anything malformed.
    pub fn parse(member: &str) -> Option<Ticket> {
        let mut it = member.split('|');
        let id = it.next()?.to_string();
        let user_id = it.next()?.parse().ok()?;
        let quantity = it.next()?.parse().ok().filter(|q: &i64| *q > 0)?;
        if it.next().is_some() || id.is_empty() {
            return None;
        }
        Some(Ticket {
            id,
            user_id,
            quantity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ticket_round_trip() {
        let t = Ticket {
            id: "0190-ab".into(),
            user_id: 42,
            quantity: 2,
        };
        assert_eq!(Ticket::parse(&t.member()), Some(t));
        assert_eq!(Ticket::parse("x|1"), None);
        assert_eq!(Ticket::parse("x|1|0"), None);
        assert_eq!(Ticket::parse("x|1|2|3"), None);
        assert_eq!(Ticket::parse("|1|2"), None);
    }

    proptest! {
        /// Whatever the sequence of grants, releases and sales, the derived stock plus what is
        /// in flight never exceeds what Postgres can accept, and is exact when that is possible.
        #[test]
        fn stock_never_overadmits(rel in 0i64..1_000_000, sold in 0i64..1_000_000,
                                  free in 0i64..1_000_000, inflight in 0i64..1_000) {
            // Any healthy quota row: g = rel + sold + available.
            let g = rel + sold + free;
            let a = pg_available(g, rel, sold);
            prop_assert_eq!(a, free);
            let s = target_stock(a, inflight);
            prop_assert!(s >= 0);
            prop_assert!(s + inflight <= a || s == 0);
            if inflight <= a { prop_assert_eq!(s + inflight, a); }
        }

        /// Applying grants in any order, any number of times, ends at the maximum.
        #[test]
        fn grants_commute(seen in proptest::collection::vec(0i64..10_000, 0..20)) {
            let mut fwd = 0;
            for s in &seen { fwd += grant_increment(fwd, *s); }
            let mut rev = 0;
            for s in seen.iter().rev().chain(seen.iter()) { rev += grant_increment(rev, *s); }
            let max = seen.iter().copied().max().unwrap_or(0);
            prop_assert_eq!(fwd, max);
            prop_assert_eq!(rev, max);
        }
    }
}
