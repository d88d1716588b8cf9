//! Issue 11 §4: `quotactl` that survives a coordinator failover — `--url` takes a list of
//! instances and a request that finds one dead goes to the next — and its output formats
//! (`-o table|wide|json|yaml`, `completion`), contexts of a config file and exit statuses, on a
//! real cluster.

use std::process::{Command, Output, Stdio};

use quota_tests::{bin_path, quotactl_json, wait_for, Cluster, Sale};
use serde_json::Value;

const P: i64 = 1001;

/// `quotactl <args> --url <urls>` with the operator's token, run in the cluster's directory
/// (no real `target/cluster/cluster.env`) and without the caller's coordinator variables.
fn quotactl(c: &Cluster, urls: &str, args: &[&str]) -> Output {
    quotactl_with_token(c, urls, args, &c.admin_token)
}

/// [`quotactl`] with `token` as `ADMIN_TOKEN`.
fn quotactl_with_token(c: &Cluster, urls: &str, args: &[&str], token: &str) -> Output {
    let mut cmd = Command::new(bin_path("quotactl"));
    cmd.args(args)
        .env("ADMIN_TOKEN", token)
        .env_remove("COORDINATOR_URL")
        .env_remove("COORDINATOR_URLS")
        .env_remove("QUOTA_ADMIN_TOKEN_FILE")
        .env_remove("QUOTACTL_URLS")
        .env_remove("QUOTACTL_CONTEXT")
        .env_remove("QUOTACTL_CONFIG")
        // The config file of contexts lives in the cluster's directory (see the contexts test).
        .env("XDG_CONFIG_HOME", c.dir.path())
        .current_dir(c.dir.path())
        .stdin(Stdio::null());
    if !urls.is_empty() {
        cmd.args(["--url", urls]);
    }
    cmd.output().expect("run quotactl")
}

/// Its stdout; panics with stderr when it failed.
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

/// Its stdout parsed as JSON; panics with stderr when it failed.
fn json(out: &Output, what: &str) -> Value {
    serde_json::from_str(&ok(out, what)).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

/// Kill -9 the leading coordinator; `quotactl --url DEAD,LIVE` still reads (status, product
/// show, audit) and changes (a keyed restock, once) through the live instance. With only the
/// dead URL it fails, naming it, with exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotactl_fails_over_to_the_next_url_when_the_leader_dies() {
    let mut c = Cluster::builder(&["east"]).coordinators(2).start().await;
    // Every unit split at once: with units left in the pool the rebalancer could grant them
    // before `create` saw the split applied (it waits for exactly the split).
    Sale::new(P, 10, "east=10").create(&c).await;
    let leader = quotactl_json(&c, &["status"])["leader"]
        .as_str()
        .expect("a leader")
        .to_string();
    let idx = c
        .coordinators
        .iter()
        .position(|k| k.id == leader)
        .expect("the leader is one of ours");
    let dead = c.coordinators[idx].url.clone();
    let live = c.coordinators[1 - idx].url.clone();
    c.coordinators[idx].kill9();
    let both = format!("{dead},{live}");

    let status = json(&quotactl(&c, &both, &["status", "--json"]), "status");
    assert!(status["products"].is_array(), "{status}");
    let show = json(
        &quotactl(
            &c,
            &both,
            &["product", "show", &P.to_string(), "-o", "json"],
        ),
        "product show",
    );
    assert_eq!(show["total"], 10, "{show}");

    // A keyed change: the survivor forwards it, or (once it leads) applies it; resent between
    // leaders under the same key, it is applied once.
    let restocked = json(
        &quotactl(
            &c,
            &both,
            &["product", "restock", &P.to_string(), "5", "--json"],
        ),
        "product restock",
    );
    assert_eq!(restocked["total"], 15, "{restocked}");
    let shown = json(
        &quotactl(&c, &both, &["product", "show", &P.to_string(), "--json"]),
        "product show after the restock",
    );
    assert_eq!(shown["total"], 15, "applied exactly once: {shown}");

    // The survivor leads, and the audit (which failed in the issue) passes through the list.
    wait_for("the survivor to lead and the audit to pass", || {
        let status = quotactl(&c, &both, &["status", "--json"]);
        let audit = quotactl(&c, &both, &["audit", &P.to_string(), "--json"]);
        let leads = serde_json::from_slice::<Value>(&status.stdout)
            .is_ok_and(|s| s["leader"].as_str().is_some_and(|l| l != leader));
        async move { leads && audit.status.success() }
    })
    .await;
    let table = ok(&quotactl(&c, &both, &["status", &P.to_string()]), "status");
    assert!(
        table.contains("leader: ") && table.contains("east"),
        "{table}"
    );

    // Only the dead instance: a clear error naming it, exit 5 (no usable answer).
    let out = quotactl(&c, &dead, &["status"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("cannot reach the coordinator") && said.contains(&dead),
        "{said}"
    );
    assert!(out.stdout.is_empty(), "nothing printed on stdout");
}

/// Where the header `head` starts and ends in `header`.
fn span(header: &str, head: &str) -> (usize, usize) {
    let at = header
        .find(head)
        .unwrap_or_else(|| panic!("no {head} in {header:?}"));
    (at, at + head.len())
}

/// `-o json` is the API's JSON (the same as `--json`); `-o table` sizes its columns to a long
/// product name without cutting it or breaking the alignment of the rows around it; `-o wide`
/// adds the less important columns; `completion` prints a script with no coordinator at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_formats_parse_align_and_widen() {
    let c = Cluster::builder(&["east"]).start().await;
    let url = c.coordinator().url.clone();
    // Every unit split at once: with units left in the pool the rebalancer could grant them
    // before `create` saw the split applied (it waits for exactly the split).
    Sale::new(P, 10, "east=10").create(&c).await;
    let long = "a flash-sale product whose name is far longer than any fixed column";
    ok(
        &quotactl(
            &c,
            &url,
            &[
                "product", "create", "2002", "--name", long, "--total", "123456", "--price", "1.00",
            ],
        ),
        "product create",
    );

    let as_o = json(
        &quotactl(&c, &url, &["product", "list", "-o", "json"]),
        "-o json",
    );
    let as_flag = json(
        &quotactl(&c, &url, &["product", "list", "--json"]),
        "--json",
    );
    let names: Vec<&str> = as_o
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["spec"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{as_o}");
    assert!(names.contains(&long), "{as_o}");
    assert_eq!(
        as_o.as_array().map(Vec::len),
        as_flag.as_array().map(Vec::len)
    );

    let table = ok(
        &quotactl(&c, &url, &["product", "list", "-o", "table"]),
        "-o table",
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header = lines[0];
    let (name_at, _) = span(header, "NAME");
    let (_, total_end) = span(header, "TOTAL");
    let (_, pool_end) = span(header, "POOL");
    let (policy_at, _) = span(header, "POLICY");
    for row in &lines[1..] {
        // Left-aligned text starts under its header, right-aligned numbers end under theirs.
        assert_ne!(row.as_bytes()[name_at], b' ', "{table}");
        assert_eq!(row.as_bytes()[name_at - 1], b' ', "{table}");
        for end in [total_end, pool_end] {
            assert!(row.as_bytes()[end - 1].is_ascii_digit(), "{table}");
            assert_eq!(row.as_bytes()[end], b' ', "{table}");
        }
        assert_ne!(row.as_bytes()[policy_at], b' ', "{table}");
        assert!(!row.ends_with(' '), "{row:?}");
    }
    let long_row = lines.iter().find(|l| l.contains(long)).expect("not cut");
    assert_eq!(&long_row[name_at..name_at + long.len()], long, "{table}");
    assert!(
        !header.contains("PRICE"),
        "wide-only column in a table: {table}"
    );

    let wide = ok(
        &quotactl(&c, &url, &["product", "list", "-o", "wide"]),
        "-o wide",
    );
    assert!(
        wide.lines()
            .next()
            .is_some_and(|h| h.contains("PRICE") && h.contains("END")),
        "{wide}"
    );
    let regions = ok(&quotactl(&c, &url, &["region", "list"]), "region list");
    assert!(!regions.contains("http"), "{regions}");
    let regions = ok(
        &quotactl(&c, &url, &["region", "list", "-o", "wide"]),
        "region list -o wide",
    );
    assert!(
        regions.contains("URL") && regions.contains("REPORT AGE") && regions.contains("http"),
        "{regions}"
    );
    // -o yaml: the JSON's document as YAML.
    let yaml = ok(
        &quotactl(&c, &url, &["product", "show", &P.to_string(), "-o", "yaml"]),
        "product show -o yaml",
    );
    assert!(
        yaml.starts_with("---\n") && yaml.contains(&format!("product_id: {P}")),
        "{yaml}"
    );
    let bad = quotactl(&c, &url, &["status", "-o", "xml"]);
    assert_eq!(bad.status.code(), Some(2));

    // Completion needs no coordinator.
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&quotactl(&c, "", &["completion", shell]), shell);
        assert!(
            script.contains("quotactl") && script.contains("restock"),
            "{shell}"
        );
    }

    // A coordinator URL nobody answers on.
    let dead = format!("http://127.0.0.1:{}", quota_tests::free_port());
    contexts_choose_the_deployment(&c, &url, &dead);
}

/// Issue 11 §4: a config file of contexts. A context named with `--context` brings its URLs
/// and token file (beating `ADMIN_TOKEN` in the environment); the file's current context is
/// used without a name; `config use-context` switches it and keeps the file's comments;
/// `config view` shows the contexts and never a token; an unknown context is a usage error
/// (exit 2) and a current context whose coordinators are all down is exit 5.
fn contexts_choose_the_deployment(c: &Cluster, live: &str, dead: &str) {
    let dir = c.dir.path().join("quotactl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("operator.token"), format!("{}\n", c.admin_token)).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "# two deployments\ncurrent-context = \"old\"\n\n[contexts.old]\nurls = \
             [\"{dead}\"]\ntimeout = 2\n\n[contexts.live]\nurls = [\"{dead}\", \"{live}\"]\n\
             token-file = \"operator.token\"\n"
        ),
    )
    .unwrap();
    // The environment's token is wrong; the named context's file holds the right one.
    let shown = ok(
        &quotactl_with_token(
            c,
            "",
            &["--context", "live", "product", "show", &P.to_string()],
            "not-the-token-0123456789",
        ),
        "--context live",
    );
    assert!(shown.contains(&P.to_string()), "{shown}");

    // The current context ("old") only knows the dead instance: no usable answer, exit 5.
    let out = quotactl(c, "", &["status"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(said.contains(dead), "{said}");

    let out = quotactl(c, "", &["--context", "qa", "status"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("no context \"qa\"") && said.contains("live, old"),
        "{said}"
    );

    ok(
        &quotactl(c, "", &["config", "use-context", "live"]),
        "use-context",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with("# two deployments"), "{text}");
    ok(
        &quotactl(c, "", &["status"]),
        "status through the new current context",
    );

    let view = json(
        &quotactl(c, "", &["config", "view", "-o", "json"]),
        "config view",
    );
    assert_eq!(view["current_context"], "live", "{view}");
    assert_eq!(view["contexts"]["old"]["timeout"], 2, "{view}");
    assert!(
        !view.to_string().contains(&c.admin_token),
        "a token shown: {view}"
    );
    let table = ok(&quotactl(c, "", &["config", "view"]), "config view");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with('*') && l.contains(" live ")),
        "the current context is marked: {table}"
    );
}
