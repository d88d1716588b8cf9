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
    /// Bearer token every admin request must present (at least 16 characters).
    #[arg(long, env = "QUOTA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
}
