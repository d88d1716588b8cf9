//! redis-server: a region's admission store.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::paths::{free_port, reserve_name};
use crate::process::{lifecycle, Proc, READY_TIMEOUT};
use crate::spawn::CmdSpec;

/// redis-server without persistence on a free loopback port.
pub struct Redis {
    /// `redis://127.0.0.1:P/`
    pub url: String,
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
        let (name, log) = reserve_name(dir, name);
        let port = free_port();
        let work = dir.join(&name);
        fs::create_dir_all(&work).expect("create redis dir");
        let spec = CmdSpec::new("redis-server").args([
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            work.display().to_string(),
        ]);
        let mut redis = Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            proc: Proc::spawn(&name, spec, log),
        };
        redis.wait_ready().await;
        redis
    }

    async fn wait_ready(&mut self) {
        let url = self.url.clone();
        self.proc
            .wait_until("answering PING", READY_TIMEOUT, || pings(&url))
            .await;
    }

    /// A multiplexed async connection.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }
}

lifecycle!(Redis);

/// PING answers PONG within 2 s.
async fn pings(url: &str) -> bool {
    let fut = async {
        let client = redis::Client::open(url).ok()?;
        let mut con = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), fut).await, Ok(Some(ref s)) if s == "PONG")
}
