//! One definition of every sale-quality measure, used by the load generator (a real sale) and
//! the simulator (a modelled one), so their numbers mean the same thing.
//!
//! A sale is judged the way a buyer and an operator see it, against what one central counter
//! would have done:
//!
//! - **Time to sell-out**: when the last unit was acknowledged — the latest answer time of an
//!   order, provided every unit sold (`None` otherwise).
//! - **FCFS inversions**: buyers turned away (final answer not an order, for lack of stock or
//!   service) although they arrived before the *last* buyer who got an order — a central
//!   counter serving in arrival order would have served them first. Buyers refused for who they
//!   are (already bought, wrong region, bad request, sale not active) are not counted: they were
//!   never eligible. As a count and as % of all buyers.
//! - **Stranded units**: `total − sold` when buyers were still being turned away for lack of
//!   stock (410 or 503) in the last second of the sale — units left unsold while buyers wanted
//!   them. If nobody was refused at the end, leftover units were simply not wanted (0).
//! - **False sold-outs**: 410 answers given at `t` although some purchase *sent after `t`*
//!   still succeeded: the unit that buyer got existed, unsold, when this one was told "sold
//!   out" (stock only shrinks during a sale). A purchase sent before `t` and answered after it
//!   does not count: its unit may already have been claimed.
//! - **Awaiting-stock answers per order**: 503 `awaiting_stock` answers divided by orders —
//!   the retry traffic the design causes.
//! - **Buyer-perceived latency** per region: from a buyer's arrival to its final answer,
//!   retries and back-off included (nearest-rank p50 and p99).
//! - **Coordinator cost**: units moved between regions, and ledger writes per second.
//!
//! Pure: records in, one [`SaleQuality`] out.

use serde::{Deserialize, Serialize};

/// How a buyer's purchase finally ended (after its retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalAnswer {
    /// 201: the buyer got units.
    Order,
    /// 410: told the sale is over.
    SoldOut,
    /// 503 `awaiting_stock` on the last try: out here, more could have come.
    AwaitingStock,
    /// 503 `unavailable` or 429 on the last try: the service could not serve.
    Unavailable,
    /// Refused for who the buyer is or what they sent (409, 421, 400, 403, 404): never
    /// eligible, so not an FCFS inversion.
    Refused,
    /// No answer (transport error, timeout) or a 5xx.
    Failed,
}

impl FinalAnswer {
    /// The final answer an HTTP status (and, for 503, its error code) stands for.
    pub fn from_status(status: u16, awaiting_stock: bool) -> FinalAnswer {
        match status {
            200..=299 => FinalAnswer::Order,
            410 => FinalAnswer::SoldOut,
            503 if awaiting_stock => FinalAnswer::AwaitingStock,
            503 | 429 => FinalAnswer::Unavailable,
            400..=499 => FinalAnswer::Refused,
            _ => FinalAnswer::Failed,
        }
    }

    /// Whether this buyer was turned away although eligible (lack of stock or of service).
    pub fn turned_away(self) -> bool {
        matches!(
            self,
            FinalAnswer::SoldOut
                | FinalAnswer::AwaitingStock
                | FinalAnswer::Unavailable
                | FinalAnswer::Failed
        )
    }
}

/// One buyer from arrival to final answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BuyerRecord {
    /// Index into [`SaleInput::regions`].
    pub region: usize,
    /// Seconds since the sale started at which the buyer arrived (its intended send time).
    pub arrived_s: f64,
    /// Seconds since the start at which it got its final answer.
    pub answered_s: f64,
    /// How it ended.
    pub answer: FinalAnswer,
    /// Requests it sent (1 + retries).
    pub attempts: u32,
}

/// One HTTP answer (every try, retries included).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// Index into [`SaleInput::regions`].
    pub region: usize,
    /// Seconds since the start at which the request was sent.
    pub sent_s: f64,
    /// Seconds since the start at which the answer arrived.
    pub answered_s: f64,
    /// HTTP status (0: no answer).
    pub status: u16,
    /// A 503 whose code was `awaiting_stock` (stock can still come), not `unavailable`.
    pub awaiting_stock: bool,
}

/// Everything a sale's quality is computed from.
#[derive(Debug, Clone, Copy)]
pub struct SaleInput<'a> {
    /// Units on sale.
    pub total: i64,
    /// Units sold by the end (from the books, not from the answers).
    pub sold: i64,
    /// Region names; records index into this.
    pub regions: &'a [String],
    /// Every buyer.
    pub buyers: &'a [BuyerRecord],
    /// Every answer.
    pub answers: &'a [AnswerRecord],
    /// Seconds from the start to the end of the sale (or of the run).
    pub end_s: f64,
    /// Units the coordinator moved between regions (grants after the initial split).
    pub units_moved: i64,
    /// Ledger writes the coordinator made.
    pub ledger_writes: u64,
}

/// Buyer-perceived latency of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionQuality {
    /// The region.
    pub region: String,
    /// Buyers who arrived there.
    pub buyers: u64,
    /// Of them, with an order.
    pub orders: u64,
    /// Median arrival → final answer, milliseconds (0 without buyers).
    pub p50_ms: f64,
    /// 99th percentile arrival → final answer, milliseconds (0 without buyers).
    pub p99_ms: f64,
}

/// Every measure of [`SaleInput`], as defined in the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleQuality {
    /// When the last unit was acknowledged; `None` if not every unit sold.
    pub sellout_s: Option<f64>,
    /// Buyers.
    pub buyers: u64,
    /// Buyers with an order.
    pub orders: u64,
    /// Eligible buyers turned away before the last served arrival.
    pub fcfs_inversions: u64,
    /// `fcfs_inversions` as % of buyers.
    pub fcfs_inversion_pct: f64,
    /// Units left unsold while buyers were still being turned away at the end.
    pub stranded: i64,
    /// 410s answered while stock still existed.
    pub false_sold_outs: u64,
    /// `false_sold_outs` as % of all answers.
    pub false_sold_out_pct: f64,
    /// 503 `awaiting_stock` answers.
    pub awaiting_answers: u64,
    /// `awaiting_answers / orders` (0 without orders).
    pub awaiting_per_order: f64,
    /// Per region, in [`SaleInput::regions`] order.
    pub regions: Vec<RegionQuality>,
    /// Units moved between regions.
    pub units_moved: i64,
    /// Ledger writes per second of sale.
    pub ledger_writes_per_s: f64,
}

/// Computes every measure (see the module docs).
pub fn evaluate(input: &SaleInput<'_>) -> SaleQuality {
    let orders = input
        .buyers
        .iter()
        .filter(|b| b.answer == FinalAnswer::Order)
        .count() as u64;
    let buyers = input.buyers.len() as u64;
    let fcfs = fcfs_inversions(input.buyers);
    let false_410 = false_sold_outs(input.answers);
    let awaiting = input
        .answers
        .iter()
        .filter(|a| a.status == 503 && a.awaiting_stock)
        .count() as u64;
    SaleQuality {
        sellout_s: sellout_time(input.total, input.sold, input.buyers),
        buyers,
        orders,
        fcfs_inversions: fcfs,
        fcfs_inversion_pct: percent(fcfs, buyers),
        stranded: stranded(input.total, input.sold, input.answers, input.end_s),
        false_sold_outs: false_410,
        false_sold_out_pct: percent(false_410, input.answers.len() as u64),
        awaiting_answers: awaiting,
        awaiting_per_order: if orders == 0 {
            0.0
        } else {
            awaiting as f64 / orders as f64
        },
        regions: region_latency(input.regions, input.buyers),
        units_moved: input.units_moved,
        ledger_writes_per_s: if input.end_s > 0.0 {
            input.ledger_writes as f64 / input.end_s
        } else {
            0.0
        },
    }
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// When the last unit was acknowledged, if every unit sold.
pub fn sellout_time(total: i64, sold: i64, buyers: &[BuyerRecord]) -> Option<f64> {
    if total <= 0 || sold < total {
        return None;
    }
    buyers
        .iter()
        .filter(|b| b.answer == FinalAnswer::Order)
        .map(|b| b.answered_s)
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
}

/// Eligible buyers turned away although they arrived before the last buyer who got an order.
pub fn fcfs_inversions(buyers: &[BuyerRecord]) -> u64 {
    let last_served = buyers
        .iter()
        .filter(|b| b.answer == FinalAnswer::Order)
        .map(|b| b.arrived_s)
        .fold(f64::NEG_INFINITY, f64::max);
    buyers
        .iter()
        .filter(|b| b.answer.turned_away() && b.arrived_s < last_served)
        .count() as u64
}

/// 410s answered before the last successful purchase was sent.
pub fn false_sold_outs(answers: &[AnswerRecord]) -> u64 {
    let last_201_sent = answers
        .iter()
        .filter(|a| (200..300).contains(&a.status))
        .map(|a| a.sent_s)
        .fold(f64::NEG_INFINITY, f64::max);
    answers
        .iter()
        .filter(|a| a.status == 410 && a.answered_s < last_201_sent)
        .count() as u64
}

/// Units left unsold while buyers were still turned away for lack of stock (410, or 503
/// `awaiting_stock`) in the last second before `end_s`.
pub fn stranded(total: i64, sold: i64, answers: &[AnswerRecord], end_s: f64) -> i64 {
    let refused_at_end = answers.iter().any(|a| {
        (a.status == 410 || (a.status == 503 && a.awaiting_stock)) && a.answered_s >= end_s - 1.0
    });
    if refused_at_end {
        (total - sold).max(0)
    } else {
        0
    }
}

/// Nearest-rank percentile `q` (0..=1) of `sorted` (ascending); 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Buyer-perceived latency (arrival → final answer) per region.
fn region_latency(regions: &[String], buyers: &[BuyerRecord]) -> Vec<RegionQuality> {
    regions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mine: Vec<&BuyerRecord> = buyers.iter().filter(|b| b.region == i).collect();
            let mut ms: Vec<f64> = mine
                .iter()
                .map(|b| (b.answered_s - b.arrived_s).max(0.0) * 1000.0)
                .collect();
            ms.sort_by(f64::total_cmp);
            RegionQuality {
                region: name.clone(),
                buyers: mine.len() as u64,
                orders: mine
                    .iter()
                    .filter(|b| b.answer == FinalAnswer::Order)
                    .count() as u64,
                p50_ms: percentile(&ms, 0.50),
                p99_ms: percentile(&ms, 0.99),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
