//! The PostgreSQL test harness, and the PostgreSQL store's own tests.
//!
//! [`url`] is a server for the whole test process:
//! - `WAGATE_TEST_POSTGRES_URL`, when set, names an existing server (the
//!   tests make and drop their own schemas there);
//! - otherwise, when `initdb` and `pg_ctl` are on PATH (or in
//!   `/usr/lib/postgresql/<version>/bin`), one throwaway cluster is made
//!   in a temporary directory at the first call: Unix socket in that
//!   directory, no TCP. A watchdog shell started beside it waits for this
//!   process to end, however it ends, then stops the cluster (`pg_ctl stop
//!   -m immediate`) and removes the directory. As root (sessions, CI),
//!   the cluster runs as the `postgres` system user (initdb refuses root);
//! - with neither, every PostgreSQL test fails, saying what to install.
//!
//! [`fresh_schema`] names a schema no other test uses, so suites can run
//! in parallel on one server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wagate::store::postgres::PgStore;

mod cli;
mod races;
mod store;

/// The environment variable naming an existing server.
pub const URL_VAR: &str = "WAGATE_TEST_POSTGRES_URL";

/// The URL of the test server (see the module docs). Panics, failing the
/// test, when there is none.
pub fn url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(server) {
        Ok(u) => u.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// A schema name unique to this call in this test process and, by the
/// process id and the time, on a shared server.
pub fn fresh_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{}_{n}_{nanos}", std::process::id())
}

/// A store on a schema of its own, dropped with the value (also when the
/// test panics), so that a shared server keeps nothing.
pub struct FreshStore(Option<PgStore>);

/// Opens a [`FreshStore`] on the test server.
pub fn fresh_store() -> FreshStore {
    FreshStore(Some(PgStore::open(&url(), &fresh_schema()).unwrap()))
}

impl std::ops::Deref for FreshStore {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        self.0.as_ref().unwrap()
    }
}

impl Drop for FreshStore {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            let _ = store.drop_schema();
        }
    }
}

fn server() -> Result<String, String> {
    if let Ok(u) = std::env::var(URL_VAR)
        && !u.trim().is_empty()
    {
        return Ok(u);
    }
    let Some(bin) = find_bin() else {
        return Err(format!(
            "the PostgreSQL tests need a server and found none: install PostgreSQL's server \
             (Debian/Ubuntu: `apt-get install postgresql`, whose initdb and pg_ctl are in \
             /usr/lib/postgresql/<version>/bin; macOS: `brew install postgresql`) so that \
             initdb and pg_ctl are on PATH, or set {URL_VAR}=postgres://user:password@host/db \
             to use a server you run"
        ));
    };
    start_cluster(&bin)
}

/// The directory holding both `initdb` and `pg_ctl`: on PATH first, then
/// the newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_both(&d) {
                return Some(d);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// The system user the cluster runs as when this process is root.
const PG_USER: &str = "postgres";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `id -u NAME` / `id -g NAME`.
fn id_of(flag: &str, user: &str) -> Result<u32, String> {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .map_err(|e| format!("id {flag} {user}: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!(
                "the PostgreSQL tests run as root and need the `{user}` system user to run the \
                 cluster as (initdb refuses root); it does not exist: install PostgreSQL from \
                 the OS packages (which creates it), or set {URL_VAR}"
            )
        })
}

/// A command running `program` as the cluster's user.
fn as_cluster_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a command with its output in a file of the cluster's directory
/// (never in pipes, which the server it starts would hold open).
fn run(mut cmd: Command, dir: &Path, what: &str) -> Result<(), String> {
    let log = dir.join(format!("{what}.out"));
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let server_log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        Err(format!("{what} failed ({status}):\n{said}\n{server_log}"))
    }
}

fn start_cluster(bin: &Path) -> Result<String, String> {
    let root = is_root();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("wagate-pg-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        let uid = id_of("-u", PG_USER)?;
        let gid = id_of("-g", PG_USER)?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let pg_ctl = bin.join("pg_ctl");
    // The watchdog first, so that even a test process killed during the
    // start leaves nothing behind. It polls for this process (the only
    // portable wait for a process that is not one's child), in its own
    // session so a Ctrl-C to the test's process group does not end it
    // before it has cleaned up.
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
         {stop} -D '{data}' stop -m immediate >/dev/null 2>&1; \
         rm -rf '{dir}'",
        stop = if root {
            format!("runuser -u {PG_USER} -- '{}'", pg_ctl.display())
        } else {
            format!("'{}'", pg_ctl.display())
        },
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .or_else(|_| {
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))?;

    let mut initdb = as_cluster_user(root, &bin.join("initdb"));
    initdb.arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    run(initdb, &dir, "initdb")?;

    // Its own port number (it names the socket file; no TCP is opened).
    let port = 20000 + pid % 20000;
    let mut start = as_cluster_user(root, &pg_ctl);
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "60", "-o"])
        .arg(format!(
            "-c listen_addresses='' -k '{}' -p {port} -c max_connections=200",
            dir.display()
        ))
        .arg("start");
    run(start, &dir, "pg_ctl start")?;
    // The socket directory as the URL's host, percent-encoded.
    let host = dir
        .display()
        .to_string()
        .replace('%', "%25")
        .replace('/', "%2F");
    Ok(format!("postgres://postgres@{host}:{port}/postgres"))
}
