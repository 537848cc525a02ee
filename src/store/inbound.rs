//! Inbound messages and the windows they open (RULES R2, R7, R8).

use crate::chain::Hash;
use crate::event::{MessageKind, Referral};
use crate::policy::Keyword;
use crate::time::Timestamp;

/// An inbound message with a provider id, to record.
#[derive(Clone, Copy, Debug)]
pub struct NewInbound<'a> {
    /// The provider's message id.
    pub id: &'a str,
    /// The user row of `from`.
    pub user: i64,
    /// The user row of the business-scoped id that came beside a phone.
    pub also: Option<i64>,
    /// The sender.
    pub sender: &'a str,
    /// Kind.
    pub kind: MessageKind,
    /// Source time.
    pub at: Timestamp,
    /// Arrival time.
    pub received_at: Timestamp,
    /// The keyword the body was, if any.
    pub keyword: Option<Keyword>,
    /// Ad or page referral.
    pub referral: Option<Referral>,
    /// A digest of what the message says (addresses, sender, kind, body, referral).
    pub fingerprint: Hash,
}

/// What recording an inbound message found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundInsert {
    /// A new message: recorded.
    New,
    /// The same message again: nothing written.
    Duplicate,
    /// Another message under an id already used: nothing written.
    Conflict,
}

/// What raises one window (business, user address, sender): each column
/// only ever grows; `None` leaves it as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowRaise<'a> {
    /// The user address row.
    pub user: i64,
    /// The business sender.
    pub sender: &'a str,
    /// An inbound message's effective time.
    pub last_inbound: Option<Timestamp>,
    /// The provider saw the window closed through this time.
    pub closed_through: Option<Timestamp>,
    /// A referral's effective time (the free entry point).
    pub referral_at: Option<Timestamp>,
}

impl<'a> WindowRaise<'a> {
    /// An inbound message at `at` (with a referral when `referral`).
    pub fn inbound(user: i64, sender: &'a str, at: Timestamp, referral: bool) -> Self {
        WindowRaise {
            user,
            sender,
            last_inbound: Some(at),
            closed_through: None,
            referral_at: referral.then_some(at),
        }
    }

    /// A provider error that says the window was closed through `through`.
    pub fn closed(user: i64, sender: &'a str, through: Timestamp) -> Self {
        WindowRaise {
            user,
            sender,
            last_inbound: None,
            closed_through: Some(through),
            referral_at: None,
        }
    }
}

/// Provider feedback about a message the gate never sent (RULES R7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalFeedback<'a> {
    /// The provider's message id.
    pub provider_id: &'a str,
    /// The error code.
    pub code: u32,
    /// The business sender it names.
    pub sender: &'a str,
    /// The user address row it names.
    pub user: i64,
    /// The callback's own time.
    pub at: Timestamp,
    /// When it reached us.
    pub received_at: Timestamp,
}

pub(in crate::store) fn keyword_str(k: Keyword) -> &'static str {
    match k {
        Keyword::OptOut => "opt_out",
        Keyword::OptIn => "opt_in",
        Keyword::Help => "help",
    }
}
