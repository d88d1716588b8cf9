//! `region-node`: parse config, wire the node, wait for SIGTERM / Ctrl-C.

use anyhow::Context;
use clap::Parser;
use region_node::{Cli, Command, RegionNode};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    quota_shared::config::load_config_from_args(&args)?;
    let cli = Cli::parse();
    quota_shared::telemetry::init_as("info", cli.log_format);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Migrate(m) => {
                let n = region_node::migrate(&m)
                    .await
                    .context("applying migrations")?;
                println!("applied {n} migration(s); schema is current");
                Ok(())
            }
            Command::Serve(cfg) => {
                let metrics = region_node::install_metrics(&cfg.region);
                let node = RegionNode::new(*cfg, metrics)?;
                node.run(quota_shared::shutdown::on_signal()).await?;
                Ok(())
            }
        }
    })
}
