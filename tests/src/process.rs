//! [`Proc`]: one spawned service process with its log, and the lifecycle every service kind
//! shares (crash, graceful stop, start again).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::spawn::{child_pids, pid_alive, send_signal, spawn_with_deathsig, CmdSpec};

/// How long any single service may take to become ready before we give up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before we escalate to SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// A spawned service process: stdout+stderr go to a log file, the command is
/// remembered so it can be restarted, and dropping it kills it (SIGKILL).
pub struct Proc {
    /// Process/log name (`redis-east`, `coordinator-2`, …), for messages.
    pub name: String,
    /// The command line; a test may edit it before [`Proc::restart`].
    pub spec: CmdSpec,
    /// Where stdout and stderr go.
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
        self.child.as_ref().map(Child::id)
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
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Crash the service: SIGKILL the process and its direct children (for
    /// Postgres: postmaster and backends), then reap. No-op if not running.
    ///
    /// The children go too so a quick restart does not trip over "pre-existing shared memory
    /// block is still in use".
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

    /// Sends the stop signal; false if there was nothing to stop.
    fn signal_stop(&mut self) -> bool {
        if !self.is_running() {
            return false;
        }
        send_signal(self.pid().unwrap(), self.stop_signal);
        true
    }

    fn escalate(&mut self) {
        eprintln!(
            "quota-tests: {} ignored signal {} for {:?}; SIGKILL",
            self.name, self.stop_signal, STOP_TIMEOUT
        );
        self.kill9();
    }

    /// Graceful stop, blocking the thread: `stop_signal`, wait up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.signal_stop() {
            return;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.escalate();
    }

    /// Like [`Proc::stop`] but yields to the async runtime while waiting, so
    /// other tasks of the test (load generators…) keep running.
    pub async fn stop_async(&mut self) {
        if !self.signal_stop() {
            return;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.escalate();
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
        let len = f.metadata().map_or(0, |m| m.len());
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

/// Lifecycle of a spawned service, the same for every kind: `kill9` (SIGKILL), `stop` (the
/// kind's graceful signal; fast shutdown for Postgres), `start_again` (same command, ports and
/// data; waits until ready), `restart`. The type needs a `proc: Proc` field and an
/// `async fn wait_ready(&mut self)`.
macro_rules! lifecycle {
    ($t:ty) => {
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
    };
}
pub(crate) use lifecycle;
