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
    /// Postgres URL of this region's database.
    #[arg(long, env = "QUOTA_PG_URL")]
    pub pg_url: String,
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
    /// URL other processes use to reach this node (registered in etcd); default http://LISTEN.
    #[arg(long, env = "QUOTA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Redis URL of this region's admission filter.
    #[arg(long, env = "QUOTA_REDIS_URL")]
    pub redis_url: String,
    /// Postgres URL of this region's database (the truth).
    #[arg(long, env = "QUOTA_PG_URL")]
    pub pg_url: String,
    /// etcd endpoints, comma-separated.
    #[arg(
        long,
        env = "QUOTA_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    pub etcd_endpoints: Vec<String>,
    /// Postgres connection pool size.
    #[arg(long, env = "QUOTA_PG_POOL_SIZE", default_value_t = 16)]
    pub pg_pool_size: usize,
    /// Global purchase rate limit, requests per second (0 disables).
    #[arg(long, env = "QUOTA_GLOBAL_RATE_LIMIT", default_value_t = 50_000)]
    pub global_rate_limit: u32,
    /// Per-client-IP purchase rate limit, requests per second (0 disables; burst is 2×).
    #[arg(long, env = "QUOTA_IP_RATE_LIMIT", default_value_t = 100)]
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
    /// them); unset disables them.
    #[arg(long, env = "QUOTA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
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
            .unwrap_or_else(|| format!("http://{}", self.listen))
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

    fn strategy_of(extra: &[&str]) -> PurchaseStrategy {
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
        match Cli::try_parse_from(args).expect("parses").command {
            Command::Serve(cfg) => cfg.strategy,
            Command::Migrate(_) => unreachable!("serve was given"),
        }
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
