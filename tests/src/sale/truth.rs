//! What the regions' stores say after a run, and the safety invariants checked on it.

use std::collections::HashSet;

use super::buyers::Outcome;
use crate::cluster::Cluster;
use crate::wait::wait_for;

/// What a region's Postgres says about a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    /// `region_quota.granted` (the applied grant g).
    pub granted: i64,
    /// `region_quota.released`.
    pub released: i64,
    /// `region_quota.sold`.
    pub sold: i64,
    /// Σ quantity over the product's orders.
    pub order_units: i64,
    /// Number of orders.
    pub orders: i64,
    /// Users holding more than one order.
    pub duplicate_buyers: i64,
    /// Every order id.
    pub order_ids: HashSet<String>,
}

/// Reads a region's [`Truth`] about `product` from its Postgres.
pub async fn truth(pg: &tokio_postgres::Client, product: i64) -> Truth {
    let q = pg
        .query_one(
            "SELECT granted, released, sold FROM region_quota WHERE product_id = $1",
            &[&product],
        )
        .await
        .unwrap();
    let o = pg
        .query_one(
            "SELECT count(*), coalesce(sum(quantity), 0)::BIGINT FROM orders WHERE product_id = $1",
            &[&product],
        )
        .await
        .unwrap();
    let dups = pg
        .query_one(
            "SELECT count(*) FROM (SELECT user_id FROM orders WHERE product_id = $1
                                   GROUP BY user_id HAVING count(*) > 1) d",
            &[&product],
        )
        .await
        .unwrap();
    let ids = pg
        .query(
            "SELECT order_id::TEXT FROM orders WHERE product_id = $1",
            &[&product],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Truth {
        granted: q.get(0),
        released: q.get(1),
        sold: q.get(2),
        orders: o.get(0),
        order_units: o.get(1),
        duplicate_buyers: dups.get(0),
        order_ids: ids,
    }
}

/// The safety invariants of one region after a run: sold = Σ order units ≤ what it holds, no
/// duplicate buyer, and every acknowledged (201) order is in Postgres.
pub fn assert_safe(t: &Truth, outcomes: &[Outcome]) {
    assert_eq!(
        t.sold, t.order_units,
        "sold must equal the order units: {t:?}"
    );
    assert!(t.sold <= t.granted - t.released, "oversold: {t:?}");
    assert_eq!(t.duplicate_buyers, 0, "a user holds two orders");
    for o in outcomes.iter().filter(|o| o.status == 201) {
        let id = o.order_id.as_ref().expect("201 carries an order id");
        assert!(
            t.order_ids.contains(id),
            "acknowledged order {id} is missing from Postgres"
        );
    }
    let acked: HashSet<_> = outcomes.iter().filter_map(|o| o.order_id.clone()).collect();
    assert_eq!(
        acked.len(),
        outcomes.iter().filter(|o| o.status == 201).count(),
        "order ids unique"
    );
}

/// Redis admission stock for a product (None when its state is not built).
pub async fn redis_stock(
    conn: &mut redis::aio::MultiplexedConnection,
    product: i64,
) -> Option<i64> {
    let (gen, stock): (Option<String>, Option<i64>) = redis::pipe()
        .get(format!("quota:{{{product}}}:gen"))
        .get(format!("quota:{{{product}}}:stock"))
        .query_async(conn)
        .await
        .unwrap();
    gen.map(|_| stock.unwrap_or(0))
}

/// Waits until `region`'s Redis admits exactly `units` of `product` (its state built): after
/// a fault, the reconciler has re-derived Redis from Postgres.
pub async fn wait_for_redis_stock(c: &Cluster, region: &str, product: i64, units: i64) {
    let r = c.redis_conn(region).await;
    wait_for(&format!("{region}'s Redis stock to be {units}"), || {
        let mut r = r.clone();
        async move { redis_stock(&mut r, product).await == Some(units) }
    })
    .await;
}

/// Σ sold over regions, from each region's Postgres.
pub async fn total_sold(c: &Cluster, regions: &[&str], product: i64) -> i64 {
    let mut sum = 0;
    for r in regions {
        sum += truth(&c.pg_client(r).await, product).await.sold;
    }
    sum
}
