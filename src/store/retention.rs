//! Retention: dropping old inbound-message rows and send attempts without
//! changing a decision, now or as of any time after the horizon.

use rusqlite::params;

use super::Db;
use crate::error::Result;

/// What a purge removed (or would remove).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// Inbound-message rows.
    pub inbound_messages: usize,
    /// Send attempts (with their feedback rows).
    pub send_attempts: usize,
}

/// Sends older than the horizon by this much no longer matter to any
/// decision after it: an opt-out confirmation counts for 5 minutes, a
/// first reply starts a 72-hour free entry point and must fall within 24
/// hours of its referral, a provider's closing of a window matters only
/// while a window opened before it would still be open (24 hours).
const SEND_MARGIN_MS: i64 = 4 * 24 * 3_600_000;

/// The inbound rows a purge deletes: received and sent before the horizon
/// (`?2`), except, per (address, sender), the newest one that opened a
/// window and the newest one with a referral: as-of answers after the
/// horizon read the newest of each, so the kept two answer as all did.
const INBOUND_PURGEABLE: &str = "
    FROM inbound_messages AS m
    WHERE m.business_id = ?1 AND m.received_at < ?2 AND m.at < ?2
      AND NOT (m.kind NOT IN ('reaction', 'unsupported', 'system')
               AND min(m.at, m.received_at) = (
                   SELECT max(min(o.at, o.received_at)) FROM inbound_messages AS o
                   WHERE o.business_id = m.business_id AND o.user_id = m.user_id
                     AND o.sender = m.sender AND o.received_at < ?2 AND o.at < ?2
                     AND o.kind NOT IN ('reaction', 'unsupported', 'system')))
      AND NOT (m.referral IS NOT NULL
               AND m.kind NOT IN ('reaction', 'unsupported', 'system')
               AND min(m.at, m.received_at) = (
                   SELECT max(min(o.at, o.received_at)) FROM inbound_messages AS o
                   WHERE o.business_id = m.business_id AND o.user_id = m.user_id
                     AND o.sender = m.sender AND o.received_at < ?2 AND o.at < ?2
                     AND o.referral IS NOT NULL
                     AND o.kind NOT IN ('reaction', 'unsupported', 'system')))";

impl Db<'_> {
    /// Deletes the business's inbound messages received and sent before
    /// `cutoff_ms` (keeping the newest window-opening and the newest
    /// referral row of each address and sender), and its send attempts
    /// decided more than four days before it (with the feedback rows that
    /// name them). Windows, consent, links, templates and feedback about
    /// messages sent elsewhere are kept.
    ///
    /// # Errors
    /// A store error.
    pub fn purge(self, business: i64, cutoff_ms: i64) -> Result<Purged> {
        let sends_before = cutoff_ms.saturating_sub(SEND_MARGIN_MS);
        let inbound_messages = self
            .0
            .prepare_cached(&format!(
                "DELETE FROM inbound_messages WHERE (business_id, provider_id) IN
                   (SELECT m.business_id, m.provider_id {INBOUND_PURGEABLE})"
            ))?
            .execute(params![business, cutoff_ms])?;
        self.0
            .prepare_cached(
                "DELETE FROM feedback WHERE send_id IN
                   (SELECT id FROM sends WHERE business_id = ?1 AND at < ?2)",
            )?
            .execute(params![business, sends_before])?;
        let send_attempts = self
            .0
            .prepare_cached("DELETE FROM sends WHERE business_id = ?1 AND at < ?2")?
            .execute(params![business, sends_before])?;
        Ok(Purged {
            inbound_messages,
            send_attempts,
        })
    }

    /// What [`Db::purge`] would delete, deleting nothing.
    ///
    /// # Errors
    /// A store error.
    pub fn purgeable(self, business: i64, cutoff_ms: i64) -> Result<Purged> {
        let count = |sql: &str, before: i64| -> Result<usize> {
            let n: i64 = self
                .0
                .prepare_cached(sql)?
                .query_row(params![business, before], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        };
        Ok(Purged {
            inbound_messages: count(&format!("SELECT count(*) {INBOUND_PURGEABLE}"), cutoff_ms)?,
            send_attempts: count(
                "SELECT count(*) FROM sends WHERE business_id = ?1 AND at < ?2",
                cutoff_ms.saturating_sub(SEND_MARGIN_MS),
            )?,
        })
    }
}
