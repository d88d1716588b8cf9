//! A private Postgres cluster: a region's system of record.
//!
//! Postgres refuses to run as root. When the tests run as root we start
//! `initdb`/`postgres` with `Command::uid/gid` of the `postgres` user: the
//! child *is* the postmaster, so signals reach it directly. (`runuser` forks
//! and stays as parent, so SIGKILL to it would orphan the postmaster.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::paths::{free_port, pg_bin, reserve_name};
use crate::process::{lifecycle, Proc, READY_TIMEOUT};
use crate::services::Secured;
use crate::spawn::CmdSpec;
use crate::tls::TestCa;

/// A private Postgres cluster (own data dir, own port), database `quota` created.
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:P/quota`
    pub url: String,
    /// Its port (kept across restarts).
    pub port: u16,
    /// Data directory: survives a crash, so restarts exercise recovery.
    pub data_dir: PathBuf,
    /// TLS and password (scram), when on: then only TLS connections with the password are
    /// accepted.
    pub secured: Option<Secured>,
    /// The postmaster process.
    pub proc: Proc,
}

impl Postgres {
    /// initdb under `dir`, start the postmaster, wait until connectable and
    /// create database `quota`. `dir` must be traversable by `postgres`.
    pub async fn start(dir: &Path) -> Postgres {
        Self::start_named(dir, "pg").await
    }

    /// Like [`Postgres::start`] with a given process/log name.
    pub async fn start_named(dir: &Path, name: &str) -> Postgres {
        Self::start_with(dir, name, None).await
    }

    /// Like [`Postgres::start_named`], accepting only TLS connections (certificate from `ca`)
    /// that log in with a password (scram-sha-256), as a deployment's Postgres does.
    pub async fn start_secured(dir: &Path, name: &str, ca: &TestCa) -> Postgres {
        Self::start_with(dir, name, Some(ca)).await
    }

    async fn start_with(dir: &Path, name: &str, ca: Option<&TestCa>) -> Postgres {
        let (name, log) = reserve_name(dir, name);
        let secured = ca.map(|ca| Secured::new(ca, dir, &name));
        let port = free_port();
        let run_as = postgres_identity();
        let data_dir = dir.join(&name);
        fs::create_dir_all(&data_dir).expect("create pg data dir");
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .expect("chmod pg data dir");
        if let Some((uid, gid)) = run_as {
            assert_reachable_by(&data_dir, uid);
            chown(&data_dir, uid, gid);
            // The log file is opened by us, but let postgres own it too.
            chown(&log, uid, gid);
        }
        initdb(&data_dir, dir, run_as, &log, secured.as_ref()).await;
        if let Some(s) = &secured {
            secure_data_dir(&data_dir, s, run_as);
        }

        let mut spec = CmdSpec::new(pg_bin("postgres")).args([
            "-D".into(),
            data_dir.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            // No unix socket: avoids socket-dir permissions and the 107-byte
            // path limit; everything talks TCP.
            "-k".into(),
            String::new(),
            // Speed: data still survives a process kill (it is in the page
            // cache). Deliberately NOT synchronous_commit=off, which would
            // lose acknowledged commits when the postmaster is SIGKILLed.
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "shared_buffers=32MB".into(),
        ]);
        if secured.is_some() {
            spec = spec.args([
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=server.crt",
                "-c",
                "ssl_key_file=server.key",
            ]);
        }
        spec.run_as = run_as;
        spec.cwd = Some(dir.to_path_buf());
        let mut proc = Proc::spawn(&name, spec, log);
        proc.stop_signal = libc::SIGINT; // fast shutdown
        let mut pg = Postgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/quota"),
            port,
            data_dir,
            secured,
            proc,
        };

        let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let secured = pg.secured.clone();
        pg.proc
            .wait_until("accepting connections", READY_TIMEOUT, || {
                answers(&admin_url, secured.as_ref())
            })
            .await;
        let client = connect(&admin_url, pg.secured.as_ref())
            .await
            .expect("connect to postgres");
        if let Err(e) = client.batch_execute("CREATE DATABASE quota").await {
            pg.proc.fail(&format!("CREATE DATABASE quota failed: {e}"));
        }
        pg
    }

    async fn wait_ready(&mut self) {
        let url = self.url.clone();
        let secured = self.secured.clone();
        self.proc
            .wait_until("accepting connections", READY_TIMEOUT, || {
                answers(&url, secured.as_ref())
            })
            .await;
    }

    /// A client on database `quota` (connection task spawned on the runtime).
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url, self.secured.as_ref())
            .await
            .expect("connect to postgres")
    }

    /// The flags that let a region node reach this Postgres (password and CA files).
    pub fn node_args(&self) -> Vec<String> {
        match &self.secured {
            None => Vec::new(),
            Some(s) => vec![
                "--pg-password-file".into(),
                s.password_file.display().to_string(),
                "--pg-ca-file".into(),
                s.ca_cert.display().to_string(),
            ],
        }
    }
}

lifecycle!(Postgres);

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown (SIGQUIT) instead of a bare SIGKILL: just as
        // fast, but the postmaster removes its SysV shared-memory segment,
        // which would otherwise leak once per test.
        if self.proc.is_running() {
            self.proc.stop_signal = libc::SIGQUIT;
            self.proc.stop();
        }
    }
}

/// Runs `initdb` for `data_dir` (as `run_as`), keeping its output next to `log`; with
/// `secured`, the superuser gets its password.
async fn initdb(
    data_dir: &Path,
    cwd: &Path,
    run_as: Option<(u32, u32)>,
    log: &Path,
    secured: Option<&Secured>,
) {
    let mut cmd = tokio::process::Command::new(pg_bin("initdb"));
    // initdb (running as postgres) reads the password from a file of its own.
    let pwfile = data_dir.with_extension("pwfile");
    if let Some(s) = secured {
        fs::write(&pwfile, &s.password).expect("pwfile");
        if let Some((uid, gid)) = run_as {
            chown(&pwfile, uid, gid);
        }
        cmd.arg(format!("--pwfile={}", pwfile.display()));
    }
    cmd.args(["-D"])
        .arg(data_dir)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .current_dir(cwd) // initdb dislikes a cwd it cannot read
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    let out = tokio::time::timeout(READY_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("initdb {} timed out", data_dir.display()))
        .unwrap_or_else(|e| panic!("cannot run initdb ({}): {e}", pg_bin("initdb").display()));
    let _ = fs::remove_file(&pwfile);
    let _ = fs::write(
        log.with_extension("initdb.log"),
        [&out.stdout[..], &out.stderr[..]].concat(),
    );
    assert!(
        out.status.success(),
        "initdb {} failed ({}):\n{}{}",
        data_dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// TLS and passwords only: the server's certificate and key in the data dir (owned by the
/// server's user, key mode 0600, as Postgres demands), and a `pg_hba.conf` that accepts only
/// TLS connections with a scram password and rejects everything else.
fn secure_data_dir(data_dir: &Path, s: &Secured, run_as: Option<(u32, u32)>) {
    let (crt, key) = (data_dir.join("server.crt"), data_dir.join("server.key"));
    fs::copy(&s.server.cert, &crt).expect("copy server.crt");
    fs::copy(&s.server.key, &key).expect("copy server.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod server.key");
    let hba = data_dir.join("pg_hba.conf");
    fs::write(
        &hba,
        "# written by the test harness: TLS with a password, nothing else\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n\
         host    all all 0.0.0.0/0    reject\n",
    )
    .expect("pg_hba.conf");
    if let Some((uid, gid)) = run_as {
        for f in [&crt, &key, &hba] {
            chown(f, uid, gid);
        }
    }
}

/// uid/gid of the `postgres` user, if we are root (Postgres refuses root).
fn postgres_identity() -> Option<(u32, u32)> {
    // SAFETY: geteuid never fails.
    if unsafe { libc::geteuid() } != 0 {
        return None; // run as ourselves
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy
    // the two integers out immediately.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root but there is no `postgres` user; install postgresql (apt-get install postgresql)"
    );
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

/// Panic early (instead of a cryptic initdb error) if `uid` cannot traverse
/// every ancestor of `path`.
fn assert_reachable_by(path: &Path, uid: u32) {
    use std::os::unix::fs::MetadataExt;
    for anc in path.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(anc) else {
            continue;
        };
        let mode = meta.mode();
        let ok = if meta.uid() == uid {
            mode & 0o100 != 0
        } else {
            mode & 0o001 != 0
        };
        assert!(
            ok,
            "{} is not traversable by the postgres user (mode {:o}); use quota_tests::test_dir() \
             (under /tmp, mode 0755) or chmod o+x it",
            anc.display(),
            mode & 0o777
        );
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A client with its connection task spawned on the runtime (TLS and password when secured).
async fn connect(
    url: &str,
    secured: Option<&Secured>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg: tokio_postgres::Config = url.parse()?;
    let Some(s) = secured else {
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        return Ok(client);
    };
    cfg.password(&s.password)
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(s.client_tls());
    let (client, conn) = cfg.connect(tls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// `SELECT 1` answers within 2 s.
async fn answers(url: &str, secured: Option<&Secured>) -> bool {
    let fut = async {
        connect(url, secured)
            .await
            .ok()?
            .simple_query("SELECT 1")
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), fut).await,
        Ok(Some(_))
    )
}
