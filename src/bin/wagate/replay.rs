//! `wagate replay`: scenario files on a fresh temporary engine each.

use std::io::Write;
use std::path::PathBuf;

use wagate::scenario::{Output, Replay};

use crate::lines::{capped_lines, shorten};
use crate::{EXIT_BAD_INPUT, Fail};

/// `wagate replay` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    limit: crate::lines::Limit,
}

/// Replays each file, line by line (a line that is too long or not UTF-8
/// is an error line of its own); exits 1 if any line erred. A `config`
/// line that fails stops its file there.
pub fn run(args: &Args) -> Result<u8, Fail> {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for file in &args.files {
        let f = std::fs::File::open(file).map_err(|e| {
            Fail(
                EXIT_BAD_INPUT,
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        let mut replay = Replay::new();
        let lines = capped_lines(std::io::BufReader::new(f), args.limit.max_line_bytes);
        for (i, line) in lines.enumerate() {
            let n = i + 1;
            let output = match line {
                Ok(text) => replay
                    .line(n, &text)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("{}: {e}", file.display())))?,
                Err(why) => Some(replay.unreadable(n, &why)),
            };
            if let Some(o) = output {
                failed |= o.is_error;
                writeln!(out, "{}", short(n, o).json)?;
            }
            if replay.stopped() {
                break;
            }
        }
    }
    Ok(if failed { EXIT_BAD_INPUT } else { 0 })
}

/// An error line whose message quotes long input, with the quotes cut.
fn short(n: usize, o: Output) -> Output {
    if !o.is_error {
        return o;
    }
    let message = serde_json::from_str::<serde_json::Value>(&o.json)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str().map(str::to_owned)));
    match message {
        Some(m) => match shorten(&m) {
            std::borrow::Cow::Owned(s) => Output::error(n, &s),
            std::borrow::Cow::Borrowed(_) => o,
        },
        None => o,
    }
}
