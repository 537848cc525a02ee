//! A PostgreSQL cluster of the tests' (and the benchmarks') own, started
//! with the server binaries `initdb` and `pg_ctl`: Unix socket in its
//! directory, no TCP. A watchdog shell started beside it waits for this
//! process to end, however it ends, then stops the cluster (`pg_ctl stop
//! -m immediate`) and, for a throwaway cluster, removes its directory. As
//! root (sessions, CI), the cluster runs as the `postgres` system user
//! (initdb refuses root).
//!
//! Shared by `tests/it/pg` and `benches/postgres.rs` (through `#[path]`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable naming an existing server.
pub const URL_VAR: &str = "WAGATE_TEST_POSTGRES_URL";

/// What to do when there is no server to test on.
pub fn missing() -> String {
    format!(
        "the PostgreSQL tests need a server and found none: install PostgreSQL's server \
         (Debian/Ubuntu: `apt-get install postgresql`, whose initdb and pg_ctl are in \
         /usr/lib/postgresql/<version>/bin; macOS: `brew install postgresql`) so that \
         initdb and pg_ctl are on PATH, or set {URL_VAR}=postgres://user:password@host/db \
         to use a server you run"
    )
}

/// The directory holding both `initdb` and `pg_ctl`: on PATH first, then
/// the newest `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin() -> Option<PathBuf> {
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

/// Starts a cluster in `dir` (its data in `dir/data`, made by initdb when
/// it holds none yet; its socket in `dir`) on `port`, with the server
/// settings `settings` (`-c name=value` each). When this process ends, a
/// watchdog stops the server and, when `throwaway`, removes `dir`.
/// Returns the URL to connect as the `postgres` superuser.
///
/// # Errors
/// What failed, with the commands' and the server's output.
pub fn start(
    bin: &Path,
    dir: &Path,
    port: u32,
    settings: &[(&str, &str)],
    throwaway: bool,
) -> Result<String, String> {
    let root = is_root();
    let pid = std::process::id();
    if throwaway {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        let uid = id_of("-u", PG_USER)?;
        let gid = id_of("-g", PG_USER)?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let pg_ctl = bin.join("pg_ctl");
    let as_user = |program: &Path| {
        if root {
            format!("runuser -u {PG_USER} -- '{}'", program.display())
        } else {
            format!("'{}'", program.display())
        }
    };
    // A server left running by an earlier process that did not stop it.
    if data.join("postmaster.pid").exists() {
        let mut stop = as_cluster_user(root, &pg_ctl);
        stop.arg("-D").arg(&data).args(["stop", "-m", "fast", "-w"]);
        let _ = run(stop, dir, "pg_ctl stop");
    }
    // The watchdog first, so that even a process killed during the start
    // leaves nothing behind. It polls for this process (the only portable
    // wait for a process that is not one's child), in its own session so
    // a Ctrl-C to the process group does not end it before it has cleaned
    // up.
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
         {stop} -D '{data}' stop -m {mode} >/dev/null 2>&1; {remove}",
        stop = as_user(&pg_ctl),
        data = data.display(),
        // A kept cluster stops cleanly, so its next start needs no recovery.
        mode = if throwaway { "immediate" } else { "fast" },
        remove = if throwaway {
            format!("rm -rf '{}'", dir.display())
        } else {
            String::new()
        },
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

    if !data.join("PG_VERSION").exists() {
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
        run(initdb, dir, "initdb")?;
    }

    let mut options = format!(
        "-c listen_addresses='' -k '{}' -p {port} -c max_connections=200",
        dir.display()
    );
    for (name, value) in settings {
        options.push_str(&format!(" -c {name}={value}"));
    }
    let mut start = as_cluster_user(root, &pg_ctl);
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "60", "-o"])
        .arg(options)
        .arg("start");
    run(start, dir, "pg_ctl start")?;
    // The socket directory as the URL's host, percent-encoded.
    let host = dir
        .display()
        .to_string()
        .replace('%', "%25")
        .replace('/', "%2F");
    Ok(format!("postgres://postgres@{host}:{port}/postgres"))
}
