//! One run, end to end: open-loop arrivals, buyers with retries, sampling, progress, then
//! verification and the report. This is the I/O shell around the pure modules.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::PurchaseClient;
use crate::config::Config;
use crate::coordinator::CoordinatorClient;
use crate::error::Error;
use crate::progress;
use crate::recorder::{Recorder, Try};
use crate::report::{self, Report, RunFacts};
use crate::sampler::sample_loop;
use crate::verify::{self, RegionBooks};
use quota_shared::buyers::{backoff, is_retryable, ArrivalSchedule, RegionPicker};

/// Pause after the last answer before the final coordinator sample, so regions' reports
/// (every 100 ms) include the last sales.
const SETTLE: Duration = Duration::from_millis(300);

/// Counts one request in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every buyer task shares.
struct Ctx {
    client: PurchaseClient,
    rec: Arc<Recorder>,
    stop: CancellationToken,
    retries: u32,
    backoff: Duration,
}

/// Plays the sale `cfg` describes and returns the report.
///
/// Arrivals follow the schedule regardless of answers (open loop) until the duration is up or,
/// with `stop_on_sellout`, the coordinator reports every unit sold; then no new arrival or
/// retry starts, and requests in flight finish before verification.
pub async fn run(cfg: Config) -> Result<Report, Error> {
    cfg.validate()?;
    let names = cfg.region_names();
    let client = PurchaseClient::new(
        &cfg.regions,
        cfg.product,
        cfg.request_timeout,
        cfg.concurrency_cap,
    )?;
    let coordinator = cfg
        .coordinator
        .clone()
        .map(|c| CoordinatorClient::new(c, cfg.product))
        .transpose()?;
    // The baseline sample (the initial split, before any buyer) that units moved count from.
    let mut problems = Vec::new();
    let baseline = match &coordinator {
        Some(c) => match c.sample(0.0).await {
            Ok(s) => vec![s],
            Err(e) => {
                problems.push(format!("baseline coordinator sample failed: {e}"));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let t0 = Instant::now();
    let rec = Arc::new(Recorder::new(t0, names.len()));
    let stop = CancellationToken::new();
    let side = CancellationToken::new();
    let samples = Arc::new(Mutex::new(baseline));
    let sampler = coordinator.clone().map(|c| {
        let sellout = cfg.stop_on_sellout.then(|| stop.clone());
        tokio::spawn(sample_loop(
            c,
            t0,
            cfg.sample_every,
            samples.clone(),
            sellout,
            side.clone(),
        ))
    });
    let ticker = cfg
        .progress
        .then(|| tokio::spawn(progress::ticker(rec.clone(), side.clone())));

    let ctx = Arc::new(Ctx {
        client,
        rec: rec.clone(),
        stop: stop.clone(),
        retries: cfg.retries,
        backoff: cfg.retry_backoff,
    });
    let tracker = TaskTracker::new();
    launch_arrivals(&cfg, &ctx, &tracker).await;
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    let duration_s = t0.elapsed().as_secs_f64();

    if coordinator.is_some() {
        tokio::time::sleep(SETTLE).await;
    }
    side.cancel();
    if let Some(s) = sampler {
        if let Ok(out) = s.await {
            if let Some(first) = out.first_error {
                problems.push(format!(
                    "coordinator status failed {} times (first: {first})",
                    out.errors
                ));
            }
        }
    }
    if let Some(t) = ticker {
        let _ = t.await;
    }
    let mut samples = std::mem::take(&mut *samples.lock().expect("samples lock"));
    if let Some(c) = &coordinator {
        match c.sample(t0.elapsed().as_secs_f64()).await {
            Ok(s) => samples.push(s),
            Err(e) => problems.push(format!("final coordinator sample failed: {e}")),
        }
    }

    let recorded = rec.finish();
    let mut books: BTreeMap<String, Result<RegionBooks, String>> = BTreeMap::new();
    for (region, url) in &cfg.pg {
        let idx = names.iter().position(|n| n == region).expect("validated");
        let result = verify::check_region(
            url,
            &cfg.pg_auth,
            region,
            cfg.product,
            &recorded.regions[idx].orders,
        )
        .await;
        books.insert(region.clone(), result);
    }
    let orders_by_region: Vec<(String, u64)> = names
        .iter()
        .zip(&recorded.regions)
        .map(|(n, r)| (n.clone(), r.orders.len() as u64 + r.unreadable_acks))
        .collect();
    let mut findings = verify::combine(&orders_by_region, &books, samples.last());
    findings.problems.extend(problems);
    let audit = match &coordinator {
        Some(c) => c.audit().await,
        None => "skipped".to_string(),
    };
    Ok(report::build(RunFacts {
        product: cfg.product,
        names,
        duration_s,
        recorded,
        samples,
        findings,
        audit,
    }))
}

/// Launches every arrival at its intended time, never waiting for earlier buyers.
async fn launch_arrivals(cfg: &Config, ctx: &Arc<Ctx>, tracker: &TaskTracker) {
    let schedule = ArrivalSchedule {
        spike_rate: cfg.spike_rate,
        spike_secs: cfg.spike_secs,
        rate: cfg.rate,
        duration_secs: cfg.duration_secs,
    };
    let mut picker = RegionPicker::new(
        &cfg.region_names(),
        &cfg.weights,
        cfg.shift.as_ref().map(|s| (s.at_secs, &s.weights)),
    );
    let live = &ctx.rec.live;
    let t0 = ctx.rec.t0();
    let cap = cfg.concurrency_cap as u64;
    let mut i = 0u64;
    while let Some(offset) = schedule.offset(i) {
        let due = t0 + Duration::from_secs_f64(offset);
        if due > Instant::now() {
            tokio::select! {
                _ = ctx.stop.cancelled() => break,
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        } else if ctx.stop.is_cancelled() {
            break;
        }
        let region = picker.pick(offset);
        let user = cfg.user_base + i as i64;
        i += 1;
        if live.in_flight.load(Ordering::Relaxed) >= cap {
            live.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        live.in_flight.fetch_add(1, Ordering::Relaxed);
        tracker.spawn(buyer(ctx.clone(), region, user, due));
    }
}

/// One buyer: tries, retries on 503/429/410 with jittered backoff, records each answer and
/// the final one. Its first request was counted in flight by the scheduler.
async fn buyer(ctx: Arc<Ctx>, region: usize, user: i64, arrival: Instant) {
    let live = &ctx.rec.live;
    let mut intended = arrival;
    let mut tries = 0u32;
    loop {
        let guard = if tries == 0 {
            InFlight(&live.in_flight) // counted by the scheduler
        } else {
            InFlight::enter(&live.in_flight)
        };
        let sent = Instant::now();
        let answer = ctx.client.purchase(region, user).await;
        drop(guard);
        tries += 1;
        let now = Instant::now();
        let this = Try {
            region,
            status: answer.status,
            awaiting_stock: answer.awaiting_stock,
            intended,
            sent,
            answered: now,
        };
        ctx.rec.request(&this, answer.order_id);
        if !is_retryable(this.status) || tries > ctx.retries || ctx.stop.is_cancelled() {
            ctx.rec.outcome(&this, arrival, tries);
            return;
        }
        let pause = backoff(ctx.backoff, rand::random::<f64>());
        intended = now + pause;
        tokio::select! {
            _ = ctx.stop.cancelled() => {
                ctx.rec.outcome(&this, arrival, tries);
                return;
            }
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
