//! The service examples run their own stories (`--once`) and must end
//! well: `cargo test` builds them before any test runs.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/<name>`, beside this test binary's `deps/`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --all-features`, which builds the examples",
        path.display()
    );
    path
}

fn run_once(name: &str) -> String {
    let out = Command::new(example(name)).arg("--once").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} --once failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_axum_service_tells_its_story() {
    let out = run_once("axum_service");
    assert!(
        out.contains("the provider was handed 1 message(s)"),
        "{out}"
    );
}

#[cfg(all(feature = "twilio", feature = "reqwest"))]
#[test]
fn the_twilio_service_tells_its_story() {
    let out = run_once("twilio_service");
    assert!(out.contains("-> 403"), "a forged webhook is refused: {out}");
    assert!(out.contains("template_required window_closed"), "{out}");
    assert!(out.contains("the story went as expected"), "{out}");
}

#[cfg(all(feature = "meta", feature = "reqwest"))]
#[test]
fn the_meta_service_tells_its_story() {
    let out = run_once("meta_service");
    assert!(out.contains("(wrong verify token) -> 403"), "{out}");
    assert!(out.contains("(forged STOP) -> 403"), "{out}");
    assert!(out.contains("template_required window_closed"), "{out}");
    assert!(out.contains("marketing_opted_out"), "{out}");
    assert!(out.contains("the story went as expected"), "{out}");
}
