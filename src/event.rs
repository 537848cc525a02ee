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
    /// An order from the catalogue.
    Order,
    /// A call.
    Call,
    /// A reaction: does not open a window.
    Reaction,
    /// A message type the provider does not support: does not open a window.
    Unsupported,
    /// A system message: does not open a window.
    System,
}

const KINDS: [(MessageKind, &str); 11] = [
    (MessageKind::Text, "text"),
    (MessageKind::Media, "media"),
    (MessageKind::Location, "location"),
    (MessageKind::Contacts, "contacts"),
    (MessageKind::Button, "button"),
    (MessageKind::Interactive, "interactive"),
    (MessageKind::Order, "order"),
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
                    "unknown message kind {s:?}: expected text, media, location, contacts, button, interactive, order, call, reaction, unsupported or system"
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
    /// The user: a phone, or a business-scoped user id (`bsuid:...`) when
    /// the user came without a phone number.
    pub from: Address,
    /// The user's business-scoped id when the message carries it beside a
    /// phone `from`: the two are linked as one person for good (RULES R8).
    pub user_id: Option<Address>,
    /// The business's sender number (a phone).
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
            user_id: None,
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

    /// Sets the business-scoped user id that came beside a phone `from`,
    /// linking the two (RULES R8).
    ///
    /// ```
    /// use wagate::{Address, InboundMessage, Timestamp};
    /// let phone = Address::parse("whatsapp:+447700900123")?;
    /// let bsuid = Address::from_bsuid("US.13491208655302741918")?;
    /// let shop = Address::parse("whatsapp:+14155238886")?;
    /// let m = InboundMessage::text(phone, shop, "hi", Timestamp::from_millis(0))
    ///     .with_user_id(bsuid);
    /// assert_eq!(m.addresses().count(), 2);
    /// # Ok::<(), wagate::AddressError>(())
    /// ```
    #[must_use]
    pub fn with_user_id(mut self, bsuid: Address) -> Self {
        self.user_id = Some(bsuid);
        self
    }

    /// The user's addresses the message carries: `from`, then `user_id`.
    pub fn addresses(&self) -> impl Iterator<Item = &Address> {
        std::iter::once(&self.from).chain(self.user_id.iter().filter(|u| **u != self.from))
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
    /// Twilio ContentSid, when the update names it.
    pub twilio_content_sid: Option<String>,
    /// Meta template id, when the update names it.
    pub meta_template_id: Option<String>,
}

/// The delivery status of an outbound message (RULES R7), as Twilio and
/// Meta report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Accepted by a Twilio Messaging Service, not queued yet.
    Accepted,
    /// Scheduled for later (Twilio).
    Scheduled,
    /// Accepted by the provider.
    Queued,
    /// Being sent.
    Sending,
    /// Sent to WhatsApp.
    Sent,
    /// Delivered to some recipients (Twilio).
    PartiallyDelivered,
    /// On the user's phone.
    Delivered,
    /// Read by the user.
    Read,
    /// A voice message was played (Meta).
    Played,
    /// Failed (final).
    Failed,
    /// Could not be delivered (final).
    Undelivered,
    /// Canceled before it was sent (final, Twilio).
    Canceled,
    /// An inbound message being received (Twilio).
    Receiving,
    /// An inbound message received (Twilio).
    Received,
}

const STATUSES: [(DeliveryStatus, &str); 14] = [
    (DeliveryStatus::Accepted, "accepted"),
    (DeliveryStatus::Scheduled, "scheduled"),
    (DeliveryStatus::Queued, "queued"),
    (DeliveryStatus::Sending, "sending"),
    (DeliveryStatus::Sent, "sent"),
    (DeliveryStatus::PartiallyDelivered, "partially_delivered"),
    (DeliveryStatus::Delivered, "delivered"),
    (DeliveryStatus::Read, "read"),
    (DeliveryStatus::Played, "played"),
    (DeliveryStatus::Failed, "failed"),
    (DeliveryStatus::Undelivered, "undelivered"),
    (DeliveryStatus::Canceled, "canceled"),
    (DeliveryStatus::Receiving, "receiving"),
    (DeliveryStatus::Received, "received"),
];

impl DeliveryStatus {
    /// Position in the forward-only order (queued < sending < sent <
    /// delivered < read): a callback may only raise it. The final
    /// statuses (failed, undelivered, canceled) share the top rank;
    /// accepted and scheduled come before sending, partially delivered
    /// beside delivered, played beside read. Receiving and received
    /// describe inbound messages and never move an outbound one.
    pub fn rank(self) -> i64 {
        use DeliveryStatus::*;
        match self {
            Accepted | Scheduled | Queued | Receiving | Received => 0,
            Sending => 1,
            Sent => 2,
            Delivered | PartiallyDelivered => 3,
            Read | Played => 4,
            Failed | Undelivered | Canceled => 5,
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
                let names: Vec<&str> = STATUSES.iter().map(|(_, n)| *n).collect();
                Error::InvalidEvent(format!(
                    "unknown status {s:?}: expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// A provider status callback.
///
/// For a message that went out through the gate, `id` is what the
/// transport returned and `from`/`to` are not needed. For a message sent
/// elsewhere (the provider's console, another system), its user-level
/// effects apply when it names both `from` (sender) and `to` (user)
/// (RULES R7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCallback {
    /// The provider message id.
    pub id: String,
    /// The new status.
    pub status: DeliveryStatus,
    /// The provider error code, if any (Twilio ErrorCode, Meta error code).
    pub error_code: Option<u32>,
    /// When the provider reported it.
    pub at: Timestamp,
    /// When we received it; `None` means the gate's clock now.
    pub received_at: Option<Timestamp>,
    /// The business's sender, as the callback names it.
    pub from: Option<Address>,
    /// The user, as the callback names it (a phone or a BSUID).
    pub to: Option<Address>,
    /// What the provider says the message costs (Meta's `pricing`), kept
    /// with the send.
    pub pricing: Option<Pricing>,
}

/// The pricing a provider reports with a status (Meta: `pricing.category`
/// such as `marketing` or `service`, `pricing.type` such as
/// `free_entry_point`, `free_customer_service` or `regular`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Pricing {
    /// The pricing category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The pricing type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether the message is billed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
}

impl StatusCallback {
    /// A callback with no error code and no addresses.
    pub fn new(id: impl Into<String>, status: DeliveryStatus, at: Timestamp) -> Self {
        StatusCallback {
            id: id.into(),
            status,
            error_code: None,
            at,
            received_at: None,
            from: None,
            to: None,
            pricing: None,
        }
    }

    /// Sets the provider error code.
    #[must_use]
    pub fn with_error(mut self, code: u32) -> Self {
        self.error_code = Some(code);
        self
    }

    /// Names the sender and the user (needed for messages sent elsewhere).
    #[must_use]
    pub fn between(mut self, from: Address, to: Address) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }
}

/// A link between a phone and a business-scoped user id, known from
/// elsewhere (an export of another database, a CRM): the two are one
/// person for good (RULES R8). Inbound messages that carry both link them
/// by themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    /// The phone address.
    pub phone: Address,
    /// The business-scoped user id.
    pub bsuid: Address,
    /// When the link was learnt at its source.
    pub at: Timestamp,
    /// When we received it; `None` means the gate's clock now.
    pub received_at: Option<Timestamp>,
    /// Where it came from (`inbound SM123`, `import`, ...).
    pub source: String,
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
    /// A phone and a business-scoped user id known to be one person.
    Link(LinkEvent),
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
    /// The event linked two addresses that were not one person before (R8).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub linked: bool,
}

impl IngestOutcome {
    /// Whether the inbound was a help request (R4): answer it with your help
    /// text; consent is unchanged.
    pub fn is_help(&self) -> bool {
        self.keyword == Some(Keyword::Help)
    }
}
