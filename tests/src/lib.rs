//! Integration-test harness for quota.
//!
//! Tests run against the real thing: etcd, Redis and Postgres binaries plus the
//! project's own `region-node` / `coordinator` binaries, each spawned as a child
//! process on a free loopback port, waited on until it is really ready, and
//! killed when its handle is dropped. This is the same mechanism as
//! `deploy/local/cluster.sh`, just owned by a test instead of a shell.
//!
//! Design notes (why things look the way they do):
//! * Every child is spawned from one dedicated, never-exiting thread with
//!   `PR_SET_PDEATHSIG=SIGKILL`, so if the test binary itself dies (timeout,
//!   SIGKILL, abort) its children die with it instead of leaking ports. The
//!   death signal fires when the *spawning thread* exits, which is why that
//!   thread must outlive every test.
//! * Postgres refuses to run as root. When the tests run as root we start
//!   `initdb`/`postgres` with `Command::uid/gid` of the `postgres` user: the
//!   child *is* the postmaster, so signals reach it directly. (`runuser` forks
//!   and stays as parent, so SIGKILL to it would orphan the postmaster.)
//! * Killing a service "hard" kills the process and its direct children (the
//!   Postgres backends, which run in their own sessions), so a quick restart
//!   does not trip over "pre-existing shared memory block is still in use".
//! * Every wait is bounded and panics with the process's log tail.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// How long any single service may take to become ready before we give up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before we escalate to SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// Ports, paths, directories
// ---------------------------------------------------------------------------

/// A currently free loopback TCP port.
///
/// The kernel picks it (bind to port 0); we also remember every port handed
/// out in this process so parallel tests never get the same one twice before
/// the first user has bound it.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if handed_out.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// The Cargo workspace root (parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests package has a parent directory")
        .to_path_buf()
}

/// Path of one of the project's binaries: `$QUOTA_BIN_DIR/<name>` if set
/// (prebuilt / release binaries), else `<workspace>/target/debug/<name>`.
/// Panics if missing, because `cargo test -p quota-tests` does not build them.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("QUOTA_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("target").join("debug"),
    };
    // Absolute, because processes (quotactl) run with the test directory as cwd.
    let path = std::path::absolute(dir.join(name)).expect("current directory");
    if !path.is_file() {
        panic!(
            "binary {} not found; build the binaries first: cargo build --bins \
             (or point QUOTA_BIN_DIR at a directory holding them)",
            path.display()
        );
    }
    path
}

/// Path of a Postgres server binary (`initdb`, `postgres`).
///
/// Debian keeps them off PATH in /usr/lib/postgresql/<ver>/bin; we take the
/// newest version there, unless QUOTA_PG_BIN_DIR says otherwise, and fall
/// back to PATH for other distributions.
pub fn pg_bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("QUOTA_PG_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let ver = e.file_name().to_str()?.parse::<u32>().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((ver, p))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, p)) => p,
        None => PathBuf::from(name), // rely on PATH
    }
}

/// A fresh scratch directory for one test, removed on drop.
///
/// It lives under /tmp with mode 0755 (not tempfile's default 0700) because
/// Postgres runs as the `postgres` user and must be able to traverse into it.
/// Set QUOTA_KEEP_TEST_DIRS=1 to keep it (logs!) after the test.
pub fn test_dir() -> TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("quota-test-")
        .tempdir_in("/tmp")
        .expect("create temp dir under /tmp");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .expect("chmod 0755 test dir");
    if std::env::var_os("QUOTA_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0") {
        dir.disable_cleanup(true);
        eprintln!("quota-tests: keeping test dir {}", dir.path().display());
    }
    dir
}

/// Reserve `<dir>/logs/<base>.log` (or `<base>-2`, …) and return the name, so
/// several services of the same kind can share one test directory.
fn reserve_name(dir: &Path, base: &str) -> (String, PathBuf) {
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).expect("create logs dir");
    for i in 1.. {
        let name = if i == 1 {
            base.to_string()
        } else {
            format!("{base}-{i}")
        };
        let log = logs.join(format!("{name}.log"));
        match OpenOptions::new().write(true).create_new(true).open(&log) {
            Ok(_) => return (name, log),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", log.display()),
        }
    }
    unreachable!()
}

// ---------------------------------------------------------------------------
// Process spawning
// ---------------------------------------------------------------------------

/// Everything needed to (re)spawn a child; `std::process::Command` is not
/// `Clone`, so we keep the recipe instead.
#[derive(Clone, Debug)]
pub struct CmdSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// (uid, gid) to run as; used for Postgres when we are root.
    pub run_as: Option<(u32, u32)>,
}

impl CmdSpec {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        CmdSpec {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
            run_as: None,
        }
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        if let Some((uid, gid)) = self.run_as {
            // std drops supplementary groups when switching uid as root.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Shell-ish rendering, for error messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(
                self.args
                    .iter()
                    .map(|a| if a.is_empty() { "''".into() } else { a.clone() }),
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
}

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawn `cmd` from the long-lived spawner thread with PDEATHSIG=SIGKILL.
fn spawn_with_deathsig(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("quota-tests-spawner".into())
            .spawn(move || {
                for mut req in rx {
                    let _ = req.reply.send(req.cmd.spawn());
                }
            })
            .expect("start spawner thread");
        tx
    });
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe libc calls between fork and exec. This
    // closure runs after std has switched uid/gid, so the death signal is not
    // reset by the credential change.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The test process died between fork and prctl.
                return Err(io::Error::other("parent already gone"));
            }
            Ok(())
        });
    }
    let (reply, rx) = mpsc::channel();
    spawner
        .send(SpawnRequest { cmd, reply })
        .expect("spawner thread alive");
    rx.recv().expect("spawner thread replied")
}

/// Direct children of `pid` (scan of /proc; e.g. Postgres backends).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let ppid: u32 = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

fn send_signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2); the pid is our unreaped child (or a snapshot of
    // its children taken just before), so it cannot have been recycled.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A spawned service process: stdout+stderr go to a log file, the command is
/// remembered so it can be restarted, and dropping it kills it (SIGKILL).
pub struct Proc {
    pub name: String,
    pub spec: CmdSpec,
    pub log_path: PathBuf,
    /// Signal for a graceful stop (SIGINT for Postgres = fast shutdown).
    pub stop_signal: libc::c_int,
    child: Option<Child>,
}

impl Proc {
    /// Spawn `spec`, appending its output to `log_path`. Panics if it cannot start.
    pub fn spawn(name: &str, spec: CmdSpec, log_path: PathBuf) -> Proc {
        let mut p = Proc {
            name: name.to_string(),
            spec,
            log_path,
            stop_signal: libc::SIGTERM,
            child: None,
        };
        p.spawn_child();
        p
    }

    fn spawn_child(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log file");
        let log2 = log.try_clone().expect("dup log fd");
        let mut cmd = self.spec.command();
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = spawn_with_deathsig(cmd).unwrap_or_else(|e| {
            panic!("{}: cannot spawn `{}`: {e}", self.name, self.spec.display())
        });
        self.child = Some(child);
    }

    /// OS pid of the running child, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the child is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            None => false,
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                    false
                }
            },
        }
    }

    /// Exit status if the child has exited (and reaps it), for error messages.
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Crash the service: SIGKILL the process and its direct children (for
    /// Postgres: postmaster and backends), then reap. No-op if not running.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let children = child_pids(child.id());
        let _ = child.kill();
        for &c in &children {
            send_signal(c, libc::SIGKILL);
        }
        let _ = child.wait();
        // Orphans are reaped by init; wait until they are really gone so
        // their sockets and shared memory are released.
        let deadline = Instant::now() + Duration::from_secs(5);
        while children.iter().any(|&c| pid_alive(c)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop, blocking the thread: `stop_signal`, wait up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        send_signal(self.pid().unwrap(), self.stop_signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "quota-tests: {} ignored signal {} for {:?}; SIGKILL",
            self.name, self.stop_signal, STOP_TIMEOUT
        );
        self.kill9();
    }

    /// Like [`Proc::stop`] but yields to the async runtime while waiting, so
    /// other tasks of the test (load generators…) keep running.
    pub async fn stop_async(&mut self) {
        if !self.is_running() {
            return;
        }
        send_signal(self.pid().unwrap(), self.stop_signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "quota-tests: {} ignored signal {} for {:?}; SIGKILL",
            self.name, self.stop_signal, STOP_TIMEOUT
        );
        self.kill9();
    }

    /// Spawn the same command again (same ports, same data). Kills a still
    /// running instance first. Does not wait for readiness.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_child();
    }

    /// The last `n` lines of the log file.
    pub fn log_tail(&self, n: usize) -> String {
        let Ok(mut f) = File::open(&self.log_path) else {
            return String::from("<no log>");
        };
        // Only look at the end of big logs.
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Panic with a description and the log tail.
    pub fn fail(&mut self, msg: &str) -> ! {
        let status = self
            .exit_status()
            .map(|s| format!(" (exited: {s})"))
            .unwrap_or_default();
        panic!(
            "{}: {msg}{status}\ncommand: {}\nlog {}:\n--- last 40 lines ---\n{}\n---",
            self.name,
            self.spec.display(),
            self.log_path.display(),
            self.log_tail(40)
        );
    }

    /// Poll `probe` until it returns true; panic if the process exits or
    /// `timeout` passes.
    pub async fn wait_until<F, Fut>(&mut self, what: &str, timeout: Duration, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                self.fail(&format!("exited while waiting for {what}"));
            }
            if probe().await {
                return;
            }
            if start.elapsed() > timeout {
                self.fail(&format!("not {what} after {timeout:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- {} log tail ({}) ---\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail(20)
            );
        }
        self.kill9();
    }
}

// ---------------------------------------------------------------------------
// Readiness probes
// ---------------------------------------------------------------------------

fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .no_proxy() // never route loopback probes through an http_proxy
                .build()
                .expect("reqwest client")
        })
        .clone()
}

/// GET `url` answers 200.
pub async fn http_ok(url: &str) -> bool {
    matches!(http_client().get(url).send().await, Ok(r) if r.status() == reqwest::StatusCode::OK)
}

async fn etcd_healthy(endpoint: &str) -> bool {
    let Ok(resp) = http_client().get(format!("{endpoint}/health")).send().await else {
        return false;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return false;
    };
    body.get("health").and_then(|h| h.as_str()) == Some("true")
}

async fn redis_pings(url: &str) -> bool {
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

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn pg_answers(url: &str) -> bool {
    let fut = async {
        pg_connect(url)
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

/// True if nothing accepts connections on 127.0.0.1:`port`.
pub fn port_is_closed(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_err()
}

// ---------------------------------------------------------------------------
// etcd
// ---------------------------------------------------------------------------

/// Single-node etcd on free loopback ports.
pub struct Etcd {
    /// Client URL, `http://127.0.0.1:P`.
    pub endpoint: String,
    pub port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub proc: Proc,
}

impl Etcd {
    /// Start etcd with its data under `dir` and wait until /health is true.
    pub async fn start(dir: &Path) -> Etcd {
        Self::start_named(dir, "etcd").await
    }

    /// Like [`Etcd::start`] with a given process/log name.
    pub async fn start_named(dir: &Path, name: &str) -> Etcd {
        let (name, log) = reserve_name(dir, name);
        let (port, peer_port) = (free_port(), free_port());
        let data_dir = dir.join(&name);
        let endpoint = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let spec = CmdSpec::new("etcd").args([
            "--name".into(),
            "n1".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-client-urls".into(),
            endpoint.clone(),
            "--advertise-client-urls".into(),
            endpoint.clone(),
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("n1={peer}"),
            "--logger".into(),
            "zap".into(),
            "--log-level".into(),
            "warn".into(),
        ]);
        let mut etcd = Etcd {
            endpoint,
            port,
            peer_port,
            data_dir,
            proc: Proc::spawn(&name, spec, log),
        };
        etcd.wait_ready().await;
        etcd
    }

    async fn wait_ready(&mut self) {
        let ep = self.endpoint.clone();
        self.proc
            .wait_until("healthy", READY_TIMEOUT, || etcd_healthy(&ep))
            .await;
    }

    /// A connected etcd-client.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint.as_str()], None)
            .await
            .expect("connect to etcd")
    }
}

/// Lifecycle of a spawned service, the same for every kind: `kill9` (SIGKILL), `stop` (the
/// kind's graceful signal; fast shutdown for Postgres), `start_again` (same command, ports and
/// data; waits until ready), `restart`.
macro_rules! lifecycle {
    ($($t:ty),*) => {$(
        impl $t {
            /// SIGKILL the process (and its direct children).
            pub fn kill9(&mut self) {
                self.proc.kill9();
            }

            /// Graceful stop with the kind's stop signal.
            pub async fn stop(&mut self) {
                self.proc.stop_async().await;
            }

            /// Start again with the same command line, ports and data; waits until ready.
            pub async fn start_again(&mut self) {
                self.proc.restart();
                self.wait_ready().await;
            }

            /// Graceful stop, then start again.
            pub async fn restart(&mut self) {
                self.stop().await;
                self.start_again().await;
            }
        }
    )*};
}

lifecycle!(Etcd, Redis, Postgres, Node, Coordinator);

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// redis-server without persistence on a free loopback port.
pub struct Redis {
    /// `redis://127.0.0.1:P/`
    pub url: String,
    pub port: u16,
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
            .wait_until("answering PING", READY_TIMEOUT, || redis_pings(&url))
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

// ---------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------

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
    if pw.is_null() {
        panic!("running as root but there is no `postgres` user; install postgresql (apt-get install postgresql)");
    }
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
        if !ok {
            panic!(
                "{} is not traversable by the postgres user (mode {:o}); use quota_tests::test_dir() \
                 (under /tmp, mode 0755) or chmod o+x it",
                anc.display(),
                mode & 0o777
            );
        }
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A private Postgres cluster (own data dir, own port), database `quota` created.
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:P/quota`
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
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
        let (name, log) = reserve_name(dir, name);
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
        Self::initdb(&data_dir, dir, run_as, &log).await;

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
        spec.run_as = run_as;
        spec.cwd = Some(dir.to_path_buf());
        let mut proc = Proc::spawn(&name, spec, log);
        proc.stop_signal = libc::SIGINT; // fast shutdown
        let mut pg = Postgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/quota"),
            port,
            data_dir,
            proc,
        };

        let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        pg.proc
            .wait_until("accepting connections", READY_TIMEOUT, || {
                pg_answers(&admin_url)
            })
            .await;
        let client = pg_connect(&admin_url).await.expect("connect to postgres");
        if let Err(e) = client.batch_execute("CREATE DATABASE quota").await {
            pg.proc.fail(&format!("CREATE DATABASE quota failed: {e}"));
        }
        pg
    }

    async fn initdb(data_dir: &Path, cwd: &Path, run_as: Option<(u32, u32)>, log: &Path) {
        let mut cmd = tokio::process::Command::new(pg_bin("initdb"));
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
        let _ = fs::write(
            log.with_extension("initdb.log"),
            [&out.stdout[..], &out.stderr[..]].concat(),
        );
        if !out.status.success() {
            panic!(
                "initdb {} failed ({}):\n{}{}",
                data_dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    async fn wait_ready(&mut self) {
        let url = self.url.clone();
        self.proc
            .wait_until("accepting connections", READY_TIMEOUT, || pg_answers(&url))
            .await;
    }

    /// A client on database `quota` (connection task spawned on the runtime).
    pub async fn client(&self) -> tokio_postgres::Client {
        pg_connect(&self.url).await.expect("connect to postgres")
    }
}

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

// ---------------------------------------------------------------------------
// Project binaries
// ---------------------------------------------------------------------------

/// A `region-node serve` process.
pub struct Node {
    /// `http://127.0.0.1:P`
    pub url: String,
    pub region: String,
    pub port: u16,
    pub proc: Proc,
}

impl Node {
    /// Spawn `region-node serve` for `region` (per-IP limit disabled, since
    /// all test traffic comes from 127.0.0.1) and wait until /readyz is 200.
    pub async fn start(
        dir: &Path,
        region: &str,
        etcd_endpoints: &str,
        redis_url: &str,
        pg_url: &str,
        extra_args: &[&str],
    ) -> Node {
        Self::start_named(
            dir,
            &format!("node-{region}"),
            region,
            etcd_endpoints,
            redis_url,
            pg_url,
            extra_args,
        )
        .await
    }

    /// Like [`Node::start`] with a given process/log name.
    pub async fn start_named(
        dir: &Path,
        name: &str,
        region: &str,
        etcd_endpoints: &str,
        redis_url: &str,
        pg_url: &str,
        extra_args: &[&str],
    ) -> Node {
        let (name, log) = reserve_name(dir, name);
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let spec = CmdSpec::new(bin_path("region-node"))
            .args([
                "serve",
                "--region",
                region,
                "--listen",
                &listen,
                "--redis-url",
                redis_url,
                "--pg-url",
                pg_url,
                "--etcd-endpoints",
                etcd_endpoints,
                "--ip-rate-limit",
                "0",
            ])
            .args(extra_args.iter().copied());
        let mut node = Node {
            url: format!("http://{listen}"),
            region: region.to_string(),
            port,
            proc: Proc::spawn(&name, spec, log),
        };
        node.wait_ready().await;
        node
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.url);
        self.proc
            .wait_until("ready (/readyz 200)", READY_TIMEOUT, || http_ok(&url))
            .await;
    }
}

/// Whether a node's `/readyz` says its etcd session is up.
async fn etcd_connected(url: &str) -> bool {
    match reqwest::get(url).await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .map(|v| v["etcd"] == "connected")
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// A `quota-proxy` process: TCP links with a modelled one-way latency (and faults), used to
/// put distance between a region and etcd, or between buyers and a central counter.
pub struct Proxy {
    /// Control API base URL (`GET /links`, `PUT /links/{id}`).
    pub control_url: String,
    /// Link id → the `127.0.0.1:port` it listens on.
    pub listen: std::collections::BTreeMap<String, String>,
    /// The process.
    pub proc: Proc,
}

impl Proxy {
    /// Starts one proxy with a link per `(id, upstream host:port, one-way latency ms)`; jitter
    /// is a tenth of the latency.
    pub async fn start(dir: &Path, links: &[(String, String, u64)]) -> Proxy {
        let (name, log) = reserve_name(dir, "proxy");
        let control_port = free_port();
        let mut args = vec!["--control".to_string(), format!("127.0.0.1:{control_port}")];
        let mut listen = std::collections::BTreeMap::new();
        for (id, upstream, ms) in links {
            let port = free_port();
            args.push("--link".into());
            args.push(format!(
                "id={id},listen=127.0.0.1:{port},upstream={upstream},latency_ms={ms},jitter_ms={}",
                ms / 10
            ));
            listen.insert(id.clone(), format!("127.0.0.1:{port}"));
        }
        let spec = CmdSpec::new(bin_path("quota-proxy")).args(args);
        let mut proxy = Proxy {
            control_url: format!("http://127.0.0.1:{control_port}"),
            listen,
            proc: Proc::spawn(&name, spec, log),
        };
        let url = format!("{}/healthz", proxy.control_url);
        proxy
            .proc
            .wait_until("/healthz 200", READY_TIMEOUT, || http_ok(&url))
            .await;
        proxy
    }
}

/// A `coordinator serve` process.
pub struct Coordinator {
    /// `http://127.0.0.1:P`
    pub url: String,
    pub id: String,
    pub admin_token: String,
    pub port: u16,
    pub proc: Proc,
}

impl Coordinator {
    /// Spawn `coordinator serve --id <id>` and wait until /readyz is 200.
    pub async fn start(
        dir: &Path,
        id: &str,
        etcd_endpoints: &str,
        admin_token: &str,
        extra_args: &[&str],
    ) -> Coordinator {
        let (name, log) = reserve_name(dir, id);
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let spec = CmdSpec::new(bin_path("coordinator"))
            .args([
                "serve",
                "--id",
                id,
                "--listen",
                &listen,
                "--etcd-endpoints",
                etcd_endpoints,
                "--admin-token",
                admin_token,
            ])
            .args(extra_args.iter().copied());
        let mut c = Coordinator {
            url: format!("http://{listen}"),
            id: id.to_string(),
            admin_token: admin_token.to_string(),
            port,
            proc: Proc::spawn(&name, spec, log),
        };
        c.wait_ready().await;
        c
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.url);
        self.proc
            .wait_until("ready (/readyz 200)", READY_TIMEOUT, || http_ok(&url))
            .await;
    }
}

// ---------------------------------------------------------------------------
// Whole cluster
// ---------------------------------------------------------------------------

/// One region's own Redis, Postgres and region node.
pub struct RegionStack {
    pub name: String,
    pub redis: Redis,
    pub pg: Postgres,
    pub node: Node,
}

/// etcd + one coordinator + a full stack per region, in one temp dir.
///
/// Field order matters: Rust drops fields in declaration order, so all
/// processes are killed before `dir` (logs, data) is removed.
pub struct Cluster {
    pub regions: Vec<RegionStack>,
    /// The latency proxy between regions and etcd, when one was asked for.
    pub proxy: Option<Proxy>,
    /// Coordinator instances (`coordinator-1…`); one of them leads.
    pub coordinators: Vec<Coordinator>,
    /// The admin token every coordinator and region node shares.
    pub admin_token: String,
    /// The coordinator `quotactl` talks to, when a test chose one.
    pub coordinator_url: std::sync::Mutex<Option<String>>,
    pub etcd: Etcd,
    pub dir: TempDir,
}

impl Cluster {
    /// Start a cluster with the given regions and default node flags.
    pub async fn start(regions: &[&str]) -> Cluster {
        Self::start_with(regions, &[]).await
    }

    /// Start a cluster, passing `node_extra_args` to every region node.
    ///
    /// etcd and each region's Redis/Postgres start concurrently (initdb is
    /// the slow part), then the coordinator, then all nodes concurrently.
    pub async fn start_with(regions: &[&str], node_extra_args: &[&str]) -> Cluster {
        Self::start_full(regions, node_extra_args, 1, &[]).await
    }

    /// Start a cluster with `coordinators` instances, each given `coordinator_args`.
    pub async fn start_full(
        regions: &[&str],
        node_extra_args: &[&str],
        coordinators: usize,
        coordinator_args: &[&str],
    ) -> Cluster {
        Self::start_with_latency(
            regions,
            node_extra_args,
            coordinators,
            coordinator_args,
            &[],
        )
        .await
    }

    /// Like [`Cluster::start_full`]; each region named in `etcd_latency_ms` reaches etcd
    /// through a [`Proxy`] link with that one-way delay (the modelled distance).
    pub async fn start_with_latency(
        regions: &[&str],
        node_extra_args: &[&str],
        coordinators: usize,
        coordinator_args: &[&str],
        etcd_latency_ms: &[(&str, u64)],
    ) -> Cluster {
        assert!(!regions.is_empty(), "a cluster needs at least one region");
        let dir = test_dir();
        let d = dir.path();

        let stores = futures::future::join_all(regions.iter().map(|r| async move {
            let (redis_name, pg_name) = (format!("redis-{r}"), format!("pg-{r}"));
            tokio::join!(
                Redis::start_named(d, &redis_name),
                Postgres::start_named(d, &pg_name)
            )
        }));
        let (etcd, stores) = tokio::join!(Etcd::start_named(d, "etcd"), stores);

        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let mut coords = Vec::new();
        for i in 1..=coordinators.max(1) {
            let id = format!("coordinator-{i}");
            coords.push(
                Coordinator::start(d, &id, &etcd.endpoint, &admin_token, coordinator_args).await,
            );
        }
        let mut node_args: Vec<&str> = vec!["--admin-token", &admin_token];
        node_args.extend_from_slice(node_extra_args);
        let node_args = &node_args;
        let proxy = if etcd_latency_ms.is_empty() {
            None
        } else {
            let upstream = etcd.endpoint.trim_start_matches("http://").to_string();
            let links: Vec<(String, String, u64)> = etcd_latency_ms
                .iter()
                .map(|(r, ms)| (r.to_string(), upstream.clone(), *ms))
                .collect();
            Some(Proxy::start(d, &links).await)
        };
        let etcd_for = |r: &str| -> String {
            proxy
                .as_ref()
                .and_then(|p| p.listen.get(r))
                .map(|l| format!("http://{l}"))
                .unwrap_or_else(|| etcd.endpoint.clone())
        };
        let etcd_for = &etcd_for;

        let nodes =
            futures::future::join_all(regions.iter().zip(&stores).map(|(r, (redis, pg))| {
                let endpoint = etcd_for(r);
                async move { Node::start(d, r, &endpoint, &redis.url, &pg.url, node_args).await }
            }))
            .await;

        let mut regions: Vec<RegionStack> = regions
            .iter()
            .zip(stores)
            .zip(nodes)
            .map(|((r, (redis, pg)), node)| RegionStack {
                name: r.to_string(),
                redis,
                pg,
                node,
            })
            .collect();
        // A node is ready before its etcd session has registered the region; wait for that
        // too, so a sale created right away can name every region.
        for r in regions.iter_mut() {
            let url = format!("{}/readyz", r.node.url);
            r.node
                .proc
                .wait_until("registered in etcd", READY_TIMEOUT, || etcd_connected(&url))
                .await;
        }
        Cluster {
            regions,
            proxy,
            coordinators: coords,
            admin_token,
            coordinator_url: std::sync::Mutex::new(None),
            etcd,
            dir,
        }
    }

    /// The stack of region `name`; panics if there is none.
    pub fn region(&self, name: &str) -> &RegionStack {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name:?} in this cluster"))
    }

    /// Mutable access, for killing/restarting a region's processes.
    pub fn region_mut(&mut self, name: &str) -> &mut RegionStack {
        self.regions
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name:?} in this cluster"))
    }

    /// The first coordinator instance still running (any instance answers; writes are
    /// forwarded to the leader).
    pub fn coordinator(&self) -> &Coordinator {
        self.coordinators
            .iter()
            .find(|c| c.proc.pid().is_some_and(pid_alive))
            .unwrap_or(&self.coordinators[0])
    }

    /// Run `quotactl <args>` against one particular coordinator instance.
    pub fn quotactl_via(&self, coordinator_url: &str, args: &[&str]) -> Output {
        Command::new(bin_path("quotactl"))
            .args(args)
            .env("COORDINATOR_URL", coordinator_url)
            .env("ADMIN_TOKEN", &self.admin_token)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run quotactl")
    }

    /// Run `quotactl <args>` against this cluster's coordinator.
    ///
    /// Runs in the temp dir so a developer's `target/cluster/cluster.env`
    /// can never be picked up by accident.
    pub fn quotactl(&self, args: &[&str]) -> Output {
        let url = self.coordinator_url.lock().unwrap().clone();
        let url = url.unwrap_or_else(|| self.coordinator().url.clone());
        self.quotactl_via(&url, args)
    }

    /// Points `quotactl` at one coordinator (e.g. away from one a test has paused);
    /// `None` restores the default (the first one running).
    pub fn use_coordinator(&self, url: Option<&str>) {
        *self.coordinator_url.lock().unwrap() = url.map(str::to_string);
    }

    /// A Postgres client on region `region`'s `quota` database.
    pub async fn pg_client(&self, region: &str) -> tokio_postgres::Client {
        self.region(region).pg.client().await
    }

    /// A Redis connection to region `region`'s Redis.
    pub async fn redis_conn(&self, region: &str) -> redis::aio::MultiplexedConnection {
        self.region(region).redis.conn().await
    }

    /// A connected etcd client.
    pub async fn etcd_client(&self) -> etcd_client::Client {
        self.etcd.client().await
    }
}
