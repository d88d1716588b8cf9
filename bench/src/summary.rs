//! Median and worst of repeated runs: one run on this shared machine is an anecdote, so the
//! `regions` scenario plays every design several times on fresh clusters and reports both.
//!
//! Every measure summarised here is "lower is better" (sell-out time, inversions, stranded
//! units, false 410s, latency), and a missing value — a sale that never sold out — counts as
//! the worst possible, so it shows up as the worst (and, if it is the common case, the median).

use std::collections::BTreeMap;

/// One run's measures by name; None: missing (e.g. never sold out).
pub(crate) type Measures = BTreeMap<String, Option<f64>>;

/// Median and worst of `values` (None sorts last, as the worst). Median of an even count is
/// the lower middle value, so it is always a value some run measured.
pub(crate) fn median_worst(values: &[Option<f64>]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    (v[(v.len() - 1) / 2], v[v.len() - 1])
}

/// Per measure name (every name any run has), (median, worst) over `runs`.
pub(crate) fn summarise(runs: &[Measures]) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
    let mut names: Vec<&String> = runs.iter().flat_map(BTreeMap::keys).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let values: Vec<Option<f64>> =
                runs.iter().map(|r| r.get(n).copied().flatten()).collect();
            (n.clone(), median_worst(&values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_worst_with_missing_as_worst() {
        assert_eq!(
            median_worst(&[Some(3.0), Some(1.0), Some(2.0)]),
            (Some(2.0), Some(3.0))
        );
        assert_eq!(
            median_worst(&[Some(3.0), None, Some(2.0)]),
            (Some(3.0), None)
        );
        assert_eq!(median_worst(&[None, None, Some(1.0)]), (None, None));
        assert_eq!(
            median_worst(&[Some(4.0), Some(1.0)]),
            (Some(1.0), Some(4.0))
        );
        assert_eq!(median_worst(&[Some(5.0)]), (Some(5.0), Some(5.0)));
        assert_eq!(median_worst(&[]), (None, None));
    }

    #[test]
    fn summarises_every_measure_any_run_has() {
        let run = |s: Option<f64>, p: f64| -> Measures {
            [("sellout_s".to_string(), s), ("p99".to_string(), Some(p))].into()
        };
        let mut third = run(Some(1.0), 9.0);
        third.insert("extra".into(), Some(1.0));
        let s = summarise(&[run(Some(2.0), 5.0), run(None, 7.0), third]);
        assert_eq!(s["sellout_s"], (Some(2.0), None));
        assert_eq!(s["p99"], (Some(7.0), Some(9.0)));
        assert_eq!(s["extra"], (None, None), "missing in two runs of three");
    }
}
