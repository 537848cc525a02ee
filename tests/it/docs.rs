//! The worked examples of `docs/rules.md` are scenarios too: every
//! `jsonl` block followed by a block of `{"line": ...}` outputs is replayed
//! and compared, so the documentation cannot drift from the code.

use std::path::Path;

use serde_json::Value;
use wagate::scenario::Replay;

/// (scenario, expected output) pairs of a Markdown file.
fn examples(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    let block = |start: usize| -> (String, usize) {
        let mut body = Vec::new();
        let mut j = start;
        while j < lines.len() && lines[j].trim() != "```" {
            body.push(lines[j]);
            j += 1;
        }
        (body.join("\n"), j + 1)
    };
    while i < lines.len() {
        if lines[i].trim() == "```jsonl" {
            let (scenario, next) = block(i + 1);
            i = next;
            if lines.get(i).is_some_and(|l| l.trim() == "```") {
                let (expected, next) = block(i + 1);
                i = next;
                if expected.contains("\"line\"") {
                    out.push((scenario, expected));
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

/// line -> "decision/reason" or "error".
fn outcomes<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(u64, String)> {
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let what = if v.get("error").is_some() {
                "error".to_owned()
            } else {
                format!(
                    "{}/{}",
                    v["decision"].as_str().unwrap(),
                    v["reason"].as_str().unwrap()
                )
            };
            (v["line"].as_u64().unwrap(), what)
        })
        .collect()
}

#[test]
fn the_rules_examples_hold() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join("rules.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let found = examples(&text);
    assert!(
        found.len() >= 5,
        "only {} worked examples found in docs/rules.md",
        found.len()
    );
    for (scenario, expected) in &found {
        let report = Replay::run(scenario).unwrap();
        assert_eq!(
            outcomes(report.lines.iter().map(String::as_str)),
            outcomes(expected.lines()),
            "docs/rules.md example:\n{scenario}"
        );
    }
}

/// The Python verifier of docs/rules.md, run by python3 on a real export
/// (with a forgotten person's sealed events) and on the documented example
/// line: it accepts both, and rejects the export with one action changed.
#[test]
fn the_documented_python_verifier_checks_a_real_export() {
    use std::process::Command;

    use wagate::{Action, ConsentEvent, Event, Gate, Scope};

    use crate::common::*;

    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md"))
            .unwrap();
    let block = |start: &str| -> String {
        let from = rules.find(start).unwrap() + start.len();
        let len = rules[from..].find("```").unwrap();
        rules[from..from + len].to_owned()
    };
    let verifier = block("```python\n");
    let example = block("For example:\n\n```jsonl\n");

    let db = crate::store_file::TempDb::new("python-verify");
    {
        let gate = Gate::open(&db.0).unwrap();
        let b = gate.business("default").unwrap();
        b.ingest(&Event::Consent(
            ConsentEvent::new(user(1), Action::OptIn, Scope::All, t(0), "web_form")
                .with_evidence("form v3, \"checkbox\" ✓"),
        ))
        .unwrap();
        b.ingest(&consent(&user(1), Action::OptOut, Scope::Marketing, HOUR))
            .unwrap();
        b.ingest(&consent(&user(2), Action::OptIn, Scope::All, 0))
            .unwrap();
        b.forget(&user(2)).unwrap();
    }
    let export = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .env_remove("WAGATE_DB")
        .arg("--db")
        .arg(&db.0)
        .arg("export")
        .output()
        .unwrap();
    assert!(export.status.success());
    let text = String::from_utf8(export.stdout).unwrap();
    assert!(
        text.contains("\"evidence_digest\":") && text.contains("\"salt\":"),
        "{text}"
    );
    let dir = db.0.with_extension("py.d");
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str, lines: &str| -> std::process::Output {
        let file = dir.join(name);
        std::fs::write(&file, lines).unwrap();
        Command::new("python3")
            .arg("-c")
            .arg(format!(
                "{verifier}\nimport sys\nprint(len(verify_export(sys.argv[1])))"
            ))
            .arg(&file)
            .output()
            .expect("python3 runs the documented verifier (install python3)")
    };
    let ok = run("export.jsonl", &text);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "2",
        "two addresses"
    );
    let doc = run("example.jsonl", &example);
    assert!(
        doc.status.success(),
        "{}",
        String::from_utf8_lossy(&doc.stderr)
    );
    let tampered = run(
        "tampered.jsonl",
        &text.replacen("\"action\":\"opt_out\"", "\"action\":\"opt_in\"", 1),
    );
    assert!(!tampered.status.success());
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("hash mismatch"));
    let _ = std::fs::remove_dir_all(&dir);
}
