//! Businesses, addresses and people (RULES R8).
//!
//! A user row is one address of one business. Linked addresses share a
//! `person_id`: the smallest user id among them. A link that joins two
//! persons moves every address of the larger id to the smaller, inside the
//! writer's transaction, so links from concurrent callers serialise.

use crate::time::Timestamp;

/// One address of a business, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressRow {
    /// The user row id.
    pub id: i64,
    /// The person it belongs to.
    pub person: i64,
    /// The address text (`whatsapp:+...` or `bsuid:...`).
    pub key: String,
    /// Whether it is linked to another address (its person has several).
    pub linked: bool,
}

/// A link between a phone and a business-scoped user id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LinkRow {
    /// The phone.
    pub phone: String,
    /// The business-scoped user id.
    pub bsuid: String,
    /// When it was learnt at its source.
    pub at: Timestamp,
    /// When it reached us.
    pub received_at: Timestamp,
    /// Where it came from (`inbound <id>`, ...).
    pub source: String,
}

/// A link to record between a phone and a business-scoped user id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewLink<'a> {
    /// The phone's row.
    pub phone: &'a AddressRow,
    /// The business-scoped id's row.
    pub bsuid: &'a AddressRow,
    /// When it was learnt at its source.
    pub at: Timestamp,
    /// When it reached us.
    pub received_at: Timestamp,
    /// Where it came from (`inbound <id>`, ...).
    pub source: &'a str,
}
