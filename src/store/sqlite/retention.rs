//! The SQLite queries of `store::retention` (`impl Db`).

use crate::error::Result;
use crate::store::Db;
use rusqlite::params;

// The types (and SQL text) of the topic these queries serve.
use crate::store::retention::*;

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
        self.purge_keep(business, cutoff_ms)?;
        let inbound_messages = self
            .0
            .prepare_cached(&format!(
                "DELETE FROM inbound_messages WHERE (business_id, provider_id) IN
                   (SELECT m.business_id, m.provider_id {})",
                inbound_purgeable()
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

    /// Fills `temp.purge_keep` (this connection's own) with the newest
    /// window-opening and referral times of each address and sender before
    /// the horizon: one grouped pass, instead of a correlated search per
    /// message (there is no index by address on messages: ingest would pay
    /// for it on every webhook).
    pub(in crate::store) fn purge_keep(self, business: i64, cutoff_ms: i64) -> Result<()> {
        self.0.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS purge_keep (
                 user_id INTEGER NOT NULL, sender TEXT NOT NULL,
                 last_open INTEGER, last_referral INTEGER,
                 PRIMARY KEY (user_id, sender)) WITHOUT ROWID;
             DELETE FROM temp.purge_keep;",
        )?;
        self.0
            .prepare_cached(&format!(
                "INSERT INTO temp.purge_keep
                 SELECT user_id, sender,
                        max(CASE WHEN kind NOT IN {NOT_OPENING} THEN min(at, received_at) END),
                        max(CASE WHEN referral IS NOT NULL AND kind NOT IN {NOT_OPENING}
                                 THEN min(at, received_at) END)
                 FROM inbound_messages
                 WHERE business_id = ?1 AND received_at < ?2 AND at < ?2
                 GROUP BY user_id, sender"
            ))?
            .execute(params![business, cutoff_ms])?;
        Ok(())
    }

    /// What [`Db::purge`] would delete, deleting nothing.
    ///
    /// # Errors
    /// A store error.
    pub fn purgeable(self, business: i64, cutoff_ms: i64) -> Result<Purged> {
        self.purge_keep(business, cutoff_ms)?;
        let count = |sql: &str, before: i64| -> Result<usize> {
            let n: i64 = self
                .0
                .prepare_cached(sql)?
                .query_row(params![business, before], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        };
        Ok(Purged {
            inbound_messages: count(
                &format!("SELECT count(*) {}", inbound_purgeable()),
                cutoff_ms,
            )?,
            send_attempts: count(
                "SELECT count(*) FROM sends WHERE business_id = ?1 AND at < ?2",
                cutoff_ms.saturating_sub(SEND_MARGIN_MS),
            )?,
        })
    }
}
