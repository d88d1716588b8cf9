//! The command line: global connection flags and one subcommand per admin operation.
//! (The clap types carry no doc comments of their own beyond the help texts: clap would show
//! them.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use quota_shared::admin_auth::AdminToken;
use quota_shared::policy::PolicyKind;
use quota_shared::wire::IdempotencyKey;
use rust_decimal::Decimal;

use crate::contexts::{Chosen, Selected};
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "quotactl",
    version,
    allow_negative_numbers = true,
    about = "Operate flash sales: products, quotas, regions, audits",
    after_help = "Exit status: 0 done (audit: the books balance); 1 the audit found a violation; \
                  2 bad command line or configuration; 3 the audit could not read a region; \
                  4 the coordinator refused (nothing changed); 5 no usable answer (unreachable, \
                  timed out, 5xx, or a change whose answer was lost)."
)]
pub(crate) struct Cli {
    /// Coordinator admin API base URLs, comma-separated (any instances: each serves reads and
    /// forwards changes to the leader). A request that finds one unreachable or between
    /// leaders (503) goes to the next. Default, most explicit first: $QUOTACTL_URLS, the
    /// context named by --context, $COORDINATOR_URLS (else $COORDINATOR_URL), the config
    /// file's current context, the cluster env file.
    #[arg(
        long,
        env = "QUOTACTL_URLS",
        global = true,
        value_name = "URL[,URL...]"
    )]
    pub(crate) url: Option<String>,
    /// Use this context of the config file (its URLs, token file, CA and timeout).
    #[arg(long, env = "QUOTACTL_CONTEXT", global = true, value_name = "NAME")]
    pub(crate) context: Option<String>,
    /// The config file of contexts (default: $XDG_CONFIG_HOME/quotactl/config.toml, else
    /// ~/.config/quotactl/config.toml; see `quotactl config view`).
    #[arg(long, env = "QUOTACTL_CONFIG", global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Seconds to wait for one instance's answer before trying the next (connecting gives up
    /// after at most 3). Default 10, or the context's `timeout`.
    #[arg(long, env = "QUOTACTL_TIMEOUT", global = true, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) timeout: Option<u64>,
    /// Admin bearer token (prefer --token-file: a flag's value shows in `ps`).
    #[arg(long, env = "ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<AdminToken>,
    /// File holding the admin bearer token (its first line), e.g. an auditor's token for
    /// read-only use. Given on the command line it beats an ADMIN_TOKEN from the environment.
    #[arg(long, env = "QUOTA_ADMIN_TOKEN_FILE", global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// Env file to read COORDINATOR_URLS (or COORDINATOR_URL) and ADMIN_TOKEN (or
    /// ADMIN_TOKEN_FILE) from when not set.
    #[arg(long, global = true, default_value = "target/cluster/cluster.env")]
    pub(crate) cluster_env: PathBuf,
    /// CA certificate (PEM) of the coordinator's HTTPS certificate, trusted besides the
    /// system's roots (for an `https://` URL signed by a private CA).
    #[arg(long, env = "QUOTA_CACERT", global = true)]
    pub(crate) cacert: Option<PathBuf>,
    /// Output: table, wide (tables with every column), json (the API's JSON) or yaml (the
    /// same document as YAML).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
    /// Same as -o json.
    #[arg(long, global = true, conflicts_with = "output")]
    pub(crate) json: bool,
    /// Name this change so that running it again changes nothing (default: a fresh key,
    /// printed if the answer is lost). Reuse the printed key to rerun a change that timed out.
    #[arg(long, global = true, value_parser = parse_key)]
    pub(crate) idempotency_key: Option<IdempotencyKey>,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

impl Cli {
    /// The output format: `--json` is `-o json`.
    pub(crate) fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.output
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Create, list, show, restock and end products.
    #[command(subcommand)]
    Product(ProductCmd),
    /// Static splits and rebalance policies.
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// One order (any region): show it, or cancel it if it is pending.
    #[command(subcommand)]
    Order(OrderCmd),
    /// After (or during) a sale: per region the units sold, pending, paid, cancelled,
    /// expired, returned and resold, the revenue, and the audit's verdict. Exit status as for
    /// `audit`.
    Report {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
    /// Run one rebalance round now and show the moves.
    Rebalance {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
    /// Regions: list, drain.
    #[command(subcommand)]
    Region(RegionCmd),
    /// Leader, and per product and region: granted, applied, released, sold, available,
    /// in transit, demand, alive; pool and total.
    Status {
        /// Only this product.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: Option<i64>,
        /// Redraw every 0.5 s (the screen cleared between, on a terminal; one JSON answer per
        /// line with -o json) for SECONDS, or until Ctrl-C without them; then exit 0. Put the
        /// product before the flag: `status 1001 --watch 60`.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        watch: Option<Option<u64>>,
    },
    /// Conservation audit: total = pool + Σ(sold + available + in transit), every term ≥ 0,
    /// sold = order units, no user over the limit across regions, Redis drift. Exit 0 when it
    /// holds, 1 when it does not, 3 when a region could not be read (proves nothing).
    Audit {
        /// Only this product.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: Option<i64>,
        /// Audit again and again for this many seconds (e.g. through a whole sale), one line
        /// per audit; stop at the first that fails, with its exit status.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
        watch: Option<u64>,
    },
    /// The config file's contexts: show them, or switch the current one.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print a shell completion script, e.g. `quotactl completion bash >
    /// /etc/bash_completion.d/quotactl` or `source <(quotactl completion zsh)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrderCmd {
    /// The order, from whichever region holds it: buyer, product, units, price, status.
    Show {
        /// The order id (a UUID, as the purchase answered it).
        id: uuid::Uuid,
    },
    /// Cancel a pending order: its units go back on sale in its region. A paid, cancelled or
    /// expired order is refused (exit 4), naming its status.
    Cancel {
        /// The order id.
        id: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Where the config file is, its contexts (the current one marked), and where this
    /// invocation's URLs and token come from. Never prints a token.
    View,
    /// Make NAME the current context (the file's comments and layout are kept).
    UseContext {
        /// A context the file defines.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProductCmd {
    /// Create a sale, e.g. `product create 1001 --name phone --total 1000 --price 99.00
    /// --split east=300,south=400,north=300`.
    Create {
        /// Product id (positive integer).
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// Name shown to buyers.
        #[arg(long)]
        name: String,
        /// Units on sale across all regions.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        total: i64,
        /// Sale price, e.g. 99.00.
        #[arg(long, allow_negative_numbers = true)]
        price: Decimal,
        /// List price (default: the sale price).
        #[arg(long, allow_negative_numbers = true)]
        original_price: Option<Decimal>,
        /// Start, RFC 3339 (default: now).
        #[arg(long)]
        start: Option<DateTime<Utc>>,
        /// End, RFC 3339 (default: start + 1 hour).
        #[arg(long)]
        end: Option<DateTime<Utc>>,
        /// Units one user may buy (default 1).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        per_user_limit: Option<i32>,
        /// Initial units per region, e.g. east=300,south=400 (the rest stays in the pool).
        #[arg(long, value_parser = parse_split)]
        split: Option<BTreeMap<String, i64>>,
        /// Rebalance policy: demand (default), static or even.
        #[arg(long)]
        policy: Option<PolicyKind>,
        /// The sale's home regions, e.g. east,south (each buyer buys only in one of them:
        /// a global per-user limit); default: the list `region homes` set. "none" for none.
        #[arg(long, value_parser = parse_homes)]
        home_regions: Option<RegionList>,
        /// Seconds a buyer has to pay before the order expires and its units go back on sale
        /// (default: each region node's --payment-window-s, 15 minutes).
        #[arg(long, value_name = "SECONDS",
              value_parser = clap::value_parser!(i32).range(1..=2_592_000))]
        payment_window: Option<i32>,
    },
    /// List every product.
    List,
    /// Show one product's ledger.
    Show {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
    /// Add units to the pool (the total grows; it can never shrink below what is allocated).
    Restock {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// Units to add.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        units: i64,
    },
    /// End the sale now.
    End {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCmd {
    /// Static split: `quota set 1001 east=300,south=400,north=300` (switches to the static
    /// policy; regions above their share release the difference).
    Set {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// REGION=UNITS pairs, comma-separated.
        #[arg(value_parser = parse_split)]
        split: BTreeMap<String, i64>,
    },
    /// Set the rebalance policy: demand | static | even.
    Policy {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// demand, static or even.
        policy: PolicyKind,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegionCmd {
    /// Every registered region, its liveness and the age of its last report.
    List,
    /// Move all of a region's unsold quota back to the pool (e.g. before maintenance);
    /// `--stop` ends the drain.
    Drain {
        /// Region name.
        region: String,
        /// Stop draining instead.
        #[arg(long)]
        stop: bool,
    },
    /// Show or set the home regions sales created from now on take (each buyer then buys only
    /// in their one home region among them: a global per-user limit). Sales already on keep
    /// the list they were created with.
    Homes {
        /// Replace the list, e.g. east,south,north ("none" clears it).
        #[arg(long, value_parser = parse_homes)]
        set: Option<RegionList>,
    },
}

/// Parses `east=300,south=400`.
fn parse_split(s: &str) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (r, n) = item
            .split_once('=')
            .ok_or_else(|| format!("'{item}' is not REGION=UNITS"))?;
        let n: i64 = n
            .trim()
            .parse()
            .map_err(|_| format!("'{item}': units must be an integer"))?;
        if n < 0 {
            return Err(format!("'{item}': units must not be negative"));
        }
        if out.insert(r.trim().to_string(), n).is_some() {
            return Err(format!("region '{}' named twice", r.trim()));
        }
    }
    if out.is_empty() {
        return Err("split must name at least one region".into());
    }
    Ok(out)
}

/// A region list given as one comma-separated value (a newtype, so clap takes it as one value
/// rather than many).
#[derive(Debug, Clone)]
pub(crate) struct RegionList(pub(crate) Vec<String>);

/// A comma-separated region list; "none" is the empty list.
fn parse_homes(s: &str) -> Result<RegionList, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(RegionList(Vec::new()));
    }
    let list: Vec<String> = s.split(',').map(|r| r.trim().to_string()).collect();
    if list.iter().any(String::is_empty) {
        return Err(format!(
            "expected regions like east,south (or none), got {s:?}"
        ));
    }
    Ok(RegionList(list))
}

fn parse_key(raw: &str) -> Result<IdempotencyKey, String> {
    IdempotencyKey::parse(raw).map_err(|e| e.0)
}

/// Where a token setting came from: the command line beats the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Given {
    /// A flag.
    CommandLine,
    /// An environment variable (`ADMIN_TOKEN`, `QUOTA_ADMIN_TOKEN_FILE`).
    Environment,
}

/// Which admin token to send, most explicit first: `--token` or `--token-file` on the
/// command line; the token file of a context named with `--context`; `ADMIN_TOKEN` or
/// `QUOTA_ADMIN_TOKEN_FILE` in the environment; the token file of the config file's current
/// context; the cluster env file's `ADMIN_TOKEN`, else its `ADMIN_TOKEN_FILE`. A token and a
/// token file at the same level are ambiguous and refused. `Ok(None)`: no token anywhere. A
/// file is read here (its first line, at least 16 characters); errors name the setting, never
/// the token.
pub(crate) fn pick_token(
    token: Option<(AdminToken, Given)>,
    token_file: Option<(PathBuf, Given)>,
    context: Option<&Selected>,
    cluster_env: &BTreeMap<String, String>,
) -> Result<Option<AdminToken>, String> {
    let read = |what: &str, path: &std::path::Path| {
        AdminToken::from_file(what, path)
            .map(Some)
            .map_err(|e| e.to_string())
    };
    let from_context = |chosen: Chosen| {
        context
            .filter(|c| c.chosen == chosen)
            .and_then(|c| c.context.token_file.as_ref().map(|f| (c, f)))
            .map(|(c, f)| read(&format!("token-file of context {:?}", c.name), f))
    };
    if let (Some((_, a)), Some((_, b))) = (&token, &token_file) {
        if a == b {
            return Err(match a {
                Given::CommandLine => "give one of --token and --token-file, not both".into(),
                Given::Environment => "both ADMIN_TOKEN and QUOTA_ADMIN_TOKEN_FILE are set; \
                                       unset one or pass --token-file"
                    .into(),
            });
        }
    }
    let at = |level: Given| -> Option<Result<Option<AdminToken>, String>> {
        if let Some((t, _)) = token.as_ref().filter(|(_, g)| *g == level) {
            return Some(Ok(Some(t.clone())));
        }
        token_file
            .as_ref()
            .filter(|(_, g)| *g == level)
            .map(|(p, _)| read("--token-file", p))
    };
    if let Some(picked) = at(Given::CommandLine)
        .or_else(|| from_context(Chosen::Explicitly))
        .or_else(|| at(Given::Environment))
        .or_else(|| from_context(Chosen::ByDefault))
    {
        return picked;
    }
    if let Some(t) = cluster_env.get("ADMIN_TOKEN").filter(|t| !t.is_empty()) {
        return Ok(Some(AdminToken::new(t.clone())));
    }
    match cluster_env
        .get("ADMIN_TOKEN_FILE")
        .filter(|p| !p.is_empty())
    {
        Some(p) => read(
            "ADMIN_TOKEN_FILE (cluster env file)",
            std::path::Path::new(p),
        ),
        None => Ok(None),
    }
}

/// Which coordinator URLs to use, most explicit first: `--url` (or `QUOTACTL_URLS`); a
/// context named with `--context`; the `COORDINATOR_*` environment; the config file's current
/// context; the cluster env file. Within the environment (and likewise within the file)
/// `COORDINATOR_URLS` is taken, else `COORDINATOR_URL` — but a `COORDINATOR_URL` that is not
/// in `COORDINATOR_URLS` wins: it was set on purpose to reach one particular instance
/// (`cluster.env` sets both, the single one being the list's first). `None`: none anywhere.
pub(crate) fn pick_urls(
    flag: Option<&str>,
    context: Option<&Selected>,
    env: &BTreeMap<String, String>,
    cluster_env: &BTreeMap<String, String>,
) -> Option<String> {
    let level = |vars: &BTreeMap<String, String>| {
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let norm = |u: &str| u.trim().trim_end_matches('/').to_string();
        match (get("COORDINATOR_URLS"), get("COORDINATOR_URL")) {
            (Some(list), Some(one)) if !list.split(',').any(|u| norm(u) == norm(&one)) => Some(one),
            (Some(list), _) => Some(list),
            (None, one) => one,
        }
    };
    let from_context = |chosen: Chosen| {
        context
            .filter(|c| c.chosen == chosen)
            .map(|c| c.context.urls.join(","))
    };
    flag.map(str::to_string)
        .or_else(|| from_context(Chosen::Explicitly))
        .or_else(|| level(env))
        .or_else(|| from_context(Chosen::ByDefault))
        .or_else(|| level(cluster_env))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Writes `content` to a fresh file.
    fn token_file(content: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("quotactl-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn the_most_explicit_token_setting_wins() {
        let shown =
            |r: Result<Option<AdminToken>, String>| r.map(|t| t.map(|t| t.expose().to_string()));
        let flag = |t: &str, f| Some((AdminToken::new(t), f));
        let file = token_file("auditor-token-0123456789\n");
        let path = |f| Some((file.clone(), f));
        let none = BTreeMap::new();
        let env: BTreeMap<String, String> = [(
            "ADMIN_TOKEN".to_string(),
            "from-cluster-env-0123".to_string(),
        )]
        .into();
        use Given::{CommandLine as Cmd, Environment as Env};
        let cases = [
            (
                flag("operator-token-0123456789", Cmd),
                None,
                &none,
                Ok(Some("operator-token-0123456789")),
            ),
            (None, path(Cmd), &none, Ok(Some("auditor-token-0123456789"))),
            (None, path(Env), &env, Ok(Some("auditor-token-0123456789"))),
            (
                flag("operator-token-0123456789", Env),
                None,
                &env,
                Ok(Some("operator-token-0123456789")),
            ),
            // A flag beats the environment, either way round.
            (
                flag("operator-token-0123456789", Env),
                path(Cmd),
                &none,
                Ok(Some("auditor-token-0123456789")),
            ),
            (
                flag("operator-token-0123456789", Cmd),
                path(Env),
                &none,
                Ok(Some("operator-token-0123456789")),
            ),
            (None, None, &env, Ok(Some("from-cluster-env-0123"))),
            (None, None, &none, Ok(None)),
        ];
        for (t, f, e, want) in cases {
            let want: Result<Option<String>, String> = want.map(|w| w.map(str::to_string));
            assert_eq!(
                shown(pick_token(t.clone(), f.clone(), None, e)),
                want,
                "{t:?} {f:?}"
            );
        }
        for level in [Cmd, Env] {
            let e = pick_token(
                flag("operator-token-0123456789", level),
                path(level),
                None,
                &none,
            )
            .unwrap_err();
            assert!(e.contains("not both") || e.contains("unset one"), "{e}");
        }
        let file_env: BTreeMap<String, String> =
            [("ADMIN_TOKEN_FILE".to_string(), file.display().to_string())].into();
        assert_eq!(
            shown(pick_token(None, None, None, &file_env)),
            Ok(Some("auditor-token-0123456789".to_string()))
        );
        let short = token_file("short\n");
        let e = pick_token(None, Some((short.clone(), Cmd)), None, &none).unwrap_err();
        assert!(
            e.contains("--token-file") && e.contains("at least 16"),
            "{e}"
        );
        for f in [file, short] {
            std::fs::remove_file(f).unwrap();
        }
    }

    #[test]
    fn the_most_explicit_url_setting_wins() {
        let vars = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        let none = vars(&[]);
        // What cluster.sh writes: both, the single one the list's first.
        let cluster = vars(&[
            ("COORDINATOR_URL", "http://a:1"),
            ("COORDINATOR_URLS", "http://a:1,http://b:2"),
        ]);
        let list = Some("http://a:1,http://b:2".to_string());
        assert_eq!(
            pick_urls(None, None, &cluster, &none),
            list,
            "sourced cluster.env"
        );
        assert_eq!(
            pick_urls(None, None, &none, &cluster),
            list,
            "read from the file"
        );
        assert_eq!(
            pick_urls(Some("http://c:3,http://d:4"), None, &cluster, &cluster).as_deref(),
            Some("http://c:3,http://d:4"),
            "the flag beats everything"
        );
        let single = vars(&[("COORDINATOR_URL", "http://c:3")]);
        assert_eq!(
            pick_urls(None, None, &single, &cluster).as_deref(),
            Some("http://c:3"),
            "the environment beats the file"
        );
        // One instance named on purpose beside a list that does not hold it.
        let mut both = cluster.clone();
        both.insert("COORDINATOR_URL".into(), "http://c:3/".into());
        assert_eq!(
            pick_urls(None, None, &both, &none).as_deref(),
            Some("http://c:3/")
        );
        both.insert("COORDINATOR_URL".into(), "http://b:2/".into());
        assert_eq!(
            pick_urls(None, None, &both, &none),
            list,
            "in the list: the list"
        );
        let only_list = vars(&[("COORDINATOR_URLS", "http://b:2"), ("COORDINATOR_URL", "")]);
        assert_eq!(
            pick_urls(None, None, &only_list, &none).as_deref(),
            Some("http://b:2")
        );
        assert_eq!(pick_urls(None, None, &none, &none), None);
    }

    #[test]
    fn json_is_an_alias_of_o_json_and_o_takes_four_formats() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["quotactl"], args].concat());
        let format = |args: &[&str]| {
            let cli = parse(args).unwrap();
            (cli.output, cli.json)
        };
        assert_eq!(format(&["status"]), (Format::Table, false));
        assert_eq!(format(&["status", "-o", "wide"]), (Format::Wide, false));
        assert_eq!(format(&["-o", "json", "status"]), (Format::Json, false));
        assert_eq!(
            format(&["status", "--output=table"]),
            (Format::Table, false)
        );
        assert_eq!(format(&["status", "--json"]), (Format::Table, true));
        assert_eq!(format(&["status", "-o", "yaml"]), (Format::Yaml, false));
        assert!(parse(&["status", "-o", "xml"]).is_err());
        assert!(parse(&["status", "--json", "-o", "wide"]).is_err());
        assert!(parse(&["completion", "bash"]).is_ok());
        assert!(parse(&["completion", "tcsh"]).is_err());
    }

    /// A context named with `--context` beats the `COORDINATOR_*` environment; the file's
    /// current context does not (a shell that exported them meant them), but beats the cluster
    /// env file. `--url` beats everything. The same levels hold for the token.
    #[test]
    fn contexts_sit_between_the_flags_and_the_cluster_env_file() {
        use crate::contexts::Context;
        let ctx = |chosen| Selected {
            name: "prod".into(),
            chosen,
            context: Context {
                urls: vec!["https://a:1".into(), "https://b:2".into()],
                token_file: Some(token_file("context-token-0123456789\n")),
                cacert: None,
                timeout: None,
            },
        };
        let (named, current) = (ctx(Chosen::Explicitly), ctx(Chosen::ByDefault));
        let env: BTreeMap<String, String> =
            [("COORDINATOR_URL".to_string(), "http://env:3".to_string())].into();
        let file: BTreeMap<String, String> = [
            ("COORDINATOR_URL".to_string(), "http://file:4".to_string()),
            (
                "ADMIN_TOKEN".to_string(),
                "from-cluster-env-0123".to_string(),
            ),
        ]
        .into();
        let none = BTreeMap::new();
        let both = Some("https://a:1,https://b:2".to_string());
        assert_eq!(pick_urls(None, Some(&named), &env, &file), both);
        assert_eq!(
            pick_urls(None, Some(&current), &env, &file).as_deref(),
            Some("http://env:3")
        );
        assert_eq!(pick_urls(None, Some(&current), &none, &file), both);
        assert_eq!(
            pick_urls(Some("http://flag:5"), Some(&named), &env, &file).as_deref(),
            Some("http://flag:5")
        );

        let token =
            |t: Result<Option<AdminToken>, String>| t.unwrap().unwrap().expose().to_string();
        let env_token = Some((
            AdminToken::new("environment-token-0123"),
            Given::Environment,
        ));
        let cmd_token = Some((
            AdminToken::new("command-line-token-0123"),
            Given::CommandLine,
        ));
        assert_eq!(
            token(pick_token(env_token.clone(), None, Some(&named), &file)),
            "context-token-0123456789"
        );
        assert_eq!(
            token(pick_token(env_token.clone(), None, Some(&current), &file)),
            "environment-token-0123"
        );
        assert_eq!(
            token(pick_token(None, None, Some(&current), &file)),
            "context-token-0123456789"
        );
        assert_eq!(
            token(pick_token(cmd_token, None, Some(&named), &file)),
            "command-line-token-0123"
        );
        assert_eq!(
            token(pick_token(None, None, None, &file)),
            "from-cluster-env-0123"
        );
        std::fs::remove_file(named.context.token_file.unwrap()).unwrap();
        std::fs::remove_file(current.context.token_file.unwrap()).unwrap();
    }

    #[test]
    fn status_watch_takes_optional_seconds_after_the_product() {
        let watch = |args: &[&str]| match Cli::try_parse_from([&["quotactl"], args].concat()) {
            Ok(Cli {
                command: Cmd::Status { id, watch },
                ..
            }) => Ok((id, watch)),
            Ok(_) => panic!("not status"),
            Err(e) => Err(e.kind()),
        };
        assert_eq!(watch(&["status"]), Ok((None, None)));
        assert_eq!(watch(&["status", "1001"]), Ok((Some(1001), None)));
        assert_eq!(
            watch(&["status", "1001", "--watch"]),
            Ok((Some(1001), Some(None)))
        );
        assert_eq!(
            watch(&["status", "1001", "--watch", "5"]),
            Ok((Some(1001), Some(Some(5))))
        );
        assert_eq!(
            watch(&["status", "--watch=5", "1001"]),
            Ok((Some(1001), Some(Some(5))))
        );
        assert!(watch(&["status", "1001", "--watch", "0"]).is_err());
        assert!(watch(&["status", "1001", "--watch", "soon"]).is_err());
    }

    #[test]
    fn splits_parse_and_bad_ones_are_explained() {
        let s = parse_split("east=300, south=400,").unwrap();
        assert_eq!(s["east"], 300);
        assert_eq!(s["south"], 400);
        assert_eq!(
            parse_split("east").unwrap_err(),
            "'east' is not REGION=UNITS"
        );
        assert_eq!(
            parse_split("east=1,east=2").unwrap_err(),
            "region 'east' named twice"
        );
        assert!(parse_split("east=-1").is_err());
        assert!(parse_split("").is_err());
    }
}
