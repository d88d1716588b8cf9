//! [`Sale`]: putting a product on sale and waiting until every region sells it.

use serde_json::Value;

use super::truth::{redis_stock, wait_for_redis_stock};
use crate::cluster::Cluster;
use crate::wait::wait_for;

/// A product to put on sale through `quotactl product create`, with the flags the tests and
/// the benchmarks use. Defaults are the tests' product: "phone" at 99.00 (was 199.00), the
/// coordinator's default policy.
#[must_use = "nothing is created until `.create(&cluster).await`"]
pub struct Sale<'a> {
    product: i64,
    total: i64,
    split: &'a str,
    name: &'a str,
    original_price: Option<&'a str>,
    policy: Option<&'a str>,
    end: Option<String>,
    home_regions: Option<&'a str>,
    payment_window: Option<String>,
}

impl<'a> Sale<'a> {
    /// `total` units of `product`, split over regions as `split` (`"east=60,south=40"`).
    pub fn new(product: i64, total: i64, split: &'a str) -> Self {
        Sale {
            product,
            total,
            split,
            name: "phone",
            original_price: Some("199.00"),
            policy: None,
            end: None,
            home_regions: None,
            payment_window: None,
        }
    }

    /// The sale's home regions (`--home-regions east,south`), instead of the deployment's.
    pub fn home_regions(mut self, regions: &'a str) -> Self {
        self.home_regions = Some(regions);
        self
    }

    /// The sale ends `after` from now (`--end`), instead of the default hour.
    pub fn ends_in(mut self, after: std::time::Duration) -> Self {
        let end = chrono::Utc::now() + chrono::Duration::from_std(after).unwrap();
        self.end = Some(end.to_rfc3339());
        self
    }

    /// Seconds a buyer has to pay (`--payment-window`), instead of the nodes' default.
    pub fn payment_window(mut self, seconds: u32) -> Self {
        self.payment_window = Some(seconds.to_string());
        self
    }

    /// The product's name (`--name`).
    pub fn name(mut self, name: &'a str) -> Self {
        self.name = name;
        self
    }

    /// `--original-price`, or none at all.
    pub fn original_price(mut self, price: Option<&'a str>) -> Self {
        self.original_price = price;
        self
    }

    /// The allocation policy (`--policy`), instead of the coordinator's default.
    pub fn policy(mut self, policy: &'a str) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Creates the product and waits until every region named in the split has applied its
    /// grant (the region node's product view shows it) and its Redis admits against it — only
    /// then does the region sell. Panics (with quotactl's stderr) if the create fails.
    pub async fn create(self, c: &Cluster) {
        let (product, total) = (self.product.to_string(), self.total.to_string());
        let mut args: Vec<&str> = vec![
            "product", "create", &product, "--name", self.name, "--total", &total, "--price",
            "99.00",
        ];
        if let Some(original) = self.original_price {
            args.extend(["--original-price", original]);
        }
        args.extend(["--split", self.split]);
        if let Some(policy) = self.policy {
            args.extend(["--policy", policy]);
        }
        if let Some(end) = &self.end {
            args.extend(["--end", end]);
        }
        if let Some(homes) = self.home_regions {
            args.extend(["--home-regions", homes]);
        }
        if let Some(window) = &self.payment_window {
            args.extend(["--payment-window", window]);
        }
        let out = c.quotactl(&args);
        assert!(
            out.status.success(),
            "quotactl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let items: Vec<(&str, i64)> = self
            .split
            .split(',')
            .map(|item| {
                let (region, units) = item.split_once('=').unwrap();
                (region, units.parse().unwrap())
            })
            .collect();
        // With units left in the pool the rebalancer may grant more right away: then "at
        // least its split" is what applied means.
        let exact = items.iter().map(|(_, u)| u).sum::<i64>() >= self.total;
        for (region, units) in items {
            wait_until_selling(c, region, self.product, units, exact).await;
        }
    }
}

/// Waits until `region` shows `units` available for `product` in its product view and its
/// Redis admits that many (exactly, or at least with `exact` false).
async fn wait_until_selling(c: &Cluster, region: &str, product: i64, units: i64, exact: bool) {
    let url = format!("{}/v1/products/{product}", c.region(region).node.url);
    wait_for(&format!("{region} to apply its grant"), || {
        let url = url.clone();
        async move {
            let Ok(r) = reqwest::get(&url).await else {
                return false;
            };
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let available = v["available"].as_i64().unwrap_or(-1);
            available == units || (!exact && available > units)
        }
    })
    .await;
    // Postgres has the grant; the region sells once Redis admits against it too.
    if exact {
        wait_for_redis_stock(c, region, product, units).await;
    } else {
        let r = c.redis_conn(region).await;
        wait_for(&format!("{region}'s Redis stock to reach {units}"), || {
            let mut r = r.clone();
            async move {
                redis_stock(&mut r, product)
                    .await
                    .is_some_and(|s| s >= units)
            }
        })
        .await;
    }
}
