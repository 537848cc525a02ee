//! `wagate replay`: scenario files on a fresh temporary engine each.

use std::io::Write;
use std::path::PathBuf;

use crate::{EXIT_BAD_INPUT, Fail};

/// Replays each file; exits 1 if any line erred.
pub fn run(files: &[PathBuf]) -> Result<u8, Fail> {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Fail(
                EXIT_BAD_INPUT,
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        let report = wagate::scenario::Replay::run(&text)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("{}: {e}", file.display())))?;
        for line in &report.lines {
            writeln!(out, "{line}")?;
        }
        failed |= report.errors > 0;
    }
    Ok(if failed { EXIT_BAD_INPUT } else { 0 })
}
