//! The fault-mid-sale scenario: a region is selling, a fault hits it (crash, stop, flush…),
//! it recovers, and the rest of the stock sells — after which the test checks exact totals.

use super::buyers::{buy_all, drain, Outcome};
use super::truth::{truth, Truth};
use crate::cluster::Cluster;
use crate::wait::wait_for;

/// Drain buyers are numbered from here: far above any load's users, so none is a repeat buyer.
const FIRST_DRAIN_USER: i64 = 100_000;

/// When the fault lands relative to the load.
#[derive(Debug, Clone, Copy)]
pub enum FaultAt {
    /// Before the load starts: every purchase of the load meets the faulted region.
    Start,
    /// While the load runs, once the region's Postgres shows at least this many units sold.
    Sold(i64),
}

/// The load a fault hits: `users` buy `product` in `region`, `concurrency` at once.
pub struct MidSale<'a> {
    /// The region under load (and, usually, the one the fault hits).
    pub region: &'a str,
    /// The product on sale (already created).
    pub product: i64,
    /// One purchase per entry.
    pub users: Vec<i64>,
    /// Purchases in flight at once.
    pub concurrency: usize,
    /// When the fault lands.
    pub fault_at: FaultAt,
}

impl<'a> MidSale<'a> {
    /// The usual heavy load: 3,000 buyers, 100 at once, the fault landing once 50 units have
    /// sold — under way, far from sold out.
    pub fn under_way(region: &'a str, product: i64) -> Self {
        MidSale {
            region,
            product,
            users: (1..=3000).collect(),
            concurrency: 100,
            fault_at: FaultAt::Sold(50),
        }
    }
}

/// Everything a fault-mid-sale run saw, for the test to assert on.
pub struct FaultRun<X> {
    /// The answers to the load the fault hit.
    pub load: Vec<Outcome>,
    /// What the fault step returned (e.g. units sold when it struck).
    pub fault: X,
    /// The answers of the drain after recovery, until the region was really sold out.
    pub drained: Vec<Outcome>,
    /// The region's Postgres after the drain.
    pub truth: Truth,
}

/// Runs the scenario: sends the load to `sale.region`, runs `fault` when [`MidSale::fault_at`]
/// says, waits for the load to finish, runs `recover`, then drains the region with fresh buyers
/// until it is sold out and Postgres agrees (see [`drain`]), and reads its [`Truth`].
///
/// Postgres is read through a fresh connection after `recover`, since the fault may have been
/// Postgres itself.
pub async fn fault_mid_sale<X>(
    c: &mut Cluster,
    sale: MidSale<'_>,
    fault: impl AsyncFnOnce(&mut Cluster) -> X,
    recover: impl AsyncFnOnce(&mut Cluster),
) -> FaultRun<X> {
    let MidSale {
        region,
        product,
        users,
        concurrency,
        fault_at,
    } = sale;
    let node = c.region(region).node.url.clone();
    let (load, fault) = match fault_at {
        FaultAt::Start => {
            let fault = fault(c).await;
            (buy_all(&node, product, users, concurrency).await, fault)
        }
        FaultAt::Sold(units) => {
            let pg = c.pg_client(region).await;
            let load = tokio::spawn({
                let node = node.clone();
                async move { buy_all(&node, product, users, concurrency).await }
            });
            wait_for("the sale to start selling", || async {
                truth(&pg, product).await.sold >= units
            })
            .await;
            let fault = fault(c).await;
            (load.await.unwrap(), fault)
        }
    };
    recover(c).await;
    let pg = c.pg_client(region).await;
    let drained = drain(&node, &pg, product, FIRST_DRAIN_USER).await;
    let truth = truth(&pg, product).await;
    FaultRun {
        load,
        fault,
        drained,
        truth,
    }
}
