//! Handing allowed messages to a provider.
//!
//! [`Transport`] follows lettre's shape: an associated `Ok` and `Error`,
//! `&self`, one required method, usable as `dyn Transport<Ok = Receipt,
//! Error = TransportError>`. Only an `allow` ever reaches a transport.

use std::sync::Mutex;

use crate::address::Address;
use crate::policy::{Content, Purpose};

/// A message the gate allowed, as the transport receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The caller's idempotency key.
    pub key: String,
    /// The business's sender.
    pub from: Address,
    /// The user, as the request named them.
    pub to: Address,
    /// The person's phone when `to` is a business-scoped id linked to one
    /// (RULES R8): providers send to the phone when they know it (Meta
    /// recommends it; phone fields then keep coming in webhooks). `None`
    /// when `to` is a phone or an unlinked business-scoped id.
    pub phone: Option<Address>,
    /// Freeform text or a template with its variables.
    pub content: Content,
    /// The rendered template body, for templates.
    pub rendered: Option<String>,
    /// The template's Twilio ContentSid, if registered.
    pub twilio_content_sid: Option<String>,
    /// The template's Meta id, if registered.
    pub meta_template_id: Option<String>,
    /// Why it is sent.
    pub purpose: Option<Purpose>,
}

/// What a provider returns for an accepted message.
pub trait Accepted {
    /// The provider's message id (Twilio MessageSid, Meta wamid): status
    /// callbacks name the message by it.
    fn provider_id(&self) -> &str;
}

/// A transport failure that tells whether trying again can help.
pub trait Failure: std::error::Error {
    /// A retry may succeed (timeouts, 5xx, rate limits).
    fn is_transient(&self) -> bool;
    /// A retry will fail the same way.
    fn is_permanent(&self) -> bool {
        !self.is_transient()
    }
    /// The provider's error code (Twilio `code`, Meta `error.code`), fed
    /// back into state as RULES R7 says.
    fn provider_code(&self) -> Option<u32> {
        None
    }
    /// How long the provider asked us to wait before trying again
    /// (`Retry-After` on a 429 or 503).
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Sends one message to a provider.
pub trait Transport {
    /// The provider's answer for an accepted message.
    type Ok: Accepted;
    /// The provider's refusal.
    type Error: Failure;
    /// Sends `message`. Called only for allowed messages, never inside a
    /// database transaction.
    ///
    /// # Errors
    /// The provider's refusal or a network failure.
    fn send(&self, message: &OutboundMessage) -> Result<Self::Ok, Self::Error>;
}

impl<T: Transport + ?Sized> Transport for &T {
    type Ok = T::Ok;
    type Error = T::Error;
    fn send(&self, message: &OutboundMessage) -> Result<Self::Ok, Self::Error> {
        (**self).send(message)
    }
}

/// Sends one message to a provider, asynchronously (feature `tokio`): the
/// same shape as [`Transport`], as lettre pairs its transports.
#[cfg(feature = "tokio")]
pub trait AsyncTransport: Sync {
    /// The provider's answer for an accepted message.
    type Ok: Accepted + Send + 'static;
    /// The provider's refusal.
    type Error: Failure + Send + 'static;
    /// Sends `message`. Called only for allowed messages, with no database
    /// transaction or lock held.
    fn send(
        &self,
        message: &OutboundMessage,
    ) -> impl std::future::Future<Output = Result<Self::Ok, Self::Error>> + Send;
}

/// A plain receipt: the provider's message id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The provider message id.
    pub provider_id: String,
}

impl Accepted for Receipt {
    fn provider_id(&self) -> &str {
        &self.provider_id
    }
}

/// A plain transport error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transport error{}: {message}", code.map(|c| format!(" {c}")).unwrap_or_default())]
pub struct TransportError {
    /// Whether a retry can help.
    pub transient: bool,
    /// The provider's error code.
    pub code: Option<u32>,
    /// What happened.
    pub message: String,
}

impl Failure for TransportError {
    fn is_transient(&self) -> bool {
        self.transient
    }
    fn provider_code(&self) -> Option<u32> {
        self.code
    }
}

/// A transport that records what it is given and sends nothing: for tests,
/// the demo and `wagate replay`. The provider id it returns is the
/// message's idempotency key.
///
/// ```
/// use wagate::transport::{RecordingTransport, Transport};
/// let t = RecordingTransport::new();
/// assert!(t.sent().is_empty());
/// let dynamic: &dyn Transport<Ok = _, Error = _> = &t;
/// # let _ = dynamic;
/// ```
#[derive(Debug, Default)]
pub struct RecordingTransport {
    sent: Mutex<Vec<OutboundMessage>>,
    fail_next: Mutex<Vec<TransportError>>,
}

impl RecordingTransport {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<OutboundMessage> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Makes the next send fail with `error` (queued: several calls fail
    /// the next several sends, in order).
    pub fn fail_next(&self, error: TransportError) {
        if let Ok(mut q) = self.fail_next.lock() {
            q.insert(0, error);
        }
    }
}

#[cfg(feature = "tokio")]
impl AsyncTransport for RecordingTransport {
    type Ok = Receipt;
    type Error = TransportError;
    fn send(
        &self,
        message: &OutboundMessage,
    ) -> impl std::future::Future<Output = Result<Receipt, TransportError>> + Send {
        std::future::ready(Transport::send(self, message))
    }
}

impl Transport for RecordingTransport {
    type Ok = Receipt;
    type Error = TransportError;
    fn send(&self, message: &OutboundMessage) -> Result<Receipt, TransportError> {
        if let Some(e) = self.fail_next.lock().ok().and_then(|mut q| q.pop()) {
            return Err(e);
        }
        let mut sent = self.sent.lock().map_err(|_| TransportError {
            transient: true,
            code: None,
            message: "recording transport lock poisoned".into(),
        })?;
        sent.push(message.clone());
        Ok(Receipt {
            provider_id: message.key.clone(),
        })
    }
}
