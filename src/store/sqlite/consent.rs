//! The SQLite queries of `store::consent` (`impl Db`).

use crate::chain::Hash;
use crate::error::{Error, Result};
use crate::policy::ConsentFact;
use crate::store::trail::{AddressHead, EventRow, NextEvent, TrailWalk, Walked, next_event};
use crate::store::{AddressRow, BusinessRef, Db};
use crate::time::{Timestamp, effective};
use rusqlite::params;

// The types (and SQL text) of the topic these queries serve.
use crate::store::consent::*;

impl Db<'_> {
    /// Appends a consent event to an address's chain.
    ///
    /// # Errors
    /// [`Error::ChainBroken`] when the address's head is unreadable, or a
    /// store error.
    pub fn add_consent(
        self,
        business: BusinessRef<'_>,
        user: &AddressRow,
        c: &NewConsent<'_>,
    ) -> Result<()> {
        let (count, head): (i64, Option<Vec<u8>>) = self
            .0
            .prepare_cached("SELECT consent_count, consent_head FROM users WHERE id = ?1")?
            .query_row([user.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let NextEvent { seq, salt, hash } = next_event(
            business,
            &self.secret()?,
            &user.key,
            (count, head.as_deref()),
            c,
        )?;
        self.0
            .prepare_cached(
                "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at,
                     effective, conditional, source, evidence, hash, salt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                business.id,
                user.id,
                seq,
                c.action.as_str(),
                c.scope.as_str(),
                c.at.as_millis(),
                c.received_at.as_millis(),
                effective(c.at, c.received_at).as_millis(),
                c.conditional,
                c.source,
                c.evidence,
                &hash.0[..],
                &salt[..],
            ])?;
        self.0
            .prepare_cached("UPDATE users SET consent_count = ?2, consent_head = ?3 WHERE id = ?1")?
            .execute(params![user.id, seq, &hash.0[..]])?;
        Ok(())
    }

    /// Whether the trail of the address row `user` already holds an event
    /// with this content: action, scope, `at`, source, evidence and
    /// conditional, and `received_at` too when `same_arrival` is set. What
    /// `wagate import` keys its rows by, so that running it again lands
    /// only what had not landed. Reads one address's events (its primary
    /// key range); keeps nothing in memory.
    ///
    /// # Errors
    /// A store error.
    pub fn has_consent(
        self,
        business: i64,
        user: i64,
        c: &NewConsent<'_>,
        same_arrival: bool,
    ) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM consent_events c
                 WHERE c.business_id = ?1 AND c.user_id = ?2 AND c.action = ?3 AND c.scope = ?4
                   AND c.at = ?5 AND c.source = ?6 AND c.evidence IS ?7 AND c.conditional = ?8
                   AND (?9 = 0 OR c.received_at = ?10))",
            )?
            .query_row(
                params![
                    business,
                    user,
                    c.action.as_str(),
                    c.scope.as_str(),
                    c.at.as_millis(),
                    c.source,
                    c.evidence,
                    c.conditional,
                    same_arrival,
                    c.received_at.as_millis(),
                ],
                |r| r.get(0),
            )?)
    }

    /// Reads the trail of `who`, verifying every chain as it goes, and
    /// calls `f` for each event with the address and the row.
    pub(in crate::store) fn trail(
        self,
        business: BusinessRef<'_>,
        who: Who,
        mut f: impl FnMut(&Walked<'_>, &EventRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let (sql, arg) = match who {
            Who::Person(p) => (
                format!(
                    "{TRAIL} WHERE u.business_id = ?1 AND u.person_id = ?2 ORDER BY u.id, c.seq"
                ),
                p,
            ),
            Who::Address(a) => (
                format!("{TRAIL} WHERE u.business_id = ?1 AND u.id = ?2 ORDER BY u.id, c.seq"),
                a,
            ),
            Who::All => (
                format!("{TRAIL} WHERE u.business_id = ?1 AND ?2 = 0 ORDER BY u.id, c.seq"),
                0,
            ),
        };
        let mut stmt = self.0.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![business.id, arg])?;
        let secret = self.secret()?;
        let mut walk = TrailWalk::new(business, &secret);
        while let Some(r) = rows.next()? {
            walk.address(&AddressHead {
                user: r.get(0)?,
                key: r.get_ref(1)?.as_str()?,
                count: r.get(2)?,
                head: r.get_ref(3)?.as_blob_or_null()?,
            })?;
            // A LEFT JOIN row without an event: an address with no consent.
            let Some(seq) = r.get_ref(4)?.as_i64_or_null()? else {
                continue;
            };
            let e = EventRow {
                seq,
                action: r.get_ref(5)?.as_str()?,
                scope: r.get_ref(6)?.as_str()?,
                at: r.get(7)?,
                received_at: r.get(8)?,
                effective: r.get(9)?,
                conditional: r.get(10)?,
                source: r.get_ref(11)?.as_str()?,
                evidence: r.get_ref(12)?.as_str_or_null()?,
                hash: r.get_ref(13)?.as_blob_or_null()?,
                salt: r.get_ref(14)?.as_blob_or_null()?,
                evidence_digest: r.get_ref(15)?.as_blob_or_null()?,
            };
            let at = walk.event(&e)?;
            f(&at, &e)?;
        }
        walk.finish()
    }

    /// The consent events of a person, verified, as the fold reads them.
    /// With `as_of`, only events received at or before it.
    ///
    /// # Errors
    /// [`Error::ChainBroken`] or [`Error::Corrupt`] when the trail was
    /// altered (never a decision), or a store error.
    pub fn person_consent(
        self,
        business: BusinessRef<'_>,
        addresses: &Addresses,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<ConsentFact>> {
        let mut out = Vec::new();
        let mut push = |_: &Walked<'_>, e: &EventRow<'_>| -> Result<()> {
            if as_of.is_some_and(|t| e.received_at > t.as_millis()) {
                return Ok(());
            }
            // A forgotten person's opt-ins went with their proof (erasure
            // sealed them); their opt-outs stay (Business::forget).
            if let Some(fact) = e.fact()? {
                out.push(fact);
            }
            Ok(())
        };
        match addresses {
            Addresses::Person(p) => self.trail(business, Who::Person(*p), &mut push)?,
            Addresses::One(id) => self.trail(business, Who::Address(*id), &mut push)?,
            Addresses::Some(ids) => {
                for id in ids {
                    self.trail(business, Who::Address(*id), &mut push)?;
                }
            }
        }
        Ok(out)
    }

    /// The full trail of a person, verified: (address, row), oldest first
    /// by effective time, then address, then seq.
    ///
    /// # Errors
    /// As [`Db::person_consent`].
    pub fn person_trail(
        self,
        business: BusinessRef<'_>,
        person: i64,
    ) -> Result<Vec<(String, ConsentRow)>> {
        let mut out = Vec::new();
        self.trail(business, Who::Person(person), |at, e| {
            out.push((at.key.to_owned(), e.consent_row(at)?));
            Ok(())
        })?;
        out.sort_by(|(ka, a), (kb, b)| (a.effective, ka, a.seq).cmp(&(b.effective, kb, b.seq)));
        Ok(out)
    }

    /// Calls `f` with every consent event of a business received at or
    /// after `since` (all when `None`), with its address, address by
    /// address in chain order. Every chain is verified as it streams (the
    /// events before `since` too, so that each row's `prev` is known).
    ///
    /// # Errors
    /// What `f` returns, [`Error::ChainBroken`], or a store error.
    pub fn for_each_consent(
        self,
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        mut f: impl FnMut(&str, &ConsentRow) -> Result<()>,
    ) -> Result<()> {
        self.trail(business, Who::All, |at, e| {
            let row = e.consent_row(at)?;
            if since.is_none_or(|s| row.received_at >= s) {
                f(at.key, &row)?;
            }
            Ok(())
        })
    }

    /// Verifies every chain of a business. A broken chain is reported in
    /// the result (the first one found), not as an error.
    ///
    /// # Errors
    /// A store error.
    pub fn verify_chains(self, business: BusinessRef<'_>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut stmt = self.0.prepare_cached(
            "SELECT id, key, consent_count, consent_head FROM users WHERE business_id = ?1 ORDER BY key",
        )?;
        let users = stmt
            .query_map([business.id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut digest = crate::chain::Digest::new();
        for (id, key, count, head) in users {
            report.addresses += 1;
            if count > 0 {
                digest.field(key.as_bytes());
                digest.field(count.to_string().as_bytes());
                digest.field(head.as_deref().unwrap_or_default());
            }
            let mut events = 0u64;
            match self.trail(business, Who::Address(id), |_, _| {
                events += 1;
                Ok(())
            }) {
                Ok(()) => {}
                Err(e @ (Error::ChainBroken { .. } | Error::Corrupt { .. })) => {
                    report.events += events;
                    if report.broken.is_none() {
                        report.broken = Some(e.to_string());
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            report.events += events;
        }
        // Events whose user row is gone cannot be verified at all.
        let orphans: i64 = self
            .0
            .prepare_cached(
                "SELECT count(*) FROM consent_events c WHERE c.business_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id AND u.business_id = c.business_id)",
            )?
            .query_row([business.id], |r| r.get(0))?;
        if orphans > 0 && report.broken.is_none() {
            report.broken = Some(format!(
                "{orphans} consent events belong to no address of this business"
            ));
        }
        // People: every address is the person its links say, and the links
        // take part in the digest (deleting one changes it).
        let people = self.check_people(business.id, &mut digest)?;
        if report.broken.is_none() {
            report.broken = people;
        }
        report.heads_digest = digest.finish().to_hex();
        Ok(report)
    }

    /// The head of every address's chain, by address.
    ///
    /// # Errors
    /// A store error.
    pub fn chain_heads(self, business: i64) -> Result<Vec<ChainHead>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT key, consent_count, consent_head FROM users WHERE business_id = ?1 ORDER BY key",
        )?;
        let rows = stmt
            .query_map([business], |r| {
                let head: Option<Vec<u8>> = r.get(2)?;
                Ok(ChainHead {
                    user: r.get(0)?,
                    events: r.get(1)?,
                    head: head.map(|h| {
                        Hash::from_slice(&h).map_or_else(|| "invalid".into(), |h| h.to_hex())
                    }),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
