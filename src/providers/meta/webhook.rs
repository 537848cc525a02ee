//! Meta's webhook payloads (POST, JSON) to the events RULES R9 names.
//!
//! One payload may carry many entries and changes; [`MetaWebhook::parse`]
//! reads all of it or nothing: the first missing or malformed field is a
//! [`WebhookError`] naming its place (`entry[0].changes[1].value.messages[0].timestamp`).
//! Apply [`MetaWebhook::events`] with
//! [`Business::ingest_all`](crate::Business::ingest_all), so that all of
//! it lands in one transaction or none of it does. Unknown fields are
//! ignored (Meta adds fields without notice); an empty string is an absent
//! value (`"wa_id": ""` for a user known by a username only). Check the
//! signature over the raw bytes first ([`signature::verify`](super::signature::verify)).
//!
//! ```
//! use wagate::providers::meta::MetaWebhook;
//! use wagate::{Event, MessageKind, Timestamp};
//! let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages",
//!   "value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"14155238886","phone_number_id":"PN1"},
//!   "contacts":[{"profile":{"name":"Ana"},"wa_id":"15550001111","user_id":"US.1349"}],
//!   "messages":[{"from":"15550001111","id":"wamid.1","timestamp":"1772359200","type":"text","text":{"body":"STOP"}}]}}]}]}"#;
//! let hook = MetaWebhook::parse(body, Timestamp::parse("2026-03-01T10:00:05Z")?)?;
//! let Event::Inbound(m) = &hook.events[0] else { unreachable!() };
//! assert_eq!(m.from.as_str(), "whatsapp:+15550001111");
//! assert_eq!(m.user_id.as_ref().map(|u| u.as_str()), Some("bsuid:US.1349")); // linked through contacts
//! assert_eq!((m.kind, m.body.as_deref()), (MessageKind::Text, Some("STOP")));
//! assert_eq!(m.at, Timestamp::parse("2026-03-01T10:00:00Z")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde_json::Value;

use crate::address::Address;
use crate::event::{
    ConsentEvent, DeliveryStatus, Event, InboundMessage, MessageKind, Pricing, Referral,
    StatusCallback, TemplateStatusUpdate,
};
use crate::policy::{Action, Scope, TemplateStatus};
use crate::time::Timestamp;

/// Why a payload cannot be read. Nothing of it should be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The body is not JSON.
    #[error("not a JSON payload: {0}")]
    Json(String),
    /// A field the events need is absent, empty or null.
    #[error("Meta webhook without {0}")]
    Missing(String),
    /// A field is present but cannot be read.
    #[error("Meta webhook field {path}: {why}")]
    Malformed {
        /// Where it is (`entry[0].changes[0].value.messages[0].from`).
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

fn malformed(path: &str, why: impl Into<String>) -> WebhookError {
    WebhookError::Malformed {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// A JSON value and where it sits, for errors that name the place.
#[derive(Clone, Copy)]
struct At<'a> {
    value: &'a Value,
    path: &'a str,
}

impl<'a> At<'a> {
    fn child(&self, key: &str) -> Option<(&'a Value, String)> {
        self.value
            .get(key)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
            .map(|v| (v, format!("{}.{key}", self.path)))
    }

    /// A string field, absent when missing, null or empty.
    fn str(&self, key: &str) -> Result<Option<&'a str>, WebhookError> {
        match self.child(key) {
            None => Ok(None),
            Some((Value::String(s), _)) => Ok(Some(s.as_str())),
            Some((_, p)) => Err(malformed(&p, "expected a string")),
        }
    }

    fn required_str(&self, key: &str) -> Result<&'a str, WebhookError> {
        self.str(key)?
            .ok_or_else(|| WebhookError::Missing(format!("{}.{key}", self.path)))
    }

    /// An array field (absent means empty).
    fn list(&self, key: &str) -> Result<Vec<(&'a Value, String)>, WebhookError> {
        match self.child(key) {
            None => Ok(Vec::new()),
            Some((Value::Array(items), p)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| (v, format!("{p}[{i}]")))
                .collect()),
            Some((_, p)) => Err(malformed(&p, "expected a list")),
        }
    }

    /// A unix time in seconds, as a string of digits or a number.
    fn seconds(&self, key: &str) -> Result<Option<Timestamp>, WebhookError> {
        let Some((v, p)) = self.child(key) else {
            return Ok(None);
        };
        let secs = match v {
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<i64>().ok()
            }
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        secs.filter(|s| (0..253_402_300_800).contains(s))
            .map(|s| Some(Timestamp::from_millis(s * 1000)))
            .ok_or_else(|| {
                malformed(
                    &p,
                    "expected unix seconds (a string of digits or a whole number)",
                )
            })
    }

    fn required_seconds(&self, key: &str) -> Result<Timestamp, WebhookError> {
        self.seconds(key)?
            .ok_or_else(|| WebhookError::Missing(format!("{}.{key}", self.path)))
    }
}

/// A user's phone as Meta writes it (digits, no `+`).
fn phone(path: &str, digits: &str) -> Result<Address, WebhookError> {
    let with_plus = if digits.starts_with('+') {
        digits.to_owned()
    } else {
        format!("+{digits}")
    };
    Address::parse_phone(&with_plus).map_err(|e| malformed(path, e.to_string()))
}

fn bsuid(path: &str, id: &str) -> Result<Address, WebhookError> {
    Address::from_bsuid(id).map_err(|e| malformed(path, e.to_string()))
}

/// An error Meta reports inside a change (`value.errors[]`), or on a
/// status: the code is what the gate learns from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedError {
    /// Where it was reported.
    pub path: String,
    /// The error code (130429, 131047, ...).
    pub code: Option<u32>,
    /// Its title or message.
    pub title: Option<String>,
    /// `error_data.details`, when given.
    pub details: Option<String>,
}

impl std::fmt::Display for ReportedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "error {c}")?,
            None => f.write_str("an error without a code")?,
        }
        if let Some(t) = &self.title {
            write!(f, ": {t}")?;
        }
        if let Some(d) = &self.details {
            write!(f, " ({d})")?;
        }
        write!(f, " at {}", self.path)
    }
}

impl ReportedError {
    fn read(at: At<'_>) -> Result<Self, WebhookError> {
        let code = match at.child("code") {
            None => None,
            Some((v, p)) => Some(
                v.as_u64()
                    .and_then(|c| u32::try_from(c).ok())
                    .ok_or_else(|| malformed(&p, "expected a whole error code"))?,
            ),
        };
        let details = match at.child("error_data") {
            Some((v, p)) => At { value: v, path: &p }.str("details")?.map(str::to_owned),
            None => None,
        };
        Ok(ReportedError {
            path: at.path.to_owned(),
            code,
            title: at.str("title")?.or(at.str("message")?).map(str::to_owned),
            details,
        })
    }
}

/// An incoming message as Meta describes it, beyond the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaMessage {
    /// The wamid.
    pub id: String,
    /// `metadata.phone_number_id`: which of your numbers it reached (one
    /// app may serve several; the sender address is the display number).
    pub phone_number_id: Option<String>,
    /// `type`, as sent.
    pub message_type: String,
    /// The user's name, from `contacts[].profile.name`.
    pub profile_name: Option<String>,
    /// `context.id`: the message this one replies to or was forwarded from.
    pub context_id: Option<String>,
    /// `context.from`.
    pub context_from: Option<String>,
    /// `context.forwarded` or `frequently_forwarded`.
    pub forwarded: bool,
    /// The media id of an image, video, audio, document or sticker.
    pub media_id: Option<String>,
    /// `referral.source_type`.
    pub referral_source_type: Option<String>,
    /// `referral.ctwa_clid`.
    pub ctwa_clid: Option<String>,
}

/// A status as Meta describes it, beyond the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaStatus {
    /// The wamid of the message.
    pub id: String,
    /// `metadata.phone_number_id` of the number it was sent from.
    pub phone_number_id: Option<String>,
    /// `status`, as sent.
    pub status: String,
    /// `pricing`, when sent.
    pub pricing: Option<Pricing>,
    /// `errors[]`.
    pub errors: Vec<ReportedError>,
}

/// A payload read: the events to ingest, in order, and what it reported
/// beside them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaWebhook {
    /// The events, in payload order: ingest them together
    /// ([`Business::ingest_all`](crate::Business::ingest_all)).
    pub events: Vec<Event>,
    /// The incoming messages, with what the events do not keep.
    pub messages: Vec<MetaMessage>,
    /// The statuses, with pricing and errors.
    pub statuses: Vec<MetaStatus>,
    /// Errors Meta reported inside changes (`value.errors[]`): no state
    /// changes, reported to the caller (130429: throughput reached, ...).
    pub errors: Vec<ReportedError>,
    /// What was acknowledged and ignored: other fields, statuses such as
    /// `deleted`, preferences other than marketing stop/resume, `FLAGGED`.
    pub ignored: Vec<String>,
}

impl MetaWebhook {
    /// Reads a payload; `received_at` dates what carries no time of its
    /// own (a template status update without the entry's `time`).
    ///
    /// # Errors
    /// [`WebhookError`] naming the first bad part; then nothing of the
    /// payload should be applied.
    pub fn parse(body: &[u8], received_at: Timestamp) -> Result<Self, WebhookError> {
        let root: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Json(e.to_string()))?;
        Self::from_json(&root, received_at)
    }

    /// Reads a payload already parsed as JSON.
    ///
    /// # Errors
    /// As [`MetaWebhook::parse`].
    pub fn from_json(root: &Value, received_at: Timestamp) -> Result<Self, WebhookError> {
        if !root.is_object() {
            return Err(malformed("payload", "expected a JSON object"));
        }
        let root = At {
            value: root,
            path: "payload",
        };
        let mut out = MetaWebhook::default();
        for (entry, entry_path) in root.list("entry")? {
            let entry = At {
                value: entry,
                path: &entry_path,
            };
            let entry_time = entry.seconds("time")?;
            for (change, change_path) in entry.list("changes")? {
                let change = At {
                    value: change,
                    path: &change_path,
                };
                let field = change.required_str("field")?;
                let (value, value_path) = change
                    .child("value")
                    .ok_or_else(|| WebhookError::Missing(format!("{change_path}.value")))?;
                let value = At {
                    value,
                    path: &value_path,
                };
                match field {
                    "messages" => out.messages_change(value)?,
                    "user_preferences" => out.preferences_change(value)?,
                    "message_template_status_update" => {
                        out.template_change(value, entry_time.unwrap_or(received_at), received_at)?;
                    }
                    other => out.ignored.push(format!("{change_path}: field {other}")),
                }
            }
        }
        for e in &mut out.events {
            let slot = match e {
                Event::Inbound(m) => &mut m.received_at,
                Event::Status(s) => &mut s.received_at,
                Event::Consent(c) => &mut c.received_at,
                Event::Link(l) => &mut l.received_at,
                Event::TemplateStatus(t) => &mut t.received_at,
                Event::Template(t) => &mut t.received_at,
            };
            slot.get_or_insert(received_at);
        }
        Ok(out)
    }
}

/// The R9 kind of a message `type`.
fn kind_of(t: &str) -> MessageKind {
    match t {
        "text" => MessageKind::Text,
        "image" | "video" | "audio" | "document" | "sticker" => MessageKind::Media,
        "location" => MessageKind::Location,
        "contacts" => MessageKind::Contacts,
        "button" => MessageKind::Button,
        "interactive" => MessageKind::Interactive,
        "order" => MessageKind::Order,
        "reaction" => MessageKind::Reaction,
        "system" => MessageKind::System,
        _ => MessageKind::Unsupported,
    }
}

/// A contact of a messages change: a phone, a business-scoped id, or both
/// (which a message from either links, through its `user_id`).
struct Contact {
    phone: Option<Address>,
    bsuid: Option<Address>,
    name: Option<String>,
}

impl MetaWebhook {
    fn messages_change(&mut self, value: At<'_>) -> Result<(), WebhookError> {
        let (metadata, metadata_path) = value
            .child("metadata")
            .ok_or_else(|| WebhookError::Missing(format!("{}.metadata", value.path)))?;
        let metadata = At {
            value: metadata,
            path: &metadata_path,
        };
        let sender_path = format!("{metadata_path}.display_phone_number");
        let sender = phone(&sender_path, metadata.required_str("display_phone_number")?)?;
        let number_id = metadata.str("phone_number_id")?;
        let mut contacts = Vec::new();
        for (c, p) in value.list("contacts")? {
            let c = At { value: c, path: &p };
            let name = match c.child("profile") {
                Some((v, pp)) => At {
                    value: v,
                    path: &pp,
                }
                .str("name")?
                .map(str::to_owned),
                None => None,
            };
            contacts.push(Contact {
                phone: c
                    .str("wa_id")?
                    .map(|d| phone(&format!("{p}.wa_id"), d))
                    .transpose()?,
                bsuid: c
                    .str("user_id")?
                    .map(|id| bsuid(&format!("{p}.user_id"), id))
                    .transpose()?,
                name,
            });
        }
        for (m, p) in value.list("messages")? {
            self.message(At { value: m, path: &p }, &sender, number_id, &contacts)?;
        }
        // A contact that no message names links nothing: Meta adds
        // `contacts[]` (wa_id + user_id) to sent, delivered and read
        // statuses too, and a status names one address and links nothing
        // (RULES R8). An inbound links through its own `user_id`.
        for (s, p) in value.list("statuses")? {
            self.status(At { value: s, path: &p }, &sender, number_id)?;
        }
        for (e, p) in value.list("errors")? {
            self.errors
                .push(ReportedError::read(At { value: e, path: &p })?);
        }
        Ok(())
    }

    fn message(
        &mut self,
        m: At<'_>,
        sender: &Address,
        number_id: Option<&str>,
        contacts: &[Contact],
    ) -> Result<(), WebhookError> {
        let id = m.required_str("id")?.to_owned();
        let at = m.required_seconds("timestamp")?;
        let message_type = m.required_str("type")?.to_owned();
        let kind = kind_of(&message_type);
        let mut user_phone = m
            .str("from")?
            .map(|d| phone(&format!("{}.from", m.path), d))
            .transpose()?;
        let mut user_bsuid = m
            .str("from_user_id")?
            .map(|b| bsuid(&format!("{}.from_user_id", m.path), b))
            .transpose()?;
        // contacts[] names the other half of the person.
        let mut profile_name = None;
        for c in contacts {
            let same = (user_phone.is_some() && c.phone == user_phone)
                || (user_bsuid.is_some() && c.bsuid == user_bsuid);
            if same {
                if user_phone.is_none() {
                    user_phone.clone_from(&c.phone);
                }
                if user_bsuid.is_none() {
                    user_bsuid.clone_from(&c.bsuid);
                }
                if profile_name.is_none() {
                    profile_name.clone_from(&c.name);
                }
            }
        }
        let (from, user_id) = match (user_phone, user_bsuid) {
            (Some(p), b) => (p, b),
            (None, Some(b)) => (b, None),
            (None, None) => {
                return Err(WebhookError::Missing(format!(
                    "{}.from (or from_user_id)",
                    m.path
                )));
            }
        };
        let part = |key: &str| m.child(key);
        let body = match kind {
            MessageKind::Text => {
                let (text, p) = part("text")
                    .ok_or_else(|| WebhookError::Missing(format!("{}.text", m.path)))?;
                Some(
                    At {
                        value: text,
                        path: &p,
                    }
                    .required_str("body")?
                    .to_owned(),
                )
            }
            _ => {
                let (v, p) = part(&message_type).unwrap_or((&Value::Null, String::new()));
                let at = At { value: v, path: &p };
                let reply = |key: &str| -> Result<Option<String>, WebhookError> {
                    match at.child(key) {
                        Some((r, rp)) => Ok(At {
                            value: r,
                            path: &rp,
                        }
                        .str("title")?
                        .map(str::to_owned)),
                        None => Ok(None),
                    }
                };
                if v.is_object() {
                    at.str("caption")?
                        .or(at.str("text")?)
                        .or(at.str("body")?)
                        .map(str::to_owned)
                        .or(reply("button_reply")?)
                        .or(reply("list_reply")?)
                } else {
                    None
                }
            }
        };
        let media_id = match part(&message_type) {
            Some((v, p)) if kind == MessageKind::Media => {
                At { value: v, path: &p }.str("id")?.map(str::to_owned)
            }
            _ => None,
        };
        let (context_id, context_from, forwarded) = match part("context") {
            Some((v, p)) => {
                let c = At { value: v, path: &p };
                let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
                (
                    c.str("id")?.map(str::to_owned),
                    c.str("from")?.map(str::to_owned),
                    flag("forwarded") || flag("frequently_forwarded"),
                )
            }
            None => (None, None, false),
        };
        let (source_type, ctwa_clid) = match part("referral") {
            Some((v, p)) => {
                let r = At { value: v, path: &p };
                (
                    r.str("source_type")?.map(str::to_owned),
                    r.str("ctwa_clid")?.map(str::to_owned),
                )
            }
            None => (None, None),
        };
        let referral = match source_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("ad") => Some(Referral::CtwaAd),
            Some("post") => Some(Referral::PageCta),
            _ => None,
        };
        self.events.push(Event::Inbound(InboundMessage {
            id: Some(id.clone()),
            from,
            user_id,
            to: sender.clone(),
            kind,
            body,
            at,
            received_at: None,
            referral,
        }));
        self.messages.push(MetaMessage {
            id,
            phone_number_id: number_id.map(str::to_owned),
            message_type,
            profile_name,
            context_id,
            context_from,
            forwarded,
            media_id,
            referral_source_type: source_type,
            ctwa_clid,
        });
        Ok(())
    }

    fn status(
        &mut self,
        s: At<'_>,
        sender: &Address,
        number_id: Option<&str>,
    ) -> Result<(), WebhookError> {
        let id = s.required_str("id")?.to_owned();
        let raw = s.required_str("status")?.to_owned();
        let mut errors = Vec::new();
        for (e, p) in s.list("errors")? {
            errors.push(ReportedError::read(At { value: e, path: &p })?);
        }
        let pricing = match s.child("pricing") {
            Some((v, p)) => {
                let pr = At { value: v, path: &p };
                Some(Pricing {
                    category: pr.str("category")?.map(str::to_owned),
                    kind: pr.str("type")?.map(str::to_owned),
                    billable: v.get("billable").and_then(Value::as_bool),
                })
            }
            None => None,
        };
        let status = match raw.to_ascii_lowercase().as_str() {
            "sent" => Some(DeliveryStatus::Sent),
            "delivered" => Some(DeliveryStatus::Delivered),
            "read" => Some(DeliveryStatus::Read),
            "failed" => Some(DeliveryStatus::Failed),
            "played" => Some(DeliveryStatus::Played),
            _ => None,
        };
        match status {
            Some(status) => {
                // Only a status that changes something needs its time and
                // user: a `deleted` or `warning` one is acknowledged as is.
                let at = s.required_seconds("timestamp")?;
                let user = match (s.str("recipient_id")?, s.str("recipient_user_id")?) {
                    (Some(d), _) => phone(&format!("{}.recipient_id", s.path), d)?,
                    (None, Some(b)) => bsuid(&format!("{}.recipient_user_id", s.path), b)?,
                    (None, None) => {
                        return Err(WebhookError::Missing(format!(
                            "{}.recipient_id (or recipient_user_id)",
                            s.path
                        )));
                    }
                };
                let base = StatusCallback {
                    id: id.clone(),
                    status,
                    error_code: None,
                    at,
                    received_at: None,
                    from: Some(sender.clone()),
                    to: Some(user),
                    pricing: pricing.clone(),
                };
                let codes: Vec<u32> = errors.iter().filter_map(|e| e.code).collect();
                if codes.is_empty() {
                    self.events.push(Event::Status(base));
                } else {
                    // Each code is feedback of its own (R7: once per
                    // message and code).
                    for code in codes {
                        self.events.push(Event::Status(StatusCallback {
                            error_code: Some(code),
                            ..base.clone()
                        }));
                    }
                }
            }
            // deleted, warning, and statuses Meta adds later change nothing.
            None => self.ignored.push(format!("{}: status {raw}", s.path)),
        }
        self.statuses.push(MetaStatus {
            id,
            phone_number_id: number_id.map(str::to_owned),
            status: raw,
            pricing,
            errors,
        });
        Ok(())
    }

    fn preferences_change(&mut self, value: At<'_>) -> Result<(), WebhookError> {
        for (p, path) in value.list("user_preferences")? {
            let pref = At {
                value: p,
                path: &path,
            };
            let category = pref.required_str("category")?;
            let choice = pref.required_str("value")?;
            let action = match (category, choice) {
                ("marketing_messages", "stop") => Action::OptOut,
                ("marketing_messages", "resume") => Action::OptIn,
                _ => {
                    self.ignored
                        .push(format!("{path}: preference {category}={choice}"));
                    continue;
                }
            };
            let user = match (pref.str("wa_id")?, pref.str("user_id")?) {
                (Some(d), _) => phone(&format!("{path}.wa_id"), d)?,
                (None, Some(b)) => bsuid(&format!("{path}.user_id"), b)?,
                (None, None) => {
                    return Err(WebhookError::Missing(format!("{path}.wa_id (or user_id)")));
                }
            };
            let at = pref.required_seconds("timestamp")?;
            let detail = pref.str("detail")?;
            let mut consent =
                ConsentEvent::new(user, action, Scope::Marketing, at, "provider_preference");
            consent.evidence = Some(match detail {
                Some(d) => format!("Meta user_preferences {category}={choice}: {d}"),
                None => format!("Meta user_preferences {category}={choice}"),
            });
            self.events.push(Event::Consent(consent));
        }
        Ok(())
    }

    fn template_change(
        &mut self,
        value: At<'_>,
        at: Timestamp,
        received_at: Timestamp,
    ) -> Result<(), WebhookError> {
        let event = value.required_str("event")?;
        let name = value.required_str("message_template_name")?.to_owned();
        let language = value.required_str("message_template_language")?.to_owned();
        let id = match value.child("message_template_id") {
            None => None,
            Some((Value::Number(n), _)) => Some(n.to_string()),
            Some((Value::String(s), _)) => Some(s.clone()),
            Some((_, p)) => return Err(malformed(&p, "expected a template id")),
        };
        let status = match event.to_ascii_uppercase().as_str() {
            // A quality warning: the template stays sendable until Meta pauses it.
            "FLAGGED" => {
                self.ignored.push(format!(
                    "{}: template {name}/{language} FLAGGED",
                    value.path
                ));
                return Ok(());
            }
            "REINSTATED" => TemplateStatus::approved(),
            other => TemplateStatus::parse(other)
                .map_err(|e| malformed(&format!("{}.event", value.path), e.to_string()))?,
        };
        self.events
            .push(Event::TemplateStatus(TemplateStatusUpdate {
                name,
                language,
                status,
                at,
                received_at: Some(received_at),
                twilio_content_sid: None,
                meta_template_id: id,
            }));
        Ok(())
    }
}
