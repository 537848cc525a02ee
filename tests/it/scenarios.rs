//! Scenario tests: every `tests/scenarios/NAME.jsonl` is replayed on a fresh
//! engine and its output compared with `NAME.expected.jsonl`.
//!
//! The expectations were worked out by hand from the rules, not recorded from
//! the code. Only `line`, `decision`, `reason` and whether a line is an error
//! are compared (as the conformance tool does); error messages and any extra
//! fields are free to change.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wagate::scenario::Replay;

/// What one output line says, as far as the comparison goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Error,
    Decision { decision: String, reason: String },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Error => f.write_str("an error line"),
            Outcome::Decision { decision, reason } => write!(f, "{decision}/{reason}"),
        }
    }
}

/// Parses output lines (`{"line": N, "decision": .., "reason": ..}` or
/// `{"line": N, "error": ..}`) into a map by line number. Malformed lines and
/// repeated line numbers are reported as problems.
fn outcomes<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    what: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<u64, Outcome> {
    let mut out = BTreeMap::new();
    for raw in lines {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{what}: not JSON ({e}): {raw}"));
                continue;
            }
        };
        let Some(line) = value.get("line").and_then(Value::as_u64) else {
            problems.push(format!("{what}: no \"line\" number: {raw}"));
            continue;
        };
        let outcome = if value.get("error").is_some() {
            Outcome::Error
        } else {
            let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
            match (field("decision"), field("reason")) {
                (Some(decision), Some(reason)) => Outcome::Decision { decision, reason },
                _ => {
                    problems.push(format!(
                        "{what}: line {line} has neither an error nor a decision and reason: {raw}"
                    ));
                    continue;
                }
            }
        };
        if out.insert(line, outcome).is_some() {
            problems.push(format!("{what}: line {line} appears more than once"));
        }
    }
    out
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("scenarios")
}

/// The scenario files (`*.jsonl` but not `*.expected.jsonl`), sorted.
fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".jsonl") && !n.ends_with(".expected.jsonl"))
        })
        .collect();
    files.sort();
    files
}

/// Runs one scenario; returns the number of lines compared, adding every
/// mismatch to `mismatches`.
fn run_one(
    path: &Path,
    mismatches: &mut Vec<String>,
    run: &dyn Fn(&str) -> wagate::Result<wagate::scenario::Report>,
) -> usize {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_owned();
    let expected_path = path.with_file_name(name.replace(".jsonl", ".expected.jsonl"));
    let (input, expected_text) =
        match (fs::read_to_string(path), fs::read_to_string(&expected_path)) {
            (Ok(i), Ok(e)) => (i, e),
            (Err(e), _) => {
                mismatches.push(format!("{name}: cannot read the scenario: {e}"));
                return 0;
            }
            (_, Err(e)) => {
                mismatches.push(format!(
                    "{name}: cannot read {}: {e}",
                    expected_path.display()
                ));
                return 0;
            }
        };
    let report = match run(&input) {
        Ok(r) => r,
        Err(e) => {
            mismatches.push(format!("{name}: the replay failed: {e}"));
            return 0;
        }
    };

    let want = outcomes(
        expected_text.lines(),
        &format!("{name} (expected)"),
        mismatches,
    );
    let got = outcomes(
        report.lines.iter().map(String::as_str),
        &format!("{name} (output)"),
        mismatches,
    );

    let got_errors = got.values().filter(|o| **o == Outcome::Error).count();
    if report.errors != got_errors {
        mismatches.push(format!(
            "{name}: Report.errors is {} but {got_errors} output lines are errors",
            report.errors
        ));
    }

    let mut compared = 0;
    let all: std::collections::BTreeSet<u64> = want.keys().chain(got.keys()).copied().collect();
    for line in all {
        compared += 1;
        match (want.get(&line), got.get(&line)) {
            (Some(w), Some(g)) if w == g => {}
            (Some(w), Some(g)) => mismatches.push(format!("{name}:{line}: expected {w}, got {g}")),
            (Some(w), None) => {
                mismatches.push(format!("{name}:{line}: expected {w}, got no output"))
            }
            (None, Some(g)) => {
                mismatches.push(format!("{name}:{line}: expected no output, got {g}"))
            }
            (None, None) => {}
        }
    }
    compared
}

/// Every scenario file, each replayed by `run`, against its expected
/// output.
fn all_scenarios_match(
    store: &str,
    run: &dyn Fn(&str) -> wagate::Result<wagate::scenario::Report>,
) {
    let dir = scenario_dir();
    let files = scenario_files(&dir);
    assert!(
        !files.is_empty(),
        "no scenario files (*.jsonl) in {}",
        dir.display()
    );

    let mut mismatches = Vec::new();
    let mut compared = 0;
    for file in &files {
        compared += run_one(file, &mut mismatches, run);
    }
    for m in &mismatches {
        eprintln!("{m}");
    }
    assert!(compared > 0, "no scenario lines were compared");
    assert!(
        mismatches.is_empty(),
        "{store}: {} mismatch(es) in {} scenario lines across {} files (listed above)",
        mismatches.len(),
        compared,
        files.len()
    );
    eprintln!(
        "scenarios on {store}: {compared} lines in {} files match",
        files.len()
    );
}

#[test]
fn scenarios_match_expected_output() {
    all_scenarios_match("SQLite", &Replay::run);
}

/// The same scenarios through the gate on PostgreSQL, each in a fresh
/// schema: the stores agree line for line.
#[cfg(feature = "postgres")]
#[test]
fn scenarios_match_expected_output_on_postgres() {
    all_scenarios_match("PostgreSQL", &|input| {
        let fresh = crate::pg::fresh_store();
        let gate = wagate::Gate::from_postgres((*fresh).clone());
        Replay::run_on(gate, input)
    });
}
