//! The consent trail: append-only, hash-chained per address, verified
//! whenever it is read (RULES R3, R4, R8; [`crate::chain`]).

use super::Db;
use rusqlite::params;
use serde::Serialize;

use super::corrupt;
use super::trail::{parse_action, parse_scope};
use crate::chain::{Evidence, Hash, Link, LinkV1, SALT_LEN, subject_of_key};
use crate::error::{Error, Result};
use crate::policy::{Action, Scope};
use crate::time::Timestamp;

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

pub(in crate::store) const TRAIL: &str = "SELECT u.id, u.key, u.consent_count, u.consent_head,
        c.seq, c.action, c.scope, c.at, c.received_at, c.effective, c.conditional, c.source,
        c.evidence, c.hash, c.salt, c.evidence_digest
 FROM users u LEFT JOIN consent_events c ON c.business_id = u.business_id AND c.user_id = u.id";

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
pub(in crate::store) fn backfill_chains(db: Db<'_>) -> Result<()> {
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
pub(in crate::store) fn new_salt() -> Result<[u8; SALT_LEN]> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
    Ok(salt)
}

/// Re-hashes every chain as version 2 (migration 4): each event gets a
/// salt and its version 2 hash, each address its new head. A chain that
/// does not verify as version 1 is left as it is: it stays broken (its
/// rows have no salt), so nothing a tamperer changed is blessed by the
/// upgrade, and only that address's decisions fail, as before.
pub(in crate::store) fn rechain_v2(db: Db<'_>) -> Result<()> {
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
