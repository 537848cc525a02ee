//! Send attempts, their delivery status and provider feedback (RULES R7).

use serde::Serialize;

use super::corrupt;
use crate::chain::Hash;
use crate::error::Result;
use crate::policy::Reason;
use crate::time::Timestamp;

/// The state of a send in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendState {
    /// Decided against; never reached the transport.
    Denied,
    /// Handed to the transport; its answer is not recorded yet.
    Reserved,
    /// Accepted by the provider.
    Sent,
    /// Refused for good.
    Failed,
    /// Refused; a retry with the same key may try again.
    Retryable,
    /// A retry of a key that had reached the transport: nothing sent.
    Duplicate,
}

impl SendState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Denied => "denied",
            SendState::Reserved => "reserved",
            SendState::Sent => "sent",
            SendState::Failed => "failed",
            SendState::Retryable => "retryable",
            SendState::Duplicate => "duplicate",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "denied" => SendState::Denied,
            "reserved" => SendState::Reserved,
            "sent" => SendState::Sent,
            "failed" => SendState::Failed,
            "retryable" => SendState::Retryable,
            "duplicate" => SendState::Duplicate,
            _ => return Err(corrupt("sends", format!("unknown state {s:?}"))),
        })
    }
}

/// The transport's answer for a reserved send, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendAnswer<'a> {
    /// Sent, failed or retryable.
    pub state: SendState,
    /// The provider's message id, when it took the message.
    pub provider_id: Option<&'a str>,
    /// The provider's error code, when it refused.
    pub error_code: Option<u32>,
    /// The provider's words, when it refused.
    pub error: Option<&'a str>,
}

/// A send attempt to record.
#[derive(Clone, Debug)]
pub struct NewSend<'a> {
    /// Idempotency key.
    pub key: &'a str,
    /// Sender as given (may be invalid).
    pub sender: &'a str,
    /// Recipient as given (may be invalid).
    pub recipient: &'a str,
    /// The user row, when the recipient is a known address.
    pub user_id: Option<i64>,
    /// Send time.
    pub at: Timestamp,
    /// Template name and language, for templates.
    pub template: Option<(&'a str, &'a str)>,
    /// Purpose.
    pub purpose: Option<&'a str>,
    /// The decision (for a duplicate: the first send's).
    pub reason: Reason,
    /// A retry of a key that already reached the transport: recorded for
    /// the audit, sends nothing.
    pub duplicate: bool,
    /// A digest of the request as given (sender, recipient, content, purpose).
    pub request: Hash,
    /// The decision's facts, as JSON.
    pub facts: &'a str,
}

/// A send as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRow {
    /// Row id.
    pub id: i64,
    /// The idempotency key.
    pub key: String,
    /// Sender.
    pub sender: String,
    /// The user row.
    pub user_id: Option<i64>,
    /// Send time.
    pub at: Timestamp,
    /// Template name and language.
    pub template: Option<(String, String)>,
    /// The decision's reason.
    pub reason: Reason,
    /// State.
    pub state: SendState,
    /// Provider message id.
    pub provider_id: Option<String>,
    /// Delivery status.
    pub status: Option<String>,
}

/// Which send attempts to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendFilter {
    /// Attempts to any of these addresses (as sent to: an address never
    /// seen before included).
    pub recipients: Option<Vec<String>>,
    /// Attempts under this idempotency key.
    pub key: Option<String>,
    /// The attempt the provider knows by this id.
    pub provider_id: Option<String>,
    /// Attempts at or after this time.
    pub since: Option<Timestamp>,
    /// Attempts before this time.
    pub until: Option<Timestamp>,
}

/// One recorded attempt, for "why was this sent?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SendRecord {
    /// The idempotency key.
    pub key: String,
    /// When it was decided.
    pub at: Timestamp,
    /// The sender, as given.
    pub from: String,
    /// The recipient, as given.
    pub to: String,
    /// `freeform` or `template`.
    pub content: String,
    /// Template name, for templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Template language, for templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The purpose given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The verdict.
    pub decision: String,
    /// The reason code.
    pub reason: String,
    /// The facts behind the decision (JSON), when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<serde_json::Value>,
    /// What happened at the transport.
    pub state: SendState,
    /// The provider's message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The latest delivery status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The provider's refusal code, when the transport refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// The provider's refusal, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Error codes from status callbacks that took effect.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feedback: Vec<i64>,
    /// What the provider said it costs (Meta's status `pricing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing: Option<crate::event::Pricing>,
}
