//! Running the load generator against a harness cluster (the sale itself is created with
//! [`quota_tests::Sale`], the same helper the integration tests use).

use quota_loadgen::{Config, CoordinatorTarget, RegionTarget, Report};
use quota_tests::{Cluster, Sale};

/// Creates `product` with `total` units split as `split` ("east=10,south=5") under `policy`,
/// named "bench" with no original price, and waits until every named region sells it.
pub(crate) async fn create(c: &Cluster, product: i64, total: i64, split: &str, policy: &str) {
    Sale::new(product, total, split)
        .name("bench")
        .original_price(None)
        .policy(policy)
        .create(c)
        .await;
}

/// A load-generator config aimed at `c`'s regions (or at `targets` when given), with the
/// coordinator and every region's Postgres attached for sampling and verification.
pub(crate) fn config(c: &Cluster, product: i64, targets: Option<Vec<RegionTarget>>) -> Config {
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
        if let Some(s) = &r.pg.secured {
            cfg.pg_auth
                .password_files
                .insert(r.name.clone(), s.password_file.clone());
            cfg.pg_auth.ca_file = Some(s.ca_cert.clone());
        }
    }
    cfg.progress = false;
    cfg
}

/// Runs the load generator.
pub(crate) async fn play(cfg: Config) -> anyhow::Result<Report> {
    quota_loadgen::run(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
