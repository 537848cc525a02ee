//! Parsing one line of the scenario format (`docs/scenario-format.md`).
//!
//! Strict: every field a line carries must be one its op defines, no key
//! may appear twice, and every value must have its type. A typo can never
//! widen consent.

use serde_json::{Map, Value};

use crate::address::Address;
use crate::error::Error;
use crate::event::{
    ConsentEvent, Event, InboundMessage, LinkEvent, MessageKind, Referral, StatusCallback,
    TemplateRecord, TemplateStatusUpdate,
};
use crate::policy::{
    Action, Category, Content, Purpose, Scope, SendRequest, TemplateBody, TemplateStatus, Variables,
};
use crate::time::Timestamp;

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
    /// `inbound`, `consent`, `template` or `status` (and `link` in live
    /// lines).
    Event {
        /// The line's `at`.
        at: Timestamp,
        /// The event.
        event: Event,
        /// For a `status` line whose `from` or `to` is not a valid
        /// address: the error to report if the callback is about a message
        /// sent elsewhere. For a message the gate sent, `from` and `to` are
        /// ignored, so the line is not an error then.
        address_error: Option<LineError>,
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

/// The fields each op defines (besides `op`); `live` adds what only live
/// lines take (the `link` op, the `chain` that export writes on consent).
fn fields_of(op: &str, live: bool) -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = match op {
        "config" => vec!["margin_seconds"],
        "inbound" => vec![
            "at",
            "to",
            "from",
            "user_id",
            "body",
            "id",
            "kind",
            "received_at",
            "referral",
        ],
        "consent" => vec![
            "at",
            "user",
            "action",
            "scope",
            "source",
            "evidence",
            "received_at",
            "conditional",
        ],
        "template" => vec![
            "at",
            "name",
            "language",
            "status",
            "category",
            "body",
            "received_at",
            "twilio_content_sid",
            "meta_template_id",
        ],
        "check" | "send" => vec![
            "at",
            "from",
            "to",
            "text",
            "template",
            "language",
            "variables",
            "purpose",
        ],
        "status" => vec!["at", "id", "status", "error_code", "from", "to"],
        "link" if live => vec!["at", "phone", "bsuid", "source", "received_at"],
        _ => Vec::new(),
    };
    if op == "send" {
        fields.push("id");
    }
    if live && op == "consent" {
        fields.push("chain");
    }
    fields
}

/// Parses one line of the scenario format (`wagate replay`).
///
/// # Errors
/// A [`LineError`] naming what is wrong (bad JSON, a repeated key, unknown
/// op or field, missing field, bad time, invalid address in an event,
/// malformed template).
pub fn parse_line(text: &str) -> std::result::Result<Line, LineError> {
    parse(text, false)
}

/// Parses one line of live data (`wagate ingest`, `wagate import`): as
/// [`parse_line`], except that a missing `received_at` means "now, when the
/// gate takes it" instead of `at`, so that a record stamped in the future
/// cannot take effect later than it reached us (RULES, effective time);
/// consent lines may carry the `chain` that `wagate export` writes (the
/// receiving database builds its own); and `link` lines join a phone and a
/// business-scoped id.
///
/// # Errors
/// As [`parse_line`].
pub fn parse_live_line(text: &str) -> std::result::Result<Line, LineError> {
    parse(text, true)
}

/// Whether a line (one that failed to parse) was meant as a `config`
/// line: its text has `"op": "config"` outside any JSON string. A replay
/// stops at a failed config line, so this looks at the text itself: a
/// config line with broken JSON or a repeated key counts too.
pub(crate) fn names_config(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find("\"op\"") {
        let escaped = rest.get(..i).is_some_and(|b| b.ends_with('\\'));
        let after = rest.get(i + 4..).unwrap_or_default().trim_start();
        if !escaped
            && let Some(value) = after.strip_prefix(':')
            && value.trim_start().starts_with("\"config\"")
        {
            return true;
        }
        rest = rest.get(i + 4..).unwrap_or_default();
    }
    false
}

fn parse(text: &str, live: bool) -> std::result::Result<Line, LineError> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(Line::Skip);
    }
    let value = super::strict::parse(text).map_err(|e| LineError(format!("bad JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(LineError(
            "expected a JSON object with an \"op\" field".into(),
        ));
    };
    let f = Fields(&obj);
    let op = f.str("op")?;
    let known = fields_of(op, live);
    if known.is_empty() {
        let ops = if live {
            "inbound, consent, template, status, link".to_owned()
        } else {
            OPS.join(", ")
        };
        return Err(LineError(format!(
            "unknown op {op:?}: expected one of {ops}"
        )));
    }
    if let Some(unknown) = obj
        .keys()
        .find(|k| *k != "op" && !known.contains(&k.as_str()))
    {
        return Err(LineError(format!(
            "unknown field {unknown:?} for op {op:?}: expected {}",
            known.join(", ")
        )));
    }
    if op == "config" {
        let margin = match obj.get("margin_seconds") {
            None => 0,
            Some(v) => whole(v)
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
        None if !live => Some(at),
        None => None,
    };
    let mut address_error = None;
    let event = match op {
        "inbound" => Event::Inbound(inbound(&f, at, received_at)?),
        "consent" => Event::Consent(consent(&f, at, received_at)?),
        "template" => template(&f, &obj, at, received_at)?,
        "status" => {
            let (mut from, mut to) = (None, None);
            let parsed = (
                f.opt_str("from")?.map(Address::parse_phone),
                f.opt_str("to")?.map(Address::parse),
            );
            match parsed {
                (Some(Err(e)), _) => address_error = Some(LineError(format!("from: {e}"))),
                (_, Some(Err(e))) => address_error = Some(LineError(format!("to: {e}"))),
                (a, b) => {
                    from = a.transpose().ok().flatten();
                    to = b.transpose().ok().flatten();
                }
            }
            Event::Status(StatusCallback {
                id: f.non_empty("id")?.to_owned(),
                status: f.str("status")?.parse()?,
                error_code: f.error_code()?,
                at,
                received_at,
                from,
                to,
                pricing: None,
            })
        }
        "link" => Event::Link(LinkEvent {
            phone: Address::parse_phone(f.str("phone")?)
                .map_err(|e| LineError(format!("phone: {e}")))?,
            bsuid: Address::parse(f.str("bsuid")?)
                .ok()
                .filter(Address::is_bsuid)
                .ok_or_else(|| {
                    LineError("bsuid: expected a business-scoped user id, bsuid:<id>".into())
                })?,
            at,
            received_at,
            source: f.non_empty("source")?.to_owned(),
        }),
        _ => {
            // check or send
            let content = match (obj.get("text"), obj.get("template")) {
                (Some(_), None) => {
                    if obj.contains_key("language") || obj.contains_key("variables") {
                        return Err(LineError(
                            "language and variables go with a template, not with text".into(),
                        ));
                    }
                    Content::text(f.str("text")?)
                }
                (None, Some(_)) => Content::template(
                    f.str("template")?,
                    f.str("language")?,
                    match obj.get("variables") {
                        None => Variables::none(),
                        Some(Value::Null) => {
                            return Err(LineError(
                                "field \"variables\" is null: give a list or an object, or leave the field out".into(),
                            ));
                        }
                        Some(v) => Variables::from_json(v),
                    },
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
            if send.as_ref().is_some_and(|k| k.as_deref() == Some("")) {
                return Err(LineError("field \"id\" must not be empty".into()));
            }
            return Ok(Line::Ask { at, request, send });
        }
    };
    Ok(Line::Event {
        at,
        event,
        address_error,
    })
}

fn inbound(
    f: &Fields<'_>,
    at: Timestamp,
    received_at: Option<Timestamp>,
) -> LineResult<InboundMessage> {
    let phone = f
        .opt_str("from")?
        .map(|s| Address::parse_phone(s).map_err(|e| LineError(format!("from: {e}"))))
        .transpose()?;
    let bsuid = f
        .opt_str("user_id")?
        .map(|s| {
            Address::from_bsuid(s).map_err(|_| {
                LineError(format!(
                    "invalid user_id {s:?}: a business-scoped user id as the provider gives it (1 to 128 ASCII letters, digits, '.', '_' or '-', without \"bsuid:\")"
                ))
            })
        })
        .transpose()?;
    let (from, user_id) = match (phone, bsuid) {
        (Some(p), b) => (p, b),
        (None, Some(b)) => (b, None),
        (None, None) => {
            return Err(LineError(
                "missing user: an inbound needs \"from\" (a phone) or \"user_id\" (a business-scoped id), or both".into(),
            ));
        }
    };
    Ok(InboundMessage {
        id: f.opt_str("id")?.map(str::to_owned),
        from,
        user_id,
        to: Address::parse_phone(f.str("to")?).map_err(|e| LineError(format!("to: {e}")))?,
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
    })
}

fn consent(
    f: &Fields<'_>,
    at: Timestamp,
    received_at: Option<Timestamp>,
) -> LineResult<ConsentEvent> {
    let action: Action = f.str("action")?.parse().map_err(Error::from)?;
    let scope = match f.opt_str("scope")? {
        Some(s) => s.parse().map_err(Error::from)?,
        None => Scope::All,
    };
    let conditional = match f.0.get("conditional") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(LineError(
                "field \"conditional\" must be true or false".into(),
            ));
        }
    };
    if conditional && (action, scope) != (Action::OptIn, Scope::All) {
        return Err(LineError(
            "conditional is only for an opt_in of scope all (a keyword opt-in)".into(),
        ));
    }
    if let Some(chain) = f.0.get("chain")
        && !chain.is_object()
    {
        return Err(LineError(
            "field \"chain\" must be the object wagate export writes".into(),
        ));
    }
    Ok(ConsentEvent {
        user: f.address("user")?,
        action,
        scope,
        at,
        received_at,
        source: f.non_empty("source")?.to_owned(),
        evidence: f.opt_str("evidence")?.map(str::to_owned),
        conditional,
    })
}

fn template(
    f: &Fields<'_>,
    obj: &Map<String, Value>,
    at: Timestamp,
    received_at: Option<Timestamp>,
) -> LineResult<Event> {
    let name = f.non_empty("name")?.to_owned();
    let language = f.non_empty("language")?.to_owned();
    let status = TemplateStatus::parse(f.str("status")?).map_err(Error::from)?;
    let twilio_content_sid = f.opt_str("twilio_content_sid")?.map(str::to_owned);
    let meta_template_id = f.opt_str("meta_template_id")?.map(str::to_owned);
    Ok(
        match (obj.contains_key("category"), obj.contains_key("body")) {
            // A status change, kept even before the template is registered.
            (false, false) => Event::TemplateStatus(TemplateStatusUpdate {
                name,
                language,
                status,
                at,
                received_at,
                twilio_content_sid,
                meta_template_id,
            }),
            (true, true) => Event::Template(TemplateRecord {
                name,
                language,
                category: Category::parse(f.str("category")?).map_err(Error::from)?,
                status,
                body: TemplateBody::parse(f.str("body")?).map_err(Error::from)?,
                at,
                received_at,
                twilio_content_sid,
                meta_template_id,
            }),
            (false, true) => {
                return Err(LineError(
                "missing field \"category\": a template record has category and body together (or neither, for a status change)".into(),
            ));
            }
            (true, false) => {
                return Err(LineError(
                "missing field \"body\": a template record has category and body together (or neither, for a status change)".into(),
            ));
            }
        },
    )
}

/// A JSON number with a whole value (`21610` and `21610.0` alike).
fn whole(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Within the range where every whole f64 is an exact i64.
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn opt_str(&self, key: &str) -> LineResult<Option<&str>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            // `"scope": null` must not quietly mean the default (all).
            Some(Value::Null) => Err(LineError(format!(
                "field {key:?} is null: give a value or leave the field out"
            ))),
            Some(_) => Err(LineError(format!("field {key:?} must be a string"))),
        }
    }

    fn str(&self, key: &str) -> LineResult<&str> {
        self.opt_str(key)?
            .ok_or_else(|| LineError(format!("missing field {key:?}")))
    }

    fn non_empty(&self, key: &str) -> LineResult<&str> {
        let s = self.str(key)?;
        if s.trim().is_empty() {
            return Err(LineError(format!("field {key:?} must not be empty")));
        }
        Ok(s)
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
        let bad = || {
            LineError(
                "error_code must be a whole number from 0 to 4294967295, or a string of digits"
                    .into(),
            )
        };
        match self.0.get("error_code") {
            None => Ok(None),
            Some(v @ Value::Number(_)) => whole(v)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_line_is_known_by_its_op_even_when_broken() {
        for t in [
            r#"{"op":"config","margin_seconds":-1}"#,
            r#"{ "op" : "config", "margin_seconds": }"#,
            r#"{"op":"config","op":"check"}"#,
            r#"{"margin_minutes":60,"op":"config"}"#,
        ] {
            assert!(names_config(t), "{t}");
        }
        for t in [
            r#"{"op":"consent","evidence":"\"op\":\"config\""}"#,
            r#"{"op":"configure"}"#,
            r#"{"op":"check","text":"op config"}"#,
            "not json",
        ] {
            assert!(!names_config(t), "{t}");
        }
    }

    #[test]
    fn unknown_fields_and_repeated_keys_are_errors() {
        let l = r#"{"op":"consent","at":"2026-05-01T09:00:00Z","user":"+15550002222","action":"opt_in","scop":"marketing","source":"api"}"#;
        assert!(
            parse_line(l)
                .unwrap_err()
                .0
                .contains("unknown field \"scop\"")
        );
        let l = r#"{"op":"consent","at":"2026-05-01T09:00:00Z","user":"+15550002222","action":"opt_in","action":"opt_out","source":"api"}"#;
        assert!(parse_line(l).unwrap_err().0.contains("duplicate key"));
        let chain = r#"{"op":"consent","at":"2026-05-01T09:00:00Z","user":"+15550002222","action":"opt_in","source":"api","chain":{}}"#;
        assert!(parse_line(chain).is_err());
        assert!(parse_live_line(chain).is_ok());
        let link = r#"{"op":"link","at":"2026-05-01T09:00:00Z","phone":"+15550002222","bsuid":"bsuid:US.1","source":"export"}"#;
        assert!(parse_line(link).is_err());
        assert!(matches!(
            parse_live_line(link),
            Ok(Line::Event {
                event: Event::Link(_),
                ..
            })
        ));
    }

    #[test]
    fn null_is_never_a_default() {
        let l = r#"{"op":"consent","at":"2026-05-01T09:00:00Z","user":"+15550002222","action":"opt_in","scope":null,"source":"api"}"#;
        assert!(parse_line(l).unwrap_err().0.contains("null"));
        let l = r#"{"op":"check","at":"2026-05-01T09:00:00Z","from":"+14155238886","to":"+15550002222","template":"t","language":"en","variables":null}"#;
        assert!(parse_line(l).unwrap_err().0.contains("null"));
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(whole(&serde_json::json!(21610.0)), Some(21610));
        assert_eq!(whole(&serde_json::json!(21610)), Some(21610));
        assert_eq!(whole(&serde_json::json!(21610.5)), None);
        assert_eq!(whole(&serde_json::json!(1e300)), None);
    }
}
