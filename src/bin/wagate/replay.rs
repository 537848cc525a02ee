//! `wagate replay`: scenario files on a fresh temporary engine each (an
//! in-memory SQLite one; with `--db postgres://...`, a fresh PostgreSQL
//! schema per file, dropped after it).

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
pub fn run(args: &Args, db: &crate::Db<'_>) -> Result<u8, Fail> {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for (k, file) in args.files.iter().enumerate() {
        let f = std::fs::File::open(file).map_err(|e| {
            Fail(
                EXIT_BAD_INPUT,
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        let fresh = match db.url() {
            Some(url) => Some(Fresh::open(url, k)?),
            None => None,
        };
        let mut replay = match &fresh {
            Some(f) => Replay::on(f.gate()),
            None => Replay::new(),
        };
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
        drop(replay);
        if let Some(f) = fresh {
            f.drop_schema()?;
        }
    }
    Ok(if failed { EXIT_BAD_INPUT } else { 0 })
}

/// A PostgreSQL schema of its own for one scenario file.
#[cfg(feature = "postgres")]
struct Fresh(wagate::store::postgres::PgStore);

#[cfg(feature = "postgres")]
impl Fresh {
    fn open(url: &str, k: usize) -> Result<Self, Fail> {
        let schema = format!("wagate_replay_{}_{k}", std::process::id());
        wagate::store::postgres::PgStore::open(url, &schema)
            .map(Fresh)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("PostgreSQL store: {e}")))
    }

    fn gate(&self) -> wagate::Gate {
        wagate::Gate::from_postgres(self.0.clone())
    }

    fn drop_schema(self) -> Result<(), Fail> {
        self.0
            .drop_schema()
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("PostgreSQL store: {e}")))
    }
}

/// Without the `postgres` feature a URL is refused before any file (no
/// value of this type exists).
#[cfg(not(feature = "postgres"))]
enum Fresh {}

#[cfg(not(feature = "postgres"))]
impl Fresh {
    fn open(_url: &str, _k: usize) -> Result<Self, Fail> {
        Err(Fail(
            crate::EXIT_USAGE,
            "this wagate was built without PostgreSQL support: build it with --features postgres"
                .into(),
        ))
    }

    fn gate(&self) -> wagate::Gate {
        match *self {}
    }

    fn drop_schema(self) -> Result<(), Fail> {
        match self {}
    }
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
