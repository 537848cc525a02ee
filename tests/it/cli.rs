//! The real `wagate` binary on real database files.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::store_file::TempDb;

fn wagate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wagate"));
    c.env_remove("WAGATE_DB");
    c.env_remove("TWILIO_AUTH_TOKEN");
    c.env_remove("META_APP_SECRET");
    c
}

fn run(db: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = wagate();
    if let Some(db) = db {
        c.arg("--db").arg(db);
    }
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that does not read its input may exit before we finish
    // writing it: a broken pipe here is not the test's failure.
    match input.write_all(stdin.unwrap_or("").as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

const EVENTS: &str = r#"{"op":"consent","at":"2026-03-01T08:00:00Z","user":"whatsapp:+15550001111","action":"opt_in","source":"web_form","evidence":"form v3"}
{"op":"template","at":"2026-03-01T00:00:00Z","name":"shipped","language":"en","category":"utility","status":"approved","body":"Order {{1}} shipped","received_at":"2026-03-01T00:00:00Z"}
# a comment
{"op":"inbound","at":"2026-03-01T10:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"hi","id":"SM1","received_at":"2026-03-01T10:00:00Z"}
{"op":"inbound","at":"2026-03-01T10:00:00Z","from":"whatsapp:+0123","to":"whatsapp:+14155238886","body":"hi","received_at":"2026-03-01T10:00:00Z"}
{"op":"check","at":"2026-03-01T10:00:00Z","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"hi"}
{"op":"inbound","at":"2026-03-01T11:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"STOP","id":"SM2","received_at":"2026-03-01T11:00:00Z"}
{"op":"inbound","at":"2026-03-01T10:00:00Z","from":"whatsapp:+15550002222","to":"whatsapp:+14155238886","kind":"media","id":"SM3","received_at":"2026-03-01T10:00:00Z"}
"#;

#[test]
fn ingest_then_check() {
    let db = TempDb::new("cli-ingest");
    let o = run(Some(&db.0), &["ingest", "-"], Some(EVENTS));
    assert_eq!(o.status.code(), Some(1), "a bad line makes exit 1");
    let lines = json_lines(&o);
    let oks: Vec<_> = lines
        .iter()
        .filter(|l| l["ok"] == true)
        .map(|l| l["line"].clone())
        .collect();
    assert_eq!(oks, [1, 2, 4, 7, 8]);
    let errs: Vec<_> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0]["line"], 5);
    assert!(
        errs[0]["error"]
            .as_str()
            .unwrap()
            .contains("invalid address")
    );
    assert_eq!(errs[1]["line"], 6);
    let keyword = lines.iter().find(|l| l["line"] == 7).unwrap();
    assert_eq!(keyword["keyword"], "opt_out");

    let check_to = |to: &str, at: &str, extra: &[&str]| {
        let mut args = vec![
            "check",
            "--from",
            "whatsapp:+14155238886",
            "--to",
            to,
            "--at",
            at,
        ];
        args.extend_from_slice(extra);
        run(Some(&db.0), &args, None)
    };
    let check = |at: &str, extra: &[&str]| check_to("+1 555 000 1111", at, extra);
    // The media message opened a window with the second user.
    let o = check_to(
        "whatsapp:+15550002222",
        "2026-03-01T10:30:00Z",
        &["--text", "hi"],
    );
    assert_eq!(o.status.code(), Some(0));
    let d: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (d["decision"].as_str(), d["reason"].as_str()),
        (Some("allow"), Some("window_open"))
    );
    assert_eq!(d["window_closes_at"], "2026-03-02T10:00:00.000Z");
    // `--at` answers as of that time: the STOP received at 11:00 does not
    // count at 10:30, and does at 11:01.
    let o = check("2026-03-01T10:30:00Z", &["--text", "hi"]);
    let d: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (d["decision"].as_str(), d["reason"].as_str()),
        (Some("allow"), Some("window_open"))
    );
    let o = check("2026-03-01T11:01:00Z", &["--text", "hi"]);
    let d: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (d["decision"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("opted_out"))
    );
    let o = check(
        "2026-03-01T11:01:00Z",
        &[
            "--template",
            "shipped",
            "--language",
            "en",
            "--var",
            "A-1",
            "--human",
        ],
    );
    let text = stdout(&o);
    assert!(text.starts_with("deny (opted_out)"), "{text}");
    let o = check(
        "2026-03-01T11:01:00Z",
        &[
            "--text",
            "You are unsubscribed",
            "--purpose",
            "opt_out_confirmation",
        ],
    );
    let d: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(d["reason"], "opt_out_confirmation");
    // Ingesting the same file again: the inbound ids are duplicates.
    let o = run(Some(&db.0), &["ingest", "-"], Some(EVENTS));
    let again = json_lines(&o);
    assert_eq!(
        again.iter().find(|l| l["line"] == 4).unwrap()["duplicate"],
        true
    );
}

#[test]
fn usage_and_bad_input_exit_codes() {
    let o = run(None, &["stats"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--db"));
    let o = run(None, &["frobnicate"], None);
    assert_eq!(o.status.code(), Some(2));
    let db = TempDb::new("cli-codes");
    let o = run(
        Some(&db.0),
        &[
            "check",
            "--from",
            "+14155238886",
            "--to",
            "+15550001111",
            "--text",
            "x",
            "--at",
            "soon",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--at"));
    // Read commands never create a database or a business.
    for cmd in [
        &["stats"][..],
        &["export"],
        &["history", "--user", "+15550001111"],
        &["templates", "list"],
        &["verify"],
    ] {
        let o = run(Some(&db.0), cmd, None);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("no database"),
            "{cmd:?}"
        );
        assert!(!db.0.exists(), "{cmd:?} created the file");
    }
    let o = run(Some(&db.0), &["ingest", "-"], Some(EVENTS));
    assert_eq!(o.status.code(), Some(1));
    let o = run(Some(&db.0), &["--business", "acme", "stats"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown business \"acme\"") && err.contains("known businesses: default"),
        "{err}"
    );
    let o = run(
        Some(&db.0),
        &["--business", " acme", "ingest", "-"],
        Some(EVENTS),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid business name"));
    // An invalid address in a check is a decision, not an error.
    let o = run(
        Some(&db.0),
        &[
            "check",
            "--from",
            "+14155238886",
            "--to",
            "sms:+15550001111",
            "--text",
            "x",
        ],
        None,
    );
    // A decision, not an error: exit 4 says deny.
    assert_eq!(o.status.code(), Some(4));
    assert!(stdout(&o).contains("invalid_address"));
    for cmd in [
        "replay",
        "demo",
        "ingest",
        "check",
        "history",
        "export",
        "import",
        "templates",
        "stats",
        "verify",
        "sends",
    ] {
        let o = run(None, &[cmd, "--help"], None);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help");
        assert!(
            stdout(&o).contains("Example"),
            "{cmd} --help has an example"
        );
    }
}

#[test]
fn export_then_import_gives_the_same_history() {
    let a = TempDb::new("cli-export-a");
    let b = TempDb::new("cli-export-b");
    let events = r#"{"op":"consent","at":"2026-03-01T08:00:00Z","received_at":"2026-03-01T08:00:05Z","user":"whatsapp:+15550001111","action":"opt_in","source":"web_form","evidence":"form v3, \"checkbox\""}
{"op":"inbound","at":"2026-03-02T10:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"stop","id":"SM1"}
{"op":"inbound","at":"2026-03-02T11:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"yes","id":"SM2"}
{"op":"inbound","at":"2026-03-02T12:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"yes","id":"SM3"}
{"op":"consent","at":"2026-03-03T08:00:00Z","user":"whatsapp:+15550002222","action":"opt_out","scope":"marketing","source":"provider_preference"}
"#;
    assert_eq!(
        run(Some(&a.0), &["ingest"], Some(events)).status.code(),
        Some(0)
    );
    let export = run(Some(&a.0), &["export"], None);
    assert_eq!(export.status.code(), Some(0));
    let exported = stdout(&export);
    assert_eq!(exported.lines().count(), 5);
    let file = TempDb::new("cli-export-file");
    let jsonl = file.0.with_extension("jsonl");
    std::fs::write(&jsonl, &exported).unwrap();
    let o = run(Some(&b.0), &["import", jsonl.to_str().unwrap()], None);
    let _ = std::fs::remove_file(&jsonl);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for user in ["whatsapp:+15550001111", "whatsapp:+15550002222"] {
        let ha = json_lines(&run(
            Some(&a.0),
            &["history", "--user", user, "--json"],
            None,
        ));
        let hb = json_lines(&run(
            Some(&b.0),
            &["history", "--user", user, "--json"],
            None,
        ));
        let consent = |h: &[Value]| -> Vec<Value> {
            h.iter()
                .filter(|l| l["kind"] == "consent")
                .map(|l| {
                    // Each database builds its own chain: every event
                    // has a random salt, so its hash differs.
                    let mut l = l.clone();
                    let o = l.as_object_mut().unwrap();
                    o.remove("seq");
                    assert_eq!(
                        o.remove("hash").map(|h| h.as_str().unwrap().len()),
                        Some(64)
                    );
                    l
                })
                .collect()
        };
        assert!(!consent(&ha).is_empty());
        assert_eq!(consent(&ha), consent(&hb), "{user}");
    }
    // The second "yes" did not count, in both databases.
    let h = json_lines(&run(
        Some(&b.0),
        &["history", "--user", "whatsapp:+15550001111", "--json"],
        None,
    ));
    let counted: Vec<_> = h
        .iter()
        .filter(|l| l["kind"] == "consent")
        .map(|l| l["counted"].clone())
        .collect();
    assert_eq!(counted, [true, true, true, false]);
    // --since keeps only what was received later: the first line was
    // received on 2026-03-01, the others when `ingest` read them (now).
    let since = run(
        Some(&a.0),
        &["export", "--since", "2026-03-02T00:00:00Z"],
        None,
    );
    assert_eq!(stdout(&since).lines().count(), 4);
}

#[test]
fn csv_import_reports_bad_rows_and_keeps_good_ones() {
    let db = TempDb::new("cli-csv");
    let csv = db.0.with_extension("csv");
    std::fs::write(
        &csv,
        "user,action,scope,at,source,evidence\n\
         whatsapp:+15550001111,opt_in,all,2026-03-01T08:00:00Z,import,\"crm, row 1\"\n\
         whatsapp:+0123,opt_in,all,2026-03-01T08:00:00Z,import,bad number\n\
         whatsapp:+15550002222,opt_in,,2026-03-01T08:00:00Z,import,\n\
         whatsapp:+15550003333,maybe,all,2026-03-01T08:00:00Z,import,\n\
         +15550004444,opt_out,marketing,2026-03-01T08:00:00Z,import,unsubscribed in CRM\n",
    )
    .unwrap();
    let o = run(Some(&db.0), &["import", csv.to_str().unwrap()], None);
    let _ = std::fs::remove_file(&csv);
    assert_eq!(o.status.code(), Some(1));
    let errs = json_lines(&o);
    let lines: Vec<_> = errs.iter().map(|l| l["line"].clone()).collect();
    assert_eq!(lines, [3, 5]);
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(
        summary.contains("import: 5 rows, 3 applied (0 duplicates), 2 errors"),
        "{summary}"
    );
    let s: Value =
        serde_json::from_str(stdout(&run(Some(&db.0), &["stats", "--json"], None)).trim()).unwrap();
    assert_eq!(
        (
            s["users"].as_u64(),
            s["opted_in"].as_u64(),
            s["consent_events"].as_u64()
        ),
        (Some(3), Some(2), Some(3))
    );
    let h = stdout(&run(
        Some(&db.0),
        &["history", "--user", "whatsapp:+15550001111"],
        None,
    ));
    assert!(h.contains("crm, row 1"), "{h}");
}

#[test]
fn templates_set_and_list() {
    let db = TempDb::new("cli-templates");
    let set = |body: &str| {
        run(
            Some(&db.0),
            &[
                "templates",
                "set",
                "--name",
                "otp",
                "--language",
                "en",
                "--category",
                "AUTHENTICATION",
                "--status",
                "approved",
                "--body",
                body,
                "--at",
                "2026-03-01T00:00:00Z",
            ],
            None,
        )
    };
    let o = set("Code {{ 1 }}");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("{{ 1 }}"));
    assert_eq!(set("Code {{1}}").status.code(), Some(0));
    let list = json_lines(&run(Some(&db.0), &["templates", "list", "--json"], None));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["category"], "authentication");
    assert_eq!(list[0]["status"], "approved");
}

#[test]
fn replay_runs_our_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.to_string_lossy().ends_with(".jsonl")
                && !p.to_string_lossy().ends_with(".expected.jsonl")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let o = run(None, &["replay", f.to_str().unwrap()], None);
        let expected =
            std::fs::read_to_string(f.to_string_lossy().replace(".jsonl", ".expected.jsonl"))
                .unwrap();
        let want: Vec<Value> = expected
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got = json_lines(&o);
        assert_eq!(got.len(), want.len(), "{}", f.display());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g["line"], w["line"], "{}", f.display());
            if w.get("error").is_some() {
                assert!(g.get("error").is_some(), "{}: {g}", f.display());
            } else {
                assert_eq!(
                    (&g["decision"], &g["reason"]),
                    (&w["decision"], &w["reason"]),
                    "{}",
                    f.display()
                );
            }
        }
        let any_error = want.iter().any(|w| w.get("error").is_some());
        assert_eq!(
            o.status.code(),
            Some(if any_error { 1 } else { 0 }),
            "{}",
            f.display()
        );
    }
}

#[test]
fn a_killed_ingest_keeps_every_acknowledged_line() {
    let db = TempDb::new("cli-kill");
    let mut child = wagate()
        .arg("--db")
        .arg(&db.0)
        .args(["ingest", "-", "--batch", "50"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut acks = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    // Feed lines in bursts; after each burst read the acks that came back.
    for burst in 0..6 {
        for i in 0..40 {
            let n = burst * 40 + i;
            writeln!(
                input,
                r#"{{"op":"consent","at":"2026-03-01T08:00:00Z","user":"whatsapp:+1555{n:07}","action":"opt_in","source":"import","evidence":"row {n}"}}"#
            )
            .unwrap();
        }
        input.flush().unwrap();
        while acked.len() < (burst + 1) * 40 {
            let line = acks.next().unwrap().unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["ok"], true);
            acked.push(v["line"].as_u64().unwrap());
        }
    }
    // More lines that may or may not be acknowledged, then a hard kill.
    for n in 240..400 {
        let _ = writeln!(
            input,
            r#"{{"op":"consent","at":"2026-03-01T08:00:00Z","user":"whatsapp:+1555{n:07}","action":"opt_in","source":"import","evidence":"row {n}"}}"#
        );
    }
    child.kill().unwrap();
    let _ = child.wait();
    drop(input);
    let s: Value =
        serde_json::from_str(stdout(&run(Some(&db.0), &["stats", "--json"], None)).trim()).unwrap();
    let stored = s["consent_events"].as_u64().unwrap();
    assert!(
        stored >= acked.len() as u64,
        "{stored} stored < {} acknowledged",
        acked.len()
    );
    // Every acknowledged line is there, by its evidence.
    let export = stdout(&run(Some(&db.0), &["export"], None));
    for line in acked {
        let n = line - 1;
        assert!(
            export.contains(&format!("\"row {n}\"")),
            "acknowledged line {line} lost"
        );
    }
}

#[test]
fn live_ingest_dates_arrival_now_and_survives_bad_bytes() {
    let db = TempDb::new("cli-live");
    let mut input: Vec<u8> = Vec::new();
    // A record stamped in 2030 (a time-zone bug in a CRM): it reached us
    // now, so it cannot outrank a STOP sent after it arrived.
    input.extend_from_slice(br#"{"op":"consent","at":"2030-01-01T00:00:00Z","user":"whatsapp:+15550002222","action":"opt_in","source":"import"}"#);
    input.push(b'\n');
    input.extend_from_slice(b"{\"op\":\"inbound\",\"at\":\"2026-03-01T10:00:00Z\",\xff}\n");
    let now = wagate::Timestamp::now();
    let later = now.plus_minutes(1).to_string();
    input.extend_from_slice(
        format!(r#"{{"op":"inbound","at":"{later}","received_at":"{later}","from":"whatsapp:+15550002222","to":"whatsapp:+14155238886","body":"STOP","id":"SM1"}}"#)
            .as_bytes(),
    );
    input.push(b'\n');
    let mut child = wagate()
        .arg("--db")
        .arg(&db.0)
        .arg("ingest")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["ok"], true);
    assert!(lines[1]["error"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(
        lines[2]["ok"], true,
        "the line after the bad one still lands"
    );
    let at = now.plus_minutes(2).to_string();
    let o = run(
        Some(&db.0),
        &[
            "check",
            "--from",
            "+14155238886",
            "--to",
            "+15550002222",
            "--text",
            "hi",
            "--at",
            &at,
        ],
        None,
    );
    let d: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(d["reason"], "opted_out", "{d}");
}

#[test]
fn import_reports_unreadable_rows_and_keeps_the_rest() {
    let db = TempDb::new("cli-csv-bytes");
    let csv = db.0.with_extension("csv");
    let mut bytes = b"\xef\xbb\xbfuser,action,scope,at,source,evidence\n".to_vec();
    bytes.extend_from_slice(b"whatsapp:+15550001111,opt_in,all, 2026-03-01T08:00:00Z ,import,ok\n");
    bytes.extend_from_slice(
        b"whatsapp:+15550002222,opt_in,all,2026-03-01T08:00:00Z,import,caf\xe9\n",
    );
    bytes.extend_from_slice(b"whatsapp:+15550003333,opt_in,all,2026-03-01T08:00:00Z,import,ok\n");
    std::fs::write(&csv, bytes).unwrap();
    let o = run(Some(&db.0), &["import", csv.to_str().unwrap()], None);
    let _ = std::fs::remove_file(&csv);
    assert_eq!(o.status.code(), Some(1));
    let errs = json_lines(&o);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["line"], 3);
    let s: Value =
        serde_json::from_str(stdout(&run(Some(&db.0), &["stats", "--json"], None)).trim()).unwrap();
    assert_eq!(s["opted_in"], 2);
}

const PEOPLE: &str = r#"{"op":"consent","at":"2026-05-01T08:00:00Z","received_at":"2026-05-01T08:00:00Z","user":"whatsapp:+447700900123","action":"opt_in","source":"web_form","evidence":"form v3"}
{"op":"inbound","at":"2026-05-01T12:00:00Z","received_at":"2026-05-01T12:00:00Z","from":"whatsapp:+447700900123","user_id":"US.1349","to":"whatsapp:+14155238886","kind":"reaction","id":"wamid.1"}
{"op":"inbound","at":"2026-05-03T08:00:00Z","received_at":"2026-05-03T08:00:00Z","user_id":"US.1349","to":"whatsapp:+14155238886","body":"STOP","id":"wamid.2"}
"#;

fn decision(o: &Output) -> (String, String) {
    let d: Value =
        serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)));
    (
        d["decision"].as_str().unwrap_or_default().to_owned(),
        d["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn people_history_export_and_verify() {
    let db = TempDb::new("cli-people");
    let o = run(Some(&db.0), &["ingest", "-"], Some(PEOPLE));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("\"linked\":true"));
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(
        summary.starts_with("ingest: 3 lines, 3 applied (0 duplicates), 0 errors"),
        "{summary}"
    );
    // The STOP from the username side stops sends to the phone.
    let check = |db: &Path, to: &str| {
        run(
            Some(db),
            &[
                "check",
                "--from",
                "+14155238886",
                "--to",
                to,
                "--text",
                "hi",
                "--at",
                "2026-05-03T09:00:00Z",
            ],
            None,
        )
    };
    assert_eq!(
        decision(&check(&db.0, "whatsapp:+447700900123")),
        ("deny".into(), "opted_out".into())
    );
    // As of before the link, the phone was opted in and had no window.
    let o = run(
        Some(&db.0),
        &[
            "check",
            "--from",
            "+14155238886",
            "--to",
            "+447700900123",
            "--template",
            "x",
            "--language",
            "en",
            "--at",
            "2026-05-01T09:00:00Z",
        ],
        None,
    );
    assert_eq!(decision(&o), ("deny".into(), "template_unknown".into()));
    // History of either address shows the whole person.
    let o = run(
        Some(&db.0),
        &["history", "--user", "bsuid:US.1349", "--json"],
        None,
    );
    let lines = json_lines(&o);
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "address").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "link").count(), 1);
    let users: Vec<&str> = lines
        .iter()
        .filter(|l| l["kind"] == "consent")
        .map(|l| l["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["whatsapp:+447700900123", "bsuid:US.1349"]);
    let o = run(
        Some(&db.0),
        &["history", "--user", "whatsapp:+447700900123"],
        None,
    );
    assert!(
        stdout(&o).contains("linked whatsapp:+447700900123 = bsuid:US.1349"),
        "{}",
        stdout(&o)
    );

    // Export carries the chain and the link; a copy built from it decides alike.
    let o = run(Some(&db.0), &["export"], None);
    assert_eq!(o.status.code(), Some(0));
    let export = stdout(&o);
    let lines = json_lines(&o);
    assert!(
        lines
            .iter()
            .any(|l| l["op"] == "link" && l["bsuid"] == "bsuid:US.1349")
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["op"] == "consent")
            .all(|l| l["chain"]["hash"].as_str().is_some_and(|h| h.len() == 64))
    );
    let copy = TempDb::new("cli-people-copy");
    let o = run(Some(&copy.0), &["ingest", "-"], Some(&export));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        decision(&check(&copy.0, "whatsapp:+447700900123")),
        ("deny".into(), "opted_out".into())
    );

    // The export re-verifies outside the database; an edited line does not.
    let file = db.0.with_extension("export.jsonl");
    std::fs::write(&file, &export).unwrap();
    let o = run(None, &["verify", "--export", file.to_str().unwrap()], None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let db_digest = |db: &Path| {
        let o = run(Some(db), &["verify", "--json"], None);
        assert_eq!(o.status.code(), Some(0));
        json_lines(&o)[0]["heads_digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        stdout(&o).contains(&db_digest(&db.0)),
        "a complete export has the database's heads digest"
    );
    std::fs::write(&file, export.replace("form v3", "form v4")).unwrap();
    let o = run(None, &["verify", "--export", file.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1"));

    // A forged trail in the database: verify names it, and no decision is made from it.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.execute_batch(
        "DROP TRIGGER consent_events_no_update;
         UPDATE consent_events SET action = 'opt_in' WHERE source = 'keyword';",
    )
    .unwrap();
    drop(conn);
    let o = run(Some(&db.0), &["verify"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("BROKEN"), "{}", stdout(&o));
    let o = check(&db.0, "whatsapp:+447700900123");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("broken"));
    std::fs::remove_file(&file).ok();
}

#[test]
fn sends_answers_why_a_message_was_sent() {
    use wagate::transport::RecordingTransport;
    use wagate::{Content, DeliveryStatus, Event, SendRequest, StatusCallback};
    let db = TempDb::new("cli-sends");
    let o = run(Some(&db.0), &["ingest", "-"], Some(PEOPLE));
    assert_eq!(o.status.code(), Some(0));
    {
        // Two minutes after the STOP: its one confirmation may go out.
        let now = wagate::Timestamp::parse("2026-05-03T08:02:00Z").unwrap();
        let clock = std::sync::Arc::new(wagate::ManualClock::new(now));
        let gate = wagate::Gate::open(&db.0).unwrap().with_clock(clock);
        let b = gate.business("default").unwrap();
        let t = RecordingTransport::new();
        let confirm = |to: &str| {
            SendRequest::new("+14155238886", to, Content::text("You are unsubscribed."))
                .with_purpose(wagate::Purpose::OptOutConfirmation)
        };
        assert!(b.send(&confirm("bsuid:US.1349"), "k1", &t).unwrap().sent());
        b.ingest(&Event::Status(
            StatusCallback::new("k1", DeliveryStatus::Failed, now).with_error(63016),
        ))
        .unwrap();
        // One confirmation per person: not again to the phone.
        assert!(!b.send(&confirm("+447700900123"), "k2", &t).unwrap().sent());
    }
    // Both attempts are the person's, whichever address they went to.
    let o = run(
        Some(&db.0),
        &["sends", "--user", "whatsapp:+447700900123", "--json"],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["key"], "k1");
    assert_eq!(lines[0]["feedback"], serde_json::json!([63016]));
    assert_eq!(lines[0]["status"], "failed");
    assert_eq!(lines[0]["reason"], "opt_out_confirmation");
    assert!(lines[0]["facts"].is_object());
    assert_eq!(
        (lines[1]["key"].as_str(), lines[1]["reason"].as_str()),
        (Some("k2"), Some("opted_out"))
    );
    let o = run(Some(&db.0), &["sends", "--provider-id", "k1"], None);
    assert!(
        stdout(&o).contains("key k1") && stdout(&o).contains("feedback codes 63016"),
        "{}",
        stdout(&o)
    );
    let o = run(Some(&db.0), &["sends", "--key", "nope"], None);
    assert!(stdout(&o).contains("no recorded attempts"));
    let o = run(Some(&db.0), &["sends"], None);
    assert_eq!(
        o.status.code(),
        Some(2),
        "sends needs --user, --key or --provider-id"
    );
}

#[test]
fn read_commands_leave_an_empty_file_alone() {
    let db = TempDb::new("cli-empty");
    std::fs::write(&db.0, b"").unwrap();
    for cmd in [
        &["stats"][..],
        &["verify"],
        &["export"],
        &["templates", "list"],
    ] {
        let o = run(Some(&db.0), cmd, None);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("empty file"),
            "{cmd:?}"
        );
        assert_eq!(
            std::fs::metadata(&db.0).unwrap().len(),
            0,
            "{cmd:?} wrote into the file"
        );
    }
}

#[test]
fn sends_by_user_finds_attempts_to_an_address_never_seen_before() {
    let db = TempDb::new("cli-sends-new");
    let o = run(Some(&db.0), &["ingest", "-"], Some(PEOPLE));
    assert_eq!(o.status.code(), Some(0));
    {
        let gate = wagate::Gate::open(&db.0).unwrap();
        let b = gate.business("default").unwrap();
        let req = wagate::SendRequest::new(
            "+14155238886",
            "+15550009999",
            wagate::Content::text("hello?"),
        );
        let out = b
            .send(
                &req,
                "cold-1",
                &wagate::transport::RecordingTransport::new(),
            )
            .unwrap();
        assert!(!out.sent());
    }
    let o = run(
        Some(&db.0),
        &["sends", "--user", "whatsapp:+15550009999", "--json"],
        None,
    );
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1, "{}", stdout(&o));
    assert_eq!(
        (lines[0]["key"].as_str(), lines[0]["reason"].as_str()),
        (Some("cold-1"), Some("no_opt_in"))
    );
}

#[test]
fn verify_export_refuses_a_cut_off_start_unless_partial() {
    let db = TempDb::new("cli-partial");
    let o = run(Some(&db.0), &["ingest", "-"], Some(PEOPLE));
    assert_eq!(o.status.code(), Some(0));
    // The phone's trail has 1 event, the BSUID's 1 (the STOP): add one more
    // so that an export can start mid-chain.
    let more = r#"{"op":"consent","at":"2026-05-04T08:00:00Z","received_at":"2026-05-04T08:00:00Z","user":"whatsapp:+447700900123","action":"opt_in","source":"app"}"#;
    assert_eq!(
        run(Some(&db.0), &["ingest", "-"], Some(more)).status.code(),
        Some(0)
    );
    let o = run(
        Some(&db.0),
        &["export", "--since", "2026-05-04T00:00:00Z"],
        None,
    );
    let file = db.0.with_extension("since.jsonl");
    std::fs::write(&file, stdout(&o)).unwrap();
    let o = run(None, &["verify", "--export", file.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--partial"));
    let o = run(
        None,
        &["verify", "--export", file.to_str().unwrap(), "--partial"],
        None,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_file(&file).ok();
}

#[test]
fn check_exit_codes_say_the_verdict_and_a_file_checks_many() {
    let db = TempDb::new("cli-verdicts");
    assert_eq!(
        run(Some(&db.0), &["ingest", "-"], Some(EVENTS))
            .status
            .code(),
        Some(1)
    );
    let check = |to: &str, at: &str| {
        run(
            Some(&db.0),
            &[
                "check",
                "--from",
                "+14155238886",
                "--to",
                to,
                "--text",
                "x",
                "--at",
                at,
            ],
            None,
        )
        .status
        .code()
    };
    assert_eq!(
        check("+15550002222", "2026-03-01T10:30:00Z"),
        Some(0),
        "allow"
    );
    assert_eq!(
        check("+15550001111", "2026-03-05T10:30:00Z"),
        Some(4),
        "deny: opted out"
    );
    let o = run(
        Some(&db.0),
        &[
            "check",
            "--from",
            "+14155238886",
            "--to",
            "+15550002222",
            "--template",
            "shipped",
            "--language",
            "en",
            "--var",
            "A",
            "--at",
            "2026-03-05T10:30:00Z",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(4), "deny: no opt-in for a template");
    // Many requests from a file (or -): one decision per line, in order.
    let requests = r#"{"from":"+14155238886","to":"+15550002222","text":"x","at":"2026-03-01T10:30:00Z"}
# a comment
{"op":"check","from":"+14155238886","to":"+15550001111","template":"shipped","language":"en","variables":["A"]}
{"from":"+14155238886","to":"+15550009999","text":"x","colour":"red"}
{"op":"send","from":"+14155238886","to":"+15550009999","text":"x"}
"#;
    let o = run(Some(&db.0), &["check", "-"], Some(requests));
    assert_eq!(o.status.code(), Some(1), "two lines erred");
    let lines = json_lines(&o);
    let got: Vec<(u64, String)> = lines
        .iter()
        .map(|l| {
            let what = l.get("error").map_or_else(
                || {
                    format!(
                        "{}/{}",
                        l["decision"].as_str().unwrap(),
                        l["reason"].as_str().unwrap()
                    )
                },
                |_| "error".to_owned(),
            );
            (l["line"].as_u64().unwrap(), what)
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "allow/window_open".to_owned()),
            (3, "deny/opted_out".to_owned()),
            (4, "error".to_owned()),
            (5, "error".to_owned())
        ]
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let db = TempDb::new("cli-pipe");
    let many: String = (0..20_000)
        .map(|i| format!(r#"{{"op":"consent","at":"2026-03-01T08:00:00Z","user":"whatsapp:+1555{i:07}","action":"opt_in","source":"form"}}"#) + "\n")
        .collect();
    // From a file: piping 20,000 lines in while their acks pile up unread
    // would fill both pipes.
    let input = db.0.with_extension("in.jsonl");
    std::fs::write(&input, &many).unwrap();
    let o = run(Some(&db.0), &["ingest", input.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0));
    std::fs::remove_file(&input).ok();
    let mut child = wagate()
        .arg("--db")
        .arg(&db.0)
        .arg("export")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader goes away after one line, as `| head -1` does.
    let o = child.wait_with_output().unwrap();
    assert!(first.contains("\"op\":\"consent\""));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "",
        "no complaint about the pipe"
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn demo_honours_db_and_never_overwrites() {
    let db = TempDb::new("cli-demo");
    let o = run(Some(&db.0), &["demo"], None);
    assert_eq!(o.status.code(), Some(0));
    let o = run(
        Some(&db.0),
        &["--business", "acme-shop", "stats", "--json"],
        None,
    );
    let s: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (s["people"].as_u64(), s["links"].as_u64()),
        (Some(2), Some(1))
    );
    let o = run(Some(&db.0), &["demo"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exists"));
}

#[test]
fn verify_expect_compares_a_recorded_digest() {
    let db = TempDb::new("cli-expect");
    assert_eq!(
        run(Some(&db.0), &["ingest", "-"], Some(PEOPLE))
            .status
            .code(),
        Some(0)
    );
    let o = run(Some(&db.0), &["verify", "--json"], None);
    let digest = json_lines(&o)[0]["heads_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let expect = format!("default={digest}");
    assert_eq!(
        run(Some(&db.0), &["verify", "--expect", &expect], None)
            .status
            .code(),
        Some(0)
    );
    // A whole trail rewritten consistently (event, count and head together)
    // passes every chain check, but not the recorded digest.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.execute_batch(
        "DROP TRIGGER consent_events_no_delete;
         DELETE FROM consent_events WHERE source = 'keyword';
         UPDATE users SET consent_count = 0, consent_head = NULL WHERE key = 'bsuid:US.1349';",
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        run(Some(&db.0), &["verify"], None).status.code(),
        Some(0),
        "consistent on its own"
    );
    let o = run(Some(&db.0), &["verify", "--expect", &expect], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("recorded earlier"), "{}", stdout(&o));
}

#[test]
fn webhook_parse_feeds_ingest_and_verify_explains_a_mismatch() {
    let db = TempDb::new("cli-webhook");
    // A captured inbound (with its file's trailing newline): the line it
    // means, dated --at, ingests as is.
    let body = "MessageSid=SM1&AccountSid=AC1&From=whatsapp%3A%2B15550001111&To=whatsapp%3A%2B14155238886\
                &Body=STOP&ExternalUserId=whatsapp%3AUS.1349&ChannelMetadata=%7B%7D\n";
    let o = run(
        None,
        &["webhook", "parse", "twilio", "--at", "2026-03-01T10:00:00Z"],
        Some(body),
    );
    assert!(o.status.success(), "{o:?}");
    let line = stdout(&o);
    assert!(
        line.starts_with(r#"{"op":"inbound","at":"2026-03-01T10:00:00.000Z""#),
        "{line}"
    );
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["from"], "whatsapp:+15550001111");
    assert_eq!(v["user_id"], "US.1349");
    assert_eq!(v["body"], "STOP");
    let o = run(Some(&db.0), &["ingest", "-"], Some(&line));
    assert_eq!(json_lines(&o)[0]["keyword"], "opt_out", "{o:?}");
    let o = run(
        Some(&db.0),
        &[
            "check",
            "--from",
            "+14155238886",
            "--to",
            "bsuid:US.1349",
            "--text",
            "hi",
        ],
        None,
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "the linked BSUID is opted out too: {o:?}"
    );
    // A status callback, and a malformed one named.
    let o = run(
        None,
        &["webhook", "parse", "twilio"],
        Some("MessageSid=SM9&MessageStatus=undelivered&ErrorCode=63016"),
    );
    let v = &json_lines(&o)[0];
    assert_eq!(
        (
            v["op"].as_str(),
            v["status"].as_str(),
            v["error_code"].as_u64()
        ),
        (Some("status"), Some("undelivered"), Some(63016))
    );
    let o = run(
        None,
        &["webhook", "parse", "twilio"],
        Some("From=whatsapp%3A%2B15550001111&To=whatsapp%3A%2B14155238886"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("MessageSid"),
        "{o:?}"
    );

    // verify: Twilio's documented example.
    let doc = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    let verify = |url: &str, extra: &[&str]| {
        let mut c = wagate();
        c.env("TWILIO_AUTH_TOKEN", "12345");
        let mut args = vec![
            "webhook",
            "verify",
            "twilio",
            "--url",
            url,
            "--signature",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ];
        args.extend_from_slice(extra);
        let mut child = c
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(doc.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = verify("https://mycompany.com/myapp.php?foo=1&bar=2", &[]);
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "valid"));
    // Twilio signs either port form.
    assert_eq!(
        verify("https://mycompany.com:443/myapp.php?foo=1&bar=2", &[])
            .status
            .code(),
        Some(0)
    );
    // Behind a TLS-terminating proxy the server sees http://: the reason says so.
    let o = verify("http://mycompany.com/myapp.php?foo=1&bar=2", &["--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = &json_lines(&o)[0];
    assert_eq!(
        (v["valid"].as_bool(), v["problem"].as_str()),
        (Some(false), Some("mismatch"))
    );
    assert!(v["reason"].as_str().unwrap().contains("https://"), "{v}");
    // The token is never a flag: without the variable, a usage error.
    let o = run(
        None,
        &[
            "webhook",
            "verify",
            "twilio",
            "--url",
            "https://x/y",
            "--signature",
            "s",
        ],
        Some(doc),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TWILIO_AUTH_TOKEN"));
}

#[test]
fn webhook_parse_and_verify_meta() {
    let db = TempDb::new("cli-webhook-meta");
    let payload = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","time":1772359300,"changes":[
{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"14155238886","phone_number_id":"PN1"},
 "contacts":[{"profile":{"name":"Ana"},"wa_id":"","user_id":"US.1349"}],
 "messages":[{"from_user_id":"US.1349","id":"wamid.1","timestamp":"1772359200","type":"text","text":{"body":"STOP"}}],
 "errors":[{"code":130429,"title":"Rate limit hit"}]}},
{"field":"user_preferences","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"14155238886","phone_number_id":"PN1"},
 "user_preferences":[{"wa_id":"15550002222","category":"marketing_messages","value":"stop","timestamp":1772359250}]}},
{"field":"message_template_status_update","value":{"event":"REINSTATED","message_template_id":123456,"message_template_name":"promo","message_template_language":"en_US"}},
{"field":"account_update","value":{"phone_number":"14155238886"}}]}]}"#;
    let o = run(
        None,
        &["webhook", "parse", "meta", "--at", "2026-03-01T10:05:00Z"],
        Some(payload),
    );
    assert!(o.status.success(), "{o:?}");
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 3, "{lines:?}");
    // A username user: the BSUID alone, as user_id.
    assert_eq!(
        (
            lines[0]["op"].as_str(),
            lines[0]["user_id"].as_str(),
            lines[0].get("from")
        ),
        (Some("inbound"), Some("US.1349"), None)
    );
    assert_eq!(lines[0]["at"], "2026-03-01T10:00:00.000Z");
    assert_eq!(
        (
            lines[1]["op"].as_str(),
            lines[1]["scope"].as_str(),
            lines[1]["source"].as_str()
        ),
        (
            Some("consent"),
            Some("marketing"),
            Some("provider_preference")
        )
    );
    assert_eq!(
        (
            lines[2]["op"].as_str(),
            lines[2]["status"].as_str(),
            lines[2]["meta_template_id"].as_str()
        ),
        (Some("template"), Some("approved"), Some("123456"))
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("130429") && stderr.contains("account_update"),
        "{stderr}"
    );
    // The lines ingest as they are.
    let o = run(Some(&db.0), &["ingest", "-"], Some(&stdout(&o)));
    assert!(json_lines(&o).iter().all(|l| l["ok"] == true), "{o:?}");
    let o = run(
        Some(&db.0),
        &[
            "check",
            "--from",
            "+14155238886",
            "--to",
            "bsuid:US.1349",
            "--text",
            "hi",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    // A malformed payload names the place and prints nothing.
    let o = run(
        None,
        &["webhook", "parse", "meta"],
        Some(r#"{"entry":[{"changes":[{"field":"messages","value":{"metadata":{}}}]}]}"#),
    );
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(1), ""));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("payload.entry[0].changes[0].value.metadata.display_phone_number"),
        "{o:?}"
    );

    // verify: Meta's Node SDK vector (body "test").
    let verify = |secret: &str, sig: &str, body: &str| {
        let mut c = wagate();
        c.env("META_APP_SECRET", secret);
        let mut child = c
            .args(["webhook", "verify", "meta", "--json", "--signature", sig])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let sdk = "sha256=0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221";
    let secret = "TEST_APP_SECRET";
    let o = verify(secret, sdk, "test");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = verify(secret, sdk, "test\n");
    assert_eq!(
        o.status.code(),
        Some(1),
        "a JSON body is signed byte for byte: {o:?}"
    );
    assert_eq!(json_lines(&o)[0]["problem"], "mismatch");
    let o = run(
        None,
        &["webhook", "verify", "meta", "--signature", sdk],
        Some("test"),
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "no secret in the environment: {o:?}"
    );
}
