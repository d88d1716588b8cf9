//! `coordinator` settings: flags with environment fallbacks.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

/// Command line of the `coordinator` binary.
#[derive(Debug, Parser)]
#[command(
    name = "coordinator",
    version,
    about = "Global quota ledger and admin API"
)]
pub struct Cli {
    /// Config file of NAME=value lines (env var names below); flags and env override it.
    #[arg(long, global = true, env = "QUOTA_CONFIG")]
    pub config: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `coordinator` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admin API.
    Serve(ServeConfig),
}

/// Settings of `coordinator serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// This instance's id (e.g. coordinator-1).
    #[arg(long, env = "QUOTA_COORDINATOR_ID", default_value = "coordinator-1")]
    pub id: String,
    /// Address the admin API listens on.
    #[arg(long, env = "QUOTA_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// etcd endpoints, comma-separated.
    #[arg(
        long,
        env = "QUOTA_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    pub etcd_endpoints: Vec<String>,
    /// Bearer token every admin request must present (at least 16 characters); also sent to
    /// region nodes' admin endpoints by the audit.
    #[arg(long, env = "QUOTA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    /// URL other instances forward writes to; default http://LISTEN.
    #[arg(long, env = "QUOTA_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// TTL of the leadership lease, seconds (a dead leader is replaced after about this long).
    #[arg(long, env = "QUOTA_LEASE_TTL_S", default_value_t = 2)]
    pub lease_ttl_s: i64,
    /// Rebalance period, milliseconds.
    #[arg(long, env = "QUOTA_REBALANCE_MS", default_value_t = 100)]
    pub rebalance_ms: u64,
    /// Smallest move worth making, units.
    #[arg(long, env = "QUOTA_POLICY_MIN_MOVE", default_value_t = 1)]
    pub policy_min_move: i64,
    /// Hysteresis band as a fraction of a region's target (no move inside it).
    #[arg(long, env = "QUOTA_POLICY_HYSTERESIS", default_value_t = 0.2)]
    pub policy_hysteresis: f64,
    /// Units every live region is given at least (demand policy).
    #[arg(long, env = "QUOTA_POLICY_FLOOR", default_value_t = 1)]
    pub policy_floor: i64,
    /// Endgame threshold: with this few units left, all go to the busiest region (0 = auto).
    #[arg(long, env = "QUOTA_POLICY_ENDGAME_UNITS", default_value_t = 0)]
    pub policy_endgame_units: i64,
    /// The audit calls a grant or release that stays in transit, unchanged, for this long
    /// (milliseconds) while its region answers "stuck" (a violation).
    #[arg(long, env = "QUOTA_AUDIT_STUCK_AFTER_MS", default_value_t = 5_000)]
    pub audit_stuck_after_ms: u64,
    /// Test knob: pretend this instance's clock is this many milliseconds off where it stamps
    /// values regions read. Never set in production.
    #[arg(
        long,
        env = "QUOTA_CLOCK_SKEW_MS",
        default_value_t = 0,
        allow_negative_numbers = true,
        hide = true
    )]
    pub clock_skew_ms: i64,
}

impl ServeConfig {
    /// URL announced in the election.
    pub fn advertise_url(&self) -> String {
        self.advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Policy parameters from the flags.
    pub fn policy_params(&self) -> quota_shared::policy::PolicyParams {
        quota_shared::policy::PolicyParams {
            min_move: self.policy_min_move,
            hysteresis: self.policy_hysteresis,
            floor: self.policy_floor,
            endgame_units: self.policy_endgame_units,
        }
    }
}
