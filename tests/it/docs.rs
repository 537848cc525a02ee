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
