//! `wagate webhook`: captured provider webhooks, read as the gate reads
//! them: `parse` prints the scenario lines a webhook means (to replay or
//! pipe into `wagate ingest`); `verify` checks its signature and says why
//! it fails.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::json;
use wagate::providers::meta::MetaWebhook;
use wagate::providers::meta::signature as meta_signature;
use wagate::providers::twilio::signature::{self, SignatureError};
use wagate::providers::twilio::webhook::{Form, TwilioWebhook};
use wagate::{Event, Timestamp};

use crate::export::{ConsentLine, LinkLine};
use crate::{EXIT_BAD_INPUT, EXIT_USAGE, Fail, json, parse_time};

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

/// An `inbound` line (FORMAT v3): the user as `from` (a phone) and/or
/// `user_id` (a business-scoped id without its prefix).
#[derive(Serialize)]
struct InboundLine<'a> {
    op: &'static str,
    at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    to: &'a str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referral: Option<&'static str>,
}

/// A `status` line.
#[derive(Serialize)]
struct StatusLine<'a> {
    op: &'static str,
    at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<Timestamp>,
    id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
}

/// A status-only `template` line.
#[derive(Serialize)]
struct TemplateStatusLine<'a> {
    op: &'static str,
    at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: Option<Timestamp>,
    name: &'a str,
    language: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_template_id: Option<&'a str>,
}

/// The FORMAT v3 line of an event a webhook means (fields in the order
/// the scenario files use, `op` first).
fn scenario_line(event: &Event) -> String {
    match event {
        Event::Inbound(m) => {
            // A user known by a business-scoped id alone goes as user_id.
            let (from, user_id) = match m.from.bsuid() {
                Some(id) => (None, Some(id)),
                None => (
                    Some(m.from.as_str()),
                    m.user_id.as_ref().and_then(|u| u.bsuid()),
                ),
            };
            json(&InboundLine {
                op: "inbound",
                at: m.at,
                received_at: m.received_at,
                from,
                user_id,
                to: m.to.as_str(),
                kind: m.kind.as_str(),
                body: m.body.as_deref(),
                id: m.id.as_deref(),
                referral: m.referral.map(|r| r.as_str()),
            })
        }
        Event::Status(s) => json(&StatusLine {
            op: "status",
            at: s.at,
            received_at: s.received_at,
            id: &s.id,
            status: s.status.as_str(),
            error_code: s.error_code,
            from: s.from.as_ref().map(|a| a.as_str()),
            to: s.to.as_ref().map(|a| a.as_str()),
        }),
        Event::Consent(c) => json(&ConsentLine {
            op: "consent",
            at: c.at,
            received_at: c.received_at.unwrap_or(c.at),
            user: c.user.as_str(),
            action: c.action,
            scope: c.scope,
            source: &c.source,
            evidence: c.evidence.as_deref(),
            conditional: c.conditional,
            chain: None,
        }),
        Event::TemplateStatus(t) => json(&TemplateStatusLine {
            op: "template",
            at: t.at,
            received_at: t.received_at,
            name: &t.name,
            language: &t.language,
            status: t.status.as_str(),
            meta_template_id: t.meta_template_id.as_deref(),
        }),
        Event::Link(l) => json(&LinkLine {
            op: "link",
            at: l.at,
            received_at: l.received_at.unwrap_or(l.at),
            phone: l.phone.as_str(),
            bsuid: l.bsuid.as_str(),
            source: &l.source,
        }),
        // Webhooks carry no full template records.
        Event::Template(_) => json(&serde_json::json!({"error": "not a webhook event"})),
    }
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
