//! What the gate ingests: inbound messages, consent events, template
//! records and status callbacks.
//!
//! Fields are public; every field whose type can be invalid (an address, a
//! template body) is validated when its value is built.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::address::Address;
use crate::error::Error;
use crate::policy::{Action, Category, Keyword, Scope, TemplateBody, TemplateStatus};
use crate::time::Timestamp;

/// The kind of an inbound message (RULES R2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text: the only kind read for keywords.
    Text,
    /// Image, audio, video, document or sticker.
    Media,
    /// A shared location.
    Location,
    /// Shared contacts.
    Contacts,
    /// A quick-reply button press.
    Button,
    /// A list or interactive reply.
    Interactive,
    /// A call.
    Call,
    /// A reaction: does not open a window.
    Reaction,
    /// A message type the provider does not support: does not open a window.
    Unsupported,
    /// A system message: does not open a window.
    System,
}

const KINDS: [(MessageKind, &str); 10] = [
    (MessageKind::Text, "text"),
    (MessageKind::Media, "media"),
    (MessageKind::Location, "location"),
    (MessageKind::Contacts, "contacts"),
    (MessageKind::Button, "button"),
    (MessageKind::Interactive, "interactive"),
    (MessageKind::Call, "call"),
    (MessageKind::Reaction, "reaction"),
    (MessageKind::Unsupported, "unsupported"),
    (MessageKind::System, "system"),
];

impl MessageKind {
    /// Whether a message of this kind opens or refreshes the window.
    pub fn opens_window(self) -> bool {
        !matches!(
            self,
            MessageKind::Reaction | MessageKind::Unsupported | MessageKind::System
        )
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("text", |(_, s)| s)
    }
}

impl FromStr for MessageKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        KINDS
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(k, _)| *k)
            .ok_or_else(|| {
                Error::InvalidEvent(format!(
                    "unknown message kind {s:?}: expected text, media, location, contacts, button, interactive, call, reaction, unsupported or system"
                ))
            })
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an inbound came from, for the free entry point (RULES R2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Referral {
    /// A Click-to-WhatsApp ad.
    CtwaAd,
    /// A Facebook Page call-to-action.
    PageCta,
}

impl Referral {
    /// `ctwa_ad` or `page_cta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Referral::CtwaAd => "ctwa_ad",
            Referral::PageCta => "page_cta",
        }
    }
}

impl FromStr for Referral {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ctwa_ad" => Ok(Referral::CtwaAd),
            "page_cta" => Ok(Referral::PageCta),
            _ => Err(Error::InvalidEvent(format!(
                "unknown referral {s:?}: expected ctwa_ad or page_cta"
            ))),
        }
    }
}

/// A user message, as a webhook reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundMessage {
    /// The provider's message id (Twilio MessageSid, Meta wamid): a second
    /// message with the same id is a duplicate and changes nothing.
    pub id: Option<String>,
    /// The user.
    pub from: Address,
    /// The business's sender number.
    pub to: Address,
    /// What kind of message.
    pub kind: MessageKind,
    /// The text (required for [`MessageKind::Text`]).
    pub body: Option<String>,
    /// When the provider says it was sent.
    pub at: Timestamp,
    /// When we received it; `None` means the gate's clock now.
    pub received_at: Option<Timestamp>,
    /// Set when the conversation started from an ad or page button.
    pub referral: Option<Referral>,
}

impl InboundMessage {
    /// A text message.
    pub fn text(from: Address, to: Address, body: impl Into<String>, at: Timestamp) -> Self {
        InboundMessage {
            id: None,
            from,
            to,
            kind: MessageKind::Text,
            body: Some(body.into()),
            at,
            received_at: None,
            referral: None,
        }
    }

    /// Sets the provider message id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// A consent event recorded by the business (form, app, import, provider).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentEvent {
    /// The user.
    pub user: Address,
    /// Opt in or out.
    pub action: Action,
    /// All messages or marketing only.
    pub scope: Scope,
    /// When it happened at its source.
    pub at: Timestamp,
    /// When we received it; `None` means the gate's clock now.
    pub received_at: Option<Timestamp>,
    /// Where it came from: `web_form`, `app`, `import`, `api`, ...
    pub source: String,
    /// Free-form proof: a form version, a screenshot id, an export name.
    pub evidence: Option<String>,
    /// An opt-in keyword recorded elsewhere (START, YES): it counts only if
    /// the user was opted out just before it (RULES R4). `false` for
    /// consent the business recorded; `wagate export` sets it for keyword
    /// opt-ins so that an import keeps their meaning.
    pub conditional: bool,
}

impl ConsentEvent {
    /// An unconditional consent event with no evidence, received now.
    pub fn new(
        user: Address,
        action: Action,
        scope: Scope,
        at: Timestamp,
        source: impl Into<String>,
    ) -> Self {
        ConsentEvent {
            user,
            action,
            scope,
            at,
            received_at: None,
            source: source.into(),
            evidence: None,
            conditional: false,
        }
    }

    /// Sets the evidence.
    #[must_use]
    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Self {
        self.evidence = Some(evidence.into());
        self
    }
}

/// A template registration or update, with its definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRecord {
    /// Template name.
    pub name: String,
    /// Template language (`en`, `pt_BR`, ...).
    pub language: String,
    /// Category.
    pub category: Category,
    /// Status.
    pub status: TemplateStatus,
    /// Body, parsed.
    pub body: TemplateBody,
    /// When the provider changed it.
    pub at: Timestamp,
    /// When we received it; `None` means the gate's clock now.
    pub received_at: Option<Timestamp>,
    /// Twilio ContentSid (`HX...`).
    pub twilio_content_sid: Option<String>,
    /// Meta template id.
    pub meta_template_id: Option<String>,
}

/// A status-only change of a template already registered (Meta's
/// `message_template_status_update` webhook carries no body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateStatusUpdate {
    /// Template name.
    pub name: String,
    /// Template language.
    pub language: String,
    /// The new status.
    pub status: TemplateStatus,
    /// When the provider changed it.
    pub at: Timestamp,
    /// When we received it; `None` means the gate's clock now.
    pub received_at: Option<Timestamp>,
}

/// The delivery status of an outbound message (RULES R7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by the provider.
    Queued,
    /// Being sent.
    Sending,
    /// Sent to WhatsApp.
    Sent,
    /// On the user's phone.
    Delivered,
    /// Read by the user.
    Read,
    /// Failed (final).
    Failed,
    /// Could not be delivered (final).
    Undelivered,
}

const STATUSES: [(DeliveryStatus, &str); 7] = [
    (DeliveryStatus::Queued, "queued"),
    (DeliveryStatus::Sending, "sending"),
    (DeliveryStatus::Sent, "sent"),
    (DeliveryStatus::Delivered, "delivered"),
    (DeliveryStatus::Read, "read"),
    (DeliveryStatus::Failed, "failed"),
    (DeliveryStatus::Undelivered, "undelivered"),
];

impl DeliveryStatus {
    /// Position in the forward-only order: a callback may only raise it.
    /// The two final statuses share the top rank.
    pub fn rank(self) -> i64 {
        match self {
            DeliveryStatus::Queued => 0,
            DeliveryStatus::Sending => 1,
            DeliveryStatus::Sent => 2,
            DeliveryStatus::Delivered => 3,
            DeliveryStatus::Read => 4,
            DeliveryStatus::Failed | DeliveryStatus::Undelivered => 5,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        STATUSES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("queued", |(_, s)| s)
    }
}

impl FromStr for DeliveryStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        STATUSES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(k, _)| *k)
            .ok_or_else(|| {
                Error::InvalidEvent(format!(
                    "unknown status {s:?}: expected queued, sending, sent, delivered, read, failed or undelivered"
                ))
            })
    }
}

/// A provider status callback for a message that went out through the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCallback {
    /// The provider message id the transport returned.
    pub id: String,
    /// The new status.
    pub status: DeliveryStatus,
    /// The provider error code, if any (Twilio ErrorCode, Meta error code).
    pub error_code: Option<u32>,
    /// When the provider reported it.
    pub at: Timestamp,
    /// When we received it; `None` means the gate's clock now.
    pub received_at: Option<Timestamp>,
}

/// Anything the gate ingests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A user message.
    Inbound(InboundMessage),
    /// A consent event.
    Consent(ConsentEvent),
    /// A template registration or update.
    Template(TemplateRecord),
    /// A template status change.
    TemplateStatus(TemplateStatusUpdate),
    /// An outbound message status callback.
    Status(StatusCallback),
}

/// What ingesting one event did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// The event was seen before (same provider message id) and changed
    /// nothing.
    pub duplicate: bool,
    /// The inbound text was a keyword.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<Keyword>,
    /// The inbound opened or refreshed a window.
    pub opened_window: bool,
    /// A provider error code in a status callback took effect (R7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<u32>,
}

impl IngestOutcome {
    /// Whether the inbound was a help request (R4): answer it with your help
    /// text; consent is unchanged.
    pub fn is_help(&self) -> bool {
        self.keyword == Some(Keyword::Help)
    }
}
