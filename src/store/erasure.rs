//! Erasure that keeps suppression ([`crate::Business::forget`]).
//!
//! Forgetting a person turns each of their address rows into a tombstone:
//! the key becomes `erased:` and the hex of the address's subject, the
//! HMAC-SHA256 under a secret of the database of (business, address)
//! ([`crate::chain::subject`]), which the consent chain already covers.
//! The row keeps its id, its person and its consent chain, so a number or
//! id that comes back (an inbound, a re-import, a send) finds the same row
//! through the tombstone, and an opt-out recorded before the erasure still
//! stops it. What identifies the person goes: the address text, each
//! consent event's evidence and salt (its evidence digest is kept: the
//! chain still verifies), the ids of their messages, their windows, the
//! message ids of links and of feedback about messages sent elsewhere, and
//! the recipient, provider id, error text and worded facts of their sends.

use super::Db;

use super::corrupt;
use crate::chain::{subject_of_key, tombstone};
use crate::error::{Error, Result};

/// The prefix of a tombstone key.
pub use crate::chain::TOMBSTONE;

/// What [`Db::forget`] erased.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Forgotten {
    /// Address rows turned into tombstones (every address of the person).
    pub addresses: usize,
    /// Consent events sealed: evidence and salt gone, digest kept.
    pub consent_events: usize,
    /// Inbound-message rows deleted (message ids).
    pub inbound_messages: usize,
    /// Windows deleted.
    pub windows: usize,
    /// Send attempts whose recipient, provider id and error text were
    /// replaced (the attempt, its decision and its key stay).
    pub send_attempts: usize,
    /// Links whose source (a message id) was blanked.
    pub links: usize,
    /// Rows of feedback about messages sent elsewhere deleted.
    pub external_feedback: usize,
    /// Whether the freed space is zeroed in the file itself: the
    /// write-ahead log was checkpointed completely (a reader holding an
    /// older snapshot can keep old pages in the log until it ends; run
    /// `forget` again, or `PRAGMA wal_checkpoint(TRUNCATE)`, later).
    pub file_scrubbed: bool,
}

impl Forgotten {
    /// Whether anything was recorded about the address.
    pub fn found(&self) -> bool {
        Forgotten {
            file_scrubbed: false,
            ..*self
        } != Forgotten::default()
    }
}

/// Writes the database's secret (migration 4), then re-hashes the chains.
pub(in crate::store) fn init_secret(db: Db<'_>) -> Result<()> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| Error::Random(e.to_string()))?;
    db.0.execute(
        "INSERT INTO secrets (name, value) VALUES ('tombstone', ?1)",
        [&secret[..]],
    )?;
    super::consent::rechain_v2(db)
}

/// The tombstone key of `address` (or the tombstone itself) in `business`
/// under `secret`: `erased:` and the hex of its subject.
pub(in crate::store) fn tombstone_key(
    secret: &[u8],
    business: i64,
    address: &str,
) -> Result<String> {
    subject_of_key(secret, business, address)
        .map(|s| tombstone(&s))
        .ok_or_else(|| {
            corrupt(
                "users",
                format!("{address} is a tombstone that is not 64 hex digits"),
            )
        })
}
