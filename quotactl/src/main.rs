//! `quotactl`: the operator CLI, a thin client of the coordinator's admin API.
//!
//! Where to connect comes from, most explicit first: `--url` (a comma-separated list, or
//! `QUOTACTL_URLS`) and `--token`/`--token-file`; a context of the config file named with
//! `--context`; `COORDINATOR_URLS` (or `COORDINATOR_URL`) and `ADMIN_TOKEN` /
//! `QUOTA_ADMIN_TOKEN_FILE`; the config file's current context; the local cluster's
//! `target/cluster/cluster.env` (written by `deploy/local/cluster.sh up`). Any coordinator
//! instance answers; writes reach the leader; a request that finds an instance unreachable or
//! between leaders goes to the next. Output is a table sized to its content, `-o wide` with
//! every column, `-o json` (`--json`) or `-o yaml`. Exit statuses: [`exit::Exit`].
//!
//! Modules: `args` (the command line), `contexts` (the config file), `commands` (one admin
//! call per command), `output` (the table renderer and `-o`), `exit` (the exit statuses).

mod args;
mod commands;
mod contexts;
mod exit;
mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use quota_shared::wire::IdempotencyKey;
use quotactl::{AdminClient, Endpoints};

use crate::args::{pick_token, pick_urls, Cli, Cmd, ConfigCmd, Given};
use crate::contexts::{ConfigFile, Selected};
use crate::exit::Exit;

/// One answer's wait when neither `--timeout` nor the context says.
const DEFAULT_TIMEOUT_S: u64 = 10;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Cmd::Completion { shell } = cli.command {
        commands::completion(shell);
        return Exit::Success.into();
    }
    match connect_and_run(cli, &matches) {
        Ok(exit) => exit.into(),
        Err(why) => {
            eprintln!("quotactl: {why}");
            Exit::Usage.into()
        }
    }
}

/// Everything after parsing: the config file and its context, where to connect, then the
/// command. `Err`: a usage or configuration error, said before anything was sent.
fn connect_and_run(cli: Cli, matches: &clap::ArgMatches) -> Result<Exit, String> {
    let given = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Given::CommandLine,
        _ => Given::Environment,
    };
    let (config_path, required) = match &cli.config {
        Some(p) => (Some(p.clone()), true),
        None => (contexts::default_path(|k| std::env::var(k).ok()), false),
    };
    let config = match &config_path {
        Some(p) => ConfigFile::load(p, required).map_err(|e| e.to_string())?,
        None => None,
    };
    if let Cmd::Config(cmd) = &cli.command {
        return config_command(cmd, config_path, config.as_ref(), cli.format());
    }
    let context: Option<Selected> = match (&config, cli.context.as_deref()) {
        (Some(f), name) => f.select(name).map_err(|e| e.to_string())?,
        (None, Some(name)) => {
            return Err(contexts::ContextError::NoFile {
                name: name.to_string(),
                path: config_path.map_or_else(|| "(no $HOME)".into(), |p| p.display().to_string()),
            }
            .to_string())
        }
        (None, None) => None,
    };
    // Fill the URLs / ADMIN_TOKEN from the context, the environment, else the cluster env file.
    let from_file = quota_shared::config::read_env_file(&cli.cluster_env).unwrap_or_default();
    let from_env: BTreeMap<String, String> = ["COORDINATOR_URLS", "COORDINATOR_URL"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let urls = pick_urls(cli.url.as_deref(), context.as_ref(), &from_env, &from_file);
    let token = pick_token(
        cli.token.clone().map(|t| (t, given("token"))),
        cli.token_file.clone().map(|p| (p, given("token_file"))),
        context.as_ref(),
        &from_file,
    )?;
    let (Some(urls), Some(token)) = (urls, token) else {
        return Err(format!(
            "no coordinator configured: pass --url and --token-file (or --token), use a context \
             (--context NAME; see `quotactl config view`), set COORDINATOR_URLS and ADMIN_TOKEN, \
             or start a local cluster (deploy/local/cluster.sh up) which writes {}",
            cli.cluster_env.display()
        ));
    };
    let endpoints = Endpoints::parse(&urls).map_err(|e| format!("--url: {e}"))?;
    let ctx = context.as_ref().map(|c| &c.context);
    let cacert = cli
        .cacert
        .clone()
        .or_else(|| ctx.and_then(|c| c.cacert.clone()));
    let timeout = cli
        .timeout
        .or_else(|| ctx.and_then(|c| c.timeout))
        .unwrap_or(DEFAULT_TIMEOUT_S);
    let answer = Duration::from_secs(timeout);
    let http = quota_serve::client_with_ca(cacert.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.timeout(answer)
                .connect_timeout(answer.min(Duration::from_secs(3)))
                .build()
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("--cacert: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // One key per invocation: the command's one change is applied at most once, however
    // often the client resends it.
    let key = cli.idempotency_key.clone().unwrap_or_else(|| {
        IdempotencyKey::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid key")
    });
    let client = AdminClient::new(endpoints, token.expose(), http).with_idempotency_key(key);
    Ok(match rt.block_on(commands::run(cli, client)) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("quotactl: {e}");
            Exit::of(&e)
        }
    })
}

/// `config view` and `config use-context`: no coordinator involved.
fn config_command(
    cmd: &ConfigCmd,
    path: Option<PathBuf>,
    file: Option<&ConfigFile>,
    format: output::Format,
) -> Result<Exit, String> {
    let Some(path) = path else {
        return Err("no config file location: set --config, QUOTACTL_CONFIG or HOME".into());
    };
    match cmd {
        ConfigCmd::View => {
            let view = contexts::ConfigView::new(&path, file);
            output::emit(format, &view, |v, _| output::config(v));
        }
        ConfigCmd::UseContext { name } => {
            if file.is_none() {
                return Err(format!(
                    "no config file at {}: write one first (see `quotactl config view`)",
                    path.display()
                ));
            }
            contexts::use_context(&path, name).map_err(|e| e.to_string())?;
            println!("current context: {name} ({})", path.display());
        }
    }
    Ok(Exit::Success)
}
