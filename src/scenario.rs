//! The scenario format of `wagate replay` and `wagate ingest` (JSON Lines,
//! one event or question per line; see `FORMAT.md` in the conformance
//! suite), and a runner on a fresh in-memory gate.
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
use crate::gate::{Business, Gate, GateConfig, SendOutcome};
use crate::policy::{
    Category, Content, PolicyConfig, Purpose, Scope, SendRequest, TemplateBody, TemplateStatus,
    Variables,
};
use crate::time::{ManualClock, Timestamp};
use crate::transport::RecordingTransport;

/// The business a replay runs as.
pub const BUSINESS: &str = "default";

/// One parsed scenario line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Blank or a `#` comment.
    Skip,
    /// `config`: the window margin, in milliseconds.
    Config {
        /// The margin.
        margin_ms: i64,
    },
    /// `inbound`, `consent`, `template` or `status`.
    Event {
        /// The line's `at`.
        at: Timestamp,
        /// The event.
        event: Event,
    },
    /// `check` or `send`.
    Ask {
        /// The line's `at`: the decision's `now`.
        at: Timestamp,
        /// The request.
        request: SendRequest,
        /// `Some(key)` for `send` (the line's `id`, if given), `None` for
        /// `check`.
        send: Option<Option<String>>,
    },
}

/// Why a line cannot be applied, in words a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

impl From<Error> for LineError {
    fn from(e: Error) -> Self {
        LineError(e.to_string())
    }
}

type LineResult<T> = std::result::Result<T, LineError>;

/// The ops of the format.
pub const OPS: [&str; 7] = [
    "config", "inbound", "consent", "template", "check", "send", "status",
];

/// Parses one line of the scenario format.
///
/// # Errors
/// A [`LineError`] naming what is wrong (bad JSON, unknown op, missing
/// field, bad time, invalid address in an event, malformed template).
pub fn parse_line(text: &str) -> std::result::Result<Line, LineError> {
    parse(text, true)
}

/// Parses one line of live data (`wagate ingest`, `wagate import`): as
/// [`parse_line`], except that a missing `received_at` means "now, when the
/// gate takes it" instead of `at`, so that a record stamped in the future
/// cannot take effect later than it reached us (RULES, effective time).
///
/// # Errors
/// As [`parse_line`].
pub fn parse_live_line(text: &str) -> std::result::Result<Line, LineError> {
    parse(text, false)
}

fn parse(text: &str, received_defaults_to_at: bool) -> std::result::Result<Line, LineError> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(Line::Skip);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| LineError(format!("bad JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(LineError(
            "expected a JSON object with an \"op\" field".into(),
        ));
    };
    let f = Fields(&obj);
    let op = f.str("op")?;
    if !OPS.contains(&op) {
        return Err(LineError(format!(
            "unknown op {op:?}: expected one of {}",
            OPS.join(", ")
        )));
    }
    if op == "config" {
        let margin = match obj.get("margin_seconds") {
            None => 0,
            Some(v) => v
                .as_i64()
                .filter(|m| (0..=86_400).contains(m))
                .ok_or_else(|| {
                    LineError(
                        "margin_seconds must be a whole number of seconds from 0 to 86400".into(),
                    )
                })?,
        };
        return Ok(Line::Config {
            margin_ms: margin * 1000,
        });
    }
    let at = f.time("at")?;
    let received_at = match f.opt_time("received_at")? {
        Some(r) => Some(r),
        None if received_defaults_to_at => Some(at),
        None => None,
    };
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
            received_at,
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
                None => Scope::All,
            },
            at,
            received_at,
            source: f.str("source")?.to_owned(),
            evidence: f.opt_str("evidence")?.map(str::to_owned),
            conditional: match obj.get("conditional") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(LineError(
                        "field \"conditional\" must be true or false".into(),
                    ));
                }
            },
        }),
        "template" => {
            let name = f.str("name")?.to_owned();
            let language = f.str("language")?.to_owned();
            let status = TemplateStatus::parse(f.str("status")?).map_err(Error::from)?;
            if !obj.contains_key("body") && !obj.contains_key("category") {
                // A status-only change of a registered template.
                Event::TemplateStatus(TemplateStatusUpdate {
                    name,
                    language,
                    status,
                    at,
                    received_at,
                })
            } else {
                Event::Template(TemplateRecord {
                    name,
                    language,
                    category: Category::parse(f.str("category")?).map_err(Error::from)?,
                    status,
                    body: TemplateBody::parse(f.str("body")?).map_err(Error::from)?,
                    at,
                    received_at,
                    twilio_content_sid: f.opt_str("twilio_content_sid")?.map(str::to_owned),
                    meta_template_id: f.opt_str("meta_template_id")?.map(str::to_owned),
                })
            }
        }
        "status" => Event::Status(StatusCallback {
            id: f.str("id")?.to_owned(),
            status: f.str("status")?.parse()?,
            error_code: f.error_code()?,
            at,
            received_at,
        }),
        _ => {
            // check or send
            let content = match (obj.get("text"), obj.get("template")) {
                (Some(_), None) => Content::text(f.str("text")?),
                (None, Some(_)) => Content::template(
                    f.str("template")?,
                    f.str("language")?,
                    obj.get("variables")
                        .map(Variables::from_json)
                        .unwrap_or_default(),
                ),
                _ => return Err(LineError("need exactly one of text or template".into())),
            };
            let mut request = SendRequest::new(f.str("from")?, f.str("to")?, content);
            if let Some(p) = f.opt_str("purpose")? {
                request = request.with_purpose(Purpose::parse(p));
            }
            let send = (op == "send")
                .then(|| f.opt_str("id").map(|k| k.map(str::to_owned)))
                .transpose()?;
            return Ok(Line::Ask { at, request, send });
        }
    };
    Ok(Line::Event { at, event })
}

/// The output of a whole scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// One JSON object per `check`, `send` and failed line, in input order.
    pub lines: Vec<String>,
    /// How many lines failed.
    pub errors: usize,
}

/// One output line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The JSON object, starting with `"line"`.
    pub json: String,
    /// Whether it is an error line.
    pub is_error: bool,
}

impl Output {
    /// `{"line": n, "error": "..."}`.
    pub fn error(n: usize, message: &str) -> Self {
        Output {
            json: with_line(n, &serde_json::json!({ "error": message }).to_string()),
            is_error: true,
        }
    }

    /// `{"line": n, ...fields of value}`.
    pub fn value<T: Serialize>(n: usize, value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(body) => Output {
                json: with_line(n, &body),
                is_error: false,
            },
            Err(e) => Output::error(n, &format!("cannot print the result: {e}")),
        }
    }
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

/// A `send` line's output: the outcome, plus two flags.
#[derive(Serialize)]
pub struct SendLine<'a> {
    /// The decision and delivery.
    #[serde(flatten)]
    pub outcome: &'a SendOutcome,
    /// Whether this line handed the message to the transport.
    pub sent: bool,
    /// Whether the key had already reached the transport.
    pub duplicate: bool,
}

impl<'a> SendLine<'a> {
    /// The line for an outcome.
    pub fn new(outcome: &'a SendOutcome) -> Self {
        SendLine {
            sent: outcome.sent(),
            duplicate: outcome.duplicate(),
            outcome,
        }
    }
}

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
    /// Only when the in-memory store fails; bad lines are reported in the
    /// [`Report`].
    pub fn run(input: &str) -> Result<Report> {
        let mut replay = Replay::new();
        let mut report = Report::default();
        for (i, text) in input.lines().enumerate() {
            if let Some(out) = replay.line(i + 1, text)? {
                report.errors += usize::from(out.is_error);
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
    /// Only when the store fails (a bad line is an error [`Output`]).
    pub fn line(&mut self, n: usize, text: &str) -> Result<Option<Output>> {
        let parsed = match parse_line(text) {
            Ok(Line::Skip) => return Ok(None),
            Ok(line) => line,
            Err(e) => {
                self.started = true;
                return Ok(Some(Output::error(n, &e.0)));
            }
        };
        let first = !std::mem::replace(&mut self.started, true);
        match self.apply(n, first, parsed) {
            Ok(out) => Ok(out),
            Err(e) if e.is_store_failure() => Err(e),
            Err(e) => Ok(Some(Output::error(n, &e.to_string()))),
        }
    }

    fn apply(&mut self, n: usize, first: bool, line: Line) -> Result<Option<Output>> {
        match line {
            Line::Skip => Ok(None),
            Line::Config { margin_ms } => {
                if !first {
                    return Err(Error::InvalidEvent(
                        "config must be the first line that is not blank or a comment".into(),
                    ));
                }
                self.config.policy = PolicyConfig { margin_ms };
                Ok(None)
            }
            Line::Event { at, event } => {
                self.clock.set(at);
                business(&mut self.gate, &self.config, &self.clock)?.ingest(&event)?;
                Ok(None)
            }
            Line::Ask { at, request, send } => {
                self.clock.set(at);
                let business = business(&mut self.gate, &self.config, &self.clock)?;
                match send {
                    None => Ok(Some(Output::value(n, &business.check(&request)?))),
                    Some(key) => {
                        let key = key.unwrap_or_else(|| format!("line-{n}"));
                        let out = business.send(&request, &key, &self.transport)?;
                        Ok(Some(Output::value(n, &SendLine::new(&out))))
                    }
                }
            }
        }
    }
}

/// The replay's business, creating its in-memory gate on first use (after
/// a `config` line, if any).
fn business<'g>(
    gate: &'g mut Option<Gate>,
    config: &GateConfig,
    clock: &Arc<ManualClock>,
) -> Result<Business<'g>> {
    if gate.is_none() {
        *gate = Some(
            Gate::open_in_memory()?
                .with_config(config.clone())
                .with_clock(clock.clone()),
        );
    }
    match gate {
        Some(g) => g.business(BUSINESS),
        None => Err(Error::InvalidEvent("engine could not be created".into())),
    }
}

/// `{"line": n, ...fields of body}` on one line, `line` first.
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
