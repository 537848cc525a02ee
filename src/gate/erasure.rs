//! [`Business::forget`]: erasure that keeps suppression.

use super::Business;
use crate::address::Address;
use crate::error::Result;
use crate::store::Forgotten;

impl Business {
    /// Forgets the person `user` belongs to (every address linked to it),
    /// for a request to erase their data, and keeps what stops messages to
    /// them.
    ///
    /// - **Goes:** the address text of each of the person's phones and
    ///   business-scoped ids, the evidence and salt of their consent
    ///   events, their inbound-message rows (message ids), their windows,
    ///   feedback rows about messages sent to them from elsewhere, the
    ///   message id behind each of their links, and the recipient,
    ///   provider id and error text of their send attempts. Freed space is
    ///   zeroed and the write-ahead log checkpointed into the file, so the
    ///   text is gone from the disk, not only from the tables.
    /// - **Stays:** one tombstone per address, keyed by HMAC-SHA256 under a
    ///   secret of the database, with its consent events (action, scope,
    ///   times, source) and each event's evidence digest, so that the
    ///   chain still verifies and every head is unchanged; links between
    ///   the tombstones; send attempts (decision, key, state) under the
    ///   tombstone.
    /// - **Decisions after:** the person's opt-ins no longer count (their
    ///   proof is gone), their opt-outs do. A number or id that comes back,
    ///   by an inbound, an import or a send, finds its tombstone: an
    ///   opted-out person stays opted out.
    ///
    /// ```
    /// use wagate::{Action, Address, ConsentEvent, Content, Event, Gate, Reason, Scope, SendRequest, Timestamp};
    /// let acme = Gate::open_in_memory()?.business("acme")?;
    /// let ana = Address::parse("whatsapp:+15550001111")?;
    /// let t = Timestamp::parse("2026-03-01T08:00:00Z")?;
    /// let stop = ConsentEvent::new(ana.clone(), Action::OptOut, Scope::All, t, "keyword");
    /// acme.ingest(&Event::Consent(stop))?;
    /// let gone = acme.forget(&ana)?;
    /// assert_eq!((gone.addresses, gone.consent_events), (1, 1));
    /// // The number comes back: still opted out.
    /// let shop = Address::parse("whatsapp:+14155238886")?;
    /// let req = SendRequest::between(shop, ana, Content::text("hi"));
    /// assert_eq!(acme.check(&req)?.reason, Reason::OptedOut);
    /// assert!(acme.verify()?.broken.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::ChainBroken`] when one of the person's chains does
    /// not verify (nothing is erased then), or a store error (nothing is
    /// erased either).
    pub fn forget(&self, user: &Address) -> Result<Forgotten> {
        let now = self.gate.clock.now();
        match self.gate.sqlite()? {
            Some(mut store) => {
                let (mut done, scrubbed) =
                    store.write_scrubbed(|w| w.db().forget(self.r(), user.as_str(), now))?;
                done.file_scrubbed = scrubbed;
                Ok(done)
            }
            // PostgreSQL keeps old row versions until VACUUM reclaims them:
            // `file_scrubbed` stays false.
            None => self
                .gate
                .write(|w| w.queries().forget(self.r(), user.as_str(), now)),
        }
    }

    /// Rewrites the database file so that no free space keeps old content
    /// (SQLite's `VACUUM`). A forget already zeroes what it frees; this is
    /// for a file written before that was so, or whose forget could not
    /// finish its checkpoint. Holds the writers' lock while it runs
    /// (seconds for a large file) and needs free space of the file's size.
    ///
    /// # Errors
    /// A store error.
    pub fn vacuum(&self) -> Result<()> {
        match self.gate.sqlite()? {
            Some(mut store) => store.vacuum(),
            None => Err(crate::Error::InvalidEvent(
                "vacuum rewrites a SQLite file; on PostgreSQL run VACUUM FULL on the store's tables (consent_events, users, sends, links, inbound_messages) as the server's operator".into(),
            )),
        }
    }
}
