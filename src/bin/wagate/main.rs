//! `wagate`: the command line of the wagate policy gate.
//!
//! Exit codes: 0 success; 1 bad input (a line or row that failed, an
//! argument value that is wrong, a store error); 2 usage (unknown command or
//! flag, missing database).

mod demo;
mod import;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use wagate::scenario::{Line, Output, parse_live_line};
use wagate::{
    Address, Category, Content, Decision, Event, Gate, GateConfig, ManualClock, PolicyConfig,
    Purpose, SendRequest, SystemClock, TemplateBody, TemplateRecord, TemplateStatus, Timestamp,
    Variables,
};

/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "wagate",
    version,
    about = "A policy gate for WhatsApp Business messages: may this message go out now, and in what form?",
    after_help = "Exit codes: 0 ok, 1 bad input (a failed line or row, a wrong value, a store error), 2 usage.\n\nStart with: wagate demo"
)]
struct Cli {
    /// The SQLite database file (created if missing).
    #[arg(long, env = "WAGATE_DB", global = true, value_name = "PATH")]
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
    Replay {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Tell the rules as a story, on a temporary database.
    #[command(after_help = "Example:\n  wagate demo")]
    Demo,
    /// Apply event lines (inbound, consent, template, status) durably.
    #[command(
        after_help = "Example:\n  wagate --db shop.db ingest events.jsonl\n  tail -f webhooks.jsonl | wagate --db shop.db ingest -\n\n\
        Prints {\"line\": N, \"ok\": true} once the line's transaction committed, or an error line."
    )]
    Ingest {
        /// The file, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Most lines per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch: u32,
    },
    /// Decide a send now (or at --at), recording nothing.
    #[command(
        after_help = "Examples:\n  wagate --db shop.db check --from whatsapp:+14155238886 --to whatsapp:+15550001111 --text 'Hi!'\n  \
        wagate --db shop.db check --from +14155238886 --to +15550001111 --template order_update --language en --var A-17 --var shipped --human"
    )]
    Check(CheckArgs),
    /// A user's consent trail and windows, oldest first: what an auditor asks for.
    #[command(after_help = "Example:\n  wagate --db shop.db history --user whatsapp:+15550001111")]
    History {
        /// The user.
        #[arg(long)]
        user: String,
        /// JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// All consent events as JSON Lines (consent lines of the scenario format).
    #[command(
        after_help = "Example:\n  wagate --db shop.db export --since 2026-03-01T00:00:00Z > consent.jsonl\n  \
        wagate --db copy.db ingest consent.jsonl"
    )]
    Export {
        /// Only events received at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
    /// Bulk consent records from CSV (user,action,scope,at,source,evidence) or JSON Lines.
    #[command(after_help = "Example:\n  wagate --db shop.db import crm.csv\n\n\
        A bad row is reported with its line number; the good rows still land.")]
    Import {
        /// The file (.csv with a header, or JSON Lines).
        file: PathBuf,
    },
    /// Show or register templates.
    #[command(
        subcommand,
        after_help = "Examples:\n  wagate --db shop.db templates list\n  \
        wagate --db shop.db templates set --name otp --language en --category authentication --status approved --body 'Code {{1}}'"
    )]
    Templates(TemplatesCommand),
    /// Counts: users, opted in, opted out, windows open now.
    #[command(after_help = "Example:\n  wagate --db shop.db stats")]
    Stats {
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// List templates with category and status.
    #[command(after_help = "Example:\n  wagate --db shop.db templates list")]
    List {
        /// JSON Lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register a template or change it.
    #[command(
        after_help = "Example:\n  wagate --db shop.db templates set --name order_update --language en \\\n    \
        --category utility --status approved --body 'Your order {{1}} is {{2}}.'"
    )]
    Set {
        /// Template name.
        #[arg(long)]
        name: String,
        /// Language, such as en or pt_BR.
        #[arg(long)]
        language: String,
        /// marketing, utility or authentication.
        #[arg(long)]
        category: String,
        /// approved, pending, paused, ...
        #[arg(long)]
        status: String,
        /// The body, with {{1}}.. or {{name}} placeholders.
        #[arg(long)]
        body: String,
        /// When the provider changed it (default now).
        #[arg(long)]
        at: Option<String>,
        /// Twilio ContentSid (HX...).
        #[arg(long)]
        twilio_content_sid: Option<String>,
        /// Meta template id.
        #[arg(long)]
        meta_template_id: Option<String>,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// The business's sender.
    #[arg(long)]
    from: String,
    /// The user.
    #[arg(long)]
    to: String,
    /// A freeform text.
    #[arg(long, conflicts_with_all = ["template", "language", "var", "vars"], required_unless_present = "template")]
    text: Option<String>,
    /// A template name (with --language).
    #[arg(long, requires = "language")]
    template: Option<String>,
    /// The template's language.
    #[arg(long, requires = "template")]
    language: Option<String>,
    /// A positional variable, in order ({{1}}, {{2}}, ...).
    #[arg(long, conflicts_with = "vars")]
    var: Vec<String>,
    /// Variables as JSON: a list, or an object of names.
    #[arg(long)]
    vars: Option<String>,
    /// Why it is sent (opt_out_confirmation changes the decision).
    #[arg(long)]
    purpose: Option<String>,
    /// Decide as of this time instead of now (RFC 3339).
    #[arg(long)]
    at: Option<String>,
    /// A sentence instead of JSON.
    #[arg(long)]
    human: bool,
}

/// A failure that ends the command with an exit code.
/// A failure that ends the command: exit code and message.
pub struct Fail(pub u8, pub String);

impl From<wagate::Error> for Fail {
    fn from(e: wagate::Error) -> Self {
        Fail(EXIT_BAD_INPUT, e.to_string())
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail(EXIT_BAD_INPUT, e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("wagate: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, Fail> {
    let config = GateConfig {
        policy: PolicyConfig {
            margin_ms: i64::from(cli.margin_seconds) * 1000,
        },
        ..GateConfig::default()
    };
    let open = |clock: Option<Arc<ManualClock>>| -> Result<Gate, Fail> {
        let path = cli.db.as_deref().ok_or_else(|| {
            Fail(
                EXIT_USAGE,
                "no database: pass --db PATH or set WAGATE_DB (demo and replay need none)".into(),
            )
        })?;
        let gate = Gate::open(path)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("{}: {e}", path.display())))?
            .with_config(config.clone());
        Ok(match clock {
            Some(c) => gate.with_clock(c),
            None => gate.with_clock(Arc::new(SystemClock)),
        })
    };
    match cli.command {
        Command::Replay { files } => replay(&files),
        Command::Demo => demo::run(&mut std::io::stdout().lock()).map_err(Fail::from),
        Command::Ingest { file, batch } => {
            ingest(&open(None)?, &cli.business, &file, batch as usize)
        }
        Command::Check(args) => {
            let clock = match &args.at {
                Some(at) => Arc::new(ManualClock::new(parse_time("--at", at)?)),
                None => Arc::new(ManualClock::new(Timestamp::now())),
            };
            check(&open(Some(clock))?, &cli.business, &args)
        }
        Command::History { user, json } => history(&open(None)?, &cli.business, &user, json),
        Command::Export { since } => {
            let since = since.map(|s| parse_time("--since", &s)).transpose()?;
            export(&open(None)?, &cli.business, since)
        }
        Command::Import { file } => import::run(&open(None)?, &cli.business, &file),
        Command::Templates(TemplatesCommand::List { json }) => {
            templates_list(&open(None)?, &cli.business, json)
        }
        Command::Templates(TemplatesCommand::Set {
            name,
            language,
            category,
            status,
            body,
            at,
            twilio_content_sid,
            meta_template_id,
        }) => {
            let record = TemplateRecord {
                name,
                language,
                category: Category::parse(&category)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--category: {e}")))?,
                status: TemplateStatus::parse(&status)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--status: {e}")))?,
                body: TemplateBody::parse(&body)
                    .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--body: {e}")))?,
                at: match at {
                    Some(at) => parse_time("--at", &at)?,
                    None => Timestamp::now(),
                },
                received_at: None,
                twilio_content_sid,
                meta_template_id,
            };
            let gate = open(None)?;
            gate.business(&cli.business)?
                .ingest(&Event::Template(record))?;
            eprintln!("template registered");
            Ok(0)
        }
        Command::Stats { json } => stats(&open(None)?, &cli.business, json),
    }
}

fn parse_time(flag: &str, s: &str) -> Result<Timestamp, Fail> {
    Timestamp::parse(s).map_err(|e| Fail(EXIT_BAD_INPUT, format!("{flag}: {e}")))
}

fn replay(files: &[PathBuf]) -> Result<u8, Fail> {
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

/// Reads lines on a thread, so that a pause in a stream (a pipe from a
/// webhook receiver) commits what has arrived instead of waiting for a full
/// batch.
/// The lines of a reader; a line that is not UTF-8 (or cannot be read) is
/// an error for that line alone, and reading goes on.
pub fn text_lines<R: BufRead>(mut reader: R) -> impl Iterator<Item = Result<String, String>> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                Some(String::from_utf8(buf).map_err(|_| "the line is not valid UTF-8".to_owned()))
            }
            Err(e) => {
                done = true;
                Some(Err(format!("cannot read: {e}")))
            }
        }
    })
}

fn line_reader(file: &str) -> Result<mpsc::Receiver<Result<String, String>>, Fail> {
    let reader: Box<dyn BufRead + Send> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| Fail(EXIT_BAD_INPUT, format!("cannot read {file}: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    // Bounded: a fast file cannot run ahead of the database by more than
    // a few batches, so memory stays flat.
    let (tx, rx) = mpsc::sync_channel(4096);
    std::thread::spawn(move || {
        for line in text_lines(reader) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

fn ingest(gate: &Gate, business: &str, file: &str, batch: usize) -> Result<u8, Fail> {
    let business = gate.business(business)?;
    let rx = line_reader(file)?;
    let mut out = std::io::stdout().lock();
    let mut n = 0usize;
    let mut failed = false;
    let mut done = false;
    while !done {
        // Collect up to `batch` lines, or what arrives before a short pause.
        let mut lines: Vec<(usize, Result<Event, String>)> = Vec::new();
        let mut first = true;
        while lines.len() < batch {
            let next = if first {
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(Duration::from_millis(20))
            };
            match next {
                Ok(Ok(text)) => {
                    first = false;
                    n += 1;
                    match parse_live_line(&text) {
                        Ok(Line::Skip) => {}
                        Ok(Line::Event { event, .. }) => lines.push((n, Ok(event))),
                        Ok(_) => lines.push((
                            n,
                            Err("ingest takes inbound, consent, template and status lines; use check or replay for questions".into()),
                        )),
                        Err(e) => lines.push((n, Err(e.0))),
                    }
                }
                Ok(Err(e)) => {
                    // An unreadable line is that line's error; the stream goes on.
                    first = false;
                    n += 1;
                    lines.push((n, Err(e)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    done = true;
                    break;
                }
            }
        }
        let events: Vec<Event> = lines
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let mut results = business
            .ingest_batch(&events)
            .map_err(|e| {
                Fail(
                    EXIT_BAD_INPUT,
                    format!("batch ending at line {n} not stored: {e}"),
                )
            })?
            .into_iter();
        for (line, parsed) in lines {
            let outcome = match parsed {
                Err(msg) => Err(msg),
                Ok(_) => match results.next() {
                    Some(Ok(o)) => Ok(o),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("internal: missing result".into()),
                },
            };
            let o = match outcome {
                Ok(o) => Output::value(
                    line,
                    &IngestLine {
                        ok: true,
                        outcome: o,
                    },
                ),
                Err(msg) => {
                    failed = true;
                    Output::error(line, &msg)
                }
            };
            writeln!(out, "{}", o.json)?;
        }
        out.flush()?;
    }
    Ok(if failed { EXIT_BAD_INPUT } else { 0 })
}

#[derive(Serialize)]
struct IngestLine {
    ok: bool,
    #[serde(flatten)]
    outcome: wagate::IngestOutcome,
}

fn check(gate: &Gate, business: &str, args: &CheckArgs) -> Result<u8, Fail> {
    let content = match (&args.text, &args.template, &args.language) {
        (Some(text), _, _) => Content::text(text.clone()),
        (None, Some(name), Some(language)) => {
            let variables = match &args.vars {
                Some(json) => {
                    let v: serde_json::Value = serde_json::from_str(json)
                        .map_err(|e| Fail(EXIT_BAD_INPUT, format!("--vars: bad JSON: {e}")))?;
                    Variables::from_json(&v)
                }
                None if args.var.is_empty() => Variables::none(),
                None => Variables::positional(args.var.clone()),
            };
            Content::template(name.clone(), language.clone(), variables)
        }
        _ => {
            return Err(Fail(
                EXIT_USAGE,
                "need --text, or --template with --language".into(),
            ));
        }
    };
    let mut req = SendRequest::new(&args.from, &args.to, content);
    if let Some(p) = &args.purpose {
        req = req.with_purpose(Purpose::parse(p));
    }
    let d = gate.business(business)?.check(&req)?;
    let mut out = std::io::stdout().lock();
    if args.human {
        writeln!(out, "{}", sentence(&d))?;
    } else {
        writeln!(out, "{}", json(&d))?;
    }
    Ok(0)
}

/// The decision as one sentence.
pub fn sentence(d: &Decision) -> String {
    let mut s = format!("{} ({}): {}", d.verdict, d.reason, d.reason.describe());
    if let Some(end) = d.facts.window_closes_at {
        let verb = if d.facts.window_open {
            "closes"
        } else {
            "closed"
        };
        s.push_str(&format!("; the window {verb} at {end}"));
    }
    if let Some(at) = d.facts.window_closed_by_provider_at {
        s.push_str(&format!(" (a provider error closed it at {at})"));
    }
    if let Some(until) = d
        .facts
        .confirmation_until
        .filter(|_| d.facts.opted_out_at.is_some())
    {
        s.push_str(&format!("; opted out, confirmation possible until {until}"));
    }
    if let Some(p) = &d.facts.problem {
        s.push_str(&format!("; {p}"));
    }
    s.push('.');
    s
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"cannot print: {e}\"}}"))
}

fn history(gate: &Gate, business: &str, user: &str, as_json: bool) -> Result<u8, Fail> {
    let user = Address::parse(user).map_err(|e| Fail(EXIT_BAD_INPUT, format!("--user: {e}")))?;
    let b = gate.business(business)?;
    let records = b.consent_history(&user)?;
    let windows = b.windows(&user)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        for r in &records {
            writeln!(
                out,
                "{}",
                json(&Tagged {
                    kind: "consent",
                    inner: r
                })
            )?;
        }
        for (sender, w) in &windows {
            let row = WindowRow::new(sender, w, gate.config().policy.margin_ms);
            writeln!(
                out,
                "{}",
                json(&Tagged {
                    kind: "window",
                    inner: &row
                })
            )?;
        }
        return Ok(0);
    }
    writeln!(
        out,
        "Consent trail of {user} (business {business}), oldest first:"
    )?;
    if records.is_empty() {
        writeln!(out, "  (no consent events)")?;
    }
    for r in &records {
        let counted = match (r.conditional, r.counted) {
            (true, true) => " [keyword opt-in, counted: the user was opted out]",
            (true, false) => " [keyword opt-in, not counted: the user was not opted out]",
            _ => "",
        };
        writeln!(
            out,
            "  {}  {} ({})  source={}  at={}  received={}{}",
            r.effective, r.action, r.scope, r.source, r.at, r.received_at, counted
        )?;
        if let Some(e) = &r.evidence {
            writeln!(out, "      evidence: {e}")?;
        }
    }
    writeln!(out, "Windows:")?;
    if windows.is_empty() {
        writeln!(out, "  (the user never wrote)")?;
    }
    for (sender, w) in &windows {
        let row = WindowRow::new(sender, w, gate.config().policy.margin_ms);
        writeln!(
            out,
            "  with {}: last inbound {}, window end {}{}",
            row.sender,
            row.last_inbound.map_or("-".into(), |t| t.to_string()),
            row.window_closes_at.map_or("-".into(), |t| t.to_string()),
            row.closed_by_provider_at.map_or(String::new(), |t| format!(
                ", closed by a provider error for sends up to {t}"
            )),
        )?;
    }
    Ok(0)
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    kind: &'static str,
    #[serde(flatten)]
    inner: &'a T,
}

#[derive(Serialize)]
struct WindowRow {
    sender: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_inbound: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_closes_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closed_by_provider_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referral_at: Option<Timestamp>,
}

impl WindowRow {
    fn new(sender: &Address, w: &wagate::policy::WindowFacts, margin_ms: i64) -> Self {
        WindowRow {
            sender: sender.to_string(),
            last_inbound: w.last_inbound,
            window_closes_at: w
                .last_inbound
                .map(|t| t.plus_millis(wagate::policy::WINDOW_MS - margin_ms)),
            closed_by_provider_at: w
                .closed_through
                .filter(|s| w.last_inbound.is_some_and(|l| l <= *s)),
            referral_at: w.referral_at,
        }
    }
}

/// An exported consent event: a `consent` line of the scenario format.
#[derive(Serialize)]
struct ExportLine<'a> {
    op: &'static str,
    at: Timestamp,
    received_at: Timestamp,
    user: &'a str,
    action: wagate::Action,
    scope: wagate::Scope,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    conditional: bool,
}

fn export(gate: &Gate, business: &str, since: Option<Timestamp>) -> Result<u8, Fail> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut io_error = None;
    gate.business(business)?.export_consent(since, |user, r| {
        let line = ExportLine {
            op: "consent",
            at: r.at,
            received_at: r.received_at,
            user,
            action: r.action,
            scope: r.scope,
            source: &r.source,
            evidence: r.evidence.as_deref(),
            conditional: r.conditional,
        };
        if let Err(e) = writeln!(out, "{}", json(&line)) {
            io_error = Some(e);
            return Err(wagate::Error::InvalidEvent("output closed".into()));
        }
        Ok(())
    })?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    out.flush()?;
    Ok(0)
}

fn templates_list(gate: &Gate, business: &str, as_json: bool) -> Result<u8, Fail> {
    let rows = gate.business(business)?.templates()?;
    let mut out = std::io::stdout().lock();
    if rows.is_empty() && !as_json {
        writeln!(out, "(no templates)")?;
    }
    for r in rows {
        let t = &r.template;
        if as_json {
            #[derive(Serialize)]
            struct Row<'a> {
                name: &'a str,
                language: &'a str,
                category: Category,
                status: &'a TemplateStatus,
                body: &'a str,
                status_at: Timestamp,
                #[serde(skip_serializing_if = "Option::is_none")]
                twilio_content_sid: Option<&'a str>,
                #[serde(skip_serializing_if = "Option::is_none")]
                meta_template_id: Option<&'a str>,
            }
            let row = Row {
                name: &r.name,
                language: &r.language,
                category: t.facts.category,
                status: &t.facts.status,
                body: t.facts.body.as_str(),
                status_at: t.status_at,
                twilio_content_sid: t.twilio_content_sid.as_deref(),
                meta_template_id: t.meta_template_id.as_deref(),
            };
            writeln!(out, "{}", json(&row))?;
        } else {
            writeln!(
                out,
                "{:<24} {:<6} {:<15} {:<10} {}",
                r.name,
                r.language,
                t.facts.category.as_str(),
                t.facts.status.as_str(),
                t.facts.body.as_str()
            )?;
        }
    }
    Ok(0)
}

fn stats(gate: &Gate, business: &str, as_json: bool) -> Result<u8, Fail> {
    let s = gate.business(business)?.stats()?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", json(&s))?;
    } else {
        writeln!(out, "users             {}", s.users)?;
        writeln!(out, "opted in          {}", s.opted_in)?;
        writeln!(out, "opted out         {}", s.opted_out)?;
        writeln!(out, "open windows now  {}", s.open_windows)?;
        writeln!(out, "consent events    {}", s.consent_events)?;
        writeln!(out, "inbound messages  {}", s.inbound_messages)?;
        writeln!(out, "send attempts     {}", s.send_attempts)?;
        writeln!(out, "templates         {}", s.templates)?;
    }
    Ok(0)
}
