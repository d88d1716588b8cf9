//! Finding a service's capacity with the open-loop generator, instead of reporting the
//! generator's own offered load.
//!
//! An open-loop run at offered rate `r` completes `a(r)` attempts per second: `a(r) ≈ r` while
//! the service keeps up, and `a(r)` stops growing once it is saturated (arrivals beyond the
//! in-flight cap are dropped and counted). So: double the offered rate until a run no longer
//! keeps up (completes less than [`KEPT_UP`] of it), then bisect between the last rate that
//! kept up and the first that did not, a fixed number of times. The capacity is the highest
//! attempts/s any step completed; if no step saturated, it is only a lower bound (the
//! generator, or the step limit, ran out first — the generator's CPU says which).
//!
//! [`next_rate`] is the pure plan; [`search`] drives it with one run per step.

use std::future::Future;

use serde_json::{json, Value};

/// A run kept up when it completed at least this share of its offered rate.
pub(crate) const KEPT_UP: f64 = 0.9;

/// How far a search goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// First offered rate, arrivals per second.
    pub start: f64,
    /// Most steps in all (doublings and bisections).
    pub max_steps: usize,
    /// Bisections after the first step that did not keep up.
    pub bisections: usize,
}

/// One step: what was offered, what completed, and the step's details for the JSON.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Offered arrivals per second.
    pub offered: f64,
    /// Completed attempts per second.
    pub attempts_per_sec: f64,
    /// Everything else measured in the step.
    pub detail: Value,
}

fn kept_up(offered: f64, achieved: f64) -> bool {
    achieved >= KEPT_UP * offered
}

/// The next offered rate after `history` (offered, completed) pairs, or None when done.
pub(crate) fn next_rate(plan: &Plan, history: &[(f64, f64)]) -> Option<f64> {
    if history.is_empty() {
        return Some(plan.start);
    }
    if history.len() >= plan.max_steps {
        return None;
    }
    let ok = history
        .iter()
        .filter(|(o, a)| kept_up(*o, *a))
        .map(|(o, _)| *o)
        .fold(0.0, f64::max);
    let first_bad = history.iter().position(|(o, a)| !kept_up(*o, *a));
    let Some(first_bad) = first_bad else {
        return Some(ok * 2.0);
    };
    let bad = history
        .iter()
        .filter(|(o, a)| !kept_up(*o, *a))
        .map(|(o, _)| *o)
        .fold(f64::INFINITY, f64::min);
    let bisected = history.len() - (first_bad + 1);
    // Stop when bisections are used up or the bracket is already within 10 %.
    (bisected < plan.bisections && bad - ok > 0.1 * bad).then(|| ((ok + bad) / 2.0).round())
}

/// The outcome of a search.
#[derive(Debug, Clone)]
pub(crate) struct Capacity {
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// Index of the step with the most attempts/s.
    pub best: usize,
    /// Whether some step did not keep up (otherwise the capacity is a lower bound).
    pub saturated: bool,
}

impl Capacity {
    /// The step with the most attempts/s.
    pub(crate) fn best(&self) -> &Step {
        &self.steps[self.best]
    }

    /// The search as JSON: capacity, whether saturated, and every step.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "attempts_per_sec": self.best().attempts_per_sec.round(),
            "offered_at_best": self.best().offered,
            "saturated": self.saturated,
            "steps": self.steps.iter().map(|s| s.detail.clone()).collect::<Vec<_>>(),
        })
    }
}

/// Runs steps as `plan` says: `run(step_index, offered_rate)` plays one step.
pub(crate) async fn search<F, Fut>(plan: &Plan, mut run: F) -> anyhow::Result<Capacity>
where
    F: FnMut(usize, f64) -> Fut,
    Fut: Future<Output = anyhow::Result<Step>>,
{
    let mut steps: Vec<Step> = Vec::new();
    let mut history = Vec::new();
    while let Some(rate) = next_rate(plan, &history) {
        let step = run(steps.len(), rate).await?;
        eprintln!(
            "    offered {rate:>8.0}/s → {:>8.0} attempts/s",
            step.attempts_per_sec
        );
        history.push((step.offered, step.attempts_per_sec));
        steps.push(step);
    }
    let best = steps
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.attempts_per_sec.total_cmp(&b.1.attempts_per_sec))
        .map_or(0, |(i, _)| i);
    let saturated = history.iter().any(|(o, a)| !kept_up(*o, *a));
    Ok(Capacity {
        steps,
        best,
        saturated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays the plan against a service that completes min(offered, capacity).
    fn play(plan: &Plan, capacity: f64) -> Vec<(f64, f64)> {
        let mut h = Vec::new();
        while let Some(r) = next_rate(plan, &h) {
            h.push((r, r.min(capacity)));
        }
        h
    }

    #[test]
    fn doubles_then_bisects_towards_the_knee() {
        let plan = Plan {
            start: 1000.0,
            max_steps: 12,
            bisections: 2,
        };
        let h = play(&plan, 5000.0);
        let offered: Vec<f64> = h.iter().map(|x| x.0).collect();
        assert_eq!(offered, [1000.0, 2000.0, 4000.0, 8000.0, 6000.0, 5000.0]);
        assert_eq!(h.iter().map(|x| x.1).fold(0.0, f64::max), 5000.0);
    }

    #[test]
    fn stops_at_the_step_limit_unsaturated() {
        let plan = Plan {
            start: 500.0,
            max_steps: 2,
            bisections: 0,
        };
        let h = play(&plan, 1e9);
        assert_eq!(h, [(500.0, 500.0), (1000.0, 1000.0)]);
    }

    #[test]
    fn a_service_slower_than_the_start_is_bisected_downwards() {
        let plan = Plan {
            start: 1000.0,
            max_steps: 5,
            bisections: 1,
        };
        let h = play(&plan, 300.0);
        assert_eq!(h.iter().map(|x| x.0).collect::<Vec<_>>(), [1000.0, 500.0]);
    }

    #[tokio::test]
    async fn search_reports_the_best_step_and_saturation() {
        let plan = Plan {
            start: 100.0,
            max_steps: 4,
            bisections: 0,
        };
        let c = search(&plan, |i, r| async move {
            Ok(Step {
                offered: r,
                attempts_per_sec: r.min(250.0),
                detail: json!({ "i": i }),
            })
        })
        .await
        .unwrap();
        assert_eq!(c.steps.len(), 3, "100, 200, 400 (did not keep up)");
        assert!(c.saturated);
        assert_eq!(c.best().offered, 400.0);
        assert_eq!(c.to_json()["attempts_per_sec"], 250.0);
    }
}
