//! Runs the generator in-process against tiny axum region nodes (a counter that first answers
//! a few 503s, then sells a fixed stock, then answers 410) and, in the second test, a fake
//! coordinator over the same state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use quota_loadgen::{parse_weights, run, Config, CoordinatorTarget, RegionTarget};
use serde_json::{json, Value};

/// One fake region: 503s still to answer, units left and units sold.
#[derive(Default)]
struct Stock {
    /// The first purchases get 503 with this error code (`awaiting_stock` or `unavailable`).
    busy_code: &'static str,
    busy: AtomicI64,
    left: AtomicI64,
    sold: AtomicI64,
}

fn take(n: &AtomicI64) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        (n > 0).then(|| n - 1)
    })
    .is_ok()
}

type Regions = Arc<BTreeMap<String, Stock>>;

async fn purchase(
    State((regions, name)): State<(Regions, String)>,
    Path(_id): Path<i64>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    assert!(body["user_id"].as_i64().unwrap() > 0);
    let s = &regions[&name];
    if take(&s.busy) {
        let err = json!({ "error": { "code": s.busy_code, "message": "busy" } });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(err));
    }
    if take(&s.left) {
        s.sold.fetch_add(1, Ordering::SeqCst);
        let id = uuid::Uuid::new_v4().to_string();
        (StatusCode::CREATED, Json(json!({ "order_id": id })))
    } else {
        let err = json!({ "error": { "code": "sold_out", "message": "sold out" } });
        (StatusCode::GONE, Json(err))
    }
}

async fn status(State(regions): State<Regions>) -> Json<Value> {
    let per_region: serde_json::Map<String, Value> = regions
        .iter()
        .map(|(name, s)| {
            let granted = s.left.load(Ordering::SeqCst) + s.sold.load(Ordering::SeqCst);
            let r = json!({
                "granted": granted, "applied": granted, "released": 0,
                "sold": s.sold.load(Ordering::SeqCst),
                "available": s.left.load(Ordering::SeqCst),
                "in_transit": 0, "demand": 10.0, "alive": true, "draining": false
            });
            (name.clone(), r)
        })
        .collect();
    Json(json!({ "leader": "c1", "products": [{
        "product_id": 1, "name": "p", "total": 50, "pool": 0, "policy": "demand",
        "active": true, "regions": per_region }] }))
}

async fn audit() -> Json<Value> {
    Json(json!({ "ok": true, "unreadable": [], "products": [
        { "product_id": 1, "total": 50, "pool": 0, "sold": 50, "ok": true, "violations": [],
          "unreadable": [], "regions": {} }] }))
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Starts one node per `(name, stock, 503s first, their code)` and a coordinator; returns
/// targets and its URL.
async fn cluster(stock: &[(&str, i64, i64, &'static str)]) -> (Vec<RegionTarget>, String) {
    let regions: Regions = Arc::new(
        stock
            .iter()
            .map(|&(n, units, busy, busy_code)| {
                let s = Stock {
                    busy_code,
                    ..Stock::default()
                };
                s.left.store(units, Ordering::SeqCst);
                s.busy.store(busy, Ordering::SeqCst);
                (n.to_string(), s)
            })
            .collect(),
    );
    let mut targets = Vec::new();
    for (name, ..) in stock {
        let app = Router::new()
            .route("/v1/products/{id}/purchase", post(purchase))
            .with_state((regions.clone(), name.to_string()));
        targets.push(RegionTarget {
            name: name.to_string(),
            url: serve(app).await,
        });
    }
    let coordinator = Router::new()
        .route("/v1/admin/status", get(status))
        .route("/v1/admin/audit", get(audit))
        .with_state(regions);
    (targets, serve(coordinator).await)
}

fn small_config(targets: Vec<RegionTarget>) -> Config {
    let mut c = Config::new(1, targets);
    c.rate = 200.0;
    c.spike_rate = 500.0;
    c.spike_secs = 0.2;
    c.duration_secs = 1.0;
    c.retries = 1;
    c.retry_backoff = Duration::from_millis(5);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sells_exactly_the_stock_without_coordinator() {
    let (targets, _) = cluster(&[("east", 50, 5, "awaiting_stock")]).await;
    let report = run(small_config(targets)).await.unwrap();
    assert_eq!(report.orders, 50);
    assert!(report.attempts >= 50);
    assert_eq!(report.regions["east"].orders, 50);
    assert!(report.regions["east"].statuses.contains_key("410"));
    assert_eq!(
        report.buyers + report.dropped_by_client,
        260, // 0.2 s × 500/s + 0.8 s × 200/s
    );
    assert!(report.attempts >= report.buyers);
    assert_eq!(report.audit, "skipped");
    assert_eq!(report.lost_orders, None);
    let q = &report.quality;
    assert_eq!(
        q.measures.false_sold_outs, 0,
        "one counter: a 410 means nothing is left"
    );
    assert_eq!(
        q.measures.awaiting_answers, 5,
        "the 503 body's code is read"
    );
    assert!((q.measures.awaiting_per_order - 0.1).abs() < 1e-9);
    assert_eq!((q.measures.buyers, q.measures.orders), (report.buyers, 50));
    assert_eq!(q.measures.regions[0].buyers, report.buyers);
    assert!(q.measures.regions[0].p50_ms <= q.measures.regions[0].p99_ms);
    // No coordinator, no Postgres: nothing says how many units there were.
    assert_eq!(q.measures.sellout_s, None);
    assert_eq!(q.stranded(), None);
    assert_eq!(q.units_moved(), None);
    assert_eq!(report.unreadable_acks, 0);
    assert!(report.attempts_per_sec > 0.0 && report.orders_per_sec > 0.0);
    let p = &report.regions["east"];
    assert!(p.p50_ms <= p.p99_ms && p.p99_ms <= p.p999_ms);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["orders"], 50);
    let svg = quota_loadgen::render_svg(&report);
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_coordinator_and_stops_on_sellout() {
    let (targets, coordinator) = cluster(&[
        ("east", 30, 4, "awaiting_stock"),
        ("south", 20, 3, "unavailable"),
    ])
    .await;
    let mut cfg = small_config(targets);
    cfg.duration_secs = 20.0;
    cfg.weights = parse_weights("east=50,south=50").unwrap();
    cfg.coordinator = Some(CoordinatorTarget {
        url: coordinator,
        token: "test-token-0123456789".into(),
    });
    let report = run(cfg).await.unwrap();
    assert_eq!(report.orders, 50);
    assert_eq!(report.regions["east"].orders, 30);
    assert_eq!(report.regions["south"].orders, 20);
    assert!(!report.series.is_empty());
    assert!(report.series.last().unwrap().sold_out());
    let q = &report.quality;
    assert!(q
        .measures
        .sellout_s
        .is_some_and(|t| t > 0.0 && t <= report.duration_s));
    assert_eq!(q.stranded(), Some(0));
    assert_eq!(
        q.units_moved(),
        Some(0),
        "the fake coordinator never moves units"
    );
    assert_eq!(
        q.ledger_writes_per_s(),
        Some(0.0),
        "the fake coordinator never writes"
    );
    assert_eq!(
        q.measures.awaiting_answers, 4,
        "south's 503s are `unavailable`"
    );
    assert_eq!(report.oversold, Some(0));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["quality"]["ledger_writes_per_s"], 0.0);
    assert_eq!(json["quality"]["stranded"], 0);
    assert_eq!(report.audit, "ok");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Stopped on the sell-out: far fewer buyers than 20 s of arrivals.
    assert!(report.buyers + report.dropped_by_client < 100 + 200 * 19);
    let svg = quota_loadgen::render_svg(&report);
    assert_eq!(
        svg.lines().filter(|l| l.starts_with("<polyline")).count(),
        4
    );
}
