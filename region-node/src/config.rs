//! `region-node` settings: flags with environment fallbacks (see `quota_shared::config` for
//! config files).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Command line of the `region-node` binary.
#[derive(Debug, Parser)]
#[command(
    name = "region-node",
    version,
    about = "One region's flash-sale service"
)]
pub struct Cli {
    /// Config file of NAME=value lines (env var names below); flags and env override it.
    #[arg(long, global = true, env = "QUOTA_CONFIG")]
    pub config: Option<String>,
    /// Log lines as `text` (for people) or `json` (one object a line, for a log pipeline).
    #[arg(long, global = true, env = "QUOTA_LOG_FORMAT", default_value = "text")]
    pub log_format: quota_shared::telemetry::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `region-node` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the region's HTTP API (applies migrations first).
    Serve(Box<ServeConfig>),
    /// Apply the database migrations and exit.
    Migrate(MigrateConfig),
}

/// Settings of `region-node migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateConfig {
    /// This region's Postgres.
    #[command(flatten)]
    pub pg: crate::backends::PgArgs,
}

/// Settings of `region-node serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// This region's name (lowercase letters, digits, '-').
    #[arg(long, env = "QUOTA_REGION")]
    pub region: String,
    /// Address to listen on.
    #[arg(long, env = "QUOTA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Serve HTTPS (the public API and the admin audit endpoint).
    #[command(flatten)]
    pub tls: quota_serve::TlsArgs,
    /// URL other processes use to reach this node (registered in etcd); default http(s)://LISTEN.
    #[arg(long, env = "QUOTA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// This region's Redis (the admission filter).
    #[command(flatten)]
    pub redis: crate::backends::RedisArgs,
    /// This region's Postgres (the truth).
    #[command(flatten)]
    pub pg: crate::backends::PgArgs,
    /// Where etcd is, and the user this region is to it.
    #[command(flatten)]
    pub etcd: quota_etcd::EtcdArgs,
    /// Postgres connection pool size.
    #[arg(long, env = "QUOTA_PG_POOL_SIZE", default_value_t = 16)]
    pub pg_pool_size: usize,
    /// Global purchase rate limit, requests per second (0 disables).
    #[arg(long, env = "QUOTA_GLOBAL_RATE_LIMIT", default_value_t = 50_000)]
    pub global_rate_limit: u32,
    /// Per-client-IP purchase rate limit, requests per second (0 disables; burst is 2×). The
    /// client is the TCP peer, or the address `--trusted-proxies` vouch for. Given twice, the
    /// last one wins (a harness or wrapper script may set a default before the caller's flags).
    #[arg(
        long,
        env = "QUOTA_IP_RATE_LIMIT",
        default_value_t = 100,
        overrides_with = "ip_rate_limit"
    )]
    pub ip_rate_limit: u32,
    /// Per-user purchase rate limit, requests per second (0 disables; burst is 2×, min 4).
    #[arg(long, env = "QUOTA_USER_RATE_LIMIT", default_value_t = 2)]
    pub user_rate_limit: u32,
    /// How often Redis is re-derived from Postgres, milliseconds.
    #[arg(long, env = "QUOTA_RECONCILE_MS", default_value_t = 100)]
    pub reconcile_ms: u64,
    /// How long (ms) a buyer may wait, first come first served, for stock that is on its way
    /// to this region before hearing 503 awaiting_stock; 0 answers at once. A wait is answered
    /// the moment a unit arrives, so buyers keep their place in line and do not retry.
    #[arg(long, env = "QUOTA_AWAIT_STOCK_MS", default_value_t = 500)]
    pub await_stock_ms: u64,
    /// Seconds a buyer has to pay for an order before it expires and its units go back on
    /// sale (a sale's own `payment_window_s` wins). Default 15 minutes.
    #[arg(long, env = "QUOTA_PAYMENT_WINDOW_S", default_value_t = 900,
          value_parser = clap::value_parser!(i32).range(1..=2_592_000))]
    pub payment_window_s: i32,
    /// How often pending orders past their payment window are expired, milliseconds.
    #[arg(long, env = "QUOTA_EXPIRY_SWEEP_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub expiry_sweep_ms: u64,
    /// File holding the payment system's token (its first line; at least 16 characters): the
    /// one token `POST /v1/orders/{id}/pay` accepts, and it opens nothing else. Without it
    /// payments are refused (401).
    #[arg(long, env = "QUOTA_PAYMENTS_TOKEN_FILE")]
    pub payments_token_file: Option<std::path::PathBuf>,
    /// A Redis ticket older than this (ms) is treated as abandoned (its process died).
    #[arg(long, env = "QUOTA_TICKET_EXPIRY_MS", default_value_t = 15_000)]
    pub ticket_expiry_ms: u64,
    /// TTL of the region's heartbeat lease in etcd, seconds.
    #[arg(long, env = "QUOTA_LEASE_TTL_S", default_value_t = 3)]
    pub lease_ttl_s: i64,
    /// This node process's name within its region (its heartbeat and reports are kept under
    /// it, so several processes can serve one region): 1-64 of A-Z a-z 0-9 - _ . ; e.g. the pod
    /// name. Default: a random name per start.
    #[arg(long, env = "QUOTA_PROCESS_ID")]
    pub process_id: Option<String>,
    /// Timeout of one Redis command, milliseconds.
    #[arg(long, env = "QUOTA_REDIS_TIMEOUT_MS", default_value_t = 500)]
    pub redis_timeout_ms: u64,
    /// Bearer token for the region's admin endpoints (the coordinator's audit reads through
    /// them); unset disables them. With `--region-admin-token-file` the audit endpoint takes
    /// that token only, and this one is refused there (403).
    #[arg(long, env = "QUOTA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<quota_shared::admin_auth::AdminToken>,
    /// File holding the region-admin token (its first line; at least 16 characters): the one
    /// token the audit endpoint accepts, the one the coordinators present (their
    /// `--region-admin-token-file`), so that the operator's token never leaves the
    /// coordinators. Without it the endpoint takes `--admin-token` (one shared token).
    #[arg(long, env = "QUOTA_REGION_ADMIN_TOKEN_FILE")]
    pub region_admin_token_file: Option<std::path::PathBuf>,
    /// Moved: home regions are now part of each sale (`quotactl region homes --set …`), so
    /// that every node follows one list and a changed list never re-homes a sale's buyers.
    /// Refused with that explanation when given.
    #[arg(long, env = "QUOTA_HOME_REGIONS", value_delimiter = ',', hide = true)]
    pub home_regions: Vec<String>,
    /// Purchase strategy: pessimistic (v1, row lock), optimistic (v2, version column),
    /// redis-gate (v3, Redis + conditional update, default), group-commit (v4, redis-gate +
    /// group commit). pessimistic/optimistic exist for benchmarks.
    #[arg(long, env = "QUOTA_STRATEGY", value_enum, default_value = "v3")]
    pub strategy: crate::strategy::PurchaseStrategy,
    /// Transaction isolation of every database connection.
    #[arg(
        long,
        env = "QUOTA_ISOLATION",
        value_enum,
        default_value = "read-committed"
    )]
    pub isolation: crate::db::Isolation,
    /// Fault injection for tests (`crash_after_release_commit`, `lost_commit_answer[:MS]`,
    /// `lost_commit_answer_then_down[:MS]`). Never set in production.
    #[arg(long, env = "QUOTA_FAILPOINT", hide = true)]
    pub failpoint: Option<String>,
    /// Timeout of one Postgres statement, milliseconds (also the server's statement_timeout).
    #[arg(long, env = "QUOTA_PG_TIMEOUT_MS", default_value_t = 2_000)]
    pub pg_timeout_ms: u64,
    /// group-commit (v4): purchases that may wait per product for their batch; one more is
    /// refused at once (503, its Redis tokens given back) instead of queueing without bound.
    #[arg(long, env = "QUOTA_GROUP_COMMIT_QUEUE", default_value_t = 1024)]
    pub group_commit_queue: usize,
    /// Who the buyer is: verified buyer tokens (off unless a key is given).
    #[command(flatten)]
    pub buyer_token: BuyerTokenConfig,
    /// Reverse proxies or load balancers in front of the node (CIDRs or single addresses,
    /// comma-separated; default none). A request whose TCP peer is one of them is rate-limited
    /// per IP by the right-most `X-Forwarded-For` address that is not itself trusted, so buyers
    /// behind a load balancer do not all share one bucket; from anyone else the header is
    /// ignored, so a client cannot pick its own bucket.
    #[arg(
        long,
        env = "QUOTA_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_trusted_proxy
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where this region's order events are delivered (result notification); off without
    /// `--webhook-url`.
    #[command(flatten)]
    pub webhook: crate::outbox::WebhookArgs,
}

/// Buyer-token (JWT) verification settings. With neither key flag, verification is off and the
/// `user_id` a client sends is believed: for development only, since anyone can then buy as
/// anyone. With one, every purchase and every read of a user's orders must carry
/// `Authorization: Bearer <jwt>` whose `sub` is the buyer's user id. Only paths are held here:
/// the key material is read once at start and never logged.
#[derive(Debug, Clone, Args)]
pub struct BuyerTokenConfig {
    /// File holding the HS256 shared secret (one trailing newline is dropped; at least 32
    /// bytes). Turns verification on; excludes `--buyer-token-public-key-file`.
    #[arg(
        long,
        env = "QUOTA_BUYER_TOKEN_HS256_SECRET_FILE",
        conflicts_with = "buyer_token_public_key_file",
        requires_all = ["buyer_token_issuer", "buyer_token_audience"]
    )]
    pub buyer_token_hs256_secret_file: Option<std::path::PathBuf>,
    /// File holding the token issuer's PEM public key (RS256 or ES256, see
    /// `--buyer-token-alg`). Turns verification on; excludes the HS256 secret.
    #[arg(
        long,
        env = "QUOTA_BUYER_TOKEN_PUBLIC_KEY_FILE",
        requires_all = ["buyer_token_issuer", "buyer_token_audience"]
    )]
    pub buyer_token_public_key_file: Option<std::path::PathBuf>,
    /// Algorithm of the public key: RS256 (default) or ES256. The only one accepted: a token
    /// naming any other (`none`, HS256 …) is refused.
    #[arg(
        long,
        env = "QUOTA_BUYER_TOKEN_ALG",
        value_enum,
        ignore_case = true,
        conflicts_with = "buyer_token_hs256_secret_file"
    )]
    pub buyer_token_alg: Option<BuyerTokenAlg>,
    /// The `iss` a token must carry (required with a key).
    #[arg(long, env = "QUOTA_BUYER_TOKEN_ISSUER")]
    pub buyer_token_issuer: Option<String>,
    /// The `aud` a token must carry (required with a key).
    #[arg(long, env = "QUOTA_BUYER_TOKEN_AUDIENCE")]
    pub buyer_token_audience: Option<String>,
    /// Clock skew allowed on `exp` (and `nbf`), seconds.
    #[arg(long, env = "QUOTA_BUYER_TOKEN_LEEWAY_S", default_value_t = 5)]
    pub buyer_token_leeway_s: u64,
}

/// The signature algorithm of a buyer-token public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuyerTokenAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (an RSA public key).
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256 (an EC public key).
    #[value(name = "ES256")]
    Es256,
}

/// One `--trusted-proxies` entry: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address
/// (`127.0.0.1`, taken as /32 or /128).
fn parse_trusted_proxy(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{raw:?} is not a CIDR (10.0.0.0/8) or an IP address"))
}

impl ServeConfig {
    /// This process's name: `--process-id`, or a fresh random one.
    pub fn process_id(&self) -> String {
        self.process_id
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| format!("node-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The URL registered in etcd.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{}://{}", self.tls.scheme(), self.listen))
    }
    /// Reconcile period.
    pub fn reconcile_every(&self) -> Duration {
        Duration::from_millis(self.reconcile_ms.max(10))
    }
    /// Redis command timeout.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms.max(10))
    }
    /// Postgres statement timeout.
    pub fn pg_timeout(&self) -> Duration {
        Duration::from_millis(self.pg_timeout_ms.max(50))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};
    use crate::strategy::PurchaseStrategy;

    fn serve(extra: &[&str]) -> Result<super::ServeConfig, clap::Error> {
        let mut args = vec![
            "region-node",
            "serve",
            "--region",
            "east",
            "--redis-url",
            "redis://127.0.0.1/",
            "--pg-url",
            "postgres://localhost/quota",
            "--etcd-endpoints",
            "http://127.0.0.1:2379",
        ];
        args.extend_from_slice(extra);
        match Cli::try_parse_from(args)?.command {
            Command::Serve(cfg) => Ok(*cfg),
            Command::Migrate(_) => unreachable!("serve was given"),
        }
    }

    /// `--trusted-proxies` takes CIDRs and bare addresses of both families; default none.
    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        assert!(serve(&[]).unwrap().trusted_proxies.is_empty());
        let cfg = serve(&["--trusted-proxies", "10.0.0.0/8, 127.0.0.1,fd00::/8,::1"]).unwrap();
        let shown: Vec<String> = cfg
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8", "::1/128"]);
        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0"] {
            assert!(serve(&["--trusted-proxies", bad]).is_err(), "{bad}");
        }
    }

    /// A later `--ip-rate-limit` overrides an earlier one (the test harness and wrapper
    /// scripts put a default first).
    #[test]
    fn the_last_ip_rate_limit_wins() {
        let cfg = serve(&["--ip-rate-limit", "0", "--ip-rate-limit", "7"]).unwrap();
        assert_eq!(cfg.ip_rate_limit, 7);
    }

    /// The buyer-token flags: one key at most, issuer and audience with a key, the algorithm
    /// only with a public key; ES256 in any case.
    #[test]
    fn buyer_token_flags_go_together() {
        let key = ["--buyer-token-public-key-file", "k.pem"];
        let names = ["--buyer-token-issuer", "i", "--buyer-token-audience", "a"];
        let off = serve(&[]).unwrap().buyer_token;
        assert!(off.buyer_token_hs256_secret_file.is_none() && off.buyer_token_alg.is_none());
        assert_eq!(off.buyer_token_leeway_s, 5);
        let on = serve(&[&key[..], &names[..], &["--buyer-token-alg", "es256"]].concat())
            .unwrap()
            .buyer_token;
        assert_eq!(on.buyer_token_alg, Some(super::BuyerTokenAlg::Es256));
        assert!(serve(&key).is_err(), "a key needs issuer and audience");
        let both = [
            &key[..],
            &names[..],
            &["--buyer-token-hs256-secret-file", "s"],
        ]
        .concat();
        assert!(serve(&both).is_err(), "one key only");
        let alg = [&names[..], &["--buyer-token-hs256-secret-file", "s"]].concat();
        assert!(serve(&[&alg[..], &["--buyer-token-alg", "RS256"]].concat()).is_err());
        assert!(serve(&alg).is_ok());
    }

    fn strategy_of(extra: &[&str]) -> PurchaseStrategy {
        serve(extra).expect("parses").strategy
    }

    /// `--strategy` takes the descriptive names and the v1…v4 spellings scripts, tests and
    /// benchmarks pass; the default is redis-gate (v3).
    #[test]
    fn strategy_flag_accepts_names_and_aliases() {
        assert_eq!(strategy_of(&[]), PurchaseStrategy::RedisGate);
        for (flag, want) in [
            ("v1", PurchaseStrategy::Pessimistic),
            ("v2", PurchaseStrategy::Optimistic),
            ("v3", PurchaseStrategy::RedisGate),
            ("v4", PurchaseStrategy::GroupCommit),
            ("group-commit", PurchaseStrategy::GroupCommit),
        ] {
            assert_eq!(strategy_of(&["--strategy", flag]), want, "{flag}");
        }
    }
}
