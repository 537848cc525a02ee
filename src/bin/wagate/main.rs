//! `wagate`: the command line of the wagate policy gate.
//!
//! Exit codes: 0 success; 1 bad input (a line or row that failed, an
//! argument value that is wrong, a store error, a broken consent chain); 2
//! usage (unknown command or flag, missing database setting); `check` of one
//! request: 3 template_required, 4 deny. A closed output pipe ends quietly.
//!
//! One file per command; this one holds the clap tree and the dispatch.

mod check;
mod demo;
mod export;
mod forget;
mod history;
mod import;
mod ingest;
mod lines;
mod progress;
mod purge;
mod replay;
mod sends;
mod stats;
mod templates;
mod verify;
mod webhook;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;
use wagate::{Business, Gate, GateConfig, ManualClock, PolicyConfig, SystemClock, Timestamp};

/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 1;
/// Exit code for usage errors.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "wagate",
    version,
    about = "A policy gate for WhatsApp Business messages: may this message go out now, and in what form?",
    after_help = "Exit codes: 0 ok, 1 bad input (a failed line or row, a wrong value, a store error), 2 usage;\n\
        check of one request: 0 allow, 3 template_required, 4 deny.\n\n\
        Write commands (ingest, import, templates set) create the database and the business;\n\
        read commands (check, history, export, sends, stats, templates list, verify) never do.\n\nStart with: wagate demo"
)]
struct Cli {
    /// The SQLite database file (created by write commands if missing), or
    /// a postgres:// URL (a build with the `postgres` feature; the store's
    /// schema is WAGATE_PG_SCHEMA, default `wagate`).
    #[arg(long, env = "WAGATE_DB", global = true, value_name = "PATH|URL")]
    db: Option<PathBuf>,
    /// The business (tenant) to act for.
    #[arg(long, default_value = "default", global = true)]
    business: String,
    /// Window safety margin: treat the window as closed this many seconds early.
    #[arg(long, default_value_t = 0, global = true, value_parser = clap::value_parser!(u32).range(0..=86_400))]
    margin_seconds: u32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (JSON Lines) on a fresh temporary engine each.
    #[command(after_help = "Example:\n  wagate replay scenarios/window.jsonl\n\n\
        Prints one JSON line per check/send and per bad line; exits 1 if any line erred.")]
    Replay(replay::Args),
    /// Tell the rules as a story, on a temporary database (or a new one at --db, kept).
    #[command(
        after_help = "Examples:\n  wagate demo\n  wagate --db story.db demo && wagate --db story.db --business acme-shop history --user +15550001111"
    )]
    Demo,
    /// Apply event lines (inbound, consent, template, status, link) durably.
    #[command(
        after_help = "Example:\n  wagate --db shop.db ingest events.jsonl\n  tail -f webhooks.jsonl | wagate --db shop.db ingest -\n\n\
        Prints {\"line\": N, \"ok\": true} once the line's transaction committed, or an error line."
    )]
    Ingest(ingest::Args),
    /// Decide a send now (or as of --at), recording nothing; or many, from a file.
    #[command(
        after_help = "Examples:\n  wagate --db shop.db check --from whatsapp:+14155238886 --to whatsapp:+15550001111 --text 'Hi!'\n  \
        wagate --db shop.db check --from +14155238886 --to bsuid:US.13491208655302741918 --template order_update --language en --var A-17 --human\n  \
        wagate --db shop.db check campaign.jsonl > decisions.jsonl\n\n\
        Exit code of one check: 0 allow, 3 template_required, 4 deny. A file holds check lines\n\
        ({\"from\":..,\"to\":..,\"template\":..,\"language\":..}; op and at optional): one decision per line, exit 1 if a line erred."
    )]
    Check(check::Args),
    /// A person's addresses, links, consent trail and windows: what an auditor asks for.
    #[command(after_help = "Example:\n  wagate --db shop.db history --user whatsapp:+15550001111")]
    History(history::Args),
    /// Every consent event (with its chain hash) and every link, as JSON Lines.
    #[command(
        after_help = "Example:\n  wagate --db shop.db export --since 2026-03-01T00:00:00Z > consent.jsonl\n  \
        wagate verify --export consent.jsonl\n  wagate --db copy.db ingest consent.jsonl"
    )]
    Export(export::Args),
    /// Check every consent chain of every business (or an export file).
    #[command(
        after_help = "Examples:\n  wagate --db shop.db verify\n  wagate verify --export consent.jsonl\n\n\
        Exits 1 and names the first broken event when a trail was altered."
    )]
    Verify(verify::Args),
    /// Why was this sent? Recorded attempts with decision, facts, delivery and feedback.
    #[command(
        after_help = "Examples:\n  wagate --db shop.db sends --user whatsapp:+15550001111\n  \
        wagate --db shop.db sends --key reply-1 --json\n  wagate --db shop.db sends --provider-id SM123"
    )]
    Sends(sends::Args),
    /// Bulk consent records from CSV (user,action,scope,at,source,evidence) or JSON Lines.
    #[command(after_help = "Example:\n  wagate --db shop.db import crm.csv\n\n\
        A bad row is reported with its line number; the good rows still land.\n\
        Running it again lands only what had not landed: rows already in the trail are duplicates.")]
    Import(import::Args),
    /// Show or register templates.
    #[command(
        subcommand,
        after_help = "Examples:\n  wagate --db shop.db templates list\n  \
        wagate --db shop.db templates set --name otp --language en --category authentication --status approved --body 'Code {{1}}'"
    )]
    Templates(templates::Command),
    /// Provider webhooks captured from the wire: what they mean, and whether their signature holds.
    #[command(subcommand)]
    Webhook(webhook::Command),
    /// Delete inbound-message rows and send attempts older than an age; decisions stay the same.
    #[command(
        after_help = "Examples:\n  wagate --db shop.db purge --older-than 90d --dry-run\n  wagate --db shop.db purge --older-than 90d\n\n\
        Windows, the consent trail, links and templates are kept whole. An age under 7 days is refused."
    )]
    Purge(purge::Args),
    /// Erase a person (every linked address) on request; an opt-out they gave still stops messages to them.
    #[command(
        after_help = "Example:\n  wagate --db shop.db forget --user whatsapp:+15550001111\n\n\
        Goes: their addresses, consent evidence, message ids, windows, and the recipient of their sends.\n\
        Stays: a keyed-hash tombstone per address with its consent events, so the chain still verifies\n\
        and a number that comes back is still opted out. Their opt-ins no longer count."
    )]
    Forget(forget::Args),
    /// Counts: people, addresses, opted in, opted out, windows open now.
    #[command(after_help = "Example:\n  wagate --db shop.db stats")]
    Stats {
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// A failure that ends the command: exit code and message.
pub struct Fail(pub u8, pub String);

impl From<wagate::Error> for Fail {
    fn from(e: wagate::Error) -> Self {
        Fail(EXIT_BAD_INPUT, e.to_string())
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        // The reader went away (`wagate export | head`): end quietly.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Fail(0, String::new());
        }
        Fail(EXIT_BAD_INPUT, e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("wagate: {msg}");
            }
            ExitCode::from(code)
        }
    }
}

/// How a command opens the database.
pub struct Db<'a> {
    path: Option<&'a Path>,
    config: GateConfig,
}

impl Db<'_> {
    fn path(&self) -> Result<&Path, Fail> {
        self.path.ok_or_else(|| {
            Fail(
                EXIT_USAGE,
                "no database: pass --db PATH or set WAGATE_DB (demo and replay need none)".into(),
            )
        })
    }

    /// A `postgres://` (or `postgresql://`) URL given as the database.
    pub fn url(&self) -> Option<&str> {
        self.path
            .and_then(Path::to_str)
            .filter(|p| p.starts_with("postgres://") || p.starts_with("postgresql://"))
    }

    /// The gate on the PostgreSQL store at `url` (its schema created and
    /// migrated if needed: there is no file to be missing).
    fn postgres(url: &str) -> Result<Gate, Fail> {
        #[cfg(feature = "postgres")]
        {
            let schema = std::env::var("WAGATE_PG_SCHEMA")
                .unwrap_or_else(|_| wagate::store::postgres::DEFAULT_SCHEMA.to_owned());
            Gate::open_postgres(url, &schema)
                .map_err(|e| Fail(EXIT_BAD_INPUT, format!("PostgreSQL store: {e}")))
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = url;
            Err(Fail(
                EXIT_USAGE,
                "this wagate was built without PostgreSQL support: build it with --features postgres".into(),
            ))
        }
    }

    /// For write commands: creates the file if it is missing.
    pub fn create(&self) -> Result<Gate, Fail> {
        if let Some(url) = self.url() {
            return Ok(Self::postgres(url)?
                .with_config(self.config.clone())
                .with_clock(Arc::new(SystemClock)));
        }
        let path = self.path()?;
        let gate = Gate::open(path).map_err(|e| Fail(EXIT_BAD_INPUT, open_failed(path, &e)))?;
        Ok(gate
            .with_config(self.config.clone())
            .with_clock(Arc::new(SystemClock)))
    }

    /// For read commands: the file must exist; `at` fixes the clock.
    pub fn existing(&self, at: Option<Timestamp>) -> Result<Gate, Fail> {
        let gate = match self.url() {
            Some(url) => Self::postgres(url)?,
            None => {
                let path = self.path()?;
                Gate::open_existing(path).map_err(|e| match e {
                    wagate::Error::NoDatabase(_) => Fail(EXIT_BAD_INPUT, e.to_string()),
                    e => Fail(EXIT_BAD_INPUT, open_failed(path, &e)),
                })?
            }
        };
        let gate = gate.with_config(self.config.clone());
        Ok(match at {
            Some(t) => gate.with_clock(Arc::new(ManualClock::new(t))),
            None => gate.with_clock(Arc::new(SystemClock)),
        })
    }
}

/// Why a database did not open, with a hint when SQLite could not create
/// the files it keeps beside the database.
fn open_failed(path: &Path, e: &wagate::Error) -> String {
    let text = e.to_string();
    if text.contains("unable to open database file") || text.contains("readonly") {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        format!(
            "{}: {text} (SQLite keeps {name}-wal and {name}-shm beside the database, and wagate {name}-wagate.lock: the directory {} must be writable, also for reading)",
            path.display(),
            dir.display(),
            name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        )
    } else {
        format!("{}: {text}", path.display())
    }
}

/// A business that must exist, for read commands.
pub fn existing_business(gate: &Gate, name: &str) -> Result<Business, Fail> {
    Ok(gate.existing_business(name)?)
}

fn run(cli: Cli) -> Result<u8, Fail> {
    let db = Db {
        path: cli.db.as_deref(),
        config: GateConfig {
            policy: PolicyConfig {
                margin_ms: i64::from(cli.margin_seconds) * 1000,
            },
            ..GateConfig::default()
        },
    };
    let business = cli.business.as_str();
    match cli.command {
        Command::Replay(args) => replay::run(&args, &db),
        Command::Demo => {
            demo::run(&mut std::io::stdout().lock(), cli.db.as_deref()).map_err(Fail::from)
        }
        Command::Ingest(args) => ingest::run(&db, business, &args),
        Command::Check(args) => check::run(&db, business, &args),
        Command::History(args) => history::run(&db, business, &args),
        Command::Export(args) => export::run(&db, business, &args),
        Command::Verify(args) => verify::run(&db, &args),
        Command::Sends(args) => sends::run(&db, business, &args),
        Command::Import(args) => import::run(&db, business, &args),
        Command::Templates(cmd) => templates::run(&db, business, cmd),
        Command::Stats { json } => stats::run(&db, business, json),
        Command::Purge(args) => purge::run(&db, business, &args),
        Command::Forget(args) => forget::run(&db, business, &args),
        Command::Webhook(cmd) => webhook::run(&cmd),
    }
}

/// Parses a time flag.
pub fn parse_time(flag: &str, s: &str) -> Result<Timestamp, Fail> {
    Timestamp::parse(s).map_err(|e| Fail(EXIT_BAD_INPUT, format!("{flag}: {e}")))
}

/// One value as a JSON line.
pub fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"cannot print: {e}\"}}"))
}

/// Text from the database as a terminal may show it: control characters
/// (escape sequences, line breaks) are written as escapes, so evidence
/// cannot forge lines or colours in a table.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}
