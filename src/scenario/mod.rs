//! The scenario format of `wagate replay` and `wagate ingest` (JSON Lines,
//! one event or question per line; `docs/scenario-format.md`), and a
//! runner on a fresh in-memory gate.
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

mod parse;
mod strict;

use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gate::{Business, Gate, GateConfig, SendOutcome};
use crate::policy::PolicyConfig;
use crate::time::ManualClock;
use crate::transport::RecordingTransport;

pub use parse::{Line, LineError, OPS, parse_line, parse_live_line};

/// Parses JSON text as the scenario format does: a key repeated in any
/// object is an error (serde_json would keep the last one silently).
///
/// # Errors
/// The JSON error, naming a repeated key.
pub fn parse_json(text: &str) -> std::result::Result<serde_json::Value, serde_json::Error> {
    strict::parse(text)
}

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
    /// The store to replay on (a fresh in-memory SQLite one when `None`).
    base: Option<Gate>,
    gate: Option<Gate>,
    clock: Arc<ManualClock>,
    transport: RecordingTransport,
    started: bool,
    stopped: bool,
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
            base: None,
            gate: None,
            clock: Arc::new(ManualClock::default()),
            transport: RecordingTransport::new(),
            started: false,
            stopped: false,
        }
    }

    /// A replay on `gate`'s store instead of a fresh in-memory one (a
    /// PostgreSQL schema made for it, say): the replay's own configuration
    /// and clock apply. The store must hold no business of the replay's
    /// name yet.
    pub fn on(gate: Gate) -> Self {
        Replay {
            base: Some(gate),
            ..Replay::new()
        }
    }

    /// Runs a whole scenario.
    ///
    /// # Errors
    /// Only when the in-memory store fails; bad lines are reported in the
    /// [`Report`].
    pub fn run(input: &str) -> Result<Report> {
        Self::run_with(Replay::new(), input)
    }

    /// Runs a whole scenario on `gate`'s store (see [`Replay::on`]).
    ///
    /// # Errors
    /// Only when the store fails; bad lines are reported in the [`Report`].
    pub fn run_on(gate: Gate, input: &str) -> Result<Report> {
        Self::run_with(Replay::on(gate), input)
    }

    fn run_with(mut replay: Replay, input: &str) -> Result<Report> {
        let mut report = Report::default();
        for (i, text) in input.lines().enumerate() {
            if let Some(out) = replay.line(i + 1, text)? {
                report.errors += usize::from(out.is_error);
                report.lines.push(out.json);
            }
            if replay.stopped() {
                break;
            }
        }
        Ok(report)
    }

    /// Reports a line that could not even be read (not UTF-8): an error
    /// line for it alone; the replay goes on.
    pub fn unreadable(&mut self, n: usize, why: &str) -> Output {
        self.started = true;
        Output::error(n, why)
    }

    /// The messages the recording transport was handed so far.
    pub fn transport(&self) -> &RecordingTransport {
        &self.transport
    }

    /// Whether the scenario stopped: a `config` line failed (a bad value,
    /// an unknown field, broken JSON, or not the first line), so the lines
    /// after it would run under a configuration other than the one they
    /// were written for. Every later line is ignored.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The error line of a failed `config` line, which stops the scenario.
    fn stop(&mut self, n: usize, why: &str) -> Output {
        self.stopped = true;
        Output::error(
            n,
            &format!(
                "{why}; the scenario stops here: its lines would run without the configuration they were written for"
            ),
        )
    }

    /// Applies one line (numbered from 1). Returns the output line, if the
    /// line produces one. After a failed `config` line the scenario has
    /// [`stopped`](Replay::stopped) and every line is ignored.
    ///
    /// # Errors
    /// Only when the store fails (a bad line is an error [`Output`]).
    pub fn line(&mut self, n: usize, text: &str) -> Result<Option<Output>> {
        if self.stopped {
            return Ok(None);
        }
        let parsed = match parse_line(text) {
            Ok(Line::Skip) => return Ok(None),
            Ok(line) => line,
            Err(e) => {
                self.started = true;
                if parse::names_config(text) {
                    return Ok(Some(self.stop(n, &e.0)));
                }
                return Ok(Some(Output::error(n, &e.0)));
            }
        };
        let first = !std::mem::replace(&mut self.started, true);
        let config = matches!(parsed, Line::Config { .. });
        match self.apply(n, first, parsed) {
            Ok(out) => Ok(out),
            Err(e) if e.is_store_failure() => Err(e),
            Err(e) if config => Ok(Some(self.stop(n, &e.to_string()))),
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
            Line::Event {
                at,
                event,
                address_error,
            } => {
                self.clock.set(at);
                let b = business(
                    &mut self.gate,
                    self.base.as_ref(),
                    &self.config,
                    &self.clock,
                )?;
                match (b.ingest(&event), address_error) {
                    // A status naming a bad address is an error only when it is
                    // about a message sent elsewhere.
                    (Err(Error::UnknownMessage(_)), Some(e)) => Err(Error::InvalidEvent(e.0)),
                    (r, _) => r.map(|_| None),
                }
            }
            Line::Ask { at, request, send } => {
                self.clock.set(at);
                let business = business(
                    &mut self.gate,
                    self.base.as_ref(),
                    &self.config,
                    &self.clock,
                )?;
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
fn business(
    gate: &mut Option<Gate>,
    base: Option<&Gate>,
    config: &GateConfig,
    clock: &Arc<ManualClock>,
) -> Result<Business> {
    if gate.is_none() {
        let store = match base {
            Some(g) => g.clone(),
            None => Gate::open_in_memory()?,
        };
        *gate = Some(store.with_config(config.clone()).with_clock(clock.clone()));
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
