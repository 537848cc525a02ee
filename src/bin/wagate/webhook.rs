//! `wagate webhook`: captured provider webhooks, read as the gate reads
//! them: `parse` prints the scenario lines a webhook means (to replay or
//! pipe into `wagate ingest`); `verify` checks its signature and says why
//! it fails.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde_json::{Value, json};
use wagate::providers::twilio::signature::{self, SignatureError};
use wagate::providers::twilio::webhook::{Form, TwilioWebhook};
use wagate::{Event, Timestamp};

use crate::{EXIT_BAD_INPUT, EXIT_USAGE, Fail, parse_time};

/// The most a webhook body may hold (providers post kilobytes).
const MAX_BODY: u64 = 1 << 20;

/// The providers whose webhooks the gate reads.
#[derive(Clone, Copy, ValueEnum)]
pub enum Provider {
    /// Twilio (form-encoded bodies, X-Twilio-Signature).
    Twilio,
}

/// `wagate webhook ...`.
#[derive(Subcommand)]
pub enum Command {
    /// Print the scenario line (inbound or status) a captured webhook body means.
    #[command(after_help = "Examples:\n  \
        wagate webhook parse twilio body.txt\n  \
        pbpaste | wagate webhook parse twilio --at 2026-03-01T10:00:00Z | wagate --db shop.db ingest -\n\n\
        Twilio sends no time with an incoming message: it is dated --at, or now.")]
    Parse(ParseArgs),
    /// Check a captured webhook's signature (token from TWILIO_AUTH_TOKEN) and say why it fails.
    #[command(after_help = "Example:\n  \
        TWILIO_AUTH_TOKEN=... wagate webhook verify twilio --url 'https://hooks.example.com/twilio' \\\n      \
        --signature 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' body.txt\n\n\
        --url is the URL Twilio requested (as configured in Twilio, with its query string), not the\n\
        one your server saw behind a proxy. Exit 0 valid, 1 invalid (with the likely reason).")]
    Verify(VerifyArgs),
}

/// `wagate webhook parse`.
#[derive(ClapArgs)]
pub struct ParseArgs {
    /// The provider that posted it.
    provider: Provider,
    /// The body as posted (form-encoded for Twilio); `-` or nothing for standard input.
    file: Option<PathBuf>,
    /// When it was received (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// `wagate webhook verify`.
#[derive(ClapArgs)]
pub struct VerifyArgs {
    /// The provider that posted it.
    provider: Provider,
    /// The body as posted; `-` or nothing for standard input.
    file: Option<PathBuf>,
    /// The full URL the provider requested.
    #[arg(long)]
    url: String,
    /// The signature header's value (X-Twilio-Signature).
    #[arg(long)]
    signature: String,
    /// One JSON object instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// Runs a webhook command.
pub fn run(cmd: &Command) -> Result<u8, Fail> {
    match cmd {
        Command::Parse(args) => parse(args),
        Command::Verify(args) => verify(args),
    }
}

fn read_body(file: Option<&PathBuf>) -> Result<Vec<u8>, Fail> {
    let mut body = Vec::new();
    let reader: Box<dyn Read> = match file {
        Some(p) if p.as_os_str() != "-" => Box::new(
            std::fs::File::open(p)
                .map_err(|e| Fail(EXIT_BAD_INPUT, format!("cannot read {}: {e}", p.display())))?,
        ),
        _ => Box::new(std::io::stdin()),
    };
    reader.take(MAX_BODY + 1).read_to_end(&mut body)?;
    if body.len() as u64 > MAX_BODY {
        return Err(Fail(
            EXIT_BAD_INPUT,
            format!("the body is larger than {MAX_BODY} bytes: not a webhook"),
        ));
    }
    // A captured body often ends with the newline of the file it was saved in.
    while body.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        body.pop();
    }
    Ok(body)
}

fn parse(args: &ParseArgs) -> Result<u8, Fail> {
    let Provider::Twilio = args.provider;
    let at = match &args.at {
        Some(s) => parse_time("--at", s)?,
        None => Timestamp::now(),
    };
    let body = read_body(args.file.as_ref())?;
    let hook = TwilioWebhook::parse(&body).map_err(|e| Fail(EXIT_BAD_INPUT, e.to_string()))?;
    let line = scenario_line(&hook.event(at));
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(0)
}

/// Fields in the order they were inserted (`op` first), as the scenario
/// files are written.
#[derive(Default)]
struct Line(Vec<(&'static str, Value)>);

impl Line {
    fn insert(&mut self, key: &'static str, value: Value) {
        self.0.push((key, value));
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            write!(f, "{}{}:{v}", if i == 0 { "" } else { "," }, json!(k))?;
        }
        f.write_str("}")
    }
}

/// The FORMAT v3 line of an inbound or status event.
fn scenario_line(event: &Event) -> Line {
    let mut m = Line::default();
    match event {
        Event::Inbound(msg) => {
            m.insert("op", json!("inbound"));
            m.insert("at", json!(msg.at.to_rfc3339()));
            if let Some(r) = msg.received_at {
                m.insert("received_at", json!(r.to_rfc3339()));
            }
            // A user known by a business-scoped id alone goes as user_id.
            match msg.from.bsuid() {
                Some(id) => {
                    m.insert("user_id", json!(id));
                }
                None => {
                    m.insert("from", json!(msg.from.as_str()));
                    if let Some(id) = msg.user_id.as_ref().and_then(|u| u.bsuid()) {
                        m.insert("user_id", json!(id));
                    }
                }
            }
            m.insert("to", json!(msg.to.as_str()));
            m.insert("kind", json!(msg.kind.as_str()));
            if let Some(b) = &msg.body {
                m.insert("body", json!(b));
            }
            if let Some(id) = &msg.id {
                m.insert("id", json!(id));
            }
            if let Some(r) = msg.referral {
                m.insert("referral", json!(r.as_str()));
            }
        }
        Event::Status(s) => {
            m.insert("op", json!("status"));
            m.insert("at", json!(s.at.to_rfc3339()));
            if let Some(r) = s.received_at {
                m.insert("received_at", json!(r.to_rfc3339()));
            }
            m.insert("id", json!(s.id));
            m.insert("status", json!(s.status.as_str()));
            if let Some(c) = s.error_code {
                m.insert("error_code", json!(c));
            }
            if let Some(f) = &s.from {
                m.insert("from", json!(f.as_str()));
            }
            if let Some(t) = &s.to {
                m.insert("to", json!(t.as_str()));
            }
        }
        // Twilio's webhooks mean only these two.
        _ => {
            m.insert("error", json!("not a webhook event"));
        }
    }
    m
}

fn verify(args: &VerifyArgs) -> Result<u8, Fail> {
    let Provider::Twilio = args.provider;
    let token = std::env::var("TWILIO_AUTH_TOKEN").map_err(|_| {
        Fail(
            EXIT_USAGE,
            "set TWILIO_AUTH_TOKEN to the account's auth token (it is never a flag: flags end up in shell history)".into(),
        )
    })?;
    let body = read_body(args.file.as_ref())?;
    let result = if args.url.contains("bodySHA256=") {
        signature::validate_body(&token, &args.url, &body, Some(&args.signature))
    } else {
        signature::validate(
            &token,
            &args.url,
            Form::parse(&body).pairs(),
            Some(&args.signature),
        )
    };
    let mut out = std::io::stdout().lock();
    match result {
        Ok(()) => {
            if args.json {
                writeln!(out, "{}", json!({"valid": true}))?;
            } else {
                writeln!(out, "valid")?;
            }
            Ok(0)
        }
        Err(e) => {
            let problem = match &e {
                SignatureError::Missing => "missing",
                SignatureError::Malformed(_) => "malformed",
                SignatureError::Url(_) => "url",
                SignatureError::BodyHash => "body_hash",
                SignatureError::Mismatch { .. } => "mismatch",
                _ => "invalid",
            };
            if args.json {
                writeln!(
                    out,
                    "{}",
                    json!({"valid": false, "problem": problem, "reason": e.to_string()})
                )?;
            } else {
                writeln!(out, "invalid: {e}")?;
            }
            Ok(EXIT_BAD_INPUT)
        }
    }
}
