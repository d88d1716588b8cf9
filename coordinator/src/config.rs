//! `coordinator` settings: flags with environment fallbacks.

use std::net::SocketAddr;

use std::path::Path;

use clap::{Args, Parser, Subcommand};
use quota_etcd::EtcdArgs;
use quota_shared::admin_auth::{AdminToken, AdminTokens, Scope, MIN_TOKEN_CHARS};

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
    /// Log lines as `text` (for people) or `json` (one object a line, for a log pipeline).
    #[arg(long, global = true, env = "QUOTA_LOG_FORMAT", default_value = "text")]
    pub log_format: quota_shared::telemetry::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `coordinator` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admin API (boxed: its settings dwarf the other subcommand's).
    Serve(Box<ServeConfig>),
    /// Turn on etcd authentication with a role per party: the coordinators' role writes only
    /// the keys the coordinator owns, each region's role writes only under its own
    /// `regions/{r}/`. Creates a password file per user under `--credentials-dir` (0600) the
    /// first time; safe to run again after adding a region or replacing a password file.
    SetupEtcdAuth(SetupEtcdAuthConfig),
}

/// Settings of `coordinator setup-etcd-auth`.
#[derive(Debug, Clone, Args)]
pub struct SetupEtcdAuthConfig {
    /// etcd endpoints, comma-separated.
    #[arg(
        long,
        env = "QUOTA_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    pub etcd_endpoints: Vec<String>,
    /// CA certificate (PEM) of the etcd members' server certificates (`https://` endpoints).
    #[arg(long, env = "QUOTA_ETCD_CA_FILE")]
    pub etcd_ca_file: Option<std::path::PathBuf>,
    /// Every region of the deployment, comma-separated (one etcd user and role each).
    #[arg(long, value_delimiter = ',', required = true)]
    pub regions: Vec<String>,
    /// Directory of the password files: `root.password`, `quota-coordinator.password`,
    /// `quota-region-<r>.password`.
    #[arg(long)]
    pub credentials_dir: std::path::PathBuf,
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
    /// Where etcd is, and the user this coordinator is to it.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The operator's bearer token (at least 16 characters): every admin request may present
    /// it. Without `--region-admin-token-file` it is also what the audit presents to the
    /// region nodes. Prefer `--admin-token-file`: a flag's value shows in `ps`.
    #[arg(
        long,
        env = "QUOTA_ADMIN_TOKEN",
        hide_env_values = true,
        required_unless_present = "admin_token_file",
        conflicts_with = "admin_token_file"
    )]
    pub admin_token: Option<AdminToken>,
    /// File holding the operator's token (its first line; at least 16 characters), instead of
    /// `--admin-token`: every admin request may present it.
    #[arg(long, env = "QUOTA_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// File holding the auditor's token: read-only access (GET: products, status, regions,
    /// running the audit); any change with it is refused (403). Default: no auditor token.
    #[arg(long, env = "QUOTA_AUDITOR_TOKEN_FILE")]
    pub auditor_token_file: Option<std::path::PathBuf>,
    /// File holding the region-admin token: what the audit presents to the region nodes (give
    /// them the same file); refused (403) on this API. Default: the audit presents the
    /// operator's token, and the nodes accept their `--admin-token`.
    #[arg(long, env = "QUOTA_REGION_ADMIN_TOKEN_FILE")]
    pub region_admin_token_file: Option<std::path::PathBuf>,
    /// URL other instances forward writes to; default http(s)://LISTEN.
    #[arg(long, env = "QUOTA_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Serve the admin API over HTTPS.
    #[command(flatten)]
    pub tls: quota_serve::TlsArgs,
    /// CA certificate (PEM) of the region nodes' and other coordinators' HTTPS certificates
    /// (trusted besides the system's roots) for the audit's reads and forwarded writes.
    #[arg(long, env = "QUOTA_TLS_CA_FILE")]
    pub tls_ca_file: Option<std::path::PathBuf>,
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
            .unwrap_or_else(|| format!("{}://{}", self.tls.scheme(), self.listen))
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

    /// The admin tokens, read once at start: the ones the API accepts, each with its scope
    /// (operator; auditor and region-admin when given — the region-admin one only to be
    /// refused 403), and the one the audit presents to the region nodes (region-admin, else
    /// the operator's). An error is a sentence naming the flag, never a token.
    pub fn admin_tokens(&self) -> Result<(AdminTokens, AdminToken), String> {
        admin_tokens_of(
            self.admin_token.clone(),
            self.admin_token_file.as_deref(),
            self.auditor_token_file.as_deref(),
            self.region_admin_token_file.as_deref(),
        )
    }
}

/// [`ServeConfig::admin_tokens`] from the four token settings.
fn admin_tokens_of(
    operator: Option<AdminToken>,
    operator_file: Option<&Path>,
    auditor_file: Option<&Path>,
    region_admin_file: Option<&Path>,
) -> Result<(AdminTokens, AdminToken), String> {
    let read =
        |flag: &str, path: &Path| AdminToken::from_file(flag, path).map_err(|e| e.to_string());
    let operator = match (operator, operator_file) {
        (Some(_), Some(_)) => {
            return Err("give one of --admin-token and --admin-token-file, not both".into())
        }
        (None, None) => {
            return Err(
                "an operator token is required: --admin-token-file (or --admin-token)".into(),
            )
        }
        (None, Some(path)) => read("--admin-token-file", path)?,
        (Some(t), None) if t.expose().len() < MIN_TOKEN_CHARS => {
            return Err(format!(
                "--admin-token must be at least {MIN_TOKEN_CHARS} characters"
            ))
        }
        (Some(t), None) => t,
    };
    let mut accepted = AdminTokens::default();
    accepted
        .add(Scope::Operator, operator.clone())
        .map_err(|e| e.to_string())?;
    if let Some(path) = auditor_file {
        accepted
            .add(Scope::Auditor, read("--auditor-token-file", path)?)
            .map_err(|e| e.to_string())?;
    }
    let for_regions = match region_admin_file {
        Some(path) => {
            let t = read("--region-admin-token-file", path)?;
            accepted
                .add(Scope::RegionAdmin, t.clone())
                .map_err(|e| e.to_string())?;
            t
        }
        None => operator,
    };
    Ok((accepted, for_regions))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use quota_shared::admin_auth::{Denied, Scope};

    use super::*;

    const OPERATOR: &str = "operator-token-0123456789";
    const AUDITOR: &str = "auditor-token-0123456789";
    const REGION: &str = "region-admin-token-0123456789";

    /// A token file removed on drop.
    struct TokenFile(std::path::PathBuf);

    impl TokenFile {
        fn new(content: &str) -> TokenFile {
            let p = std::env::temp_dir().join(format!("coord-token-{}", uuid::Uuid::new_v4()));
            std::fs::write(&p, content).unwrap();
            TokenFile(p)
        }
        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TokenFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn serve(extra: &[&str]) -> Result<ServeConfig, clap::Error> {
        let mut args = vec![
            "coordinator",
            "serve",
            "--etcd-endpoints",
            "http://127.0.0.1:2379",
        ];
        args.extend_from_slice(extra);
        match Cli::try_parse_from(args)?.command {
            Command::Serve(cfg) => Ok(*cfg),
            Command::SetupEtcdAuth(_) => unreachable!("serve was given"),
        }
    }

    fn scope(tokens: &AdminTokens, t: &str) -> Option<Scope> {
        tokens.scope_of(t)
    }

    /// `--admin-token` alone works as before scopes: the one token is the operator's and is
    /// what the audit sends the regions.
    #[test]
    fn the_single_token_setup_is_unchanged() {
        let cfg = serve(&["--admin-token", OPERATOR]).unwrap();
        let (accepted, for_regions) = cfg.admin_tokens().unwrap();
        assert_eq!(scope(&accepted, OPERATOR), Some(Scope::Operator));
        assert_eq!(for_regions.expose(), OPERATOR);
        assert!(
            !format!("{cfg:?}").contains(OPERATOR),
            "Debug shows no token"
        );
        let e = serve(&["--admin-token", "short"])
            .unwrap()
            .admin_tokens()
            .unwrap_err();
        assert!(e.contains("at least 16"), "{e}");
        assert!(!e.contains("short"), "{e}");
    }

    #[test]
    fn token_files_give_each_scope_its_token_and_the_regions_theirs() {
        let (op, au, ra) = (
            TokenFile::new(&format!("{OPERATOR}\n")),
            TokenFile::new(&format!("{AUDITOR}\n")),
            TokenFile::new(&format!("{REGION}\n")),
        );
        let cfg = serve(&[
            "--admin-token-file",
            op.arg(),
            "--auditor-token-file",
            au.arg(),
            "--region-admin-token-file",
            ra.arg(),
        ])
        .unwrap();
        let (accepted, for_regions) = cfg.admin_tokens().unwrap();
        assert_eq!(scope(&accepted, OPERATOR), Some(Scope::Operator));
        assert_eq!(scope(&accepted, AUDITOR), Some(Scope::Auditor));
        assert_eq!(scope(&accepted, REGION), Some(Scope::RegionAdmin));
        assert_eq!(for_regions.expose(), REGION);
        // The region-admin token is known here only to be refused.
        let h = format!("Bearer {REGION}");
        assert_eq!(
            accepted.authorize([h.as_bytes()], Scope::Auditor),
            Err(Denied::Forbidden {
                held: Scope::RegionAdmin,
                needed: Scope::Auditor
            })
        );
        // The legacy flag with the other files: the same, with the flag's token.
        let cfg = serve(&["--admin-token", OPERATOR, "--auditor-token-file", au.arg()]).unwrap();
        let (accepted, for_regions) = cfg.admin_tokens().unwrap();
        assert_eq!(scope(&accepted, AUDITOR), Some(Scope::Auditor));
        assert_eq!(for_regions.expose(), OPERATOR);
    }

    #[test]
    fn unusable_token_settings_are_refused_with_the_flag_named() {
        let op = TokenFile::new(OPERATOR);
        assert!(serve(&[]).is_err(), "an operator token is required");
        assert!(
            serve(&["--admin-token", OPERATOR, "--admin-token-file", op.arg()]).is_err(),
            "one of the two"
        );
        let short = TokenFile::new("0123456789\n");
        let e = serve(&[
            "--admin-token-file",
            op.arg(),
            "--auditor-token-file",
            short.arg(),
        ])
        .unwrap()
        .admin_tokens()
        .unwrap_err();
        assert!(
            e.starts_with("--auditor-token-file ") && e.contains("at least 16"),
            "{e}"
        );
        let same = TokenFile::new(OPERATOR);
        let e = serve(&[
            "--admin-token-file",
            op.arg(),
            "--region-admin-token-file",
            same.arg(),
        ])
        .unwrap()
        .admin_tokens()
        .unwrap_err();
        assert!(e.contains("same"), "{e}");
        let e = serve(&["--admin-token-file", "/nonexistent/operator.token"])
            .unwrap()
            .admin_tokens()
            .unwrap_err();
        assert!(
            e.contains("--admin-token-file /nonexistent/operator.token"),
            "{e}"
        );
        // Checked in code too, not only by clap.
        assert!(admin_tokens_of(None, None, None, None).is_err());
        assert!(admin_tokens_of(Some(AdminToken::new(OPERATOR)), Some(&op.0), None, None).is_err());
    }
}
