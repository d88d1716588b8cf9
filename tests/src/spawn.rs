//! Spawning children that die with the test, and looking at pids.
//!
//! Every child is spawned from one dedicated, never-exiting thread with
//! `PR_SET_PDEATHSIG=SIGKILL`, so if the test binary itself dies (timeout,
//! SIGKILL, abort) its children die with it instead of leaking ports. The
//! death signal fires when the *spawning thread* exits, which is why that
//! thread must outlive every test.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;

/// Everything needed to (re)spawn a child; `std::process::Command` is not
/// `Clone`, so we keep the recipe instead (a test may also edit it before a restart).
#[derive(Clone, Debug)]
pub struct CmdSpec {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments, in order.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub envs: Vec<(String, String)>,
    /// Working directory, if not ours.
    pub cwd: Option<PathBuf>,
    /// (uid, gid) to run as; used for Postgres when we are root.
    pub run_as: Option<(u32, u32)>,
}

impl CmdSpec {
    /// A recipe running `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        CmdSpec {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: None,
            run_as: None,
        }
    }

    /// Appends `args`.
    #[must_use]
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub(crate) fn command(&self) -> Command {
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
pub(crate) fn spawn_with_deathsig(mut cmd: Command) -> io::Result<Child> {
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

/// Direct children of `pid` (scan of /proc; e.g. Postgres backends), so a crash can take
/// them down too and a test can check they are gone.
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

/// True while `pid` exists and is not a zombie: how a test sees that a process really died.
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

pub(crate) fn send_signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2); the pid is our unreaped child (or a snapshot of
    // its children taken just before), so it cannot have been recycled.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Runs `program args…` from the project's binaries, expecting it to refuse its settings and
/// exit at once (before reaching for any backend: a test gives it URLs that lead nowhere);
/// returns whether it exited 0 and its stderr. Panics if it is still running after 30 s — it
/// accepted the settings and started.
pub fn refused_to_start(program: &str, args: &[&str]) -> (bool, String) {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let mut child = Command::new(crate::paths::bin_path(program))
        .args(args)
        .env_remove("QUOTA_CONFIG")
        .env_remove("QUOTA_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("poll the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{program} {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("its output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
