//! The scenario format of `wagate replay` (JSON Lines, one event or
//! question per line), run against a fresh in-memory gate.
//!
//! ```
//! use wagate::scenario::Replay;
//! let input = r#"
//! {"op":"inbound","at":"2026-03-01T10:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"hi","id":"SM1"}
//! {"op":"check","at":"2026-03-01T10:00:01Z","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"hello"}
//! {"op":"warp"}
//! "#;
//! let report = Replay::run(input)?;
//! assert_eq!(report.errors, 1);
//! assert!(report.lines[0].starts_with(r#"{"line":3,"decision":"allow","reason":"window_open""#));
//! assert!(report.lines[1].starts_with(r#"{"line":4,"error":"unknown op"#));
//! # Ok::<(), wagate::Error>(())
//! ```

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::address::Address;
use crate::error::{Error, Result};
use crate::event::{
    ConsentEvent, Event, InboundMessage, MessageKind, Referral, StatusCallback, TemplateRecord,
    TemplateStatusUpdate,
};
use crate::gate::{Gate, GateConfig, SendOutcome};
use crate::policy::{
    Category, Content, PolicyConfig, Purpose, SendRequest, TemplateBody, TemplateStatus, Variables,
};
use crate::time::{ManualClock, Timestamp};
use crate::transport::RecordingTransport;

/// The business a replay runs as.
pub const BUSINESS: &str = "default";

/// The output of a whole scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// One JSON object per `check`, `send` and failed line, in input order.
    pub lines: Vec<String>,
    /// How many lines failed.
    pub errors: usize,
}

/// A scenario in progress: one fresh engine.
pub struct Replay {
    config: GateConfig,
    gate: Option<Gate>,
    clock: Arc<ManualClock>,
    transport: RecordingTransport,
    started: bool,
}

impl Default for Replay {
    fn default() -> Self {
        Self::new()
    }
}

/// A line that could not be applied: the message a person can act on.
struct LineError(String);

impl From<Error> for LineError {
    fn from(e: Error) -> Self {
        LineError(e.to_string())
    }
}

type LineResult<T> = std::result::Result<T, LineError>;

impl Replay {
    /// A fresh engine with the default configuration.
    pub fn new() -> Self {
        Replay {
            config: GateConfig::default(),
            gate: None,
            clock: Arc::new(ManualClock::default()),
            transport: RecordingTransport::new(),
            started: false,
        }
    }

    /// Runs a whole scenario.
    ///
    /// # Errors
    /// Only when the in-memory store cannot be created; bad lines are
    /// reported in the [`Report`].
    pub fn run(input: &str) -> Result<Report> {
        let mut replay = Replay::new();
        let mut report = Report::default();
        for (i, text) in input.lines().enumerate() {
            if let Some(out) = replay.line(i + 1, text)? {
                if out.is_error {
                    report.errors += 1;
                }
                report.lines.push(out.json);
            }
        }
        Ok(report)
    }

    /// The messages the recording transport was handed so far.
    pub fn transport(&self) -> &RecordingTransport {
        &self.transport
    }

    /// Applies one line (numbered from 1). Returns the output line, if the
    /// line produces one.
    ///
    /// # Errors
    /// Only when the in-memory store cannot be created or fails.
    pub fn line(&mut self, n: usize, text: &str) -> Result<Option<Output>> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(None);
        }
        let first = !self.started;
        self.started = true;
        match self.apply(n, first, trimmed) {
            Ok(None) => Ok(None),
            Ok(Some(json)) => Ok(Some(Output {
                json: with_line(n, &json),
                is_error: false,
            })),
            Err(LineError(msg)) => {
                if let Some(Err(e)) = self.gate.as_ref().map(|g| g.business(BUSINESS)) {
                    // The store itself failed: not a line error.
                    return Err(e);
                }
                Ok(Some(Output {
                    json: with_line(n, &serde_json::json!({ "error": msg }).to_string()),
                    is_error: true,
                }))
            }
        }
    }

    fn gate(&mut self) -> LineResult<&Gate> {
        if self.gate.is_none() {
            let gate = Gate::open_in_memory()?
                .with_config(self.config.clone())
                .with_clock(self.clock.clone());
            self.gate = Some(gate);
        }
        self.gate
            .as_ref()
            .ok_or_else(|| LineError("engine could not be created".into()))
    }

    fn gate_and_transport(&mut self) -> LineResult<(&Gate, &RecordingTransport)> {
        self.gate()?;
        match &self.gate {
            Some(g) => Ok((g, &self.transport)),
            None => Err(LineError("engine could not be created".into())),
        }
    }

    fn apply(&mut self, line: usize, first: bool, text: &str) -> LineResult<Option<String>> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| LineError(format!("bad JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(LineError(
                "expected a JSON object with an \"op\" field".into(),
            ));
        };
        let f = Fields(&obj);
        let op = f.str("op")?;
        if op == "config" {
            if !first {
                return Err(LineError(
                    "config must be the first line that is not blank or a comment".into(),
                ));
            }
            let margin = match obj.get("margin_seconds") {
                None => 0,
                Some(v) => v
                    .as_i64()
                    .filter(|m| (0..=86_400).contains(m))
                    .ok_or_else(|| {
                        LineError(
                            "margin_seconds must be a whole number of seconds from 0 to 86400"
                                .into(),
                        )
                    })?,
            };
            self.config.policy = PolicyConfig {
                margin_ms: margin * 1000,
            };
            return Ok(None);
        }
        const OPS: [&str; 6] = ["inbound", "consent", "template", "check", "send", "status"];
        if !OPS.contains(&op) {
            return Err(LineError(format!(
                "unknown op {op:?}: expected config, inbound, consent, template, check, send or status"
            )));
        }
        let at = f.time("at")?;
        self.clock.set(at);
        let event = match op {
            "inbound" => Event::Inbound(InboundMessage {
                id: f.opt_str("id")?.map(str::to_owned),
                from: f.address("from")?,
                to: f.address("to")?,
                kind: match f.opt_str("kind")? {
                    Some(k) => k.parse::<MessageKind>()?,
                    None => MessageKind::Text,
                },
                body: f.opt_str("body")?.map(str::to_owned),
                at,
                received_at: Some(f.opt_time("received_at")?.unwrap_or(at)),
                referral: f
                    .opt_str("referral")?
                    .map(str::parse::<Referral>)
                    .transpose()?,
            }),
            "consent" => Event::Consent(ConsentEvent {
                user: f.address("user")?,
                action: f.str("action")?.parse().map_err(Error::from)?,
                scope: match f.opt_str("scope")? {
                    Some(s) => s.parse().map_err(Error::from)?,
                    None => crate::policy::Scope::All,
                },
                at,
                received_at: Some(f.opt_time("received_at")?.unwrap_or(at)),
                source: f.str("source")?.to_owned(),
                evidence: f.opt_str("evidence")?.map(str::to_owned),
            }),
            "template" => {
                let received_at = Some(f.opt_time("received_at")?.unwrap_or(at));
                let name = f.str("name")?.to_owned();
                let language = f.str("language")?.to_owned();
                let status = TemplateStatus::parse(f.str("status")?).map_err(Error::from)?;
                match f.opt_str("body")? {
                    None if !obj.contains_key("category") => {
                        Event::TemplateStatus(TemplateStatusUpdate {
                            name,
                            language,
                            status,
                            at,
                            received_at,
                        })
                    }
                    body => Event::Template(TemplateRecord {
                        name,
                        language,
                        category: Category::parse(f.str("category")?).map_err(Error::from)?,
                        status,
                        body: TemplateBody::parse(
                            body.ok_or_else(|| LineError("missing field \"body\"".into()))?,
                        )
                        .map_err(Error::from)?,
                        at,
                        received_at,
                        twilio_content_sid: f.opt_str("twilio_content_sid")?.map(str::to_owned),
                        meta_template_id: f.opt_str("meta_template_id")?.map(str::to_owned),
                    }),
                }
            }
            "status" => Event::Status(StatusCallback {
                id: f.str("id")?.to_owned(),
                status: f.str("status")?.parse()?,
                error_code: f.error_code()?,
                at,
                received_at: Some(at),
            }),
            "check" | "send" => return self.decide(line, op == "send", &f).map(Some),
            other => return Err(LineError(format!("unknown op {other:?}"))),
        };
        let gate = self.gate()?;
        gate.business(BUSINESS)?.ingest(&event)?;
        Ok(None)
    }

    fn decide(&mut self, line: usize, send: bool, f: &Fields<'_>) -> LineResult<String> {
        let content = match (f.0.get("text"), f.0.get("template")) {
            (Some(_), None) => Content::text(f.str("text")?),
            (None, Some(_)) => Content::template(
                f.str("template")?,
                f.str("language")?,
                f.0.get("variables")
                    .map(Variables::from_json)
                    .unwrap_or_default(),
            ),
            _ => return Err(LineError("need exactly one of text or template".into())),
        };
        let mut req = SendRequest::new(f.str("from")?, f.str("to")?, content);
        if let Some(p) = f.opt_str("purpose")? {
            req = req.with_purpose(Purpose::parse(p));
        }
        let key = match f.opt_str("id")? {
            Some(k) => k.to_owned(),
            None => format!("line-{line}"),
        };
        let (gate, transport) = self.gate_and_transport()?;
        let business = gate.business(BUSINESS)?;
        if !send {
            let d = business.check(&req)?;
            return to_value(&d);
        }
        let out = business.send(&req, &key, transport)?;
        to_value(&SendLine {
            sent: out.sent(),
            duplicate: out.duplicate(),
            outcome: &out,
        })
    }
}

/// One output line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The JSON object, starting with `"line"`.
    pub json: String,
    /// Whether it is an error line.
    pub is_error: bool,
}

#[derive(Serialize)]
struct SendLine<'a> {
    #[serde(flatten)]
    outcome: &'a SendOutcome,
    sent: bool,
    duplicate: bool,
}

fn to_value<T: Serialize>(v: &T) -> LineResult<String> {
    serde_json::to_string(v).map_err(|e| LineError(format!("cannot print the result: {e}")))
}

/// `{"line": n, ...fields of v}` on one line, `line` first.
fn with_line(n: usize, body: &str) -> String {
    match body.strip_prefix('{') {
        Some("}") | None => format!("{{\"line\":{n}}}"),
        Some(rest) => format!("{{\"line\":{n},{rest}"),
    }
}

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn opt_str(&self, key: &str) -> LineResult<Option<&str>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(LineError(format!("field {key:?} must be a string"))),
        }
    }

    fn str(&self, key: &str) -> LineResult<&str> {
        self.opt_str(key)?
            .ok_or_else(|| LineError(format!("missing field {key:?}")))
    }

    fn opt_time(&self, key: &str) -> LineResult<Option<Timestamp>> {
        self.opt_str(key)?
            .map(|s| Timestamp::parse(s).map_err(|e| LineError(format!("{key}: {e}"))))
            .transpose()
    }

    fn time(&self, key: &str) -> LineResult<Timestamp> {
        self.opt_time(key)?
            .ok_or_else(|| LineError(format!("missing field {key:?}")))
    }

    fn address(&self, key: &str) -> LineResult<Address> {
        Address::parse(self.str(key)?).map_err(|e| LineError(format!("{key}: {e}")))
    }

    fn error_code(&self) -> LineResult<Option<u32>> {
        let bad = || LineError("error_code must be a number or a string of digits".into());
        match self.0.get("error_code") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(bad),
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map(Some).map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
    }
}
