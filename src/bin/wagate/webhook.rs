//! `wagate webhook`: captured provider webhooks, read as the gate reads
//! them: `parse` prints the scenario lines a webhook means (to replay or
//! pipe into `wagate ingest`); `verify` checks its signature and says why
//! it fails.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde_json::{Value, json};
use wagate::providers::meta::MetaWebhook;
use wagate::providers::meta::signature as meta_signature;
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
    /// Meta's Cloud API (JSON payloads, X-Hub-Signature-256).
    Meta,
}

/// `wagate webhook ...`.
#[derive(Subcommand)]
pub enum Command {
    /// Print the scenario lines (inbound, status, consent, template, link) a captured webhook body means.
    #[command(after_help = "Examples:\n  \
        wagate webhook parse twilio body.txt\n  \
        pbpaste | wagate webhook parse twilio --at 2026-03-01T10:00:00Z | wagate --db shop.db ingest -\n  \
        wagate webhook parse meta payload.json | wagate --db shop.db ingest -\n\n\
        Twilio sends no time with an incoming message: it is dated --at, or now. A Meta payload\n\
        carries its own times (--at dates its receipt); what Meta reported beside the events\n\
        (value errors, ignored fields) goes to stderr.")]
    Parse(ParseArgs),
    /// Check a captured webhook's signature (secret from TWILIO_AUTH_TOKEN or META_APP_SECRET) and say why it fails.
    #[command(after_help = "Examples:\n  \
        TWILIO_AUTH_TOKEN=... wagate webhook verify twilio --url 'https://hooks.example.com/twilio' \\\n      \
        --signature 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' body.txt\n  \
        META_APP_SECRET=... wagate webhook verify meta --signature 'sha256=0c61...' payload.json\n\n\
        Twilio: --url is the URL Twilio requested (as configured in Twilio, with its query string),\n\
        not the one your server saw behind a proxy. Meta: the file must hold the exact bytes received.\n\
        Exit 0 valid, 1 invalid (with the likely reason).")]
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
    /// The full URL the provider requested (Twilio).
    #[arg(long, required_if_eq("provider", "twilio"))]
    url: Option<String>,
    /// The signature header's value (X-Twilio-Signature, X-Hub-Signature-256).
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
    Ok(body)
}

/// A captured form body often ends with the newline of the file it was
/// saved in (a JSON body is signed byte for byte: it is kept as is).
fn trim_newline(mut body: Vec<u8>) -> Vec<u8> {
    while body.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        body.pop();
    }
    body
}

fn parse(args: &ParseArgs) -> Result<u8, Fail> {
    let at = match &args.at {
        Some(s) => parse_time("--at", s)?,
        None => Timestamp::now(),
    };
    let body = read_body(args.file.as_ref())?;
    let bad = |e: &dyn std::fmt::Display| Fail(EXIT_BAD_INPUT, e.to_string());
    let events = match args.provider {
        Provider::Twilio => vec![
            TwilioWebhook::parse(&trim_newline(body))
                .map_err(|e| bad(&e))?
                .event(at),
        ],
        Provider::Meta => {
            let hook = MetaWebhook::parse(&body, at).map_err(|e| bad(&e))?;
            for e in &hook.errors {
                eprintln!("wagate: Meta reported {e}");
            }
            for i in &hook.ignored {
                eprintln!("wagate: ignored {i}");
            }
            hook.events
        }
    };
    let mut out = std::io::stdout().lock();
    for e in &events {
        writeln!(out, "{}", scenario_line(e))?;
    }
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
        Event::Consent(c) => {
            m.insert("op", json!("consent"));
            m.insert("at", json!(c.at.to_rfc3339()));
            if let Some(r) = c.received_at {
                m.insert("received_at", json!(r.to_rfc3339()));
            }
            m.insert("user", json!(c.user.as_str()));
            m.insert("action", json!(c.action.as_str()));
            m.insert("scope", json!(c.scope.as_str()));
            m.insert("source", json!(c.source));
            if let Some(e) = &c.evidence {
                m.insert("evidence", json!(e));
            }
        }
        Event::TemplateStatus(t) => {
            m.insert("op", json!("template"));
            m.insert("at", json!(t.at.to_rfc3339()));
            if let Some(r) = t.received_at {
                m.insert("received_at", json!(r.to_rfc3339()));
            }
            m.insert("name", json!(t.name));
            m.insert("language", json!(t.language));
            m.insert("status", json!(t.status.as_str()));
            if let Some(id) = &t.meta_template_id {
                m.insert("meta_template_id", json!(id));
            }
        }
        Event::Link(l) => {
            m.insert("op", json!("link"));
            m.insert("at", json!(l.at.to_rfc3339()));
            if let Some(r) = l.received_at {
                m.insert("received_at", json!(r.to_rfc3339()));
            }
            m.insert("phone", json!(l.phone.as_str()));
            m.insert("bsuid", json!(l.bsuid.as_str()));
            m.insert("source", json!(l.source));
        }
        // Webhooks carry no full template records.
        Event::Template(_) => {
            m.insert("error", json!("not a webhook event"));
        }
    }
    m
}

/// A secret from the environment, never a flag (flags end up in shell
/// history and process lists).
fn secret(name: &str, what: &str) -> Result<String, Fail> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            Fail(
                EXIT_USAGE,
                format!("set {name} to {what} (it is never a flag: flags end up in shell history)"),
            )
        })
}

fn verify(args: &VerifyArgs) -> Result<u8, Fail> {
    let body = read_body(args.file.as_ref())?;
    let result: Result<(), (String, &'static str)> = match args.provider {
        Provider::Twilio => {
            let token = secret("TWILIO_AUTH_TOKEN", "the account's auth token")?;
            let url = args.url.as_deref().unwrap_or_default();
            let body = trim_newline(body);
            let r = if url.contains("bodySHA256=") {
                signature::validate_body(&token, url, &body, Some(&args.signature))
            } else {
                signature::validate(
                    &token,
                    url,
                    Form::parse(&body).pairs(),
                    Some(&args.signature),
                )
            };
            r.map_err(|e| {
                let problem = match &e {
                    SignatureError::Missing | SignatureError::NoToken => "missing",
                    SignatureError::Malformed(_) => "malformed",
                    SignatureError::Url(_) => "url",
                    SignatureError::BodyHash => "body_hash",
                    SignatureError::Mismatch { .. } => "mismatch",
                    _ => "invalid",
                };
                (e.to_string(), problem)
            })
        }
        Provider::Meta => {
            let app_secret = secret("META_APP_SECRET", "the app's secret (App settings > Basic)")?;
            meta_signature::verify(&app_secret, &body, Some(&args.signature)).map_err(|e| {
                let problem = match &e {
                    meta_signature::SignatureError::Mismatch { .. } => "mismatch",
                    meta_signature::SignatureError::Missing => "missing",
                    _ => "malformed",
                };
                (e.to_string(), problem)
            })
        }
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
        Err((reason, problem)) => {
            if args.json {
                writeln!(
                    out,
                    "{}",
                    json!({"valid": false, "problem": problem, "reason": reason})
                )?;
            } else {
                writeln!(out, "invalid: {reason}")?;
            }
            Ok(EXIT_BAD_INPUT)
        }
    }
}
