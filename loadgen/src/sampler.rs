//! Samples the coordinator's status while the sale runs, and calls the sell-out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::coordinator::CoordinatorClient;
use crate::series::Sample;

/// How sampling went: failures are reported, not fatal.
#[derive(Debug, Default)]
pub(crate) struct SamplerOutcome {
    /// Status requests that failed.
    pub errors: u64,
    /// The first failure, in words.
    pub first_error: Option<String>,
}

/// Samples every `every` into `samples` until `done`; cancels `sellout` (if given) once the
/// coordinator reports every unit sold. A sample is stamped at the midpoint of its request.
pub(crate) async fn sample_loop(
    client: CoordinatorClient,
    t0: Instant,
    every: Duration,
    samples: Arc<Mutex<Vec<Sample>>>,
    sellout: Option<CancellationToken>,
    done: CancellationToken,
) -> SamplerOutcome {
    let mut out = SamplerOutcome::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = done.cancelled() => return out,
            _ = tick.tick() => {}
        }
        let asked = t0.elapsed().as_secs_f64();
        let answer = tokio::select! {
            _ = done.cancelled() => return out,
            a = client.sample(0.0) => a,
        };
        match answer {
            Ok(mut s) => {
                s.t_s = (asked + t0.elapsed().as_secs_f64()) / 2.0;
                let sold_out = s.sold_out();
                samples.lock().expect("samples lock").push(s);
                if sold_out {
                    if let Some(stop) = &sellout {
                        stop.cancel();
                    }
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
}
