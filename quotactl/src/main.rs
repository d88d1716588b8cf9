//! `quotactl`: the operator CLI, a thin client of the coordinator's admin API.
//!
//! Where to connect comes from `--url` (a comma-separated list) and `--token`/`--token-file`,
//! else `COORDINATOR_URLS` (or `COORDINATOR_URL`) and `ADMIN_TOKEN`/`QUOTA_ADMIN_TOKEN_FILE`,
//! else the local cluster's `target/cluster/cluster.env` (written by `deploy/local/cluster.sh
//! up`). Any coordinator instance answers; writes reach the leader; a request that finds an
//! instance unreachable or between leaders goes to the next. Output is a table sized to its
//! content, `-o wide` with every column, or `-o json` (`--json`). Exit status: 0 success; 1 the
//! coordinator refused, could not be reached, or (audit) the books do not balance; 2 bad
//! command line or (audit) a region could not be read.
//!
//! Modules: `args` (the command line), `commands` (one admin call per command), `output`
//! (the table renderer and `-o`).

mod args;
mod commands;
mod output;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use quota_shared::wire::IdempotencyKey;
use quotactl::{AdminClient, Endpoints};

use crate::args::{pick_token, pick_urls, Cli, Cmd, Given};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Cmd::Completion { shell } = cli.command {
        commands::completion(shell);
        return ExitCode::SUCCESS;
    }
    // Fill the URLs / ADMIN_TOKEN from the environment, else the cluster env file.
    let from_file = quota_shared::config::read_env_file(&cli.cluster_env).unwrap_or_default();
    let from_env: BTreeMap<String, String> = ["COORDINATOR_URLS", "COORDINATOR_URL"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let urls = pick_urls(cli.url.as_deref(), &from_env, &from_file);
    let given = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Given::CommandLine,
        _ => Given::Environment,
    };
    let token = match pick_token(
        cli.token.clone().map(|t| (t, given("token"))),
        cli.token_file.clone().map(|p| (p, given("token_file"))),
        &from_file,
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quotactl: {e}");
            return ExitCode::from(2);
        }
    };
    let (Some(urls), Some(token)) = (urls, token) else {
        eprintln!(
            "quotactl: no coordinator configured: pass --url and --token-file (or --token), set \
             COORDINATOR_URLS and ADMIN_TOKEN, or start a local cluster \
             (deploy/local/cluster.sh up) which writes {}",
            cli.cluster_env.display()
        );
        return ExitCode::from(2);
    };
    let endpoints = match Endpoints::parse(&urls) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("quotactl: --url: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // One key per invocation: the command's one change is applied at most once, however
    // often the client resends it.
    let key = cli.idempotency_key.clone().unwrap_or_else(|| {
        IdempotencyKey::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid key")
    });
    let http = match quota_serve::client_with_ca(cli.cacert.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|b| {
            let answer = Duration::from_secs(cli.timeout);
            b.timeout(answer)
                .connect_timeout(answer.min(Duration::from_secs(3)))
                .build()
                .map_err(|e| e.to_string())
        }) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("quotactl: --cacert: {e}");
            return ExitCode::from(2);
        }
    };
    let client = AdminClient::new(endpoints, token.expose(), http).with_idempotency_key(key);
    match rt.block_on(commands::run(cli, client)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quotactl: {e}");
            ExitCode::from(1)
        }
    }
}
