//! Twilio's webhooks: an incoming message or a status callback, posted as
//! `application/x-www-form-urlencoded`, to the events RULES R9 names.
//!
//! Parsing is lenient about parameters it does not use (Twilio adds some
//! without notice: `ChannelMetadata`, `ExternalUserId` and `MessageType`
//! reach real endpoints before its docs list them) and strict about the
//! ones it does: a missing or malformed one is a [`WebhookError`] naming
//! it, and nothing of that request should be applied. Twilio sends no
//! timestamp with an incoming message: it is dated when you received it.
//!
//! ```
//! use wagate::providers::twilio::TwilioWebhook;
//! use wagate::{Event, MessageKind, Timestamp};
//! let body = b"MessageSid=SM1&AccountSid=AC1&From=whatsapp%3A%2B15550001111\
//!     &To=whatsapp%3A%2B14155238886&Body=STOP&NumMedia=0&ProfileName=Ana";
//! let hook = TwilioWebhook::parse(body)?;
//! let Event::Inbound(m) = hook.event(Timestamp::parse("2026-03-01T10:00:00Z")?) else { unreachable!() };
//! assert_eq!(m.from.as_str(), "whatsapp:+15550001111");
//! assert_eq!((m.kind, m.body.as_deref()), (MessageKind::Text, Some("STOP")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::str::FromStr;

use super::signature::{self, SignatureError};
use crate::address::Address;
use crate::event::{DeliveryStatus, Event, InboundMessage, MessageKind, Referral, StatusCallback};
use crate::time::Timestamp;

/// Why a Twilio webhook cannot be turned into an event. Nothing of the
/// request should be applied; answer Twilio with a 4xx (a signature
/// failure) or log it and answer 200 (a malformed request Twilio would
/// only send again).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The signature check failed: the request is not from Twilio, or
    /// was changed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A parameter the event needs is absent or empty.
    #[error("Twilio webhook without {0}")]
    Missing(&'static str),
    /// A parameter is present but cannot be read.
    #[error("Twilio webhook parameter {name}={value:?}: {why}")]
    Malformed {
        /// The parameter.
        name: &'static str,
        /// Its value (at most 64 characters of it).
        value: String,
        /// What is wrong with it.
        why: String,
    },
}

fn malformed(name: &'static str, value: &str, why: impl Into<String>) -> WebhookError {
    WebhookError::Malformed {
        name,
        value: value.chars().take(64).collect(),
        why: why.into(),
    }
}

/// A decoded form body: every (name, value) pair in order, repeats kept.
/// `+` is a space and `%XX` sequences are decoded; bytes that are not
/// UTF-8 become U+FFFD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Decodes `application/x-www-form-urlencoded` bytes. Never fails: a
    /// body that is not a form gives pairs the parsers then refuse.
    pub fn parse(body: &[u8]) -> Self {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, if present and not empty (an empty
    /// parameter is an absent one).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every pair, as the signature covers them.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    fn required(&self, name: &'static str) -> Result<&str, WebhookError> {
        self.get(name).ok_or(WebhookError::Missing(name))
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }
}

/// A media attachment of an incoming message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// Where Twilio keeps it (`MediaUrlN`; fetching it needs your
    /// credentials).
    pub url: String,
    /// Its MIME type (`MediaContentTypeN`).
    pub content_type: Option<String>,
}

/// A shared location.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// `Address`, if the user shared a place.
    pub address: Option<String>,
    /// `Label`, the place's name.
    pub label: Option<String>,
}

/// Where a conversation that started from an ad or a post came from (the
/// `Referral*` parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TwilioReferral {
    /// `ReferralSourceType`: `ad` or `post`.
    pub source_type: Option<String>,
    /// `ReferralSourceId`.
    pub source_id: Option<String>,
    /// `ReferralSourceUrl`.
    pub source_url: Option<String>,
    /// `ReferralHeadline`.
    pub headline: Option<String>,
    /// `ReferralBody`.
    pub body: Option<String>,
    /// `ReferralMediaId`.
    pub media_id: Option<String>,
    /// `ReferralMediaContentType`.
    pub media_content_type: Option<String>,
    /// `ReferralMediaUrl`.
    pub media_url: Option<String>,
    /// `ReferralNumMedia`.
    pub num_media: Option<String>,
    /// `ReferralCtwaClid`: the Click-to-WhatsApp click id.
    pub ctwa_clid: Option<String>,
}

impl TwilioReferral {
    /// The referral RULES R9 reads: a click id or source type `ad` is a
    /// Click-to-WhatsApp ad, source type `post` a page call-to-action.
    pub fn kind(&self) -> Option<Referral> {
        let source = self.source_type.as_deref().map(str::to_ascii_lowercase);
        if self.ctwa_clid.is_some() || source.as_deref() == Some("ad") {
            Some(Referral::CtwaAd)
        } else if source.as_deref() == Some("post") {
            Some(Referral::PageCta)
        } else {
            None
        }
    }
}

/// An incoming WhatsApp message, every parameter Twilio documents (and
/// the ones it sends without documenting).
#[derive(Clone, Debug, PartialEq)]
pub struct TwilioInbound {
    /// `MessageSid`.
    pub message_sid: String,
    /// `AccountSid`.
    pub account_sid: Option<String>,
    /// `MessagingServiceSid`.
    pub messaging_service_sid: Option<String>,
    /// The user (`From`): a phone, or a business-scoped id when the user
    /// came without one.
    pub from: Address,
    /// The user's business-scoped id (`ExternalUserId`), when it came
    /// beside a phone: the two are linked (RULES R8).
    pub external_user_id: Option<Address>,
    /// Your sender (`To`).
    pub to: Address,
    /// `Body`.
    pub body: Option<String>,
    /// `WaId`: the user's WhatsApp id (digits).
    pub wa_id: Option<String>,
    /// `ProfileName`.
    pub profile_name: Option<String>,
    /// `MessageType`, as sent.
    pub message_type: Option<String>,
    /// The kind RULES R9 derives.
    pub kind: MessageKind,
    /// `MediaUrlN` / `MediaContentTypeN`, for N below `NumMedia`.
    pub media: Vec<Media>,
    /// `Latitude`, `Longitude`, `Address`, `Label`.
    pub location: Option<Location>,
    /// `ButtonText`.
    pub button_text: Option<String>,
    /// `ButtonPayload`.
    pub button_payload: Option<String>,
    /// The `Referral*` parameters, if any.
    pub referral: Option<TwilioReferral>,
    /// `OriginalRepliedMessageSid`: the message this one replies to.
    pub original_replied_message_sid: Option<String>,
    /// `OriginalRepliedMessageSender`.
    pub original_replied_message_sender: Option<String>,
    /// `Forwarded`.
    pub forwarded: bool,
    /// Optional parameters that could not be read and were left out (the
    /// message still counts: a STOP must not be lost to a bad `Latitude`).
    pub warnings: Vec<String>,
}

/// A status callback for an outbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioStatus {
    /// `MessageSid`.
    pub message_sid: String,
    /// `AccountSid`.
    pub account_sid: Option<String>,
    /// `MessageStatus`.
    pub status: DeliveryStatus,
    /// `ErrorCode`, if any.
    pub error_code: Option<u32>,
    /// Your sender (`From`).
    pub from: Option<Address>,
    /// The user (`To`).
    pub to: Option<Address>,
}

/// A Twilio messaging webhook: an incoming message, or a status callback
/// (it carries `MessageStatus`).
#[derive(Clone, Debug, PartialEq)]
pub enum TwilioWebhook {
    /// A user's message.
    Inbound(Box<TwilioInbound>),
    /// A status callback.
    Status(TwilioStatus),
}

impl TwilioWebhook {
    /// Parses a form body (after its signature was checked: see
    /// [`TwilioWebhook::verified`]).
    ///
    /// # Errors
    /// [`WebhookError::Missing`] or [`WebhookError::Malformed`] naming the
    /// parameter.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        Self::from_form(&Form::parse(body))
    }

    /// Checks `X-Twilio-Signature` (`None` when the header is absent) over
    /// `url`, the URL Twilio requested (see
    /// [`public_url`](signature::public_url) behind a proxy), then parses.
    ///
    /// # Errors
    /// [`WebhookError::Signature`] before anything is parsed, or a parse
    /// error.
    pub fn verified(
        auth_token: &str,
        url: &str,
        body: &[u8],
        signature_header: Option<&str>,
    ) -> Result<Self, WebhookError> {
        let form = Form::parse(body);
        signature::validate(auth_token, url, form.pairs(), signature_header)?;
        Self::from_form(&form)
    }

    /// Parses decoded parameters.
    ///
    /// # Errors
    /// As [`TwilioWebhook::parse`].
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        if form.get("MessageStatus").is_some() {
            TwilioStatus::from_form(form).map(TwilioWebhook::Status)
        } else {
            TwilioInbound::from_form(form).map(|m| TwilioWebhook::Inbound(Box::new(m)))
        }
    }

    /// The event to ingest, dated `received_at` (when your server got the
    /// request: Twilio sends no time).
    pub fn event(&self, received_at: Timestamp) -> Event {
        match self {
            TwilioWebhook::Inbound(m) => Event::Inbound(m.message(received_at)),
            TwilioWebhook::Status(s) => Event::Status(s.callback(received_at)),
        }
    }
}

/// The part after `whatsapp:`: a webhook for another channel (an SMS on a
/// shared Messaging Service) is not about WhatsApp consent or windows.
fn whatsapp<'a>(name: &'static str, value: &'a str) -> Result<&'a str, WebhookError> {
    value.strip_prefix("whatsapp:").ok_or_else(|| {
        malformed(
            name,
            value,
            "not a WhatsApp address (whatsapp:...): another channel's message is not for the gate",
        )
    })
}

/// A user address as Twilio writes it: `whatsapp:+E164`, or
/// `whatsapp:<business-scoped id>` for a user without a phone.
fn user_address(name: &'static str, value: &str) -> Result<Address, WebhookError> {
    let bare = whatsapp(name, value)?;
    let parsed = if bare.starts_with('+') || bare.starts_with(|c: char| c.is_ascii_digit()) {
        Address::parse_phone(&format!("+{}", bare.trim_start_matches('+')))
    } else if let Some(id) = bare.strip_prefix("bsuid:") {
        Address::from_bsuid(id)
    } else {
        Address::from_bsuid(bare)
    };
    parsed.map_err(|e| malformed(name, value, e.to_string()))
}

fn sender_address(name: &'static str, value: &str) -> Result<Address, WebhookError> {
    let bare = whatsapp(name, value)?;
    Address::parse_phone(bare).map_err(|e| malformed(name, value, e.to_string()))
}

fn number<T: FromStr>(
    form: &Form,
    name: &'static str,
    what: &str,
) -> Result<Option<T>, WebhookError> {
    form.get(name)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| malformed(name, v, format!("expected {what}")))
        })
        .transpose()
}

/// The kind RULES R9 derives: `MessageType` when present, else from the
/// parameters present.
fn kind_of(form: &Form, media: usize, location: bool) -> MessageKind {
    match form
        .get("MessageType")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("text") => MessageKind::Text,
        Some("image" | "video" | "audio" | "document" | "sticker") => MessageKind::Media,
        Some("location") => MessageKind::Location,
        Some("contacts") => MessageKind::Contacts,
        Some("button") => MessageKind::Button,
        Some("interactive") => MessageKind::Interactive,
        Some("order") => MessageKind::Order,
        Some("reaction") => MessageKind::Reaction,
        Some(_) => MessageKind::Unsupported,
        None if media > 0 => MessageKind::Media,
        None if location => MessageKind::Location,
        None if form.get("ButtonPayload").is_some() || form.get("ButtonText").is_some() => {
            MessageKind::Button
        }
        None => MessageKind::Text,
    }
}

/// An optional parameter: its value, or `None` and a warning.
fn lenient<T>(warnings: &mut Vec<String>, r: Result<Option<T>, WebhookError>) -> Option<T> {
    r.unwrap_or_else(|e| {
        warnings.push(e.to_string());
        None
    })
}

/// At most this many attachments are read (Twilio allows 10 per message).
const MAX_MEDIA: u32 = 100;

impl TwilioInbound {
    /// Reads an incoming message's parameters.
    ///
    /// # Errors
    /// [`WebhookError`] naming the parameter: `From`, `To` (WhatsApp
    /// addresses) and `MessageSid` are required. Other parameters that
    /// cannot be read are left out and listed in
    /// [`warnings`](TwilioInbound::warnings).
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let message_sid = form.required("MessageSid")?.to_owned();
        let from = user_address("From", form.required("From")?)?;
        let to = sender_address("To", form.required("To")?)?;
        let mut warnings = Vec::new();
        let external_user_id = lenient(
            &mut warnings,
            form.get("ExternalUserId")
                .map(|v| {
                    let id = v.strip_prefix("whatsapp:").unwrap_or(v);
                    let id = id.strip_prefix("bsuid:").unwrap_or(id);
                    Address::from_bsuid(id)
                        .map_err(|e| malformed("ExternalUserId", v, e.to_string()))
                })
                .transpose(),
        );
        let num_media = lenient(
            &mut warnings,
            number::<u32>(form, "NumMedia", "a count of attachments"),
        )
        .unwrap_or(0);
        let num_media = if num_media > MAX_MEDIA {
            warnings.push(
                malformed(
                    "NumMedia",
                    &num_media.to_string(),
                    format!("more than {MAX_MEDIA} attachments; the first {MAX_MEDIA} are read"),
                )
                .to_string(),
            );
            MAX_MEDIA
        } else {
            num_media
        };
        let media = (0..num_media)
            .filter_map(|i| {
                form.string(&format!("MediaUrl{i}")).map(|url| Media {
                    url,
                    content_type: form.string(&format!("MediaContentType{i}")),
                })
            })
            .collect::<Vec<_>>();
        let latitude = lenient(&mut warnings, number::<f64>(form, "Latitude", "degrees"));
        let longitude = lenient(&mut warnings, number::<f64>(form, "Longitude", "degrees"));
        let location = match (latitude, longitude) {
            (Some(lat), Some(lon))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                Some(Location {
                    latitude: lat,
                    longitude: lon,
                    address: form.string("Address"),
                    label: form.string("Label"),
                })
            }
            (None, None) => None,
            (lat, lon) => lenient(
                &mut warnings,
                Err(malformed(
                    "Latitude",
                    &format!("{lat:?}/{lon:?}"),
                    "a location needs Latitude -90 to 90 and Longitude -180 to 180",
                )),
            ),
        };
        let referral = TwilioReferral {
            source_type: form.string("ReferralSourceType"),
            source_id: form.string("ReferralSourceId"),
            source_url: form.string("ReferralSourceUrl"),
            headline: form.string("ReferralHeadline"),
            body: form.string("ReferralBody"),
            media_id: form.string("ReferralMediaId"),
            media_content_type: form.string("ReferralMediaContentType"),
            media_url: form.string("ReferralMediaUrl"),
            // Twilio posts ReferralNumMedia=0 with every message.
            num_media: form.string("ReferralNumMedia").filter(|n| n != "0"),
            ctwa_clid: form.string("ReferralCtwaClid"),
        };
        let kind = kind_of(
            form,
            media.len().max(num_media as usize),
            location.is_some(),
        );
        // Twilio always posts Body (empty for media): a text's body is
        // what came, another kind's only when it says something.
        let body = match kind {
            MessageKind::Text => form
                .0
                .iter()
                .find(|(k, _)| k == "Body")
                .map(|(_, v)| v.clone()),
            _ => form.string("Body"),
        };
        Ok(TwilioInbound {
            message_sid,
            account_sid: form.string("AccountSid"),
            messaging_service_sid: form.string("MessagingServiceSid"),
            from,
            external_user_id,
            to,
            body,
            wa_id: form.string("WaId"),
            profile_name: form.string("ProfileName"),
            message_type: form.string("MessageType"),
            kind,
            media,
            location,
            button_text: form.string("ButtonText"),
            button_payload: form.string("ButtonPayload"),
            referral: (referral != TwilioReferral::default()).then_some(referral),
            original_replied_message_sid: form.string("OriginalRepliedMessageSid"),
            original_replied_message_sender: form.string("OriginalRepliedMessageSender"),
            forwarded: form
                .get("Forwarded")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            warnings,
        })
    }

    /// The inbound message RULES R9 says, dated `received_at`.
    pub fn message(&self, received_at: Timestamp) -> InboundMessage {
        InboundMessage {
            id: Some(self.message_sid.clone()),
            from: self.from.clone(),
            user_id: self.external_user_id.clone(),
            to: self.to.clone(),
            kind: self.kind,
            body: self.body.clone(),
            at: received_at,
            received_at: Some(received_at),
            referral: self.referral.as_ref().and_then(TwilioReferral::kind),
        }
    }
}

impl TwilioStatus {
    /// Reads a status callback's parameters.
    ///
    /// # Errors
    /// [`WebhookError`] naming the parameter: `MessageSid` and a known
    /// `MessageStatus` are required; `ErrorCode`, `From` and `To` must be
    /// readable when present.
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        let message_sid = form.required("MessageSid")?.to_owned();
        let raw = form.required("MessageStatus")?;
        let status = DeliveryStatus::from_str(&raw.to_ascii_lowercase())
            .map_err(|e| malformed("MessageStatus", raw, e.to_string()))?;
        Ok(TwilioStatus {
            message_sid,
            account_sid: form.string("AccountSid"),
            status,
            error_code: number::<u32>(form, "ErrorCode", "a numeric Twilio error code")?,
            from: form
                .get("From")
                .map(|v| sender_address("From", v))
                .transpose()?,
            to: form.get("To").map(|v| user_address("To", v)).transpose()?,
        })
    }

    /// The status callback RULES R9 says, dated `received_at`.
    pub fn callback(&self, received_at: Timestamp) -> StatusCallback {
        StatusCallback {
            id: self.message_sid.clone(),
            status: self.status,
            error_code: self.error_code,
            at: received_at,
            received_at: Some(received_at),
            from: self.from.clone(),
            to: self.to.clone(),
            pricing: None,
        }
    }
}
