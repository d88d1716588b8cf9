//! Sale-quality measures computed from what the run saw. Pure; every definition is here.
//!
//! - **False sold-out**: a 410 answered at time `t` although the product still had stock:
//!   some purchase *sent after `t`* (in any region) still succeeded. Stock only shrinks during
//!   a run (no restock), so the unit that buyer got existed, unsold, when this one was turned
//!   away. Exact, and needs no coordinator samples (which lag by a report period and would
//!   count the 410s of the final instant as false). A purchase sent *before* `t` and answered
//!   after it does not count: its unit may already have been claimed.
//! - **Stranded units**: `total − Σ sold` in the final sample, counted only if a 410 was still
//!   being answered in the last second of the run — buyers were turned away while units stayed
//!   unsold. If nobody was refused at the end, the leftover units were simply not wanted (0).
//! - **Time to sell-out**: the time of the first sample whose `Σ sold ≥ total`. Without samples,
//!   the time of the last 201 provided a 410 came after it (otherwise nothing shows the sale
//!   sold out: None).
//! - **Oversold units**: `max(0, Σ sold − total)`; must be 0.

use crate::series::Sample;

/// A 410 the client received: seconds since start, region index into `names`.
pub(crate) type SoldOutAnswer = (f64, usize);

/// Number of false sold-outs (see module docs): 410s answered before the last successful
/// purchase was sent.
pub(crate) fn false_sold_outs(answers: &[SoldOutAnswer], last_201_sent_s: Option<f64>) -> u64 {
    let Some(last) = last_201_sent_s else {
        return 0;
    };
    answers.iter().filter(|(t, _)| *t < last).count() as u64
}

/// Stranded units (see module docs); None without a final sample.
pub(crate) fn stranded(
    final_sample: Option<&Sample>,
    last_410_s: Option<f64>,
    end_s: f64,
) -> Option<i64> {
    let s = final_sample?;
    let refused_at_end = last_410_s.is_some_and(|t| t >= end_s - 1.0);
    Some(if refused_at_end {
        (s.total - s.sold()).max(0)
    } else {
        0
    })
}

/// Seconds from start to sell-out (see module docs).
pub(crate) fn sellout_time(
    samples: &[Sample],
    last_201_s: Option<f64>,
    last_410_s: Option<f64>,
) -> Option<f64> {
    if !samples.is_empty() {
        return samples.iter().find(|s| s.sold_out()).map(|s| s.t_s);
    }
    match (last_201_s, last_410_s) {
        (Some(ok), Some(gone)) if gone > ok => Some(ok),
        _ => None,
    }
}

/// Units sold beyond the total; must be 0.
pub(crate) fn oversold(total: i64, sold: i64) -> i64 {
    (sold - total).max(0)
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::RegionSample;

    /// A sample at `t` with a pool and (available, sold) for east and south.
    fn sample(t: f64, pool: i64, east: (i64, i64), south: (i64, i64)) -> Sample {
        let r = |(available, sold)| RegionSample {
            available: Some(available),
            sold: Some(sold),
            demand: 0.0,
            alive: true,
        };
        Sample {
            t_s: t,
            total: 100,
            pool,
            regions: [
                ("east".to_string(), r(east)),
                ("south".to_string(), r(south)),
            ]
            .into(),
        }
    }

    fn series() -> Vec<Sample> {
        vec![
            sample(0.0, 40, (30, 0), (30, 0)),
            sample(1.0, 10, (0, 60), (20, 10)), // east empty, stock in pool and south
            sample(2.0, 0, (0, 70), (20, 10)),  // east empty, stock only in south
            sample(3.0, 0, (0, 70), (0, 30)),   // everything sold
        ]
    }

    #[test]
    fn false_sold_outs_are_refusals_before_a_later_sale() {
        let answers = vec![
            (1.1, 0), // refused, yet a purchase sent at 2.05 succeeded → false
            (2.0, 1), // idem
            (2.1, 1), // after the last successful send → a true sold-out
            (2.9, 0),
        ];
        assert_eq!(false_sold_outs(&answers, Some(2.05)), 2);
        assert_eq!(false_sold_outs(&answers, None), 0);
        assert_eq!(false_sold_outs(&[], Some(5.0)), 0);
    }

    #[test]
    fn stranded_only_when_buyers_were_refused_at_the_end() {
        let end = sample(10.0, 5, (0, 70), (10, 15)); // sold 85 of 100
        assert_eq!(stranded(Some(&end), Some(9.5), 10.0), Some(15));
        assert_eq!(stranded(Some(&end), Some(3.0), 10.0), Some(0));
        assert_eq!(stranded(Some(&end), None, 10.0), Some(0));
        assert_eq!(stranded(None, Some(9.9), 10.0), None);
        let all = sample(10.0, 0, (0, 70), (0, 30));
        assert_eq!(stranded(Some(&all), Some(9.9), 10.0), Some(0));
    }

    #[test]
    fn sellout_from_samples_or_last_order() {
        assert_eq!(sellout_time(&series(), None, None), Some(3.0));
        assert_eq!(sellout_time(&series()[..3], Some(2.0), Some(2.5)), None);
        assert_eq!(sellout_time(&[], Some(2.0), Some(2.5)), Some(2.0));
        assert_eq!(sellout_time(&[], Some(2.0), Some(1.5)), None);
        assert_eq!(sellout_time(&[], Some(2.0), None), None);
    }

    #[test]
    fn oversold_and_percent() {
        assert_eq!(oversold(100, 99), 0);
        assert_eq!(oversold(100, 103), 3);
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(1, 0), 0.0);
    }
}
