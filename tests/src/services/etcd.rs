//! etcd, the coordination store of a test cluster: one member or a three-member quorum.

use std::path::{Path, PathBuf};

use futures::future::join_all;

use crate::paths::{free_port, reserve_name};
use crate::probe::http_client;
use crate::process::{lifecycle, Proc, READY_TIMEOUT};
use crate::spawn::CmdSpec;
use crate::tls::{ServerCert, TestCa};

/// etcd on free loopback ports: one member, or several forming one cluster (a real deployment
/// runs three, so one can die without the store stopping).
pub struct Etcd {
    /// The members, `n1…` in order.
    pub members: Vec<EtcdMember>,
    /// Where `coordinator setup-etcd-auth` wrote the password files, once authentication is
    /// on ([`Etcd::enable_auth`]); `None` while anyone may do anything.
    pub credentials_dir: Option<PathBuf>,
    /// The CA the members' certificates are signed by, when they serve TLS.
    pub ca: Option<TestCa>,
}

/// One etcd member process.
pub struct EtcdMember {
    /// Client URL, `http://127.0.0.1:P` (`https://` with TLS).
    pub endpoint: String,
    /// `/health` in plain HTTP on the metrics port (readiness, whatever the client port
    /// speaks).
    health_url: String,
    /// Client port.
    pub port: u16,
    /// Data directory: survives [`EtcdMember::kill9`] and [`EtcdMember::start_again`].
    pub data_dir: PathBuf,
    /// The process.
    pub proc: Proc,
}

impl Etcd {
    /// A single member with its data under `dir`, plain HTTP, healthy.
    pub async fn start(dir: &Path) -> Etcd {
        Self::start_members(dir, "etcd", 1, None).await
    }

    /// `n` members (at least one) named `{name}`, `{name}-2`, … forming one cluster, serving
    /// clients over TLS with certificates from `ca` when given; returns once every member
    /// reports healthy (the cluster has a leader).
    pub async fn start_members(dir: &Path, name: &str, n: usize, ca: Option<&TestCa>) -> Etcd {
        let cert: Option<ServerCert> = ca.map(|ca| ca.server(name));
        let n = n.max(1);
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let peer = |p: u16| format!("http://127.0.0.1:{p}");
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, pp))| format!("n{}={}", i + 1, peer(*pp)))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("quota-{}", uuid::Uuid::new_v4().simple());
        let mut members = Vec::new();
        for (i, (port, peer_port)) in ports.iter().enumerate() {
            let proc_name = if i == 0 {
                name.to_string()
            } else {
                format!("{name}-{}", i + 1)
            };
            let (proc_name, log) = reserve_name(dir, &proc_name);
            let data_dir = dir.join(&proc_name);
            let scheme = if cert.is_some() { "https" } else { "http" };
            let endpoint = format!("{scheme}://127.0.0.1:{port}");
            let health_url = format!("http://127.0.0.1:{}/health", free_port());
            let mut args: Vec<String> = vec![
                "--name".into(),
                format!("n{}", i + 1),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--listen-client-urls".into(),
                endpoint.clone(),
                "--advertise-client-urls".into(),
                endpoint.clone(),
                "--listen-peer-urls".into(),
                peer(*peer_port),
                "--initial-advertise-peer-urls".into(),
                peer(*peer_port),
                "--initial-cluster".into(),
                initial_cluster.clone(),
                "--initial-cluster-token".into(),
                token.clone(),
                "--listen-metrics-urls".into(),
                health_url.trim_end_matches("/health").to_string(),
                "--logger".into(),
                "zap".into(),
                "--log-level".into(),
                "warn".into(),
            ];
            if let Some(c) = &cert {
                args.extend([
                    "--cert-file".into(),
                    c.cert.display().to_string(),
                    "--key-file".into(),
                    c.key.display().to_string(),
                ]);
            }
            if n > 1 {
                // Faster than the defaults (100/1000 ms) would be flaky on two shared cores.
                args.extend(
                    ["--heartbeat-interval", "100", "--election-timeout", "1000"].map(Into::into),
                );
            }
            let spec = CmdSpec::new("etcd").args(args);
            members.push(EtcdMember {
                endpoint,
                health_url,
                port: *port,
                data_dir,
                proc: Proc::spawn(&proc_name, spec, log),
            });
        }
        // Every member must be running before any can be healthy (no quorum until then).
        join_all(members.iter_mut().map(EtcdMember::wait_ready)).await;
        Etcd {
            members,
            credentials_dir: None,
            ca: ca.cloned(),
        }
    }

    /// Turns authentication on the way a deployment does — `coordinator setup-etcd-auth`
    /// with these regions — with the password files under `dir`. Run again with more regions
    /// to add their users.
    pub fn enable_auth(&mut self, dir: &Path, regions: &[&str]) {
        let out = std::process::Command::new(crate::paths::bin_path("coordinator"))
            .args(["setup-etcd-auth", "--etcd-endpoints", &self.endpoints_arg()])
            .args(self.ca_args())
            .args(["--regions", &regions.join(",")])
            .arg("--credentials-dir")
            .arg(dir)
            .output()
            .expect("run coordinator setup-etcd-auth");
        assert!(
            out.status.success(),
            "setup-etcd-auth failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.credentials_dir = Some(dir.to_path_buf());
    }

    /// `--etcd-ca-file` when the members serve TLS.
    pub fn ca_args(&self) -> Vec<String> {
        match &self.ca {
            Some(ca) => vec!["--etcd-ca-file".into(), ca.cert.display().to_string()],
            None => Vec::new(),
        }
    }

    /// The flags that make a process `user` to etcd (and trust its CA): none while
    /// authentication is off.
    pub fn user_args(&self, user: &str) -> Vec<String> {
        let mut args = self.ca_args();
        args.extend(self.credential_args(user));
        args
    }

    fn credential_args(&self, user: &str) -> Vec<String> {
        match &self.credentials_dir {
            Some(dir) => vec![
                "--etcd-user".into(),
                user.to_string(),
                "--etcd-password-file".into(),
                dir.join(format!("{user}.password")).display().to_string(),
            ],
            None => Vec::new(),
        }
    }

    /// A client on every member as `user` with its password from the credentials directory.
    pub async fn client_as(&self, user: &str) -> Result<etcd_client::Client, etcd_client::Error> {
        let dir = self.credentials_dir.as_ref().expect("authentication is on");
        let password =
            std::fs::read_to_string(dir.join(format!("{user}.password"))).expect("password file");
        let opts = self.options().with_user(user, password.trim_end());
        etcd_client::Client::connect(self.endpoints(), Some(opts)).await
    }

    /// Client options trusting the members' CA (if they serve TLS).
    pub fn options(&self) -> etcd_client::ConnectOptions {
        let opts = etcd_client::ConnectOptions::new();
        match &self.ca {
            Some(ca) => {
                let pem = std::fs::read(&ca.cert).expect("CA certificate");
                opts.with_tls(
                    etcd_client::TlsOptions::new()
                        .ca_certificate(etcd_client::Certificate::from_pem(pem)),
                )
            }
            None => opts,
        }
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint.clone()).collect()
    }

    /// Every member's client URL, comma-separated, as `--etcd-endpoints` takes them.
    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// A connected etcd-client (on every member); as `root` once authentication is on, so a
    /// test may read and corrupt anything.
    pub async fn client(&self) -> etcd_client::Client {
        if self.credentials_dir.is_some() {
            return self
                .client_as("root")
                .await
                .expect("connect to etcd as root");
        }
        etcd_client::Client::connect(self.endpoints(), Some(self.options()))
            .await
            .expect("connect to etcd")
    }

    /// SIGKILL every member: the whole store is gone until [`Etcd::start_again`].
    pub fn kill9(&mut self) {
        for m in &mut self.members {
            m.kill9();
        }
    }

    /// Graceful stop of every member.
    pub async fn stop(&mut self) {
        for m in &mut self.members {
            m.stop().await;
        }
    }

    /// Starts every member that is not running (same ports and data), then waits until all
    /// are healthy.
    pub async fn start_again(&mut self) {
        for m in &mut self.members {
            if !m.proc.is_running() {
                m.proc.restart();
            }
        }
        join_all(self.members.iter_mut().map(EtcdMember::wait_ready)).await;
    }

    /// Whether every member is running.
    pub fn all_running(&mut self) -> bool {
        self.members.iter_mut().all(|m| m.proc.is_running())
    }

    /// The process ids of the running members.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.proc.pid()).collect()
    }
}

impl EtcdMember {
    async fn wait_ready(&mut self) {
        let url = self.health_url.clone();
        self.proc
            .wait_until("healthy", READY_TIMEOUT, || healthy(&url))
            .await;
    }
}

lifecycle!(EtcdMember);

/// etcd's own `/health` says `"health": "true"` (the member has a leader).
async fn healthy(url: &str) -> bool {
    let Ok(resp) = http_client().get(url).send().await else {
        return false;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return false;
    };
    body.get("health").and_then(|h| h.as_str()) == Some("true")
}
