//! Issue 11 §2: the metrics the binaries export, scraped from a running cluster.
//!
//! * every `quota_*` metric of the coordinators and the nodes has `# HELP` text and follows
//!   Prometheus naming (counters and only counters end in `_total`, base units, one quantity
//!   per name: no `kind`/`state` label on a gauge), and `quota_build_info` is 1 on both;
//! * the coordinator's key metrics hold what the system says: leader 1 on the instance
//!   `quotactl status` names (0 on the standby), a term, rounds counted, pool/G/R equal to
//!   `quotactl product show`, the regions' reported sales, the last audit's verdict;
//! * every metric name the Grafana dashboard (`deploy/grafana/quota.json`) and the alert rules
//!   (`deploy/prometheus/alerts.yml`) use appears in a scrape, and every dashboard query is
//!   valid PromQL (`promtool check rules` on the queries as recording rules);
//! * with `--log-format json` every log line is a JSON object, and the request log has
//!   method, path (never the query string), status and latency — and never a token.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use quota_tests::{buy, http, quotactl_json, wait_for, workspace_root, Cluster, Sale};
use serde_json::Value;

const P: i64 = 1001;

/// One sample line of a scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Default)]
struct Scrape {
    /// `# HELP` text per family.
    help: BTreeMap<String, String>,
    /// `# TYPE` per family.
    kind: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                s.help.insert(name.to_string(), help.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                let before = s.kind.insert(name.to_string(), kind.to_string());
                assert!(before.is_none(), "{name} has two TYPE lines");
            } else if !line.starts_with('#') {
                s.samples.push(parse_sample(line));
            }
        }
        s
    }

    /// The family a sample belongs to (`x_bucket` of histogram `x` is `x`).
    fn family<'a>(&self, sample: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix) {
                if matches!(
                    self.kind.get(base).map(String::as_str),
                    Some("histogram" | "summary")
                ) {
                    return base;
                }
            }
        }
        sample
    }

    /// Every name a query could use: families and sample names.
    fn names(&self) -> BTreeSet<String> {
        self.kind
            .keys()
            .cloned()
            .chain(self.samples.iter().map(|s| s.name.clone()))
            .collect()
    }

    /// The samples of `name` whose labels include `labels`.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample of `name` with `labels`; panics when there is none or several.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
        found[0].value
    }
}

fn parse_sample(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').expect("sample has a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let Some((name, rest)) = head.split_once('{') else {
        return Sample {
            name: head.to_string(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest.strip_suffix('}').expect("labels end with }");
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label value quoted in {line:?}");
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => val.push(chars.next().unwrap_or('\\')),
                '"' => break,
                c => val.push(c),
            }
        }
        if chars.peek() == Some(&',') {
            chars.next();
        }
        labels.insert(key.trim().to_string(), val);
    }
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

async fn scrape(base: &str) -> Scrape {
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200, "{base}/metrics needs no token");
    Scrape::parse(&resp.text().await.unwrap())
}

/// Prometheus naming and help text on every `quota_*` family of one scrape.
fn check_naming(who: &str, s: &Scrape) {
    let families: BTreeSet<&str> = s
        .samples
        .iter()
        .map(|x| s.family(&x.name))
        .filter(|n| n.starts_with("quota_"))
        .collect();
    assert!(
        families.len() > 5,
        "{who}: too few quota metrics: {families:?}"
    );
    for name in &families {
        let kind = s
            .kind
            .get(*name)
            .unwrap_or_else(|| panic!("{who}: {name} has no # TYPE"));
        let help = s
            .help
            .get(*name)
            .unwrap_or_else(|| panic!("{who}: {name} has no # HELP"));
        assert!(help.len() > 10, "{who}: {name}: help {help:?} says nothing");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{who}: {name} is a {kind}: counters and only counters end in _total"
        );
        for unit in ["_ms", "millis", "_msec", "_micro"] {
            assert!(!name.contains(unit), "{who}: {name}: base units (seconds)");
        }
        if name.contains("duration") || name.contains("latency") || name.ends_with("_age") {
            assert!(
                name.ends_with("_seconds"),
                "{who}: {name} is a time: _seconds"
            );
        }
        if kind == "gauge" {
            for x in s.samples.iter().filter(|x| x.name == *name) {
                for mixed in ["kind", "state", "type"] {
                    assert!(
                        !x.labels.contains_key(mixed),
                        "{who}: gauge {name} mixes quantities under a {mixed:?} label: {x:?}"
                    );
                }
            }
        }
    }
    assert!(
        !families.contains("quota_stock"),
        "{who}: the old mixed quota_stock"
    );
    let info = s.find("quota_build_info", &[]);
    assert_eq!(info.len(), 1, "{who}: quota_build_info: {info:?}");
    assert_eq!(info[0].value, 1.0);
    assert_eq!(
        info[0].labels.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
}

/// Every `quota_…` metric name in `text` (identifiers starting with `quota_`).
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(at) = text[i..].find("quota_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        if start == 0 || !ident(bytes[start - 1]) {
            out.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

fn dashboard() -> Value {
    let path = workspace_root().join("deploy/grafana/quota.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard is JSON")
}

/// Every `expr` of every panel (rows included) and every query variable of the dashboard.
fn dashboard_queries(d: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(t["expr"].as_str().expect("every target has an expr").into());
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// The dashboard is a Grafana dashboard with the panels the issue asks for, and each query is
/// valid PromQL (Grafana's variables replaced by what they stand for).
#[test]
fn the_dashboard_has_its_panels_and_valid_queries() {
    let d = dashboard();
    assert_eq!(d["uid"], "quota-overview");
    assert!(d["schemaVersion"].as_i64().is_some());
    let titles: Vec<String> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
    for wanted in [
        "sale progress",
        "pool",
        "g: granted per region",
        "r: released per region",
        "purchase rate",
        "purchase latency",
        "audit verdict",
        "audit age",
        "leader",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no {wanted:?} panel in {titles:?}"
        );
    }
    let queries = dashboard_queries(&d);
    assert!(queries.len() > 15, "{queries:?}");
    let dir = quota_tests::test_dir();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let q = q
            .replace("$__rate_interval", "1m")
            .replace("$product_id", ".+");
        let q = serde_json::to_string(&q).unwrap(); // a YAML double-quoted string
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {q}\n"
        ));
    }
    let file: PathBuf = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool could not run ({e}): install Debian's `prometheus` package \
                 (`deploy/local/cluster.sh install`)"
            )
        });
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A request to `url` with a query string and a bearer token, to look for in the log.
async fn get_with_token(url: &str, token: &str) -> u16 {
    http()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The request-log lines of a JSON log (`target` `request`), as `fields`.
fn request_lines(log: &str, who: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{who}: a log line is not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["target"] == "request" {
            out.push(v["fields"].clone());
        }
    }
    out
}

/// The request log of one process: its lines have method, path, status and latency; the
/// path never has the query string; no line anywhere has the token.
fn check_request_log(who: &str, log: &str, token: &str, wanted: &[(&str, &str, u16)]) {
    assert!(!log.contains(token), "{who}: a token in the log");
    let lines = request_lines(log, who);
    for l in &lines {
        assert!(l["method"].is_string(), "{who}: {l}");
        assert!(l["status"].is_u64(), "{who}: {l}");
        assert!(l["latency_ms"].is_f64(), "{who}: {l}");
        let path = l["path"].as_str().expect("path");
        assert!(!path.contains('?'), "{who}: query string logged: {l}");
    }
    for (method, path, status) in wanted {
        assert!(
            lines.iter().any(|l| l["method"] == *method
                && l["path"] == *path
                && l["status"].as_u64() == Some(u64::from(*status))),
            "{who}: no request line for {method} {path} {status} in {lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_named_and_helped_and_what_dashboard_and_alerts_use_exists() {
    let c = Cluster::builder(&["east", "south"])
        .coordinators(2)
        .node_args(&["--log-format", "json"])
        .coordinator_args(&["--log-format", "json"])
        .start()
        .await;
    let started = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    Sale::new(P, 100, "east=40,south=40").create(&c).await;
    let client = http();
    let east = c.region("east").node.url.clone();
    let south = c.region("south").node.url.clone();
    for user in 1..=5 {
        assert_eq!(buy(&client, &east, P, user).await.status, 201);
    }
    for user in 6..=8 {
        assert_eq!(buy(&client, &south, P, user).await.status, 201);
    }
    let audit = c.quotactl(&["audit", &P.to_string()]);
    assert!(
        audit.status.success(),
        "audit: {}",
        String::from_utf8_lossy(&audit.stdout)
    );
    let audited_by = c.coordinator().url.clone();

    // The regions' reports reach etcd, and the nodes' reconcilers read the sales.
    for (region, sold) in [("east", 5.0), ("south", 3.0)] {
        let coordinator = audited_by.clone();
        wait_for(
            &format!("the coordinator to export {region}'s sales"),
            || {
                let coordinator = coordinator.clone();
                async move {
                    let s = scrape(&coordinator).await;
                    s.find(
                        "quota_reported_sold_units",
                        &[("product_id", "1001"), ("region", region)],
                    )
                    .first()
                    .is_some_and(|x| x.value == sold)
                }
            },
        )
        .await;
        let node = c.region(region).node.url.clone();
        wait_for(&format!("{region}'s node to export its sales"), || {
            let node = node.clone();
            async move {
                let s = scrape(&node).await;
                s.find("quota_stock_sold_units", &[("product_id", "1001")])
                    .first()
                    .is_some_and(|x| x.value == sold)
            }
        })
        .await;
    }

    // Naming and help, everywhere.
    let mut all_names = BTreeSet::new();
    let mut coordinators = Vec::new();
    for co in &c.coordinators {
        let s = scrape(&co.url).await;
        check_naming(&co.id, &s);
        all_names.extend(s.names());
        coordinators.push((co, s));
    }
    for region in ["east", "south"] {
        let s = scrape(&c.region(region).node.url).await;
        check_naming(region, &s);
        assert_eq!(
            s.value(
                "quota_purchase_requests_total",
                &[("outcome", "created"), ("region", region)]
            ),
            if region == "east" { 5.0 } else { 3.0 }
        );
        assert!(
            s.find("quota_stock_redis_units", &[("product_id", "1001")])
                .len()
                == 1
        );
        all_names.extend(s.names());
    }

    // Leadership: 1 on the one `quotactl status` names, with a term; 0 and no term elsewhere.
    let leader_id = quotactl_json(&c, &["status"])["leader"]
        .as_str()
        .expect("a leader")
        .to_string();
    for (co, s) in &coordinators {
        let leads = co.id == leader_id;
        assert_eq!(
            s.value("quota_coordinator_leader", &[]),
            if leads { 1.0 } else { 0.0 },
            "{}",
            co.id
        );
        let term = s.value("quota_coordinator_term", &[]);
        assert_eq!(term > 0.0, leads, "{}: term {term}", co.id);
        if leads {
            assert!(s.value("quota_coordinator_rounds_total", &[("outcome", "ok")]) > 0.0);
            assert!(s.value("quota_coordinator_round_duration_seconds_count", &[]) > 0.0);
        }
        for direction in ["grant", "release"] {
            let labels = [("direction", direction)];
            assert!(s.value("quota_coordinator_moves_total", &labels) >= 0.0);
            assert!(s.value("quota_coordinator_units_moved_total", &labels) >= 0.0);
        }
        assert!(s.value("quota_dependency_errors_total", &[("dependency", "etcd")]) >= 0.0);
        for region in ["east", "south"] {
            assert_eq!(s.value("quota_region_alive", &[("region", region)]), 1.0);
        }
        assert_eq!(s.value("quota_sale_active", &[("product_id", "1001")]), 1.0);
        assert_eq!(
            s.value("quota_ledger_total_units", &[("product_id", "1001")]),
            100.0
        );
    }

    // The last audit: passed, just now, on the instance quotactl asked.
    let (_, s) = coordinators
        .iter()
        .find(|(co, _)| co.url == audited_by)
        .unwrap();
    let p = [("product_id", "1001")];
    assert_eq!(s.value("quota_audit_last_ok", &p), 1.0);
    let at = s.value("quota_audit_last_timestamp_seconds", &p);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(
        started <= at && at <= now,
        "audit at {at}, test {started}..{now}"
    );

    // Pool, G and R as `quotactl product show` has them (read between two scrapes that agree:
    // a round may move stock at any moment).
    let ledger = |s: &Scrape| -> BTreeMap<String, f64> {
        s.samples
            .iter()
            .filter(|x| x.labels.get("product_id").map(String::as_str) == Some("1001"))
            .filter(|x| {
                [
                    "quota_ledger_pool_units",
                    "quota_ledger_granted_units",
                    "quota_ledger_released_units",
                ]
                .contains(&x.name.as_str())
            })
            .map(|x| {
                let region = x.labels.get("region").cloned().unwrap_or_default();
                (format!("{} {region}", x.name), x.value)
            })
            .collect()
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let before = ledger(&scrape(&audited_by).await);
        let show = quotactl_json(&c, &["product", "show", &P.to_string()]);
        let after = ledger(&scrape(&audited_by).await);
        if before != after {
            assert!(
                attempts < 50,
                "the ledger never held still: {before:?} {after:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        let mut want = BTreeMap::new();
        want.insert(
            "quota_ledger_pool_units ".to_string(),
            show["pool"].as_f64().unwrap(),
        );
        for (region, share) in show["regions"].as_object().unwrap() {
            want.insert(
                format!("quota_ledger_granted_units {region}"),
                share["granted"].as_f64().unwrap(),
            );
            want.insert(
                format!("quota_ledger_released_units {region}"),
                share["released"].as_f64().unwrap(),
            );
        }
        assert_eq!(after, want, "metrics vs quotactl product show: {show}");
        break;
    }

    // What the dashboard and the alert rules use, the binaries export.
    let mut used = BTreeSet::new();
    for q in dashboard_queries(&dashboard()) {
        used.extend(metric_names_in(&q));
    }
    let d = dashboard();
    for v in d["templating"]["list"].as_array().unwrap() {
        used.extend(metric_names_in(&v["definition"].to_string()));
    }
    let rules =
        std::fs::read_to_string(workspace_root().join("deploy/prometheus/alerts.yml")).unwrap();
    used.extend(metric_names_in(&rules));
    assert!(used.len() > 15, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !all_names.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "used by the dashboard or the alerts but exported by no binary: {missing:?}"
    );

    // The request log: JSON lines, method/path/status/latency, no query string, no token.
    let token = &c.admin_token;
    let co = c.coordinator();
    assert_eq!(
        get_with_token(&format!("{}/v1/admin/status?product=1001", co.url), token).await,
        200
    );
    assert_eq!(
        get_with_token(&format!("{}/v1/admin/status?product=1001", co.url), "wrong").await,
        401
    );
    let node = &c.region("east").node;
    assert_eq!(
        get_with_token(&format!("{}/v1/products/1001?x=1", node.url), token).await,
        200
    );
    // Lines are written as requests are answered: wait until the last one is in the log.
    wait_for("the request lines in the logs", move || async move {
        co.proc.log_tail(2000).contains("\"status\":401")
            && node.proc.log_tail(2000).contains("/v1/products/1001\"")
    })
    .await;
    check_request_log(
        &co.id,
        &co.proc.log_tail(2000),
        token,
        &[
            ("GET", "/metrics", 200),
            ("GET", "/v1/admin/status", 200),
            ("GET", "/v1/admin/status", 401),
        ],
    );
    check_request_log(
        "east",
        &node.proc.log_tail(2000),
        token,
        &[
            ("POST", "/v1/products/1001/purchase", 201),
            ("GET", "/metrics", 200),
            ("GET", "/v1/products/1001", 200),
        ],
    );
}
