//! Setting up a sale on a harness cluster and running the load generator against it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use quota_loadgen::{Config, CoordinatorTarget, RegionTarget, Report};
use quota_tests::Cluster;

/// Creates `product` with `total` units split as `split` ("east=10,south=5") under `policy`,
/// and waits until every named region has applied its grant.
pub async fn create(
    c: &Cluster,
    product: i64,
    total: i64,
    split: &str,
    policy: &str,
) -> anyhow::Result<()> {
    let out = c.quotactl(&[
        "product",
        "create",
        &product.to_string(),
        "--name",
        "bench",
        "--total",
        &total.to_string(),
        "--price",
        "99.00",
        "--split",
        split,
        "--policy",
        policy,
    ]);
    if !out.status.success() {
        bail!(
            "quotactl product create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for item in split.split(',') {
        let (region, units) = item.split_once('=').context("split item")?;
        let want: i64 = units.parse()?;
        let url = format!("{}/v1/products/{product}", c.region(region).node.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: serde_json::Value = match reqwest::get(&url).await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if v["available"].as_i64() == Some(want) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{region} never applied its grant of {want}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// A load-generator config aimed at `c`'s regions (or at `targets` when given), with the
/// coordinator and every region's Postgres attached for sampling and verification.
pub fn config(c: &Cluster, product: i64, targets: Option<Vec<RegionTarget>>) -> Config {
    let regions = targets.unwrap_or_else(|| {
        c.regions
            .iter()
            .map(|r| RegionTarget {
                name: r.name.clone(),
                url: r.node.url.clone(),
            })
            .collect()
    });
    let mut cfg = Config::new(product, regions);
    cfg.coordinator = Some(CoordinatorTarget {
        url: c.coordinator().url.clone(),
        token: c.admin_token.clone(),
    });
    for r in &c.regions {
        cfg.pg.insert(r.name.clone(), r.pg.url.clone());
    }
    cfg.progress = false;
    cfg
}

/// Runs the load generator.
pub async fn play(cfg: Config) -> anyhow::Result<Report> {
    quota_loadgen::run(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
