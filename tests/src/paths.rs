//! Where things are: free loopback ports, the project's and Postgres's binaries, and the
//! per-test scratch directory with its log files.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tempfile::TempDir;

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

/// True if nothing accepts connections on 127.0.0.1:`port`: how a test proves a killed
/// service really let go of its port.
pub fn port_is_closed(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_err()
}

/// The Cargo workspace root (parent of this package's directory), where `target/` lives.
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
    assert!(
        path.is_file(),
        "binary {} not found; build the binaries first: cargo build --bins \
         (or point QUOTA_BIN_DIR at a directory holding them)",
        path.display()
    );
    path
}

/// Path of a Postgres server binary (`initdb`, `postgres`).
///
/// Debian keeps them off PATH in /usr/lib/postgresql/<ver>/bin; we take the
/// newest version there, unless `QUOTA_PG_BIN_DIR` says otherwise, and fall
/// back to PATH for other distributions.
pub(crate) fn pg_bin(name: &str) -> PathBuf {
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
/// Set `QUOTA_KEEP_TEST_DIRS=1` to keep it (logs!) after the test.
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
pub(crate) fn reserve_name(dir: &Path, base: &str) -> (String, PathBuf) {
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
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("create {}: {e}", log.display()),
        }
    }
    unreachable!()
}
