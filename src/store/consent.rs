//! The consent trail: append-only, hash-chained per address, verified
//! whenever it is read (RULES R3, R4, R8; [`crate::chain`]).

use rusqlite::params;
use serde::Serialize;

use super::trail::{
    AddressHead, EventRow, NextEvent, TrailWalk, Walked, next_event, parse_action, parse_scope,
};
use super::{AddressRow, BusinessRef, Db, corrupt};
use crate::chain::{Evidence, Hash, Link, LinkV1, SALT_LEN, subject_of_key};
use crate::error::{Error, Result};
use crate::policy::{Action, ConsentFact, Scope};
use crate::time::{Timestamp, effective};

/// A consent event to append.
#[derive(Clone, Copy, Debug)]
pub struct NewConsent<'a> {
    /// Opt in or out.
    pub action: Action,
    /// All or marketing.
    pub scope: Scope,
    /// Source time.
    pub at: Timestamp,
    /// Arrival time.
    pub received_at: Timestamp,
    /// A keyword opt-in (RULES R4).
    pub conditional: bool,
    /// Where it came from.
    pub source: &'a str,
    /// Proof.
    pub evidence: Option<&'a str>,
}

/// A consent event as stored, with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRow {
    /// Position in the address's trail, from 1.
    pub seq: i64,
    /// Opt in or out.
    pub action: Action,
    /// Scope.
    pub scope: Scope,
    /// Source time.
    pub at: Timestamp,
    /// Arrival time.
    pub received_at: Timestamp,
    /// min(at, received_at).
    pub effective: Timestamp,
    /// An opt-in keyword.
    pub conditional: bool,
    /// Where it came from.
    pub source: String,
    /// Proof; `None` once the person was forgotten.
    pub evidence: Option<String>,
    /// The event's salt (part of its evidence digest, see
    /// [`crate::chain`]); `None` once the person was forgotten.
    pub salt: Option<[u8; SALT_LEN]>,
    /// The evidence digest kept by erasure, for a forgotten person's
    /// events (`None` while the evidence is in clear).
    pub sealed: Option<Hash>,
    /// The address's subject, which the hash covers ([`crate::chain::subject`]).
    pub subject: Hash,
    /// The hash of the previous event of the address (zeros for the first).
    pub prev: Hash,
    /// This event's hash.
    pub hash: Hash,
}

/// The head of one address's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// The address.
    pub user: String,
    /// How many events its trail holds.
    pub events: i64,
    /// The hash of the last one (hex), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

/// What [`Db::verify_chains`] found in one business.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Addresses checked.
    pub addresses: u64,
    /// Events checked.
    pub events: u64,
    /// SHA-256 over (address, event count, head hash) of every address
    /// with events, in address order, then every link: one value to record
    /// elsewhere and compare later.
    pub heads_digest: String,
    /// The first broken event, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

/// Whose events to read.
#[derive(Clone, Copy)]
pub(super) enum Who {
    /// Every address of a person.
    Person(i64),
    /// One address.
    Address(i64),
    /// Every address of the business.
    All,
}

const TRAIL: &str = "SELECT u.id, u.key, u.consent_count, u.consent_head,
        c.seq, c.action, c.scope, c.at, c.received_at, c.effective, c.conditional, c.source,
        c.evidence, c.hash, c.salt, c.evidence_digest
 FROM users u LEFT JOIN consent_events c ON c.business_id = u.business_id AND c.user_id = u.id";

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
    pub(super) fn trail(
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

/// The addresses whose events make up a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// Every address of a linked person, now.
    Person(i64),
    /// An address linked to no other: its own rows, no person join (most
    /// people have one address; this keeps their checks to primary-key
    /// reads).
    One(i64),
    /// These addresses (a person as of an earlier time).
    Some(Vec<i64>),
}

impl Addresses {
    /// The addresses of a person as read now.
    pub fn of(address: &super::AddressRow) -> Self {
        if address.linked {
            Addresses::Person(address.person)
        } else {
            Addresses::One(address.id)
        }
    }
}

/// Hashes the version 1 rows of every address once (migration 2), in the
/// version 1 encoding (migration 4 re-hashes them as version 2).
pub(super) fn backfill_chains(db: Db<'_>) -> Result<()> {
    for (business, name) in db.businesses()? {
        let mut stmt = db.0.prepare(
            "SELECT u.id, u.key, c.seq, c.action, c.scope, c.at, c.received_at, c.conditional,
                    c.source, c.evidence
             FROM users u JOIN consent_events c ON c.business_id = u.business_id AND c.user_id = u.id
             WHERE u.business_id = ?1 ORDER BY u.id, c.seq",
        )?;
        let mut rows = stmt.query([business])?;
        let mut current: Option<(i64, i64, Hash)> = None;
        let finish = |(user, count, head): (i64, i64, Hash)| -> Result<()> {
            db.0.prepare_cached(
                "UPDATE users SET consent_count = ?2, consent_head = ?3 WHERE id = ?1",
            )?
            .execute(params![user, count, &head.0[..]])?;
            Ok(())
        };
        while let Some(r) = rows.next()? {
            let user: i64 = r.get(0)?;
            let (count, prev) = match current {
                Some((u, n, h)) if u == user => (n, h),
                other => {
                    if let Some(done) = other {
                        finish(done)?;
                    }
                    (0, Hash::ZERO)
                }
            };
            let seq: i64 = r.get(2)?;
            if seq != count + 1 {
                return Err(corrupt(
                    "consent_events",
                    format!(
                        "user row {user}: event {seq} where {} was expected",
                        count + 1
                    ),
                ));
            }
            let hash = LinkV1 {
                business: &name,
                user: r.get_ref(1)?.as_str()?,
                seq,
                action: parse_action(r.get_ref(3)?.as_str()?)?,
                scope: parse_scope(r.get_ref(4)?.as_str()?)?,
                at: Timestamp::from_millis(r.get(5)?),
                received_at: Timestamp::from_millis(r.get(6)?),
                conditional: r.get(7)?,
                source: r.get_ref(8)?.as_str()?,
                evidence: r.get_ref(9)?.as_str_or_null()?,
            }
            .hash(&prev);
            db.0.prepare_cached(
                "UPDATE consent_events SET hash = ?4 WHERE business_id = ?1 AND user_id = ?2 AND seq = ?3",
            )?
            .execute(params![business, user, seq, &hash.0[..]])?;
            current = Some((user, seq, hash));
        }
        if let Some(done) = current {
            finish(done)?;
        }
    }
    Ok(())
}

/// A fresh random salt for a consent event.
pub(super) fn new_salt() -> Result<[u8; SALT_LEN]> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
    Ok(salt)
}

/// Re-hashes every chain as version 2 (migration 4): each event gets a
/// salt and its version 2 hash, each address its new head. A chain that
/// does not verify as version 1 is left as it is: it stays broken (its
/// rows have no salt), so nothing a tamperer changed is blessed by the
/// upgrade, and only that address's decisions fail, as before.
pub(super) fn rechain_v2(db: Db<'_>) -> Result<()> {
    let secret = db.secret()?;
    for (business, name) in db.businesses()? {
        let users: Vec<(i64, String)> =
            db.0.prepare("SELECT id, key FROM users WHERE business_id = ?1 ORDER BY id")?
                .query_map([business], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
        let mut read = db.0.prepare(
            "SELECT seq, action, scope, at, received_at, conditional, source, evidence, hash
             FROM consent_events WHERE business_id = ?1 AND user_id = ?2 ORDER BY seq",
        )?;
        for (user, key) in users {
            struct Old {
                seq: i64,
                action: Action,
                scope: Scope,
                at: Timestamp,
                received_at: Timestamp,
                conditional: bool,
                source: String,
                evidence: Option<String>,
                hash: Option<Vec<u8>>,
            }
            let events = read
                .query_map(params![business, user], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, bool>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<Vec<u8>>>(8)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut old = Vec::with_capacity(events.len());
            for (seq, action, scope, at, received_at, conditional, source, evidence, hash) in events
            {
                old.push(Old {
                    seq,
                    action: parse_action(&action)?,
                    scope: parse_scope(&scope)?,
                    at: Timestamp::from_millis(at),
                    received_at: Timestamp::from_millis(received_at),
                    conditional,
                    source,
                    evidence,
                    hash,
                });
            }
            // Check as version 1 first.
            let mut prev = Hash::ZERO;
            let mut intact = true;
            for (i, e) in old.iter().enumerate() {
                let expected = LinkV1 {
                    business: &name,
                    user: &key,
                    seq: e.seq,
                    action: e.action,
                    scope: e.scope,
                    at: e.at,
                    received_at: e.received_at,
                    conditional: e.conditional,
                    source: &e.source,
                    evidence: e.evidence.as_deref(),
                }
                .hash(&prev);
                let n = i64::try_from(i).unwrap_or(i64::MAX) + 1;
                if e.seq != n || e.hash.as_deref().and_then(Hash::from_slice) != Some(expected) {
                    intact = false;
                    break;
                }
                prev = expected;
            }
            let head: (i64, Option<Vec<u8>>) =
                db.0.prepare_cached("SELECT consent_count, consent_head FROM users WHERE id = ?1")?
                    .query_row([user], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let count = i64::try_from(old.len()).unwrap_or(i64::MAX);
            if !intact
                || head.0 != count
                || head.1.as_deref().and_then(Hash::from_slice) != (count > 0).then_some(prev)
            {
                continue;
            }
            let Some(subject) = subject_of_key(&secret, business, &key) else {
                continue;
            };
            let mut prev = Hash::ZERO;
            for e in &old {
                let salt = new_salt()?;
                let hash = Link {
                    business: &name,
                    seq: e.seq,
                    action: e.action,
                    scope: e.scope,
                    at: e.at,
                    received_at: e.received_at,
                    conditional: e.conditional,
                    source: &e.source,
                    subject,
                    evidence: Evidence::Open {
                        salt: &salt,
                        text: e.evidence.as_deref(),
                    },
                }
                .hash(&prev);
                db.0.prepare_cached(
                    "UPDATE consent_events SET hash = ?4, salt = ?5
                     WHERE business_id = ?1 AND user_id = ?2 AND seq = ?3",
                )?
                .execute(params![
                    business,
                    user,
                    e.seq,
                    &hash.0[..],
                    &salt[..]
                ])?;
                prev = hash;
            }
            if count > 0 {
                db.0.prepare_cached("UPDATE users SET consent_head = ?2 WHERE id = ?1")?
                    .execute(params![user, &prev.0[..]])?;
            }
        }
    }
    Ok(())
}
