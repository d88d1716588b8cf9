//! The floor of what any HTTP service can do on this machine: an axum endpoint that answers
//! every purchase with a constant 410, run as its **own process** (`quota-bench serve-bare`),
//! so its CPU per attempt is measured apart from the generator's, exactly like the node's.

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Serves the constant-410 endpoint on a free loopback port until killed; prints its URL on
/// the first line of stdout. Uses tokio's default worker count, as the region node does.
pub(crate) fn serve() -> anyhow::Result<()> {
    use axum::routing::post;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/v1/products/{id}/purchase",
            post(|| async {
                (
                    axum::http::StatusCode::GONE,
                    axum::Json(json!({"error": {"code": "sold_out", "message": "sold out"}})),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// A running `serve-bare` process, killed when dropped.
pub(crate) struct BareServer {
    /// Its base URL.
    pub url: String,
    /// Its pid, for CPU accounting.
    pub pid: u32,
    _child: Child,
}

impl BareServer {
    /// Starts `quota-bench serve-bare` (this same binary) and waits for its URL.
    pub(crate) async fn start() -> anyhow::Result<BareServer> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve-bare")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("serve-bare exited at once"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("serve-bare has no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let url = line.trim().to_string();
        anyhow::ensure!(url.starts_with("http://"), "serve-bare printed {url:?}");
        Ok(BareServer {
            url,
            pid,
            _child: child,
        })
    }
}
