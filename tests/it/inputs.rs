//! The `wagate` binary on hostile and untidy input files: lines and rows
//! past the cap, bad bytes, CSV as spreadsheets write it, failed config
//! lines, imports run twice or stopped midway, and the memory all of it
//! takes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store_file::TempDb;

fn wagate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wagate"));
    c.env_remove("WAGATE_DB");
    c
}

fn run(db: Option<&Path>, args: &[&str]) -> Output {
    let mut c = wagate();
    if let Some(db) = db {
        c.arg("--db").arg(db);
    }
    c.args(args).stdin(Stdio::null()).output().unwrap()
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stats(db: &Path) -> Value {
    let o = run(Some(db), &["stats", "--json"]);
    serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap()
}

fn consent_events(db: &Path) -> u64 {
    stats(db)["consent_events"].as_u64().unwrap()
}

/// A file beside the database, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(db: &TempDb, suffix: &str, bytes: &[u8]) -> Self {
        let mut p = db.0.clone().into_os_string();
        p.push(suffix);
        let f = TempFile(p.into());
        std::fs::write(&f.0, bytes).unwrap();
        f
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn consent_line(n: usize, evidence: &str) -> String {
    format!(
        r#"{{"op":"consent","at":"2026-03-01T08:00:00Z","received_at":"2026-03-01T08:00:00Z","user":"whatsapp:+1555{n:07}","action":"opt_in","source":"import","evidence":"{evidence}"}}"#
    )
}

#[test]
fn a_long_line_fails_alone_and_the_others_land() {
    let db = TempDb::new("inputs-long");
    let mut input = String::new();
    input.push_str(&consent_line(1, "ok"));
    input.push('\n');
    // 3 MB of evidence: three times the default cap.
    input.push_str(&consent_line(2, &"e".repeat(3 << 20)));
    input.push('\n');
    input.push_str(&consent_line(3, "ok"));
    input.push('\n');
    let file = TempFile::new(&db, ".jsonl", input.as_bytes());
    let o = run(Some(&db.0), &["ingest", file.arg()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = lines(&o);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(
        (out[0]["line"].as_u64(), out[0]["ok"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        (out[2]["line"].as_u64(), out[2]["ok"].as_bool()),
        (Some(3), Some(true))
    );
    assert_eq!(out[1]["line"], 2);
    let e = out[1]["error"].as_str().unwrap();
    assert!(
        e.starts_with("line is longer than 1048576 bytes (starts with \"{\"op\":\"consent\""),
        "{e}"
    );
    assert!(e.len() < 150, "an error quotes a short prefix only: {e}");
    assert_eq!(consent_events(&db.0), 2);
    // The same file through import (JSON Lines) and replay: the same line fails.
    let other = TempDb::new("inputs-long-import");
    let o = run(Some(&other.0), &["import", file.arg()]);
    assert_eq!(o.status.code(), Some(1));
    let out = lines(&o);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["line"], 2);
    assert!(stderr(&o).contains("import: 3 rows, 2 applied (0 duplicates), 1 errors"));
    let o = run(None, &["replay", file.arg()]);
    assert_eq!(o.status.code(), Some(1));
    let out = lines(&o);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["line"], 2);
    // A smaller cap, on the command line.
    let o = run(None, &["replay", "--max-line-bytes", "100", file.arg()]);
    assert_eq!(
        lines(&o)
            .iter()
            .map(|l| l["line"].clone())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        lines(&o)[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("line is longer than 100 bytes")
    );
}

#[test]
fn error_lines_quote_a_short_prefix_of_long_values() {
    let db = TempDb::new("inputs-quote");
    let op = "x".repeat(5000);
    let input = format!(
        "{{\"op\":\"{op}\"}}\n{{\"op\":\"consent\",\"at\":\"2026-03-01T08:00:00Z\",\"user\":\"{op}\",\"action\":\"opt_in\",\"source\":\"s\"}}\n"
    );
    let file = TempFile::new(&db, ".jsonl", input.as_bytes());
    for args in [vec!["ingest", file.arg()], vec!["replay", file.arg()]] {
        let o = run(Some(&db.0), &args);
        let out = lines(&o);
        assert_eq!(out.len(), 2, "{args:?}: {out:?}");
        for l in out {
            let e = l["error"].as_str().unwrap();
            assert!(
                e.contains(&"x".repeat(60)) && !e.contains(&"x".repeat(61)),
                "{e}"
            );
            assert!(e.len() < 200, "{e}");
        }
    }
}

#[test]
fn a_bad_byte_fails_its_line_in_replay_and_check_files() {
    let dir = TempDb::new("inputs-bytes");
    let mut scenario = Vec::new();
    scenario.extend_from_slice(br#"{"op":"inbound","at":"2026-03-01T10:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"hi","id":"SM1"}"#);
    scenario.push(b'\n');
    scenario.extend_from_slice(b"{\"op\":\"check\",\"at\":\"2026-03-01T10:01:00Z\",\"from\":\"whatsapp:+14155238886\",\"to\":\"whatsapp:+15550001111\",\"text\":\"caf\xe9\"}\n");
    scenario.extend_from_slice(br#"{"op":"check","at":"2026-03-01T10:02:00Z","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"cafe"}"#);
    scenario.push(b'\n');
    let file = TempFile::new(&dir, ".jsonl", &scenario);
    let o = run(None, &["replay", file.arg()]);
    assert_eq!(o.status.code(), Some(1));
    let out = lines(&o);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0]["line"], 2);
    let e = out[0]["error"].as_str().unwrap();
    assert!(
        e.starts_with("the line is not valid UTF-8: byte 0xE9 at column"),
        "{e}"
    );
    assert_eq!(
        (out[1]["line"].as_u64(), out[1]["decision"].as_str()),
        (Some(3), Some("allow"))
    );

    // A file of checks: the same.
    let db = TempDb::new("inputs-bytes-db");
    let mut events = scenario.split(|&b| b == b'\n').next().unwrap().to_vec();
    events.push(b'\n');
    assert_eq!(
        wagate()
            .arg("--db")
            .arg(&db.0)
            .arg("ingest")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(&events)?;
                c.wait()
            })
            .unwrap()
            .code(),
        Some(0)
    );
    let mut checks = Vec::new();
    checks.extend_from_slice(
        b"{\"from\":\"+14155238886\",\"to\":\"+15550001111\",\"text\":\"\xff\"}\n",
    );
    checks.extend_from_slice(
        format!(
            "{{\"from\":\"+14155238886\",\"to\":\"+15550001111\",\"text\":\"{}\"}}\n",
            "y".repeat(300)
        )
        .as_bytes(),
    );
    checks.extend_from_slice(b"{\"from\":\"+14155238886\",\"to\":\"+15550001111\",\"text\":\"hi\",\"at\":\"2026-03-01T10:05:00Z\"}\n");
    let file = TempFile::new(&db, ".checks.jsonl", &checks);
    let o = run(
        Some(&db.0),
        &["check", file.arg(), "--max-line-bytes", "200"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = lines(&o);
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out[0]["error"].as_str().unwrap().contains("UTF-8"));
    assert!(
        out[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("line is longer than 200 bytes")
    );
    assert_eq!(out[2]["line"], 3);
    assert!(out[2]["decision"].is_string(), "{}", out[2]);
}

#[test]
fn a_failed_config_line_fails_the_replay_of_its_file() {
    let dir = TempDb::new("inputs-config");
    let check = r#"{"op":"check","at":"2026-03-01T10:00:00Z","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"hi"}"#;
    let bad = TempFile::new(
        &dir,
        ".bad.jsonl",
        format!("# margin in minutes\n{{\"op\":\"config\",\"margin_seconds\":-60}}\n{check}\n")
            .as_bytes(),
    );
    let broken = TempFile::new(
        &dir,
        ".broken.jsonl",
        format!("{{\"op\":\"config\", \"margin_seconds\": 3600,}}\n{check}\n").as_bytes(),
    );
    let good = TempFile::new(&dir, ".good.jsonl", format!("{check}\n").as_bytes());
    let o = run(None, &["replay", bad.arg(), broken.arg(), good.arg()]);
    assert_eq!(o.status.code(), Some(1));
    let out = lines(&o);
    // One error line per failed config, nothing after it in its file; the
    // next file runs.
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0]["line"], 2);
    assert!(
        out[0]["error"]
            .as_str()
            .unwrap()
            .contains("margin_seconds must be")
    );
    assert!(
        out[0]["error"]
            .as_str()
            .unwrap()
            .contains("the scenario stops here")
    );
    assert_eq!(out[1]["line"], 1);
    assert!(out[1]["error"].as_str().unwrap().starts_with("bad JSON"));
    assert!(
        out[1]["error"]
            .as_str()
            .unwrap()
            .contains("the scenario stops here")
    );
    assert_eq!(out[2]["line"], 1);
    assert!(out[2]["decision"].is_string(), "{}", out[2]);
}

const HEADER: &str = "user,action,scope,at,source,evidence";

#[test]
fn csv_as_spreadsheets_write_it() {
    let db = TempDb::new("inputs-csv");
    // CRLF endings, a BOM, quoted commas, quotes and a line break in a
    // quoted field, a ragged row, a row of empty fields.
    let crlf = format!(
        "\u{feff}{HEADER}\r\n\
         whatsapp:+15550001111,opt_in,all,2026-03-01T08:00:00Z,crm,\"signed form, page 2\"\r\n\
         +15550002222,opt_in,marketing,2026-03-01T08:00:00Z,crm,\"say \"\"yes\"\"\"\r\n\
         +15550003333,opt_in,all,2026-03-01T08:00:00Z,crm,\"two\r\nlines\"\r\n\
         +15550004444,opt_in,all,2026-03-01T08:00:00Z,crm\r\n\
         +15550005555,opt_out,,2026-03-01T08:00:00Z,crm,\r\n\
         ,,,,,\r\n"
    );
    let file = TempFile::new(&db, ".crlf.csv", crlf.as_bytes());
    let o = run(Some(&db.0), &["import", file.arg()]);
    assert_eq!(o.status.code(), Some(1), "the ragged row: {}", stderr(&o));
    let out = lines(&o);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["line"], 6, "the line the ragged row is on");
    assert!(
        out[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("row has 5 fields, the header has 6")
    );
    assert!(
        stderr(&o).contains("import: 5 rows, 4 applied (0 duplicates), 1 errors"),
        "{}",
        stderr(&o)
    );
    let history = |user: &str| {
        String::from_utf8_lossy(&run(Some(&db.0), &["history", "--user", user]).stdout).into_owned()
    };
    assert!(history("+15550001111").contains("evidence: signed form, page 2"));
    assert!(history("+15550002222").contains("evidence: say \"yes\""));
    assert!(history("+15550003333").contains("two\\r\\nlines"));

    // CR-only endings (old Mac, some exports): every row read, each with
    // its own line number.
    let cr = format!(
        "{HEADER}\r+15550006666,opt_in,all,2026-03-01T08:00:00Z,crm,\"a, b\"\r+0123,opt_in,all,2026-03-01T08:00:00Z,crm,\r+15550007777,opt_in,all,2026-03-01T08:00:00Z,crm,\r"
    );
    let file = TempFile::new(&db, ".cr.csv", cr.as_bytes());
    let o = run(Some(&db.0), &["import", file.arg()]);
    let out = lines(&o);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["line"], 3);
    assert!(
        stderr(&o).contains("import: 3 rows, 2 applied (0 duplicates), 1 errors"),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 6);
    assert_eq!(run(Some(&db.0), &["verify"]).status.code(), Some(0));

    // An unknown column is refused, not ignored: "scopes" would have made
    // a marketing opt-in an opt-in to everything.
    let typo =
        "user,action,scopes,at,source\n+15550008888,opt_in,marketing,2026-03-01T08:00:00Z,crm\n";
    let file = TempFile::new(&db, ".typo.csv", typo.as_bytes());
    let o = run(Some(&db.0), &["import", file.arg()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("header: unknown column \"scopes\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 6);
}

#[test]
fn an_import_run_again_lands_nothing_new() {
    let db = TempDb::new("inputs-again");
    let mut csv = format!("{HEADER}\n");
    for n in 0..30 {
        csv.push_str(&format!(
            "+1555{n:07},opt_in,all,2026-03-01T08:00:00Z,crm,row {n}\n"
        ));
    }
    // The same row twice in one file is one record.
    csv.push_str("+15550000000,opt_in,all,2026-03-01T08:00:00Z,crm,row 0\n");
    let file = TempFile::new(&db, ".csv", csv.as_bytes());
    let o = run(Some(&db.0), &["import", file.arg(), "--batch", "7"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("import: 31 rows, 31 applied (1 duplicates), 0 errors"),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 30);
    let o = run(Some(&db.0), &["import", file.arg()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("import: 31 rows, 31 applied (31 duplicates), 0 errors"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("31 rows were already in the trail"),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 30);

    // JSON Lines: keyed by content (received_at included when given);
    // the export of a database imported into it changes nothing.
    let export = run(Some(&db.0), &["export"]);
    let file = TempFile::new(&db, ".export.jsonl", &export.stdout);
    let o = run(Some(&db.0), &["import", file.arg()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("30 applied (30 duplicates)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 30);
    // A row that differs in any part of its content is new.
    let file = TempFile::new(
        &db,
        ".more.csv",
        format!("{HEADER}\n+15550000000,opt_in,all,2026-03-01T08:00:00Z,crm,row 0 (again)\n+15550000000,opt_out,all,2026-03-01T08:00:00Z,crm,row 0\n").as_bytes(),
    );
    let o = run(Some(&db.0), &["import", file.arg()]);
    assert!(
        stderr(&o).contains("2 applied (0 duplicates)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 32);
    assert_eq!(run(Some(&db.0), &["verify"]).status.code(), Some(0));
}

fn rows(n: usize) -> String {
    let mut csv = format!("{HEADER}\n");
    for i in 0..n {
        csv.push_str(&format!(
            "+1555{i:07},opt_in,all,2026-03-01T08:00:00Z,crm,row {i} {}\n",
            "e".repeat(200)
        ));
    }
    csv
}

#[test]
fn an_import_stopped_by_a_full_disk_is_finished_by_running_it_again() {
    let db = TempDb::new("inputs-full");
    let file = TempFile::new(&db, ".csv", rows(6000).as_bytes());
    // The schema first, then a file size limit the import runs into (with
    // SIGXFSZ ignored, a write past it fails as on a full disk).
    let o = wagate()
        .arg("--db")
        .arg(&db.0)
        .args(["ingest", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let script = format!(
        "trap '' XFSZ; ulimit -f 1000 && exec \"$0\" --db '{}' import '{}' --batch 500",
        db.0.display(),
        file.arg()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_wagate"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("import stopped: the rows of lines"), "{err}");
    let landed = consent_events(&db.0);
    assert!(landed > 0 && landed < 6000, "{landed}");
    assert!(
        err.contains(&format!(
            "{landed} rows landed before them (every row through line {})",
            landed + 1
        )),
        "{err}"
    );
    assert!(err.contains("run the same import again"), "{err}");
    let o = run(Some(&db.0), &["import", file.arg()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("6000 applied ({landed} duplicates)")),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 6000);
    assert_eq!(run(Some(&db.0), &["verify"]).status.code(), Some(0));
}

#[test]
fn a_killed_import_is_finished_by_running_it_again() {
    let db = TempDb::new("inputs-kill");
    let all = rows(450);
    // The import reads a pipe: it gets 3 batches' worth, commits 2 (one
    // is pending), and is killed.
    let fifo = TempFile(db.0.with_extension("fifo.csv"));
    let _ = std::fs::remove_file(&fifo.0);
    let made = Command::new("mkfifo").arg(&fifo.0).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    let mut child = wagate()
        .arg("--db")
        .arg(&db.0)
        .args(["import", fifo.arg(), "--batch", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo.0)
        .unwrap();
    let cut: usize = all.lines().take(251).map(|l| l.len() + 1).sum();
    pipe.write_all(&all.as_bytes()[..cut]).unwrap();
    pipe.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let landed = |db: &Path| {
        let o = run(Some(db), &["stats", "--json"]);
        serde_json::from_slice::<Value>(&o.stdout)
            .ok()
            .and_then(|s| s["consent_events"].as_u64())
    };
    while landed(&db.0).is_none_or(|n| n < 200) {
        assert!(Instant::now() < deadline, "the first batches never landed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    drop(pipe);
    assert_eq!(consent_events(&db.0), 200);
    let file = TempFile::new(&db, ".csv", all.as_bytes());
    let o = run(Some(&db.0), &["import", file.arg()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("450 applied (200 duplicates)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(consent_events(&db.0), 450);
    assert_eq!(run(Some(&db.0), &["verify"]).status.code(), Some(0));
}

/// Peak resident memory of a child, in KiB: from `/usr/bin/time -v`, or
/// else the `VmHWM` of `/proc/<pid>/status` polled until it exits.
fn peak_kib(args: &[&str]) -> Option<u64> {
    let exe = env!("CARGO_BIN_EXE_wagate");
    if Path::new("/usr/bin/time").exists() {
        let o = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .ok()?;
        let err = String::from_utf8_lossy(&o.stderr);
        if let Some(kib) = err
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(kib);
        }
    }
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let status = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status)
            && let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = Some(kib);
        }
        if child.try_wait().ok()?.is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn memory_stays_bounded_on_a_60_mb_line_and_a_60_mb_csv_header() {
    let db = TempDb::new("inputs-memory");
    let mut line = Vec::with_capacity(61 << 20);
    line.extend_from_slice(br#"{"op":"consent","at":"2026-03-01T08:00:00Z","user":"whatsapp:+15550001111","action":"opt_in","source":"s","evidence":""#);
    line.resize(60 << 20, b'a');
    line.extend_from_slice(b"\"}\n");
    let jsonl = TempFile::new(&db, ".jsonl", &line);
    let mut header = b"user,action,scope,at,source,\"".to_vec();
    header.resize(60 << 20, b'x');
    header.extend_from_slice(b"\"\n+15550001111,opt_in,all,2026-03-01T08:00:00Z,s,\n");
    let csv = TempFile::new(&db, ".csv", &header);
    drop((line, header));
    let limit = 64 << 10;
    let Some(kib) = peak_kib(&["--db", db.0.to_str().unwrap(), "ingest", jsonl.arg()]) else {
        eprintln!("skipped: neither /usr/bin/time -v nor /proc/<pid>/status works here");
        return;
    };
    eprintln!("ingest of a 60 MB line: peak RSS {kib} KiB");
    assert!(kib < limit, "ingest of a 60 MB line took {kib} KiB");
    let kib = peak_kib(&["--db", db.0.to_str().unwrap(), "import", csv.arg()]).unwrap();
    eprintln!("import of a 60 MB CSV header: peak RSS {kib} KiB");
    assert!(kib < limit, "import of a 60 MB CSV header took {kib} KiB");
    let kib = peak_kib(&["replay", jsonl.arg()]).unwrap();
    assert!(kib < limit, "replay of a 60 MB line took {kib} KiB");
}
