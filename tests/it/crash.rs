//! Crash proof: a writer killed with SIGKILL at a random moment loses
//! nothing it acknowledged, and leaves a file that opens, verifies and
//! decides. Four writers are killed: `wagate ingest` reading a file,
//! `wagate ingest -` reading standard input, `wagate import`, and the
//! library's group commit (`examples/kill_target.rs`, four threads calling
//! `Business::ingest`).
//!
//! After each kill: `PRAGMA integrity_check` is `ok` on a raw connection;
//! every acknowledged line is in the database (inbound ids by SQL, consent
//! lines by SQL and in `wagate export`); a write (`wagate ingest`) goes
//! through; `wagate verify` passes; `wagate check` decides (exit 0, 3 or
//! 4). An import prints nothing per row: after its kill the same import is
//! run again and must land every row exactly once (at least once with an
//! import that does not skip landed rows; the test says which it checks).
//!
//! Short here (`WAGATE_KILLS`, default 5 kills per writer, on one file per
//! writer, a new one every 10 imports, so later runs start from a crashed
//! file). The long run (200
//! kills each; the seed is printed, `WAGATE_KILL_SEED` replays one):
//!
//! `WAGATE_KILLS=200 cargo test --release --all-features crash -- --nocapture`
//!
//! (not `--test it` alone: that builds no example, and the library's
//! writer is one; a stale `kill_target` would be run.)

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A directory in the temp dir, removed with its contents on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("wagate-test-{}-{n}-{name}.d", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sender every line writes to and every check asks about.
const SHOP: &str = "whatsapp:+14155238886";

fn kills() -> usize {
    std::env::var("WAGATE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// xorshift64*: enough to spread kill times; the seed is printed.
struct Rng(u64);

impl Rng {
    fn new(mode: &str) -> Self {
        let seed = std::env::var("WAGATE_KILL_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("crash {mode}: seed {seed} (WAGATE_KILL_SEED={seed} replays it)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }

    /// How long a writer runs before its kill: a few ms to ~120 ms.
    fn delay(&mut self) -> Duration {
        Duration::from_millis(2 + self.below(119))
    }
}

fn wagate(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wagate"));
    c.env_remove("WAGATE_DB").arg("--db").arg(db);
    c
}

/// `target/<profile>/examples/<name>`, beside this test binary's `deps/`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --all-features` (or `cargo build --example {name}` first), which builds the examples",
        path.display()
    );
    path
}

/// Reads a child's stdout to its end on a thread (so the child never
/// blocks on a full pipe): the complete lines only, as a line cut by the
/// kill was never acknowledged.
fn collect(out: impl Read + Send + 'static) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut lines = Vec::new();
        let mut line = String::new();
        while let Ok(n) = r.read_line(&mut line) {
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            lines.push(line.trim_end().to_owned());
            line.clear();
        }
        lines
    })
}

/// Lets `child` run for `delay`, then SIGKILLs it (`Child::kill` is
/// SIGKILL on Unix). Whether it had finished on its own by then.
fn kill_after(child: &mut Child, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(
            Duration::from_millis(1).min(until.saturating_duration_since(Instant::now())),
        );
    }
    if child.try_wait().unwrap().is_some() {
        return true;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    false
}

/// A user of the crash lines (a few hundred, so chains and windows grow).
fn user(i: usize) -> String {
    format!("whatsapp:+1555{:07}", 2_000_000 + i % 400)
}

/// Line `i` of a run tagged `tag`: an inbound message with id `tag-i`, or
/// (every third) a consent event whose evidence is `tag-i`.
fn line(tag: &str, i: usize) -> String {
    let user = user(i);
    if i % 3 == 2 {
        let action = if i % 6 == 2 { "opt_in" } else { "opt_out" };
        format!(
            r#"{{"op":"consent","at":"2026-03-01T09:00:00Z","received_at":"2026-03-01T09:00:00Z","user":"{user}","action":"{action}","source":"crash","evidence":"{tag}-{i}"}}"#
        )
    } else {
        format!(
            r#"{{"op":"inbound","at":"2026-03-01T10:00:00Z","received_at":"2026-03-01T10:00:00Z","from":"{user}","to":"{SHOP}","body":"hi {i}","id":"{tag}-{i}"}}"#
        )
    }
}

/// What a killed writer acknowledged.
#[derive(Default)]
struct Acked {
    inbound: Vec<String>,
    consent: Vec<String>,
}

impl Acked {
    fn len(&self) -> usize {
        self.inbound.len() + self.consent.len()
    }
}

/// The acknowledgements of `wagate ingest` (`{"line":N,"ok":true,...}`)
/// for lines `tag-0`, `tag-1`, ... in that order. An error line is a
/// failure: every line given is valid.
fn ingest_acks(out: &[String], tag: &str) -> Acked {
    let mut acked = Acked::default();
    for l in out {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert_eq!(v["ok"], true, "a valid line was refused: {l}");
        let i = usize::try_from(v["line"].as_u64().unwrap() - 1).unwrap();
        let id = format!("{tag}-{i}");
        if i % 3 == 2 {
            acked.consent.push(id);
        } else {
            acked.inbound.push(id);
        }
    }
    acked
}

/// Everything that must hold after a kill.
fn after_kill(db: &Path, acked: &Acked, seed_tag: &str) {
    if db.exists() {
        let conn = rusqlite::Connection::open(db).unwrap();
        let ok: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ok, ["ok"], "integrity_check after a kill");
        let has_table: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'inbound_messages'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if acked.len() > 0 {
            assert!(has_table, "acknowledged lines, but the file has no schema");
            // One scan per table (neither column leads an index): a count
            // per value, so "there exactly once" costs no query per line.
            let tally = |sql: &str| -> HashMap<String, usize> {
                let mut seen = HashMap::new();
                let mut stmt = conn.prepare(sql).unwrap();
                let mut rows = stmt.query([]).unwrap();
                while let Some(row) = rows.next().unwrap() {
                    *seen.entry(row.get::<_, String>(0).unwrap()).or_insert(0) += 1;
                }
                seen
            };
            let inbound = tally("SELECT provider_id FROM inbound_messages");
            for id in &acked.inbound {
                assert_eq!(inbound.get(id), Some(&1), "acknowledged inbound {id} lost");
            }
            let consent = tally("SELECT evidence FROM consent_events WHERE evidence IS NOT NULL");
            for id in &acked.consent {
                assert_eq!(consent.get(id), Some(&1), "acknowledged consent {id} lost");
            }
        }
    } else {
        assert_eq!(acked.len(), 0, "acknowledged lines, and there is no file");
    }
    // A write goes through on the crashed file (also on one killed while
    // it was being created): the seed opens the window checked below.
    let seed = format!(
        r#"{{"op":"inbound","at":"2026-03-01T10:00:00Z","received_at":"2026-03-01T10:00:00Z","from":"{}","to":"{SHOP}","body":"seed","id":"{seed_tag}"}}"#,
        user(0)
    );
    let mut c = wagate(db)
        .args(["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(seed.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(r#""ok":true"#),
        "a write after the kill: {o:?}"
    );
    let o = wagate(db).arg("verify").output().unwrap();
    assert!(o.status.success(), "verify after a kill: {o:?}");
    if !acked.consent.is_empty() {
        let o = wagate(db).arg("export").output().unwrap();
        assert!(o.status.success(), "export after a kill: {o:?}");
        let evidence: HashSet<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                Some(v.get("evidence")?.as_str()?.to_owned())
            })
            .collect();
        for id in &acked.consent {
            assert!(
                evidence.contains(id),
                "acknowledged consent {id} not exported"
            );
        }
    }
    let o = wagate(db)
        .args([
            "check",
            "--from",
            SHOP,
            "--to",
            &user(0),
            "--text",
            "hi",
            "--at",
            "2026-03-01T10:05:00Z",
        ])
        .output()
        .unwrap();
    let decision: Option<Value> = serde_json::from_slice(&o.stdout).ok();
    assert!(
        matches!(o.status.code(), Some(0 | 3 | 4))
            && decision.is_some_and(|d| d.get("decision").is_some()),
        "check after a kill must decide: {o:?}"
    );
}

/// Tally of one writer's kill loop.
#[derive(Default)]
struct Tally {
    kills: usize,
    finished: usize,
    acked: usize,
}

impl Tally {
    fn add(&mut self, finished: bool, acked: usize) {
        if finished {
            self.finished += 1;
        } else {
            self.kills += 1;
        }
        self.acked += acked;
    }

    fn report(&self, mode: &str, runs: usize, what: &str) {
        eprintln!(
            "crash {mode}: {runs} runs, {} killed, {} finished before their kill, {} {what}",
            self.kills, self.finished, self.acked
        );
        // A loop whose writer always finished first proves nothing.
        assert!(
            self.kills * 2 >= runs,
            "{mode}: only {} of {runs} runs were killed mid-way",
            self.kills
        );
    }
}

const LINES: usize = 20_000;

#[test]
fn a_killed_ingest_of_a_file_keeps_every_acknowledged_line() {
    let dir = TempDir::new("crash-file");
    let db = dir.0.join("crash.db");
    let mut rng = Rng::new("ingest-file");
    let mut tally = Tally::default();
    let runs = kills();
    for k in 0..runs {
        let tag = format!("F{k}");
        let file = dir.0.join(format!("{tag}.jsonl"));
        let text: Vec<String> = (0..LINES).map(|i| line(&tag, i)).collect();
        std::fs::write(&file, text.join("\n") + "\n").unwrap();
        let batch = ["1", "7", "50", "400"][rng.below(4) as usize];
        let mut child = wagate(&db)
            .args(["ingest", "--batch", batch])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let finished = kill_after(&mut child, rng.delay());
        let acked = ingest_acks(&out.join().unwrap(), &tag);
        if finished {
            assert_eq!(
                acked.len(),
                LINES,
                "a finished ingest acknowledges every line"
            );
        }
        after_kill(&db, &acked, &format!("seed-{tag}"));
        tally.add(finished, acked.len());
        std::fs::remove_file(&file).unwrap();
    }
    tally.report("ingest-file", runs, "acknowledged lines, none lost");
}

#[test]
fn a_killed_ingest_of_stdin_keeps_every_acknowledged_line() {
    let dir = TempDir::new("crash-stdin");
    let db = dir.0.join("crash.db");
    let mut rng = Rng::new("ingest-stdin");
    let mut tally = Tally::default();
    let runs = kills();
    for k in 0..runs {
        let tag = format!("S{k}");
        let batch = ["1", "20", "1000"][rng.below(3) as usize];
        let mut child = wagate(&db)
            .args(["ingest", "--batch", batch, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let mut input = child.stdin.take().unwrap();
        // Bursts with pauses, as a webhook stream comes: some batches close
        // on size, some on the pause.
        let burst = 1 + rng.below(200) as usize;
        let feeder_tag = tag.clone();
        let feeder = std::thread::spawn(move || {
            for start in (0..LINES).step_by(burst) {
                let mut chunk = String::new();
                for i in start..(start + burst).min(LINES) {
                    chunk.push_str(&line(&feeder_tag, i));
                    chunk.push('\n');
                }
                // The kill breaks the pipe: the feeder just stops.
                if input.write_all(chunk.as_bytes()).is_err() || input.flush().is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        let finished = kill_after(&mut child, rng.delay());
        feeder.join().unwrap();
        let acked = ingest_acks(&out.join().unwrap(), &tag);
        after_kill(&db, &acked, &format!("seed-{tag}"));
        tally.add(finished, acked.len());
    }
    tally.report("ingest-stdin", runs, "acknowledged lines, none lost");
}

#[test]
fn a_killed_group_commit_keeps_every_acknowledged_event() {
    let target = example("kill_target");
    let dir = TempDir::new("crash-lib");
    let db = dir.0.join("crash.db");
    let mut rng = Rng::new("group-commit");
    let mut tally = Tally::default();
    let runs = kills();
    for k in 0..runs {
        let tag = format!("L{k}");
        let mut child = Command::new(&target)
            .arg(&db)
            .arg(&tag)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        let finished = kill_after(&mut child, rng.delay());
        let lines = out.join().unwrap();
        let errors = err.join().unwrap();
        assert!(errors.is_empty(), "kill_target failed: {errors:?}");
        let mut acked = Acked::default();
        for l in &lines {
            match l.split_once(' ') {
                Some(("inbound", id)) => acked.inbound.push(id.to_owned()),
                Some(("consent", id)) => acked.consent.push(id.to_owned()),
                _ => panic!("kill_target printed {l:?}"),
            }
        }
        after_kill(&db, &acked, &format!("seed-{tag}"));
        tally.add(finished, acked.len());
    }
    tally.report("group-commit", runs, "acknowledged events, none lost");
}

#[test]
fn a_killed_import_leaves_a_sound_file_and_a_rerun_finishes_it() {
    let dir = TempDir::new("crash-import");
    let mut rng = Rng::new("import");
    let mut tally = Tally::default();
    let runs = kills();
    // Smaller transactions, when this build's import takes them: more
    // commits for a kill to land between.
    let help = wagate(&dir.0.join("none.db"))
        .args(["import", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let batch: &[&str] = if help.contains("--batch") {
        &["--batch", "100"]
    } else {
        &[]
    };
    // A re-import that skips the rows already in the trail lands each row
    // once; a build without it lands the committed batches twice.
    let skips_landed = help.contains("lands only what had not landed");
    if !skips_landed {
        eprintln!(
            "crash import: this build's import does not skip landed rows: asserting every row at least once"
        );
    }
    const ROWS: usize = 6_000;
    for k in 0..runs {
        // Each run adds 6,000 events that every `verify` reads: a new file
        // every 10 runs keeps the long run linear.
        let db = dir.0.join(format!("crash-{}.db", k / 10));
        let tag = format!("I{k}");
        let csv = dir.0.join(format!("{tag}.csv"));
        let mut text = String::from("user,action,scope,at,source,evidence\n");
        for r in 0..ROWS {
            let action = if r % 5 == 4 { "opt_out" } else { "opt_in" };
            text.push_str(&format!(
                "{},{action},all,2026-03-01T08:00:00Z,crm,{tag}-{r}\n",
                user(r)
            ));
        }
        std::fs::write(&csv, text).unwrap();
        let mut child = wagate(&db)
            .arg("import")
            .args(batch)
            .arg(&csv)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let finished = kill_after(&mut child, rng.delay());
        let printed = out.join().unwrap();
        assert!(printed.is_empty(), "import reported bad rows: {printed:?}");
        // Nothing is acknowledged row by row: the file must be sound and
        // the gate must decide.
        after_kill(&db, &Acked::default(), &format!("seed-{tag}"));
        let landed: i64 = {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.query_row(
                "SELECT count(*) FROM consent_events WHERE evidence LIKE ?1",
                [format!("{tag}-%")],
                |r| r.get(0),
            )
            .unwrap()
        };
        // The same import again finishes the job.
        let o = wagate(&db).arg("import").arg(&csv).output().unwrap();
        assert!(o.status.success(), "the rerun of a killed import: {o:?}");
        let conn = rusqlite::Connection::open(&db).unwrap();
        let (rows, distinct): (i64, i64) = conn
            .query_row(
                "SELECT count(*), count(DISTINCT evidence) FROM consent_events WHERE evidence LIKE ?1",
                [format!("{tag}-%")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(distinct, ROWS as i64, "after the rerun, rows are missing");
        if skips_landed {
            assert_eq!(
                rows, ROWS as i64,
                "after the rerun every row once ({landed} had landed before the kill)"
            );
        } else {
            assert_eq!(rows, ROWS as i64 + landed);
        }
        drop(conn);
        let o = wagate(&db).arg("verify").output().unwrap();
        assert!(o.status.success(), "verify after the rerun: {o:?}");
        tally.add(finished, usize::try_from(landed).unwrap());
        std::fs::remove_file(&csv).unwrap();
    }
    tally.report(
        "import",
        runs,
        "rows landed before the kills, every row there after the reruns",
    );
}
