//! The SQLite queries of `store::erasure` (`impl Db`).

use crate::chain::{Evidence, Hash, SALT_LEN};
use crate::error::Result;
use crate::store::{BusinessRef, Db, corrupt};
use crate::time::Timestamp;
use rusqlite::{OptionalExtension, params};

// The types (and SQL text) of the topic these queries serve.
use crate::store::erasure::*;

impl Db<'_> {
    /// The database's secret (subjects and tombstones are keyed with it).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when it is missing, or a store error.
    pub(in crate::store) fn secret(self) -> Result<Vec<u8>> {
        let found: Option<Vec<u8>> = self
            .0
            .prepare_cached("SELECT value FROM secrets WHERE name = 'tombstone'")?
            .query_row([], |r| r.get(0))
            .optional()?;
        match found {
            Some(s) if s.len() == 32 => Ok(s),
            _ => Err(corrupt("secrets", "the tombstone secret is missing".into())),
        }
    }

    /// The tombstone `address` would have in `business`, when the business
    /// has forgotten anyone (otherwise `None`, without hashing).
    pub(in crate::store) fn tombstone_if_any(
        self,
        business: i64,
        address: &str,
    ) -> Result<Option<String>> {
        // Decided by the keys themselves (a range of the key index), not
        // by a column that could be cleared behind the gate's back.
        let any: bool = self
            .0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM users WHERE business_id = ?1
                                  AND key >= 'erased:' AND key < 'erased;')",
            )?
            .query_row([business], |r| r.get(0))?;
        if !any {
            return Ok(None);
        }
        Ok(Some(tombstone_key(&self.secret()?, business, address)?))
    }

    /// Forgets the person `address` belongs to (every address linked to
    /// it), keeping what suppression and the chain need. An address never
    /// recorded still has its send attempts scrubbed.
    ///
    /// # Errors
    /// A store error, or [`Error::ChainBroken`] when a chain to seal does
    /// not verify (nothing is then changed).
    pub fn forget(
        self,
        business: BusinessRef<'_>,
        address: &str,
        now: Timestamp,
    ) -> Result<Forgotten> {
        let mut done = Forgotten::default();
        let secret = self.secret()?;
        let mut rows = Vec::new();
        if let Some(row) = self.address(business.id, address)? {
            rows = self.person_addresses(business.id, row.person)?;
        }
        // The address as given, even if it has no row (sends to it).
        let mut scrub = vec![(
            address.to_owned(),
            tombstone_key(&secret, business.id, address)?,
        )];
        for row in &rows {
            let tomb = if row.key.starts_with(TOMBSTONE) {
                row.key.clone()
            } else {
                tombstone_key(&secret, business.id, &row.key)?
            };
            let open = self.open_events(business, row.id)?;
            self.0
                .prepare_cached("UPDATE users SET key = ?2, erased_at = ?3 WHERE id = ?1")?
                .execute(params![row.id, tomb, now.as_millis()])?;
            // Sealing is allowed once the address is a tombstone.
            done.consent_events += self.seal(business.id, row.id, &open)?;
            done.addresses += 1;
            scrub.push((row.key.clone(), tomb));
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        for &id in &ids {
            done.inbound_messages += self
                .0
                .prepare_cached(
                    "DELETE FROM inbound_messages WHERE business_id = ?1
                       AND (user_id = ?2 OR also_user_id = ?2)",
                )?
                .execute(params![business.id, id])?;
            done.windows += self
                .0
                .prepare_cached("DELETE FROM windows WHERE business_id = ?1 AND user_id = ?2")?
                .execute(params![business.id, id])?;
            done.external_feedback += self
                .0
                .prepare_cached(
                    "DELETE FROM external_feedback WHERE business_id = ?1 AND user_id = ?2",
                )?
                .execute(params![business.id, id])?;
            done.links += self
                .0
                .prepare_cached(
                    "UPDATE links SET source = 'erased'
                     WHERE business_id = ?1 AND (phone_id = ?2 OR bsuid_id = ?2) AND source != 'erased'",
                )?
                .execute(params![business.id, id])?;
        }
        scrub.retain(|(key, tomb)| key != tomb);
        scrub.sort();
        scrub.dedup();
        // A send's recipient, provider id, error text, and what its facts
        // say in words (a rendered template, a problem naming an address):
        // by the person's rows (sends after a first erasure, to a number
        // that came back, included) and by the address as sent to (an
        // address never recorded).
        const SCRUB: &str = "UPDATE sends SET recipient = ?3, provider_id = NULL, error = NULL,
                 facts = CASE WHEN facts IS NULL THEN NULL
                              ELSE json_remove(facts, '$.rendered', '$.problem') END
             WHERE business_id = ?1 AND (recipient IS NOT ?3 OR provider_id IS NOT NULL
                                         OR error IS NOT NULL) AND ";
        for row in &rows {
            let tomb = tombstone_key(&secret, business.id, &row.key)?;
            done.send_attempts += self
                .0
                .prepare_cached(&format!("{SCRUB} user_id = ?2"))?
                .execute(params![business.id, row.id, tomb])?;
        }
        for (key, tomb) in &scrub {
            done.send_attempts += self
                .0
                .prepare_cached(&format!("{SCRUB} recipient = ?2"))?
                .execute(params![business.id, key, tomb])?;
        }
        Ok(done)
    }

    /// The evidence digest of every open event of one address, after
    /// verifying its chain.
    pub(in crate::store) fn open_events(
        self,
        business: BusinessRef<'_>,
        user: i64,
    ) -> Result<Vec<(i64, Hash)>> {
        let mut open = Vec::new();
        self.trail(
            business,
            crate::store::consent::Who::Address(user),
            |_, e| {
                if !e.sealed() {
                    let salt = e.salt.unwrap_or_default();
                    if salt.len() != SALT_LEN {
                        return Err(corrupt(
                            "consent_events",
                            "an open event without its salt".into(),
                        ));
                    }
                    let digest = Evidence::Open {
                        salt,
                        text: e.evidence,
                    }
                    .digest();
                    open.push((e.seq, digest));
                }
                Ok(())
            },
        )?;
        Ok(open)
    }

    /// Seals events of an address that is a tombstone: each keeps its
    /// evidence digest and loses its salt and evidence.
    pub(in crate::store) fn seal(
        self,
        business: i64,
        user: i64,
        open: &[(i64, Hash)],
    ) -> Result<usize> {
        for (seq, digest) in open {
            self.0
                .prepare_cached(
                    "UPDATE consent_events SET evidence_digest = ?4, salt = NULL, evidence = NULL
                     WHERE business_id = ?1 AND user_id = ?2 AND seq = ?3",
                )?
                .execute(params![business, user, seq, &digest.0[..]])?;
        }
        Ok(open.len())
    }
}
