//! redis-server: a region's admission store.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::paths::{free_port, reserve_name};
use crate::process::{lifecycle, Proc, READY_TIMEOUT};
use crate::services::Secured;
use crate::spawn::CmdSpec;
use crate::tls::TestCa;

/// redis-server without persistence on a free loopback port.
pub struct Redis {
    /// `redis://127.0.0.1:P/` (`rediss://` with TLS).
    pub url: String,
    /// TLS and password, when on.
    pub secured: Option<Secured>,
    /// Its port (kept across restarts).
    pub port: u16,
    /// The process.
    pub proc: Proc,
}

impl Redis {
    /// Start redis-server (working dir under `dir`) and wait for PING.
    pub async fn start(dir: &Path) -> Redis {
        Self::start_named(dir, "redis").await
    }

    /// Like [`Redis::start`] with a given process/log name.
    pub async fn start_named(dir: &Path, name: &str) -> Redis {
        Self::start_with(dir, name, None).await
    }

    /// Like [`Redis::start_named`], serving only TLS (certificate from `ca`) and requiring a
    /// password, as a deployment's Redis does.
    pub async fn start_secured(dir: &Path, name: &str, ca: &TestCa) -> Redis {
        Self::start_with(dir, name, Some(ca)).await
    }

    async fn start_with(dir: &Path, name: &str, ca: Option<&TestCa>) -> Redis {
        let (name, log) = reserve_name(dir, name);
        let port = free_port();
        let work = dir.join(&name);
        fs::create_dir_all(&work).expect("create redis dir");
        let secured = ca.map(|ca| Secured::new(ca, dir, &name));
        let mut listen: Vec<String> = match &secured {
            None => vec!["--port".into(), port.to_string()],
            Some(s) => vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                s.server.cert.display().to_string(),
                "--tls-key-file".into(),
                s.server.key.display().to_string(),
                "--tls-ca-cert-file".into(),
                s.ca_cert.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                s.password.clone(),
            ],
        };
        listen.extend([
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            work.display().to_string(),
        ]);
        let spec = CmdSpec::new("redis-server").args(listen);
        let scheme = if secured.is_some() { "rediss" } else { "redis" };
        let mut redis = Redis {
            url: format!("{scheme}://127.0.0.1:{port}/"),
            secured,
            port,
            proc: Proc::spawn(&name, spec, log),
        };
        redis.wait_ready().await;
        redis
    }

    async fn wait_ready(&mut self) {
        let client = self.client();
        self.proc
            .wait_until("answering PING", READY_TIMEOUT, || pings(&client))
            .await;
    }

    /// A client with the password and CA, if any.
    pub fn client(&self) -> redis::Client {
        let mut info =
            redis::IntoConnectionInfo::into_connection_info(self.url.as_str()).expect("redis url");
        match &self.secured {
            None => redis::Client::open(info).expect("redis url"),
            Some(s) => {
                let settings = info.redis_settings().clone().set_password(&s.password);
                info = info.set_redis_settings(settings);
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(s.ca_pem()),
                };
                redis::Client::build_with_tls(info, certs).expect("redis TLS client")
            }
        }
    }

    /// The flags that let a region node reach this Redis (password and CA files).
    pub fn node_args(&self) -> Vec<String> {
        match &self.secured {
            None => Vec::new(),
            Some(s) => vec![
                "--redis-password-file".into(),
                s.password_file.display().to_string(),
                "--redis-ca-file".into(),
                s.ca_cert.display().to_string(),
            ],
        }
    }

    /// A multiplexed async connection.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }
}

lifecycle!(Redis);

/// PING answers PONG within 2 s.
async fn pings(client: &redis::Client) -> bool {
    let fut = async {
        let mut con = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), fut).await, Ok(Some(ref s)) if s == "PONG")
}
