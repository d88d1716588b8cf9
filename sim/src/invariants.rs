//! The safety invariants, checked after every event: never oversold; the conservation identity
//! exact (through the real [`check_conservation`]); `G`, `g`, `rel`, `R`, `sold` never
//! decrease; `G − g ≥ 0`, `rel − R ≥ 0`, `pool ≥ 0`; and Redis never admits more than Postgres
//! can accept (`tokens + in flight ≤ g − rel − sold`). The first violation stops the run.
//!
//! The check allocates nothing per event: the per-region terms live in a map built once, in
//! region order, and are updated in place; sums are kept so one region's change is checked
//! against the whole identity without walking every region.

use std::collections::BTreeMap;

use quota_shared::ledger::{check_conservation, ConservationBreak, RegionTerms};

use crate::event::{EtcdMsg, Event};
use crate::model::etcd::Etcd;
use crate::model::region::Region;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The conservation identity (or a term's sign, or oversell) is broken.
    #[error("conservation: {0}")]
    Conservation(ConservationBreak),
    /// A counter that only grows went down.
    #[error("{region}: {counter} went down from {from} to {to}")]
    Decreased {
        /// Region.
        region: String,
        /// `G`, `g`, `rel`, `R` or `sold`.
        counter: &'static str,
        /// Before.
        from: i64,
        /// After.
        to: i64,
    },
    /// Redis admits more than Postgres can accept.
    #[error("{region}: tokens {tokens} + in flight {in_flight} > available {available}")]
    OverAdmitted {
        /// Region.
        region: String,
        /// Admission tokens.
        tokens: i64,
        /// Admitted, uncommitted.
        in_flight: i64,
        /// `g − rel − sold`.
        available: i64,
    },
}

/// Which regions an event may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touched {
    /// None (buyers, reports, the leader's reads): only the global conditions can change…
    /// and they cannot either, but they are cheap.
    Nothing,
    /// One region's counters.
    One(u16),
    /// Possibly all (a ledger write, a fault).
    All,
}

/// Worlds up to this many regions check every region after every event with the real
/// `check_conservation`; larger ones check what the event touched (exactly the same
/// conditions, see [`Checker::check`]) and everything after every ledger write or fault.
pub(crate) const FULL_CHECK_REGIONS: usize = 4;

/// The regions whose counters `ev` can change.
pub(crate) fn touched(ev: &Event, regions: usize) -> Touched {
    if regions <= FULL_CHECK_REGIONS {
        return Touched::All;
    }
    match ev {
        Event::Request { region, .. }
        | Event::ServiceDone { region, .. }
        | Event::Reconcile { region, .. }
        | Event::WaitDeadline { region, .. }
        | Event::RegionTick { region, .. }
        | Event::ToRegion { region, .. }
        | Event::ToEtcd(EtcdMsg::PublishRelease { region, .. }) => Touched::One(*region),
        Event::ToEtcd(EtcdMsg::Write { .. }) | Event::Fault(_) => Touched::All,
        Event::ToEtcd(
            EtcdMsg::Report { .. }
            | EtcdMsg::SessionStart { .. }
            | EtcdMsg::Read { .. }
            | EtcdMsg::PutMovable { .. },
        )
        | Event::Arrival
        | Event::Answer { .. }
        | Event::Retry { .. }
        | Event::ToCoord { .. }
        | Event::RoundTick
        | Event::Sample => Touched::Nothing,
    }
}

/// The counters of one region, as last checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    big_g: i64,
    g: i64,
    rel: i64,
    big_r: i64,
    sold: i64,
}

/// The checker of one run. It keeps each region's last counters (for monotonicity) and
/// terms, and their sums, so that checking one region keeps the global sums exact.
pub(crate) struct Checker {
    total: i64,
    prev: Vec<Counters>,
    /// The terms per region, in region (= name) order, as the real check takes them.
    terms: BTreeMap<String, RegionTerms>,
    /// The same terms by index, and their sums.
    cached: Vec<RegionTerms>,
    sum: i64,
    sold: i64,
}

impl Checker {
    /// `regions` must be in name order (the map's order).
    pub(crate) fn new(total: i64, regions: &[Region]) -> Checker {
        Checker {
            total,
            prev: vec![Counters::default(); regions.len()],
            terms: regions
                .iter()
                .map(|r| (r.name.clone(), RegionTerms::default()))
                .collect(),
            cached: vec![RegionTerms::default(); regions.len()],
            sum: 0,
            sold: 0,
        }
    }

    /// Checks the invariants after an event that changed `touched`.
    ///
    /// For [`Touched::All`] every region is checked and the real
    /// [`check_conservation`] runs over all of them. For one region, that region's
    /// monotonicity, admission and the signs of its terms are checked, and the identity's
    /// global conditions (`pool ≥ 0`, `pool + Σ terms = total`, `Σ sold ≤ total`) over sums
    /// kept exact incrementally: the same conditions, without walking every region.
    pub(crate) fn check(
        &mut self,
        etcd: &Etcd,
        regions: &[Region],
        touched: Touched,
    ) -> Result<(), Violation> {
        match touched {
            Touched::Nothing => {}
            Touched::One(r) => self.region(etcd, &regions[usize::from(r)])?,
            Touched::All => {
                for r in regions {
                    self.region(etcd, r)?;
                }
                for (t, c) in self.terms.values_mut().zip(&self.cached) {
                    *t = *c;
                }
                let breaks = check_conservation(self.total, etcd.pool(), &self.terms);
                if let Some(b) = breaks.into_iter().next() {
                    return Err(Violation::Conservation(b));
                }
            }
        }
        self.global(etcd.pool())
    }

    /// One region: counters never decrease, terms never negative, Redis never over-admits.
    fn region(&mut self, etcd: &Etcd, r: &Region) -> Result<(), Violation> {
        let i = usize::from(r.idx);
        let now = Counters {
            big_g: etcd.grants[i],
            g: r.g,
            rel: r.rel,
            big_r: etcd.published[i].released,
            sold: r.sold,
        };
        let prev = self.prev[i];
        for (counter, from, to) in [
            ("G", prev.big_g, now.big_g),
            ("g", prev.g, now.g),
            ("rel", prev.rel, now.rel),
            ("R", prev.big_r, now.big_r),
            ("sold", prev.sold, now.sold),
        ] {
            if to < from {
                return Err(Violation::Decreased {
                    region: r.name.clone(),
                    counter,
                    from,
                    to,
                });
            }
        }
        self.prev[i] = now;
        let t = RegionTerms {
            sold: now.sold,
            available: r.available(),
            grant_in_transit: now.big_g - now.g,
            release_in_transit: now.rel - now.big_r,
        };
        if let Some(broken) = t.negative_terms(&r.name).into_iter().next() {
            return Err(Violation::Conservation(broken));
        }
        let old = self.cached[i];
        self.sum += sum(&t) - sum(&old);
        self.sold += t.sold - old.sold;
        self.cached[i] = t;
        if r.tokens + r.in_flight > r.available() {
            return Err(Violation::OverAdmitted {
                region: r.name.clone(),
                tokens: r.tokens,
                in_flight: r.in_flight,
                available: r.available(),
            });
        }
        Ok(())
    }

    /// The identity's global conditions over the kept sums.
    fn global(&self, pool: i64) -> Result<(), Violation> {
        let b = if pool < 0 {
            ConservationBreak::NegativePool(pool)
        } else if pool + self.sum != self.total {
            ConservationBreak::Unbalanced {
                sum: pool + self.sum,
                total: self.total,
            }
        } else if self.sold > self.total {
            ConservationBreak::Oversold {
                sold: self.sold,
                total: self.total,
            }
        } else {
            return Ok(());
        };
        Err(Violation::Conservation(b))
    }
}

fn sum(t: &RegionTerms) -> i64 {
    t.sold + t.available + t.grant_in_transit + t.release_in_transit
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use quota_shared::model::{Ledger, ProductSpec};

    use super::*;
    use crate::model::region::Timing;

    /// One region holding all 5 units of a 5-unit sale.
    fn world() -> (Etcd, Vec<Region>) {
        let t = Timing {
            capacity: 1,
            queue: 1,
            service: 1,
            refusal: 1,
            reconcile: 1,
            tick: 1,
            await_stock: 0,
        };
        let region = Region::new(0, "east".into(), t, 5, Instant::now());
        let ledger = Ledger {
            total: 5,
            granted: [("east".to_string(), 5)].into(),
            ..Ledger::default()
        };
        let now = chrono::DateTime::UNIX_EPOCH;
        let spec = ProductSpec {
            product_id: 1,
            name: "t".into(),
            total: 5,
            price: rust_decimal::Decimal::ONE,
            original_price: rust_decimal::Decimal::ONE,
            start_time: now,
            end_time: now + chrono::Duration::days(1),
            per_user_limit: 1,
            ended: false,
            home_regions: Vec::new(),
            payment_window_s: None,
        };
        let reports = vec![region.report(0, 0.0)];
        let etcd = Etcd::new(vec!["east".into()], spec, ledger, reports, 1);
        (etcd, vec![region])
    }

    #[test]
    fn a_sound_state_passes_and_each_break_is_caught() {
        for touched in [Touched::All, Touched::One(0)] {
            let (etcd, mut regions) = world();
            let mut c = Checker::new(5, &regions);
            c.check(&etcd, &regions, Touched::All).unwrap();
            regions[0].tokens = 0;
            regions[0].sold = 6;
            let e = c.check(&etcd, &regions, touched).unwrap_err();
            assert!(e.to_string().contains("available"), "{e}");

            let (etcd, mut regions) = world();
            let mut c = Checker::new(5, &regions);
            c.check(&etcd, &regions, Touched::All).unwrap();
            regions[0].g = 4;
            regions[0].tokens = 4;
            let e = c.check(&etcd, &regions, touched).unwrap_err();
            assert!(
                matches!(e, Violation::Decreased { counter: "g", .. }),
                "{e}"
            );

            let (etcd, mut regions) = world();
            let mut c = Checker::new(5, &regions);
            regions[0].in_flight = 1;
            let e = c.check(&etcd, &regions, touched).unwrap_err();
            assert!(matches!(e, Violation::OverAdmitted { .. }), "{e}");
        }
    }
}
