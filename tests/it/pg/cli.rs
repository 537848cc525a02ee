//! The `wagate` command line on PostgreSQL (`--db postgres://...`): every
//! command that reads or writes the store, on a schema of its own.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::{fresh_store, url};

fn wagate(schema: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .env_remove("WAGATE_DB")
        .env("WAGATE_PG_SCHEMA", schema)
        .arg("--db")
        .arg(url())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_command_works_on_postgres() {
    assert!(
        url().starts_with("postgres"),
        "the command line takes a postgres:// URL (a key=value string would be a file path): give {} in that form",
        super::URL_VAR
    );
    let store = fresh_store();
    let schema = store.schema().to_owned();
    let run = |args: &[&str], stdin: &str| wagate(&schema, args, stdin);
    let lines = [
        r#"{"op":"consent","at":"2026-03-01T08:00:00Z","user":"whatsapp:+15550000003","action":"opt_in","scope":"all","source":"web","evidence":"form v3"}"#,
        r#"{"op":"inbound","at":"2026-03-01T09:00:00Z","from":"whatsapp:+15550000003","user_id":"US.42","to":"whatsapp:+14155238886","kind":"text","body":"hi","id":"SM1"}"#,
        r#"{"op":"inbound","at":"2026-03-01T09:30:00Z","user_id":"US.42","to":"whatsapp:+14155238886","kind":"text","body":"STOP","id":"SM2"}"#,
    ];
    let out = ok(&run(&["ingest", "-"], &(lines.join("\n") + "\n")));
    assert_eq!(out.matches(r#""ok":true"#).count(), 3, "{out}");
    // The STOP under the id stops the phone (R8).
    let check = run(
        &[
            "check",
            "--from",
            "whatsapp:+14155238886",
            "--to",
            "whatsapp:+15550000003",
            "--text",
            "hi",
        ],
        "",
    );
    assert_eq!(check.status.code(), Some(4), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("opted_out"));
    let history = ok(&run(&["history", "--user", "bsuid:US.42"], ""));
    assert!(
        history.contains("whatsapp:+14155238886") && history.contains("opt_out"),
        "{history}"
    );
    let export = ok(&run(&["export"], ""));
    assert_eq!(export.lines().count(), 3, "two events and a link: {export}");
    let file = std::env::temp_dir().join(format!("{schema}.jsonl"));
    std::fs::write(&file, &export).unwrap();
    ok(&run(&["verify", "--export", file.to_str().unwrap()], ""));
    let _ = std::fs::remove_file(&file);
    assert!(ok(&run(&["verify"], "")).contains("2 consent events"));
    let stats = ok(&run(&["stats", "--json"], ""));
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        (v["people"].as_u64(), v["opted_out"].as_u64()),
        (Some(1), Some(1))
    );
    ok(&run(
        &[
            "templates",
            "set",
            "--name",
            "otp",
            "--language",
            "en",
            "--category",
            "authentication",
            "--status",
            "approved",
            "--body",
            "Code {{1}}",
        ],
        "",
    ));
    assert!(ok(&run(&["templates", "list"], "")).contains("otp"));
    ok(&run(&["sends", "--user", "whatsapp:+15550000003"], ""));
    ok(&run(&["purge", "--older-than", "90d", "--dry-run"], ""));
    let forget = ok(&run(
        &["forget", "--user", "whatsapp:+15550000003", "--json"],
        "",
    ));
    let v: serde_json::Value = serde_json::from_str(&forget).unwrap();
    assert_eq!(v["addresses"], 2, "{forget}");
    let check = run(
        &[
            "check",
            "--from",
            "whatsapp:+14155238886",
            "--to",
            "whatsapp:+15550000003",
            "--text",
            "hi",
        ],
        "",
    );
    assert_eq!(check.status.code(), Some(4), "still opted out: {check:?}");
    assert!(ok(&run(&["verify"], "")).contains("2 consent events"));
}

/// `wagate replay` with `--db postgres://...` replays each file in a fresh
/// schema (dropped after it), and says exactly what the in-memory SQLite
/// replay says, line for line.
#[test]
fn replay_on_postgres_agrees_with_sqlite() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "jsonl")
                && !p.to_string_lossy().ends_with(".expected.jsonl")
        })
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() > 10, "{files:?}");
    let replay = |db: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wagate"));
        c.env_remove("WAGATE_DB").env_remove("WAGATE_PG_SCHEMA");
        if let Some(db) = db {
            c.arg("--db").arg(db);
        }
        let out = c.arg("replay").args(&files).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let sqlite = replay(None);
    let postgres = replay(Some(&url()));
    assert!(sqlite.lines().count() > 400, "{sqlite}");
    for (n, (a, b)) in sqlite.lines().zip(postgres.lines()).enumerate() {
        assert_eq!(a, b, "output line {}", n + 1);
    }
    assert_eq!(sqlite.lines().count(), postgres.lines().count());
}
