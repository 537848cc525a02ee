//! `wagate replay`: scenario files on a fresh temporary engine each.

use std::io::Write;
use std::path::PathBuf;

use wagate::scenario::Replay;

use crate::lines::text_lines;
use crate::{EXIT_BAD_INPUT, Fail};

/// Replays each file, line by line (a line that is not UTF-8 is an error
/// line of its own); exits 1 if any line erred.
pub fn run(files: &[PathBuf]) -> Result<u8, Fail> {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for file in files {
        let f = std::fs::File::open(file).map_err(|e| {
            Fail(
                EXIT_BAD_INPUT,
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        let mut replay = Replay::new();
        for (i, line) in text_lines(std::io::BufReader::new(f)).enumerate() {
            let n = i + 1;
            let output = match line {
                Ok(text) => replay
                    .line(n, &text)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("{}: {e}", file.display())))?,
                Err(why) => Some(replay.unreadable(n, &why)),
            };
            if let Some(o) = output {
                failed |= o.is_error;
                writeln!(out, "{}", o.json)?;
            }
        }
    }
    Ok(if failed { EXIT_BAD_INPUT } else { 0 })
}
