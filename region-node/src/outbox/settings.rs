//! The webhook flags of `region-node serve`, and the checked settings they become (the
//! secret read once, at start).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use quota_shared::secret::Secret;

use super::policy::Backoff;

/// Shortest webhook secret accepted, in bytes (as for an HS256 buyer-token secret).
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Where order events are delivered (`--webhook-url`), how they are signed and how hard the
/// node tries. Without a URL nothing is sent; the events are kept for the buyers' feed either
/// way.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// The one URL every order event of this region is POSTed to (http or https). One
    /// receiver, so delivery state is one per event; fan out behind it if several systems need
    /// the events.
    #[arg(long, env = "QUOTA_WEBHOOK_URL", requires = "webhook_secret_file")]
    pub webhook_url: Option<String>,
    /// File holding the HMAC-SHA256 key events are signed with (its first line; at least 32
    /// bytes), read once at start. Required with `--webhook-url`.
    #[arg(long, env = "QUOTA_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Attempts per event before it is dead-lettered (with every later event of its order).
    #[arg(long, env = "QUOTA_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_max_attempts: u32,
    /// Longest one delivery may take, milliseconds; longer counts as a failed attempt.
    #[arg(long, env = "QUOTA_WEBHOOK_TIMEOUT_MS", default_value_t = 5_000)]
    pub webhook_timeout_ms: u64,
    /// Wait after an event's first failed attempt, milliseconds; doubled after each further
    /// one, up to `--webhook-backoff-max-ms`, jittered.
    #[arg(long, env = "QUOTA_WEBHOOK_BACKOFF_MS", default_value_t = 1_000)]
    pub webhook_backoff_ms: u64,
    /// Longest wait between two attempts at one event, milliseconds.
    #[arg(long, env = "QUOTA_WEBHOOK_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub webhook_backoff_max_ms: u64,
    /// How often the outbox is looked at when it had nothing due, milliseconds.
    #[arg(long, env = "QUOTA_WEBHOOK_POLL_MS", default_value_t = 250)]
    pub webhook_poll_ms: u64,
}

/// Checked webhook settings (the secret in memory, never printed).
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    /// Where events go.
    pub(crate) url: reqwest::Url,
    /// The signing key.
    pub(crate) secret: Secret,
    /// Attempts before the dead letters.
    pub(crate) max_attempts: u32,
    /// Per-request timeout.
    pub(crate) timeout: Duration,
    /// Waits between attempts.
    pub(crate) backoff: Backoff,
    /// Idle poll period.
    pub(crate) poll: Duration,
}

impl WebhookArgs {
    /// The settings, `None` without a URL; an error names what is wrong (never the secret).
    pub(crate) fn webhook(&self) -> Result<Option<Webhook>, String> {
        let Some(raw) = self.webhook_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(raw)
            .map_err(|e| format!("--webhook-url {raw:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("--webhook-url {raw:?} must be an http(s) URL"));
        }
        let file = self
            .webhook_secret_file
            .as_deref()
            .ok_or("--webhook-url needs --webhook-secret-file")?;
        let secret = Secret::from_file(file).map_err(|e| e.to_string())?;
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the webhook secret in {} is shorter than {MIN_SECRET_BYTES} bytes",
                file.display()
            ));
        }
        Ok(Some(Webhook {
            url,
            secret,
            max_attempts: self.webhook_max_attempts.max(1),
            timeout: Duration::from_millis(self.webhook_timeout_ms.max(1)),
            backoff: Backoff {
                base: Duration::from_millis(self.webhook_backoff_ms.max(1)),
                cap: Duration::from_millis(
                    self.webhook_backoff_max_ms
                        .max(self.webhook_backoff_ms.max(1)),
                ),
            },
            poll: Duration::from_millis(self.webhook_poll_ms.max(10)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{Cli, Command};

    fn args(extra: &[&str]) -> Result<WebhookArgs, clap::Error> {
        let mut all = vec![
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
        all.extend_from_slice(extra);
        match Cli::try_parse_from(all)?.command {
            Command::Serve(cfg) => Ok(cfg.webhook),
            Command::Migrate(_) => unreachable!("serve was given"),
        }
    }

    fn secret_file(name: &str, content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "quota-webhook-{}-{name}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Without a URL nothing is delivered; a URL needs the secret file (clap refuses it
    /// alone), an http(s) URL and a secret of at least 32 bytes; the defaults are 10 attempts,
    /// 5 s per request, 1 s doubling up to 5 min.
    #[test]
    fn a_webhook_needs_an_http_url_and_a_long_secret() {
        assert!(args(&[]).unwrap().webhook().unwrap().is_none());
        assert!(args(&["--webhook-url", "http://127.0.0.1:9/hook"]).is_err());
        assert!(args(&["--webhook-max-attempts", "0"]).is_err());
        let good = secret_file("good", &format!("{}\n", "k".repeat(MIN_SECRET_BYTES)));
        let short = secret_file("short", "too-short\n");
        let with = |url: &str, file: &std::path::Path| {
            args(&[
                "--webhook-url",
                url,
                "--webhook-secret-file",
                file.to_str().unwrap(),
            ])
            .unwrap()
            .webhook()
        };
        let hook = with("https://hooks.example/quota", &good).unwrap().unwrap();
        assert_eq!(hook.url.as_str(), "https://hooks.example/quota");
        assert_eq!(hook.secret.expose(), "k".repeat(MIN_SECRET_BYTES));
        assert_eq!(hook.max_attempts, 10);
        assert_eq!(hook.timeout, Duration::from_secs(5));
        assert_eq!(
            hook.backoff,
            Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300)
            }
        );
        for bad in [
            "ftp://hooks.example/",
            "not a url",
            "http://",
            "mailto:ops@example.com",
        ] {
            assert!(with(bad, &good).is_err(), "{bad}");
        }
        let refused = with("http://127.0.0.1:9/hook", &short).unwrap_err();
        assert!(refused.contains("shorter than 32") && !refused.contains("too-short"));
        let _ = std::fs::remove_file(good);
        let _ = std::fs::remove_file(short);
    }
}
