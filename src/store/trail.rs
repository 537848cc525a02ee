//! Reading the consent trail, whatever store its rows come from: each
//! address's chain is walked in `seq` order and every event's hash checked
//! ([`crate::chain`]); the walk also turns rows into what the fold and the
//! audit read. The stores only fetch rows (SQLite's in `consent.rs`).

use super::consent::ConsentRow;
use super::corrupt;
use crate::chain::{Evidence, Hash, Link, SALT_LEN, subject_of_key};
use crate::error::{Error, Result};
use crate::policy::{Action, ConsentFact, Scope};
use crate::time::{Timestamp, effective};

/// An address as a trail read returns it: its row, key and recorded head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AddressHead<'r> {
    pub user: i64,
    pub key: &'r str,
    pub count: i64,
    pub head: Option<&'r [u8]>,
}

/// One consent event as stored, borrowed from the store's row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventRow<'r> {
    pub seq: i64,
    pub action: &'r str,
    pub scope: &'r str,
    pub at: i64,
    pub received_at: i64,
    pub effective: i64,
    pub conditional: bool,
    pub source: &'r str,
    pub evidence: Option<&'r str>,
    pub hash: Option<&'r [u8]>,
    pub salt: Option<&'r [u8]>,
    pub evidence_digest: Option<&'r [u8]>,
}

impl EventRow<'_> {
    /// Its action, or [`Error::Corrupt`].
    pub fn action(&self) -> Result<Action> {
        parse_action(self.action)
    }

    /// Whether erasure sealed it: its salt and evidence are gone.
    pub fn sealed(&self) -> bool {
        self.evidence_digest.is_some()
    }

    /// What the consent fold reads of it: `None` for an opt-in that
    /// erasure sealed (its proof is gone; a sealed opt-out still counts).
    pub fn fact(&self) -> Result<Option<ConsentFact>> {
        let action = self.action()?;
        if action == Action::OptIn && self.sealed() {
            return Ok(None);
        }
        Ok(Some(ConsentFact {
            action,
            scope: parse_scope(self.scope)?,
            effective: Timestamp::from_millis(self.effective),
            conditional: self.conditional,
        }))
    }

    /// The row as the audit shows it, with its place in the chain.
    pub fn consent_row(&self, at: &Walked<'_>) -> Result<ConsentRow> {
        let Walked {
            subject,
            hash,
            prev,
            ..
        } = *at;
        Ok(ConsentRow {
            seq: self.seq,
            action: self.action()?,
            scope: parse_scope(self.scope)?,
            at: Timestamp::from_millis(self.at),
            received_at: Timestamp::from_millis(self.received_at),
            effective: Timestamp::from_millis(self.effective),
            conditional: self.conditional,
            source: self.source.to_owned(),
            evidence: self.evidence.map(str::to_owned),
            salt: self.salt.and_then(|s| <[u8; SALT_LEN]>::try_from(s).ok()),
            sealed: self.evidence_digest.and_then(Hash::from_slice),
            subject,
            prev,
            hash,
        })
    }
}

/// Where a walked event sits: its address and subject, its hash and the
/// hash before it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walked<'w> {
    pub key: &'w str,
    pub subject: Hash,
    pub hash: Hash,
    pub prev: Hash,
}

/// Walks the chains of the addresses of one read, in order.
pub(crate) struct TrailWalk<'b> {
    business: &'b str,
    business_id: i64,
    /// The database's secret, for each address's subject.
    secret: &'b [u8],
    chain: Option<Chain>,
}

impl<'b> TrailWalk<'b> {
    pub fn new(business: super::BusinessRef<'b>, secret: &'b [u8]) -> Self {
        TrailWalk {
            business: business.name,
            business_id: business.id,
            secret,
            chain: None,
        }
    }

    /// An address row: a new address finishes the chain before it (its
    /// recorded head must be where its events ended) and starts its own.
    pub fn address(&mut self, a: &AddressHead<'_>) -> Result<()> {
        if self.chain.as_ref().is_some_and(|c| c.user == a.user) {
            return Ok(());
        }
        if let Some(done) = &self.chain {
            done.finish()?;
        }
        let subject = subject_for(self.secret, self.business_id, a.key, 1)?;
        self.chain = Some(Chain {
            user: a.user,
            key: a.key.to_owned(),
            subject,
            count: a.count,
            head: a
                .head
                .map(|h| Hash::from_slice(h).unwrap_or(Hash([0xff; 32]))),
            next: 1,
            prev: Hash::ZERO,
        });
        Ok(())
    }

    /// Checks the next event of the current address; returns where it
    /// sits.
    pub fn event(&mut self, e: &EventRow<'_>) -> Result<Walked<'_>> {
        let business = self.business;
        match self.chain.as_mut() {
            Some(c) => {
                let (hash, prev) = c.step(business, e)?;
                Ok(Walked {
                    key: &c.key,
                    subject: c.subject,
                    hash,
                    prev,
                })
            }
            None => Err(corrupt(
                "consent_events",
                "an event before its address".into(),
            )),
        }
    }

    /// Finishes the last chain.
    pub fn finish(self) -> Result<()> {
        match &self.chain {
            Some(c) => c.finish(),
            None => Ok(()),
        }
    }
}

/// Walks one address's events in seq order and checks each hash.
struct Chain {
    user: i64,
    key: String,
    subject: Hash,
    count: i64,
    head: Option<Hash>,
    next: i64,
    prev: Hash,
}

impl Chain {
    fn broken(&self, seq: i64, detail: &str) -> Error {
        Error::ChainBroken {
            user: self.key.clone(),
            seq,
            detail: detail.to_owned(),
        }
    }

    fn step(&mut self, business: &str, e: &EventRow<'_>) -> Result<(Hash, Hash)> {
        let seq = e.seq;
        if seq != self.next {
            return Err(self.broken(
                self.next,
                &format!("event {seq} found where {} was expected", self.next),
            ));
        }
        let (at, received_at) = (
            Timestamp::from_millis(e.at),
            Timestamp::from_millis(e.received_at),
        );
        if e.effective != effective(at, received_at).as_millis() {
            return Err(self.broken(seq, "its effective time is not min(at, received_at)"));
        }
        let evidence = match e.evidence_digest {
            Some(sealed) => Evidence::Sealed(
                Hash::from_slice(sealed)
                    .ok_or_else(|| self.broken(seq, "its sealed digest is not 32 bytes"))?,
            ),
            None => Evidence::Open {
                salt: e
                    .salt
                    .filter(|s| s.len() == SALT_LEN)
                    .ok_or_else(|| self.broken(seq, "its salt is missing"))?,
                text: e.evidence,
            },
        };
        let link = Link {
            business,
            seq,
            action: parse_action(e.action)?,
            scope: parse_scope(e.scope)?,
            at,
            received_at,
            conditional: e.conditional,
            source: e.source,
            subject: self.subject,
            evidence,
        };
        let stored = e
            .hash
            .and_then(Hash::from_slice)
            .ok_or_else(|| self.broken(seq, "its hash is missing"))?;
        let prev = self.prev;
        let hash = link.hash(&prev);
        if hash != stored {
            return Err(self.broken(seq, "its hash does not match its content"));
        }
        self.prev = hash;
        self.next += 1;
        Ok((hash, prev))
    }

    fn finish(&self) -> Result<()> {
        let n = self.next - 1;
        let ok = n == self.count
            && match self.head {
                None => n == 0,
                Some(h) => n > 0 && h == self.prev,
            };
        if ok {
            Ok(())
        } else {
            Err(self.broken(
                n + 1,
                &format!("the address records {} events and a head that its trail of {n} does not end in", self.count),
            ))
        }
    }
}

/// The subject a stored key stands for, or [`Error::ChainBroken`] at
/// event `seq` for a tombstone that is not 64 hex digits.
fn subject_for(secret: &[u8], business: i64, key: &str, seq: i64) -> Result<Hash> {
    subject_of_key(secret, business, key).ok_or_else(|| Error::ChainBroken {
        user: key.to_owned(),
        seq,
        detail: "its key is a tombstone that is not 64 hex digits".into(),
    })
}

/// The next event of an address's chain, ready to store.
pub(crate) struct NextEvent {
    /// Its position, from 1.
    pub seq: i64,
    /// Its fresh random salt.
    pub salt: [u8; SALT_LEN],
    /// Its chain hash.
    pub hash: Hash,
}

/// Chains a new consent event onto an address whose row records `count`
/// events ending in `head`: what both stores append.
pub(crate) fn next_event(
    business: super::BusinessRef<'_>,
    secret: &[u8],
    key: &str,
    (count, head): (i64, Option<&[u8]>),
    c: &super::NewConsent<'_>,
) -> Result<NextEvent> {
    let prev = chain_prev(key, count, head)?;
    let seq = count + 1;
    let salt = super::consent::new_salt()?;
    let hash = Link {
        business: business.name,
        seq,
        action: c.action,
        scope: c.scope,
        at: c.at,
        received_at: c.received_at,
        conditional: c.conditional,
        source: c.source,
        subject: subject_for(secret, business.id, key, seq)?,
        evidence: Evidence::Open {
            salt: &salt,
            text: c.evidence,
        },
    }
    .hash(&prev);
    Ok(NextEvent { seq, salt, hash })
}

/// The hash an address's next event chains to: zeros for its first, else
/// its recorded head, which must agree with its recorded count.
fn chain_prev(key: &str, count: i64, head: Option<&[u8]>) -> Result<Hash> {
    match (count, head) {
        (0, None) => Ok(Hash::ZERO),
        (n, Some(h)) if n > 0 => Hash::from_slice(h).ok_or_else(|| Error::ChainBroken {
            user: key.to_owned(),
            seq: n,
            detail: "the recorded head is not a hash".into(),
        }),
        (n, _) => Err(Error::ChainBroken {
            user: key.to_owned(),
            seq: n,
            detail: "the recorded count and head disagree".into(),
        }),
    }
}

pub(crate) fn parse_action(s: &str) -> Result<Action> {
    s.parse()
        .map_err(|e| corrupt("consent_events", format!("{e}")))
}

pub(crate) fn parse_scope(s: &str) -> Result<Scope> {
    s.parse()
        .map_err(|e| corrupt("consent_events", format!("{e}")))
}
