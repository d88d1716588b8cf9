//! [`Members`]: one etcd member of a quorum at a time (see the crate docs for why).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use quota_shared::secret::Secret;

/// How long to wait for a member, and how the connection is kept alive.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Connecting to one member (and its status probe) gives up after this long.
    pub connect_timeout: Duration,
    /// Every request gives up after this long.
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive `(interval, timeout)`: a dead peer is noticed between requests.
    pub keep_alive: Option<(Duration, Duration)>,
    /// User and password when etcd has authentication on (each process its own user, with
    /// only the permissions of its role: see [`crate::rbac`]).
    pub credentials: Option<Credentials>,
    /// PEM of the CA that signed the members' server certificates: with it, `https://`
    /// endpoints are verified against it (and nothing else); without it, `https://` uses the
    /// system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// An etcd user and its password.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Its password (never printed).
    pub password: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
            keep_alive: None,
            credentials: None,
            ca_pem: None,
        }
    }
}

impl EtcdOptions {
    /// etcd-client's options for these settings (also for one-off admin connections).
    pub fn connect_options(&self) -> ConnectOptions {
        let mut o = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(self.request_timeout)
            .with_require_leader(true);
        if let Some((interval, timeout)) = self.keep_alive {
            o = o.with_keep_alive(interval, timeout);
        }
        if let Some(pem) = &self.ca_pem {
            o = o.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(pem)),
            );
        }
        if let Some(c) = &self.credentials {
            // Simple tokens die with the member that issued them (a restart): the client
            // authenticates again instead of failing every request.
            o = o
                .with_user(c.user.clone(), c.password.expose().to_string())
                .with_auto_token_refresh(true);
        }
        o
    }
}

/// Why no member could be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint list is empty.
    #[error("no etcd endpoints given")]
    NoEndpoints,
    /// Every member was tried; none answered as part of a quorum.
    #[error("no etcd member reachable with a leader ({0})")]
    NoQuorum(String),
}

/// A client bound to one member, and which member that is (for logs).
pub struct Connected {
    /// The client; every request it sends goes to `member`.
    pub client: Client,
    /// The member's client URL.
    pub member: String,
}

/// The etcd members a process may talk to, and which one to try next.
#[derive(Debug)]
pub struct Members {
    endpoints: Vec<String>,
    options: EtcdOptions,
    next: AtomicUsize,
}

impl Members {
    /// The members at `endpoints` (client URLs, `http://host:port`).
    pub fn new(endpoints: Vec<String>, options: EtcdOptions) -> Result<Members, ConnectError> {
        if endpoints.is_empty() {
            return Err(ConnectError::NoEndpoints);
        }
        Ok(Members {
            endpoints,
            options,
            next: AtomicUsize::new(0),
        })
    }

    /// The client URLs, in the order given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// A client on the first member, in turn from the one after the member used last, that
    /// answers its status with a Raft leader. Each member gets `connect_timeout`.
    pub async fn connect(&self) -> Result<Connected, ConnectError> {
        let n = self.endpoints.len();
        let start = self.next.load(Ordering::Relaxed);
        let mut why = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            let member = &self.endpoints[i];
            match self.try_member(member).await {
                Ok(client) => {
                    self.next.store((i + 1) % n, Ordering::Relaxed);
                    tracing::debug!(member, "etcd member chosen");
                    return Ok(Connected {
                        client,
                        member: member.clone(),
                    });
                }
                Err(e) => why.push(format!("{member}: {e}")),
            }
        }
        self.next.store((start + 1) % n, Ordering::Relaxed);
        Err(ConnectError::NoQuorum(why.join("; ")))
    }

    /// A client on the next member without asking whether it is up (the connection is made on
    /// first use): for a process that must start while etcd is down and will call
    /// [`Members::connect`] when its requests fail.
    pub async fn connect_lazily(&self) -> Result<Connected, etcd_client::Error> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        let member = self.endpoints[i].clone();
        let client =
            Client::connect([member.as_str()], Some(self.options.connect_options())).await?;
        Ok(Connected { client, member })
    }

    async fn try_member(&self, member: &str) -> Result<Client, String> {
        let probe = async {
            let mut client = Client::connect([member], Some(self.options.connect_options()))
                .await
                .map_err(|e| e.to_string())?;
            let status = client.status().await.map_err(|e| e.to_string())?;
            if status.leader() == 0 {
                return Err("member has no leader".to_string());
            }
            Ok(client)
        };
        tokio::time::timeout(self.options.connect_timeout, probe)
            .await
            .map_err(|_| "no answer".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_member_list_is_refused() {
        assert!(matches!(
            Members::new(Vec::new(), EtcdOptions::default()),
            Err(ConnectError::NoEndpoints)
        ));
    }

    #[tokio::test]
    async fn no_reachable_member_names_every_one_tried() {
        // Two ports nothing listens on (bound, then released): both are tried, both named.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .expect("a free port")
            })
            .collect();
        let endpoints: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let options = EtcdOptions {
            connect_timeout: Duration::from_millis(300),
            ..EtcdOptions::default()
        };
        let members = Members::new(endpoints.clone(), options).expect("two endpoints");
        match members.connect().await {
            Err(ConnectError::NoQuorum(why)) => {
                for e in &endpoints {
                    assert!(why.contains(e.as_str()), "{why} names {e}");
                }
            }
            other => panic!("expected NoQuorum, got {:?}", other.map(|c| c.member)),
        }
    }
}
