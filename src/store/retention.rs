//! Retention: dropping old inbound-message rows and send attempts without
//! changing a decision, now or as of any time after the horizon.

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
pub(in crate::store) const SEND_MARGIN_MS: i64 = 4 * 24 * 3_600_000;

/// Kinds that do not open a window (as-of windows skip them too).
pub(in crate::store) const NOT_OPENING: &str = "('reaction', 'unsupported', 'system')";

/// The inbound rows a purge deletes: received and sent before the horizon
/// (`?2`), except, per (address, sender), the newest one that opened a
/// window and the newest one with a referral: as-of answers after the
/// horizon read the newest of each, so the kept two answer as all did.
/// `temp.purge_keep` holds those newest times (see [`Db::purge_keep`]);
/// a join on it keeps the purge one pass over the business's messages.
pub(in crate::store) fn inbound_purgeable() -> String {
    format!(
        "FROM inbound_messages AS m
           JOIN temp.purge_keep AS k ON k.user_id = m.user_id AND k.sender = m.sender
         WHERE m.business_id = ?1 AND m.received_at < ?2 AND m.at < ?2
           AND NOT (m.kind NOT IN {NOT_OPENING} AND min(m.at, m.received_at) = k.last_open)
           AND NOT (m.referral IS NOT NULL AND m.kind NOT IN {NOT_OPENING}
                    AND min(m.at, m.received_at) = k.last_referral)"
    )
}
