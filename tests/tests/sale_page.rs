//! Issue 11 §3: the live sale page, in a real browser, and `quotactl status --watch`.
//!
//! Headless Chromium (the Debian package; `deploy/local/cluster.sh install` installs it) loads
//! `/page/products/1001#token=<auditor token>` from a coordinator during a sale, runs its
//! script (`--virtual-time-budget`: the page polls several times), and dumps the DOM; every
//! number the page shows (`data-field`/`data-region`, raw value in `data-value`) must equal what
//! `quotactl status --json` and `product show --json` say. The sale keeps moving (rounds,
//! reports, the demand average decaying), so the API is read before and after the browser: the
//! comparison counts when the integer values did not change in between (else it is tried
//! again); the demand, a float that decays continuously, must lie between the two reads. A
//! screenshot goes to `target/sale-page.png`. Without Chromium the test fails and says how to
//! install it: a browser test that skips proves nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quota_tests::{audit_ok, buy, http, quotactl_json, wait_for, workspace_root, Cluster, Sale};
use serde_json::Value;

const P: i64 = 1001;

/// A fresh random token (64 hex digits).
fn fresh_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Writes `content` (plus a newline) to `dir/name`, mode 0600; its path.
fn token_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{content}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The Chromium binary on `PATH` that runs; a failure that says how to install one otherwise.
fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser"] {
        let ran = std::process::Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if ran {
            return name;
        }
    }
    panic!(
        "this test needs headless Chromium, and neither `chromium` nor `chromium-browser` runs: \
         install it with `apt-get install -y chromium` (deploy/local/cluster.sh install does)"
    );
}

/// Runs headless Chromium on `url` with `extra` flags and returns its stdout; fails with its
/// stderr if it does not exit 0 (bounded at 120 s so a hung browser cannot hang the suite).
async fn run_chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless=new",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-extensions",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("Chromium did not finish within 120 s")
        .expect("start Chromium");
    assert!(
        out.status.success(),
        "Chromium failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the DOM is UTF-8")
}

/// What the page shows: `(region or "", field)` → `data-value`, plus the body's `data-state`.
#[derive(Debug, Default)]
struct Shown {
    state: String,
    values: BTreeMap<(String, String), String>,
}

impl Shown {
    /// Reads every tag of a dumped DOM that has a `data-field`.
    fn parse(dom: &str) -> Shown {
        let mut shown = Shown::default();
        for tag in dom
            .split('<')
            .filter_map(|t| t.split_once('>').map(|(t, _)| t))
        {
            if tag.starts_with("body") {
                shown.state = attr(tag, "data-state").unwrap_or_default();
            }
            if let Some(field) = attr(tag, "data-field") {
                let region = attr(tag, "data-region").unwrap_or_default();
                let value = attr(tag, "data-value").unwrap_or_default();
                shown.values.insert((region, field), value);
            }
        }
        shown
    }

    /// A product-wide value.
    fn product(&self, field: &str) -> &str {
        self.region("", field)
    }

    /// A region's value.
    fn region(&self, region: &str, field: &str) -> &str {
        self.values
            .get(&(region.to_string(), field.to_string()))
            .map_or_else(
                || panic!("the page shows no {field} for {region:?}"),
                String::as_str,
            )
    }
}

/// The value of attribute `name` in the text of one tag (as Chromium serialises it: double
/// quotes, `&quot;`/`&amp;`/`&lt;`/`&gt;` escaped).
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(
        tag[start..start + len]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// An API number as the page writes it into `data-value` (`null` is empty).
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The API's view at one moment: `status 1001 --json` and `product show 1001 --json`.
struct Api {
    status: Value,
    product: Value,
}

impl Api {
    fn read(c: &Cluster) -> Api {
        Api {
            status: quotactl_json(c, &["status", &P.to_string()]),
            product: quotactl_json(c, &["product", "show", &P.to_string()]),
        }
    }

    fn p(&self) -> &Value {
        &self.status["products"][0]
    }

    /// Every integer (and text) the page shows, as `(region, field)` → value: what must not
    /// have changed between two reads for a comparison to count.
    fn exact(&self) -> BTreeMap<(String, String), String> {
        let mut out = BTreeMap::new();
        let mut put = |r: &str, f: &str, v: &Value| {
            out.insert((r.to_string(), f.to_string()), text(v));
        };
        put("", "leader", &self.status["leader"]);
        for f in ["product_id", "name", "total", "pool", "active"] {
            put("", f, &self.p()[f]);
        }
        put("", "policy", &self.p()["policy"]);
        let regions = self.p()["regions"].as_object().expect("regions").clone();
        for (r, x) in &regions {
            for f in [
                "available",
                "sold",
                "in_transit",
                "granted",
                "applied",
                "released",
            ] {
                put(r, f, &x[f]);
            }
            // `product show` says the same G and R (one ledger).
            put(r, "show_granted", &self.product["regions"][r]["granted"]);
            put(r, "show_released", &self.product["regions"][r]["released"]);
        }
        put("", "show_pool", &self.product["pool"]);
        out
    }
}

/// Why the page (`shown`, rendered between the reads `before` and `after`) differs from the
/// API; `Ok` when it shows exactly what both reads say.
fn compare(shown: &Shown, before: &Api, after: &Api) -> Result<(), String> {
    let want = before.exact();
    let later = after.exact();
    if want != later {
        let moved: Vec<String> = want
            .iter()
            .filter(|(k, v)| later.get(*k) != Some(*v))
            .map(|((r, f), v)| format!("{r}/{f}: {v} → {:?}", later.get(&(r.clone(), f.clone()))))
            .collect();
        return Err(format!(
            "the sale moved while the browser read it ({})",
            moved.join(", ")
        ));
    }
    for ((region, field), value) in &want {
        let field = match field.as_str() {
            "show_granted" => "granted",
            "show_released" => "released",
            "show_pool" => "pool",
            f => f,
        };
        let got = shown.region(region, field);
        if got != value {
            return Err(format!("{region}/{field}: page {got:?}, API {value:?}"));
        }
    }
    // Ledger writes: the leader keeps publishing movable stock, so the count may grow while
    // the browser reads; the page's value lies between ours.
    let writes = |a: &Api| {
        a.p()["coordinator_writes"]
            .as_i64()
            .expect("coordinator_writes")
    };
    let got: i64 = shown
        .region("", "coordinator_writes")
        .parse()
        .expect("writes is a number");
    if !(writes(before)..=writes(after)).contains(&got) {
        return Err(format!(
            "writes: page {got}, API between {} and {}",
            writes(before),
            writes(after)
        ));
    }
    // Demand: a float the regions report as it decays; the page's read lies between ours.
    let regions = before.p()["regions"].as_object().expect("regions");
    for r in regions.keys() {
        let d = |a: &Api| a.p()["regions"][r]["demand"].as_f64().expect("demand");
        let (lo, hi) = (d(before).min(d(after)), d(before).max(d(after)));
        let got: f64 = shown
            .region(r, "demand")
            .parse()
            .expect("demand is a number");
        if !(lo..=hi).contains(&got) {
            return Err(format!("{r}/demand: page {got}, API between {lo} and {hi}"));
        }
    }
    Ok(())
}

/// A sale on two regions with units sold in each: the page, opened with the auditor's token,
/// shows each region's stock, demand, sold, in-transit units, G/g/R, the pool, the leader and
/// the audit verdict exactly as the API does; the token reaches no log; a screenshot is saved;
/// `quotactl status --watch` redraws the same table and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sale_page_shows_what_the_api_says_in_a_real_browser() {
    chromium();
    let files = tempfile::tempdir().unwrap();
    let auditor = fresh_token();
    let auditor_file = token_file(files.path(), "auditor.token", &auditor);
    let c = Cluster::builder(&["east", "south"])
        .coordinator_args(&["--auditor-token-file", auditor_file.to_str().unwrap()])
        .start()
        .await;
    // A static policy: after the purchases nothing moves, so the page and the API can be
    // compared (with the demand policy the pool keeps being granted and released while the
    // demand estimate decays, and on a loaded machine no read lands between two moves).
    Sale::new(P, 100, "east=30,south=30")
        .policy("static")
        .create(&c)
        .await;
    let client = http();
    for (region, users) in [("east", 1..=5), ("south", 101..=103)] {
        for user in users {
            let o = buy(&client, &c.region(region).node.url, P, user).await;
            assert_eq!(o.status, 201, "purchase in {region}: {o:?}");
        }
    }
    wait_for("both regions to report their sales", || async {
        let s = quotactl_json(&c, &["status", &P.to_string()]);
        let r = &s["products"][0]["regions"];
        r["east"]["sold"] == 5 && r["south"]["sold"] == 3
    })
    .await;
    let audit = audit_ok(&c, P).await;
    assert_eq!(audit["ok"], true);

    // The shell: public, no data, no token, a strict content security policy.
    let base = c.coordinator().url.clone();
    let page = format!("{base}/page/products/{P}");
    let shell = client.get(&page).send().await.unwrap();
    assert_eq!(shell.status(), 200);
    let csp = shell.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'nonce-") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(shell.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = shell.text().await.unwrap();
    assert!(!html.contains(&auditor) && !html.contains(&c.admin_token));

    // The page in the browser against the API, until one comparison counts.
    let with_token = format!("{page}#token={auditor}");
    let mut last = String::new();
    let mut matched = None;
    for _ in 0..10 {
        let before = Api::read(&c);
        let shown = Shown::parse(&run_chromium(&with_token, &["--dump-dom"]).await);
        let after = Api::read(&c);
        assert_eq!(
            shown.state,
            "live",
            "the page did not show live data: {:?}",
            shown.product("message")
        );
        match compare(&shown, &before, &after) {
            Ok(()) => {
                matched = Some(shown);
                break;
            }
            Err(why) => last = why,
        }
    }
    let shown = matched.unwrap_or_else(|| panic!("the page never matched the API: {last}"));
    assert_eq!(shown.region("east", "sold"), "5");
    assert_eq!(shown.region("south", "sold"), "3");
    assert_eq!(shown.product("sold"), "8");
    assert_eq!(shown.product("leader"), c.coordinators[0].id);
    assert_eq!(shown.product("audit"), "ok");
    // It polls again and again, not once (virtual time: 3 s of it, 250 ms apart).
    assert!(shown.product("polls").parse::<u64>().unwrap() >= 2);

    // The screenshot.
    let png = workspace_root().join("target/sale-page.png");
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    run_chromium(&with_token, &[&shot, "--window-size=1280,900"]).await;
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {png:?}: {e}"));
    assert!(bytes.starts_with(b"\x89PNG"), "{png:?} is not a PNG");

    // The token went in a header only: no coordinator logged it.
    for co in &c.coordinators {
        assert!(
            !co.proc.log_tail(1_000_000).contains(&auditor),
            "{} logged the token",
            co.id
        );
    }

    // `quotactl status --watch`: the same table, redrawn (piped: frames one after another),
    // then exit 0; `-o json` one answer per line.
    let out = c.quotactl(&["status", &P.to_string(), "--watch", "2"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Ctrl-C to stop")
            && stdout.contains("leader: coordinator-1")
            && stdout.contains("east"),
        "{stdout}"
    );
    let out = c.quotactl(&["status", &P.to_string(), "--watch", "1", "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON status per line"))
        .collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|s| s["products"][0]["product_id"] == P));
}

/// Without a token the page shows no number and says how to open it; with a token the
/// coordinator does not know it says it was refused and stops asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_good_token_the_page_shows_nothing_and_says_why() {
    chromium();
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 10, "east=10").create(&c).await;
    let page = format!("{}/page/products/{P}", c.coordinator().url);

    let shown = Shown::parse(&run_chromium(&page, &["--dump-dom"]).await);
    assert_eq!(shown.state, "error");
    assert!(shown.product("message").contains("#token="), "{shown:?}");
    assert_eq!(shown.product("pool"), "");
    assert_eq!(shown.product("leader"), "");

    let shown = Shown::parse(
        &run_chromium(&format!("{page}#token={}", fresh_token()), &["--dump-dom"]).await,
    );
    assert_eq!(shown.state, "error");
    assert!(shown.product("message").contains("HTTP 401"), "{shown:?}");
    assert_eq!(shown.product("pool"), "");

    // A product id that is not one is refused before any page is served.
    let bad = http()
        .get(format!("{}/page/products/x", c.coordinator().url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
