//! One design's run of one scenario: builds the world, pops events in time order, hands each
//! to the part it concerns, and checks the invariants after every one. The first violation
//! ends the run with the seed and the last events.

use std::time::Instant;

use quota_shared::buyers::RegionPicker;
use quota_shared::model::{Ledger, ProductSpec};
use quota_shared::quality::{evaluate, SaleInput, SaleQuality};
use serde::Serialize;

use crate::buyers::Buyers;
use crate::designs::Design;
use crate::engine::{secs, us, Ctx, Micros, Trace};
use crate::event::{Event, FaultStep};
use crate::faults;
use crate::invariants::{touched, Checker, Touched, Violation};
use crate::model::coordinator::Coordinator;
use crate::model::etcd::Etcd;
use crate::model::net::Net;
use crate::model::region::{Region, Reply, Timing};
use crate::scenario::Scenario;

/// Events kept for a violation report.
const TRACE_EVENTS: usize = 40;
/// How often stock per region is sampled for the chart.
const SAMPLE_EVERY: Micros = 50_000;
/// The run gives up this long after the last scheduled arrival.
const GRACE: Micros = 60_000_000;

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A safety invariant broke.
    #[error(
        "invariant violated in design {design} at {at_s:.6}s (seed {seed}): {violation}\nlast events:\n{}",
        trace.join("\n")
    )]
    Violation {
        /// The seed that reproduces it.
        seed: u64,
        /// The design.
        design: Design,
        /// When.
        at_s: f64,
        /// What broke.
        violation: Violation,
        /// The last events, oldest first.
        trace: Vec<String>,
    },
    /// The scenario names something the world does not have.
    #[error("scenario: {0}")]
    Scenario(String),
}

/// Stock per region over time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Sample instants, seconds.
    pub t: Vec<f64>,
    /// Per sample: available units per region (name order), then the pool last.
    pub stock: Vec<Vec<i64>>,
}

/// What one design's run produced.
#[derive(Debug, Clone, Serialize)]
pub struct DesignRun {
    /// The design.
    pub design: Design,
    /// Every sale-quality measure.
    pub quality: SaleQuality,
    /// Units on sale.
    pub total: i64,
    /// Units sold.
    pub sold: i64,
    /// Events processed (each followed by an invariant check).
    pub events: u64,
    /// Simulated seconds until the last final answer.
    pub end_s: f64,
    /// Stock per region over time.
    #[serde(skip)]
    pub series: Series,
}

struct World {
    design: Design,
    seed: u64,
    total: i64,
    ctx: Ctx,
    regions: Vec<Region>,
    etcd: Etcd,
    coord: Option<Coordinator>,
    buyers: Buyers,
    checker: Checker,
    trace: Trace,
    sold: i64,
    events: u64,
    series: Series,
}

/// Runs `design` on `scenario` with `seed`.
pub fn run(scenario: &Scenario, design: Design, seed: u64) -> Result<DesignRun, SimError> {
    let mut w = World::build(scenario, design, seed)?;
    let limit = us(scenario.arrivals.duration_secs * 1e3) + GRACE;
    while let Some(ev) = w.ctx.pop() {
        if w.ctx.now > limit {
            break;
        }
        w.trace.push(w.ctx.now, &ev);
        w.events += 1;
        let touched = touched(&ev, w.regions.len());
        w.dispatch(ev);
        w.check(touched, seed, design)?;
        if w.sold >= w.total {
            w.buyers.stop();
        }
        if w.buyers.finished() {
            break;
        }
    }
    w.check(Touched::All, seed, design)?;
    Ok(w.finish(scenario))
}

impl World {
    /// The invariants over the regions `touched`; a violation stops the run with the seed and
    /// the trace.
    fn check(&mut self, touched: Touched, seed: u64, design: Design) -> Result<(), SimError> {
        self.checker
            .check(&self.etcd, &self.regions, touched)
            .map_err(|violation| SimError::Violation {
                seed,
                design,
                at_s: secs(self.ctx.now),
                violation,
                trace: self.trace.lines(),
            })
    }

    fn build(scenario: &Scenario, design: Design, seed: u64) -> Result<World, SimError> {
        let places = scenario.places();
        let names: Vec<String> = places.iter().map(|p| p.name.clone()).collect();
        let hub: Vec<f64> = places.iter().map(|p| p.distance_ms).collect();
        let net = Net::new(
            &hub,
            scenario.buyer.local_ms,
            scenario.escrow.coord_etcd_ms,
            scenario.jitter,
        );
        let mut ctx = Ctx::new(seed, net);
        let n = places.len();
        let tick = us(scenario.escrow.report_ms).max(1);
        let timing = Timing {
            capacity: scenario.node.capacity,
            queue: scenario.node.queue,
            service: us(scenario.node.service_ms),
            refusal: us(scenario.node.refusal_ms),
            reconcile: us(scenario.node.reconcile_ms),
            tick,
            await_stock: us(scenario.escrow.await_stock_ms),
        };
        let initial = design.initial(scenario, &places);
        // The demand estimate takes `Instant`s; one origin, only differences are used.
        let origin = Instant::now();
        let regions: Vec<Region> = (0..n)
            .map(|i| Region::new(i as u16, names[i].clone(), timing, initial[i], origin))
            .collect();
        let ledger = Ledger {
            total: scenario.total,
            granted: names
                .iter()
                .zip(&initial)
                .filter(|(_, u)| **u > 0)
                .map(|(r, u)| (r.clone(), *u))
                .collect(),
            policy: design.policy().unwrap_or_default(),
            static_split: design.static_split(&places, &initial),
            requested: std::collections::BTreeMap::new(),
        };
        let reports = regions.iter().map(|r| r.report(0, 0.0)).collect();
        let etcd = Etcd::new(
            names.clone(),
            spec(scenario.total),
            ledger,
            reports,
            us(scenario.escrow.region_lease_ms),
        );
        let coord = design.policy().map(|_| {
            Coordinator::new(
                scenario.escrow.policy,
                us(scenario.escrow.round_ms),
                us(scenario.escrow.movable_refresh_ms),
                us(scenario.escrow.leader_lease_ms),
                scenario.escrow.round_on_release,
            )
        });
        let weights = scenario.weights(&places);
        let shift = scenario.shift.as_ref().map(|s| (s.at_s, &s.weights));
        let picker = RegionPicker::new(&names, &weights, shift);
        let mut buyers = Buyers::new(
            scenario.arrivals,
            picker,
            design.central(&places),
            scenario.buyer.retries,
            scenario.buyer.backoff_ms,
        );
        buyers.begin(&mut ctx);
        for (i, r) in regions.iter().enumerate() {
            let phase = tick * (i as u64 + 1) / (n as u64 + 1);
            ctx.at(
                phase,
                Event::RegionTick {
                    region: r.idx,
                    life: r.life,
                },
            );
        }
        if coord.is_some() {
            ctx.at(0, Event::RoundTick);
        }
        ctx.at(0, Event::Sample);
        faults::schedule(&mut ctx, &scenario.faults.schedule(seed, &names), &names)
            .map_err(SimError::Scenario)?;
        let mut checker = Checker::new(scenario.total, &regions);
        checker
            .check(&etcd, &regions, Touched::All)
            .map_err(|v| SimError::Scenario(format!("the initial state breaks {v}")))?;
        Ok(World {
            design,
            seed,
            total: scenario.total,
            ctx,
            regions,
            etcd,
            coord,
            buyers,
            checker,
            trace: Trace::new(TRACE_EVENTS),
            sold: 0,
            events: 0,
            series: Series::default(),
        })
    }

    fn dispatch(&mut self, ev: Event) {
        let target = ev.region();
        let ctx = &mut self.ctx;
        let oracle = self.design == Design::Oracle;
        match ev {
            Event::Arrival => self.buyers.on_arrival(ctx),
            Event::Request { buyer, region } => {
                let home = self.buyers.home(buyer);
                let etcd = oracle.then_some(&mut self.etcd);
                let reply = self.regions[usize::from(region)].on_request(ctx, buyer, home, etcd);
                if let Some(reply) = reply {
                    answer(ctx, &mut self.sold, region, reply);
                }
            }
            Event::Answer {
                buyer,
                status,
                awaiting,
            } => self.buyers.on_answer(ctx, buyer, status, awaiting),
            Event::Retry { buyer } => self.buyers.on_retry(ctx, buyer),
            Event::ServiceDone { region, life, slot } => {
                let r = &mut self.regions[usize::from(region)];
                if r.life == life {
                    let etcd = oracle.then_some(&mut self.etcd);
                    if let Some(reply) = r.on_service_done(ctx, slot, etcd) {
                        answer(ctx, &mut self.sold, region, reply);
                    }
                }
            }
            Event::Reconcile { region, life } => {
                let r = &mut self.regions[usize::from(region)];
                if r.life == life && r.up {
                    r.reconcile();
                    r.serve_waiters(ctx);
                }
            }
            Event::WaitDeadline {
                region,
                life,
                buyer,
            } => {
                let r = &mut self.regions[usize::from(region)];
                if r.life == life {
                    r.wait_deadline(buyer);
                }
            }
            Event::RegionTick { region, life } => {
                let r = &mut self.regions[usize::from(region)];
                if r.life == life && r.up {
                    r.on_tick(ctx);
                }
            }
            Event::ToRegion {
                region,
                session,
                msg,
            } => self.regions[usize::from(region)].on_message(ctx, session, msg),
            Event::ToEtcd(msg) => self.etcd.on_message(ctx, msg),
            Event::ToCoord { epoch, msg } => {
                if let Some(c) = &mut self.coord {
                    c.on_message(ctx, &self.etcd, epoch, msg);
                }
            }
            Event::RoundTick => {
                if let Some(c) = &mut self.coord {
                    c.on_tick(ctx);
                }
            }
            Event::Sample => self.sample(),
            Event::Fault(step) => self.fault(step),
        }
        // Answers the region produced outside its request path (its wait room). Only events
        // addressed to a region can make it answer so (a crash answers through its return).
        if let Some(idx) = target {
            let r = &mut self.regions[usize::from(idx)];
            for reply in r.outbox.drain(..) {
                answer(&mut self.ctx, &mut self.sold, idx, reply);
            }
        }
    }

    fn fault(&mut self, step: FaultStep) {
        let ctx = &mut self.ctx;
        match step {
            FaultStep::Crash(r) => {
                let region = &mut self.regions[usize::from(r)];
                if region.up {
                    for reply in region.crash() {
                        answer(ctx, &mut self.sold, r, reply);
                    }
                }
            }
            FaultStep::Restart(r) => {
                let region = &mut self.regions[usize::from(r)];
                if !region.up {
                    region.restart(ctx);
                }
            }
            FaultStep::Partition(r) => ctx.net.partition(r),
            FaultStep::Heal(r) => {
                if ctx.net.heal(r) && self.regions[usize::from(r)].up {
                    self.regions[usize::from(r)].start_session(ctx);
                }
            }
            FaultStep::Failover => {
                if let Some(c) = &mut self.coord {
                    c.failover(ctx, &mut self.etcd);
                }
            }
            FaultStep::SpikeOn(r, extra) => ctx.net.spike(r, extra, true),
            FaultStep::SpikeOff(r, extra) => ctx.net.spike(r, extra, false),
        }
    }

    fn sample(&mut self) {
        let mut row: Vec<i64> = self.regions.iter().map(Region::available).collect();
        row.push(self.etcd.pool());
        self.series.t.push(secs(self.ctx.now));
        self.series.stock.push(row);
        if !self.buyers.finished() {
            self.ctx.after(SAMPLE_EVERY, Event::Sample);
        }
    }

    fn finish(mut self, scenario: &Scenario) -> DesignRun {
        self.sample();
        let names: Vec<String> = self.regions.iter().map(|r| r.name.clone()).collect();
        let (buyers, answers) = self.buyers.records();
        let end_s = secs(self.buyers.last_answer());
        let sold: i64 = self.regions.iter().map(|r| r.sold).sum();
        let quality = evaluate(&SaleInput {
            total: scenario.total,
            sold,
            regions: &names,
            buyers: &buyers,
            answers,
            end_s,
            units_moved: self.etcd.units_moved,
            ledger_writes: self.etcd.writes,
        });
        debug_assert_eq!(sold, self.sold, "seed {}", self.seed);
        DesignRun {
            design: self.design,
            quality,
            total: scenario.total,
            sold,
            events: self.events,
            end_s,
            series: self.series,
        }
    }
}

/// Sends a region's answer back to its buyer, counting orders.
fn answer(ctx: &mut Ctx, sold: &mut i64, region: u16, (buyer, home, status, awaiting): Reply) {
    if status == 201 {
        *sold += 1;
    }
    let d = ctx.net.buyer(&mut ctx.rng, home, region);
    ctx.after(
        d,
        Event::Answer {
            buyer,
            status,
            awaiting,
        },
    );
}

/// A product spec for the snapshot (the round reads only the ledger parts of it).
fn spec(total: i64) -> ProductSpec {
    let start = chrono::DateTime::UNIX_EPOCH;
    ProductSpec {
        product_id: 1,
        name: "simulated".into(),
        total,
        price: rust_decimal::Decimal::ONE,
        original_price: rust_decimal::Decimal::ONE,
        start_time: start,
        end_time: start + chrono::Duration::days(365),
        per_user_limit: 1,
        ended: false,
        home_regions: Vec::new(),
        payment_window_s: None,
    }
}
