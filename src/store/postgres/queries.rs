//! The gate's queries ([`Queries`]) on PostgreSQL: the same statements as
//! the SQLite store's, in PostgreSQL's dialect (`$n` parameters,
//! `GREATEST`/`LEAST`, `RETURNING`), over the schema of
//! `migrations/postgres/`. What is not SQL (walking and verifying the
//! consent chains, folding facts) is shared with SQLite (`store::trail`).
//!
//! Every integer column is `BIGINT` (flags are 0/1), so every value binds
//! as an `i64`; a row whose column does not read as the code expects is
//! [`Error::Corrupt`], never a panic.

use std::cell::RefCell;

use ::postgres::Row;
use ::postgres::Transaction;
use ::postgres::types::{FromSql, ToSql};

use super::super::erasure::{TOMBSTONE, tombstone_key};
use super::super::inbound::keyword_str;
use super::super::trail::{
    AddressHead, EventRow, NextEvent, TrailWalk, Walked, next_event, parse_action, parse_scope,
};
use super::super::{
    AddressRow, Addresses, BusinessRef, ChainHead, ConsentRow, ExternalFeedback, Forgotten,
    InboundInsert, LinkRow, NewConsent, NewInbound, NewLink, NewSend, Purged, Queries, SendAnswer,
    SendFilter, SendRecord, SendRow, SendState, Stats, StoredTemplate, VerifyReport, WindowRaise,
    corrupt, ts,
};
use crate::address::Address;
use crate::chain::{Digest, Evidence, Hash, SALT_LEN};
use crate::error::{Error, Result};
use crate::event::{DeliveryStatus, Pricing, Referral, TemplateRecord, TemplateStatusUpdate};
use crate::policy::{
    Action, Category, ConsentFact, ConsentState, Reason, TemplateBody, TemplateFacts,
    TemplateStatus, Verdict, WINDOW_CLOSED_CODES, WINDOW_MS, WindowFacts, fold,
};
use crate::time::{Timestamp, effective};

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// The queries of one PostgreSQL transaction (a [`super::PgDb`]'s). Each
/// statement is prepared once per connection ([`super::Statements`]).
pub struct PgQueries<'a, 't> {
    tx: RefCell<&'a mut Transaction<'t>>,
    statements: RefCell<&'a mut super::Statements>,
    /// The tombstone secret as the transaction's first statement read it.
    secret: Option<Vec<u8>>,
}

/// A column of a row, or [`Error::Corrupt`] when it does not read as `T`.
fn col<'r, T: FromSql<'r>>(r: &'r Row, i: usize) -> Result<T> {
    r.try_get(i)
        .map_err(|e| corrupt("postgres row", format!("column {i}: {e}")))
}

fn flag(r: &Row, i: usize) -> Result<bool> {
    Ok(col::<i64>(r, i)? != 0)
}

impl<'a, 't> PgQueries<'a, 't> {
    /// The queries of `db`'s transaction.
    pub fn new(db: &'a mut super::PgDb<'t>) -> Self {
        let (tx, statements, secret) = db.parts();
        PgQueries {
            tx: RefCell::new(tx),
            statements: RefCell::new(statements),
            secret,
        }
    }

    /// Runs `f` on the transaction with `sql` prepared (once per
    /// connection: a statement outlives the transaction that prepared it).
    fn with<T>(
        &self,
        sql: &str,
        f: impl FnOnce(&mut Transaction<'t>, &::postgres::Statement) -> Result<T>,
    ) -> Result<T> {
        let busy = || Error::Background("a PostgreSQL query ran inside another".into());
        let mut tx = self.tx.try_borrow_mut().map_err(|_| busy())?;
        let mut statements = self.statements.try_borrow_mut().map_err(|_| busy())?;
        let statement = super::prepared(&mut tx, &mut statements, sql)?;
        drop(statements);
        f(&mut tx, &statement)
    }

    fn all(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.with(sql, |tx, s| Ok(tx.query(s, params)?))
    }

    fn opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        self.with(sql, |tx, s| Ok(tx.query_opt(s, params)?))
    }

    fn one(&self, sql: &str, params: Params<'_>) -> Result<Row> {
        self.with(sql, |tx, s| Ok(tx.query_one(s, params)?))
    }

    fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        self.with(sql, |tx, s| Ok(tx.execute(s, params)?))
    }

    fn secret(&self) -> Result<Vec<u8>> {
        let read = match &self.secret {
            Some(s) => Some(s.clone()),
            None => self
                .opt("SELECT value FROM secrets WHERE name = 'tombstone'", &[])?
                .map(|r| col::<Vec<u8>>(&r, 0))
                .transpose()?,
        };
        match read {
            Some(s) => {
                if s.len() == 32 {
                    Ok(s)
                } else {
                    Err(corrupt(
                        "secrets",
                        "the tombstone secret is not 32 bytes".into(),
                    ))
                }
            }
            None => Err(corrupt("secrets", "the tombstone secret is missing".into())),
        }
    }

    fn address_row(&self, business: i64, key: &str) -> Result<Option<AddressRow>> {
        let Some(r) = self.opt(
            "SELECT id, person_id, linked FROM users WHERE business_id = $1 AND key = $2",
            &[&business, &key],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(AddressRow {
            id: col(&r, 0)?,
            person: col(&r, 1)?,
            key: key.to_owned(),
            linked: flag(&r, 2)?,
        }))
    }

    /// Reads the trail of some addresses (a person, one address, or the
    /// whole business), verifying every chain as the SQLite store does.
    fn trail(
        &self,
        business: BusinessRef<'_>,
        filter: &str,
        arg: i64,
        f: &mut dyn FnMut(&Walked<'_>, &EventRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT u.id, u.key, u.consent_count, u.consent_head,
                    c.seq, c.action, c.scope, c.at, c.received_at, c.effective, c.conditional,
                    c.source, c.evidence, c.hash, c.salt, c.evidence_digest
             FROM users u LEFT JOIN consent_events c
               ON c.business_id = u.business_id AND c.user_id = u.id
             WHERE u.business_id = $1 AND {filter} ORDER BY u.id, c.seq"
        );
        let rows = self.all(&sql, &[&business.id, &arg])?;
        let secret = self.secret()?;
        let mut walk = TrailWalk::new(business, &secret);
        for r in &rows {
            walk.address(&AddressHead {
                user: col(r, 0)?,
                key: col(r, 1)?,
                count: col(r, 2)?,
                head: col(r, 3)?,
            })?;
            let Some(seq) = col::<Option<i64>>(r, 4)? else {
                continue;
            };
            let e = EventRow {
                seq,
                action: col(r, 5)?,
                scope: col(r, 6)?,
                at: col(r, 7)?,
                received_at: col(r, 8)?,
                effective: col(r, 9)?,
                conditional: flag(r, 10)?,
                source: col(r, 11)?,
                evidence: col(r, 12)?,
                hash: col(r, 13)?,
                salt: col(r, 14)?,
                evidence_digest: col(r, 15)?,
            };
            let at = walk.event(&e)?;
            f(&at, &e)?;
        }
        walk.finish()
    }

    fn trail_of(
        &self,
        business: BusinessRef<'_>,
        who: &Addresses,
        f: &mut dyn FnMut(&Walked<'_>, &EventRow<'_>) -> Result<()>,
    ) -> Result<()> {
        match who {
            Addresses::Person(p) => self.trail(business, "u.person_id = $2", *p, f),
            Addresses::One(id) => self.trail(business, "u.id = $2", *id, f),
            Addresses::Some(ids) => {
                for id in ids {
                    self.trail(business, "u.id = $2", *id, f)?;
                }
                Ok(())
            }
        }
    }

    fn window_as_of(
        &self,
        business: i64,
        ids: &[i64],
        sender: &str,
        t: Timestamp,
    ) -> Result<(Option<i64>, Option<i64>, Option<i64>)> {
        let mut out: (Option<i64>, Option<i64>, Option<i64>) = (None, None, None);
        let t = t.as_millis();
        let codes: Vec<i64> = WINDOW_CLOSED_CODES.iter().map(|c| i64::from(*c)).collect();
        for &id in ids {
            let r = self.one(
                "SELECT max(LEAST(at, received_at)),
                        max(CASE WHEN referral IS NOT NULL THEN LEAST(at, received_at) END)
                 FROM inbound_messages
                 WHERE business_id = $1 AND user_id = $2 AND sender = $3 AND received_at <= $4
                   AND kind NOT IN ('reaction', 'unsupported', 'system')",
                &[&business, &id, &sender, &t],
            )?;
            let (last, referral): (Option<i64>, Option<i64>) = (col(&r, 0)?, col(&r, 1)?);
            let ours: Option<i64> = col(
                &self.one(
                    "SELECT max(s.at) FROM sends s JOIN feedback f ON f.send_id = s.id
                     WHERE s.user_id = $1 AND s.sender = $2 AND f.at <= $3 AND f.code = ANY($4)",
                    &[&id, &sender, &t, &codes],
                )?,
                0,
            )?;
            let elsewhere: Option<i64> = col(
                &self.one(
                    "SELECT max(LEAST(at, received_at)) FROM external_feedback
                     WHERE business_id = $1 AND user_id = $2 AND sender = $3 AND received_at <= $4
                       AND code = ANY($5)",
                    &[&business, &id, &sender, &t, &codes],
                )?,
                0,
            )?;
            out.0 = out.0.max(last);
            out.1 = out.1.max(ours).max(elsewhere);
            out.2 = out.2.max(referral);
        }
        Ok(out)
    }

    fn first_send(
        &self,
        business: i64,
        who: &Addresses,
        sender: &str,
        referral: i64,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Timestamp>> {
        let end = referral.saturating_add(WINDOW_MS);
        let end = as_of.map_or(end, |t| end.min(t.as_millis().saturating_add(1)));
        let v: Option<i64> = match who {
            Addresses::Person(p) => col(
                &self.one(
                    "SELECT min(s.at) FROM users u JOIN sends s ON s.user_id = u.id
                     WHERE u.business_id = $1 AND u.person_id = $2 AND s.sender = $3
                       AND s.at >= $4 AND s.at < $5 AND s.state IN ('reserved', 'sent')",
                    &[&business, p, &sender, &referral, &end],
                )?,
                0,
            )?,
            Addresses::One(_) | Addresses::Some(_) => {
                let ids = match who {
                    Addresses::One(id) => std::slice::from_ref(id),
                    Addresses::Some(ids) => ids.as_slice(),
                    Addresses::Person(_) => &[],
                };
                let mut best: Option<i64> = None;
                for id in ids {
                    let v: Option<i64> = col(
                        &self.one(
                            "SELECT min(at) FROM sends
                             WHERE user_id = $1 AND sender = $2 AND at >= $3 AND at < $4
                               AND state IN ('reserved', 'sent')",
                            &[id, &sender, &referral, &end],
                        )?,
                        0,
                    )?;
                    best = match (best, v) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                best
            }
        };
        Ok(ts(v))
    }

    #[allow(clippy::too_many_arguments)]
    fn template_event(
        &self,
        business: i64,
        name: &str,
        language: &str,
        definition: Option<(Category, &str)>,
        status: &TemplateStatus,
        (at, received_at): (Timestamp, Timestamp),
        source: &str,
        ids: (Option<&str>, Option<&str>),
    ) -> Result<()> {
        self.exec(
            "INSERT INTO template_events (business_id, name, language, category, body, status, at,
                 received_at, effective, source, twilio_content_sid, meta_template_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &business,
                &name,
                &language,
                &definition.map(|(c, _)| c.as_str()),
                &definition.map(|(_, b)| b),
                &status.as_str(),
                &at.as_millis(),
                &received_at.as_millis(),
                &effective(at, received_at).as_millis(),
                &source,
                &ids.0,
                &ids.1,
            ],
        )?;
        Ok(())
    }

    fn send_where(&self, filter: &str, params: Params<'_>) -> Result<Option<SendRow>> {
        let sql = format!(
            "SELECT id, sender, user_id, at, template_name, template_language, reason, state,
                    provider_id, status, idempotency_key
             FROM sends WHERE {filter}"
        );
        let Some(r) = self.opt(&sql, params)? else {
            return Ok(None);
        };
        let reason: String = col(&r, 6)?;
        let state: String = col(&r, 7)?;
        let tname: Option<String> = col(&r, 4)?;
        let tlang: Option<String> = col(&r, 5)?;
        Ok(Some(SendRow {
            id: col(&r, 0)?,
            key: col(&r, 10)?,
            sender: col(&r, 1)?,
            user_id: col(&r, 2)?,
            at: Timestamp::from_millis(col(&r, 3)?),
            template: tname.zip(tlang),
            reason: Reason::parse(&reason)
                .ok_or_else(|| corrupt("sends", format!("unknown reason {reason:?}")))?,
            state: SendState::parse(&state)?,
            provider_id: col(&r, 8)?,
            status: col(&r, 9)?,
        }))
    }

    fn check_people(&self, business: i64, digest: &mut Digest) -> Result<Option<String>> {
        use std::collections::BTreeMap;
        fn root(parent: &BTreeMap<i64, i64>, mut x: i64) -> i64 {
            while let Some(&p) = parent.get(&x) {
                if p == x {
                    break;
                }
                x = p;
            }
            x
        }
        let mut parent: BTreeMap<i64, i64> = BTreeMap::new();
        for r in &self.all(
            "SELECT l.phone_id, l.bsuid_id, p.key, b.key FROM links l
               JOIN users p ON p.id = l.phone_id JOIN users b ON b.id = l.bsuid_id
             WHERE l.business_id = $1 ORDER BY p.key COLLATE \"C\", b.key COLLATE \"C\"",
            &[&business],
        )? {
            let (a, b): (i64, i64) = (col(r, 0)?, col(r, 1)?);
            digest.field(col::<&str>(r, 2)?.as_bytes());
            digest.field(col::<&str>(r, 3)?.as_bytes());
            parent.entry(a).or_insert(a);
            parent.entry(b).or_insert(b);
            let (ra, rb) = (root(&parent, a), root(&parent, b));
            if ra != rb {
                parent.insert(ra.max(rb), ra.min(rb));
            }
        }
        for r in &self.all(
            "SELECT id, key, person_id, linked FROM users WHERE business_id = $1 ORDER BY id",
            &[&business],
        )? {
            let (id, person, linked): (i64, i64, bool) = (col(r, 0)?, col(r, 2)?, flag(r, 3)?);
            let key: String = col(r, 1)?;
            let expected = if parent.contains_key(&id) {
                root(&parent, id)
            } else {
                id
            };
            if linked != parent.contains_key(&id) || person != expected {
                return Ok(Some(format!(
                    "the person of {key} is not what its links say (person {person}, links give {expected})"
                )));
            }
        }
        Ok(None)
    }

    /// (row, digest) of every open event of an address, after verifying it.
    fn open_events(&self, business: BusinessRef<'_>, user: i64) -> Result<Vec<(i64, Hash)>> {
        let mut open = Vec::new();
        self.trail(business, "u.id = $2", user, &mut |_, e| {
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
        })?;
        Ok(open)
    }
}

impl super::super::WriteTx for PgQueries<'_, '_> {
    fn queries(&self) -> &dyn Queries {
        self
    }

    fn savepoint(&mut self, f: &mut dyn FnMut(&dyn Queries) -> Result<()>) -> Result<Result<()>> {
        let tx: &mut Transaction<'_> = self.tx.get_mut();
        let statements: &mut super::Statements = self.statements.get_mut();
        let mut sp = tx.savepoint("item")?;
        let result = f(&PgQueries {
            tx: RefCell::new(&mut sp),
            statements: RefCell::new(statements),
            secret: self.secret.clone(),
        });
        match result {
            Ok(()) => {
                sp.commit()?;
                Ok(Ok(()))
            }
            Err(e) => {
                // In PostgreSQL a failed statement spoils the transaction
                // unless its savepoint is rolled back.
                let undo = sp.rollback();
                if e.is_store_failure() {
                    Err(e)
                } else {
                    undo?;
                    Ok(Err(e))
                }
            }
        }
    }
}

fn link_row(r: &Row) -> Result<LinkRow> {
    Ok(LinkRow {
        phone: col(r, 0)?,
        bsuid: col(r, 1)?,
        at: Timestamp::from_millis(col(r, 2)?),
        received_at: Timestamp::from_millis(col(r, 3)?),
        source: col(r, 4)?,
    })
}

/// Keys sort byte-wise, as SQLite's BINARY collation does, so digests and
/// listings agree between the stores.
const BY_KEY: &str = "COLLATE \"C\"";

impl Queries for PgQueries<'_, '_> {
    fn business_id(&self, name: &str, create: bool) -> Result<Option<i64>> {
        if let Some(r) = self.opt("SELECT id FROM businesses WHERE name = $1", &[&name])? {
            return Ok(Some(col(&r, 0)?));
        }
        if !create {
            return Ok(None);
        }
        // Two instances creating the same business: one inserts, both read.
        self.exec(
            "INSERT INTO businesses (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&name],
        )?;
        let r = self.one("SELECT id FROM businesses WHERE name = $1", &[&name])?;
        Ok(Some(col(&r, 0)?))
    }

    fn businesses(&self) -> Result<Vec<(i64, String)>> {
        self.all(
            &format!("SELECT id, name FROM businesses ORDER BY name {BY_KEY}"),
            &[],
        )?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect()
    }

    fn address(&self, business: i64, key: &str) -> Result<Option<AddressRow>> {
        if let Some(row) = self.address_row(business, key)? {
            return Ok(Some(row));
        }
        // Decided by the keys themselves, as in SQLite.
        let any: bool = col(
            &self.one(
                "SELECT EXISTS (SELECT 1 FROM users WHERE business_id = $1
                                  AND key >= 'erased:' AND key < 'erased;')",
                &[&business],
            )?,
            0,
        )?;
        if !any {
            return Ok(None);
        }
        let tomb = tombstone_key(&self.secret()?, business, key)?;
        self.address_row(business, &tomb)
    }

    fn ensure_address(&self, business: i64, address: &Address) -> Result<AddressRow> {
        if let Some(row) = self.address(business, address.as_str())? {
            return Ok(row);
        }
        // Another instance may create the same address at once: one insert
        // wins, the other reads its row (SERIALIZABLE retries the loser).
        let id: i64 = match self.opt(
            "INSERT INTO users (business_id, key) VALUES ($1, $2)
             ON CONFLICT (business_id, key) DO NOTHING RETURNING id",
            &[&business, &address.as_str()],
        )? {
            Some(r) => col(&r, 0)?,
            None => {
                return self
                    .address_row(business, address.as_str())?
                    .ok_or_else(|| {
                        corrupt(
                            "users",
                            format!("{} was inserted and is not there", address.as_str()),
                        )
                    });
            }
        };
        self.exec("UPDATE users SET person_id = id WHERE id = $1", &[&id])?;
        Ok(AddressRow {
            id,
            person: id,
            key: address.as_str().to_owned(),
            linked: false,
        })
    }

    fn address_by_id(&self, id: i64) -> Result<AddressRow> {
        let r = self
            .opt(
                "SELECT person_id, key, linked FROM users WHERE id = $1",
                &[&id],
            )?
            .ok_or_else(|| corrupt("users", format!("no user row {id}")))?;
        Ok(AddressRow {
            id,
            person: col(&r, 0)?,
            key: col(&r, 1)?,
            linked: flag(&r, 2)?,
        })
    }

    fn link(&self, business: i64, l: &NewLink<'_>) -> Result<bool> {
        let is = |row: &AddressRow, prefix: &str| {
            row.key.starts_with(prefix) || row.key.starts_with(TOMBSTONE)
        };
        if !is(l.phone, "whatsapp:") || !is(l.bsuid, "bsuid:") {
            return Err(Error::InvalidEvent(format!(
                "a link joins a phone and a business-scoped user id, not {} and {}",
                l.phone.key, l.bsuid.key
            )));
        }
        self.exec(
            "INSERT INTO links (business_id, phone_id, bsuid_id, at, received_at, source)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &business,
                &l.phone.id,
                &l.bsuid.id,
                &l.at.as_millis(),
                &l.received_at.as_millis(),
                &l.source,
            ],
        )?;
        // Both rows locked, in id order, then re-read: either person may
        // have merged since they were read.
        let rows = self.all(
            "SELECT id, person_id FROM users WHERE id IN ($1, $2) ORDER BY id FOR UPDATE",
            &[&l.phone.id, &l.bsuid.id],
        )?;
        let person = |id: i64| -> Result<i64> {
            for r in &rows {
                if col::<i64>(r, 0)? == id {
                    return col(r, 1);
                }
            }
            Err(corrupt("users", format!("no user row {id}")))
        };
        let (a, b) = (person(l.phone.id)?, person(l.bsuid.id)?);
        if a == b {
            return Ok(false);
        }
        self.exec(
            "UPDATE users SET person_id = $2, linked = 1
             WHERE business_id = $1 AND person_id IN ($2, $3)",
            &[&business, &a.min(b), &a.max(b)],
        )?;
        Ok(true)
    }

    fn phone_linked_to(&self, business: i64, bsuid: i64) -> Result<Option<String>> {
        match self.opt(
            "SELECT u.key FROM links l JOIN users u ON u.id = l.phone_id
             WHERE l.business_id = $1 AND l.bsuid_id = $2 AND u.key LIKE 'whatsapp:%'
             ORDER BY l.at DESC, l.received_at DESC, u.id DESC LIMIT 1",
            &[&business, &bsuid],
        )? {
            Some(r) => Ok(Some(col(&r, 0)?)),
            None => Ok(None),
        }
    }

    fn person_addresses(&self, business: i64, person: i64) -> Result<Vec<AddressRow>> {
        self.all(
            "SELECT id, key, linked FROM users WHERE business_id = $1 AND person_id = $2 ORDER BY id",
            &[&business, &person],
        )?
        .iter()
        .map(|r| {
            Ok(AddressRow {
                id: col(r, 0)?,
                person,
                key: col(r, 1)?,
                linked: flag(r, 2)?,
            })
        })
        .collect()
    }

    fn person_links(&self, business: i64, person: i64) -> Result<Vec<LinkRow>> {
        self.all(
            &format!(
                "SELECT p.key, b.key, l.at, l.received_at, l.source
                 FROM users p JOIN links l ON l.business_id = p.business_id AND l.phone_id = p.id
                              JOIN users b ON b.id = l.bsuid_id
                 WHERE p.business_id = $1 AND p.person_id = $2
                 ORDER BY l.received_at, p.key {BY_KEY}, b.key {BY_KEY}"
            ),
            &[&business, &person],
        )?
        .iter()
        .map(link_row)
        .collect()
    }

    fn person_as_of(&self, business: i64, start: &AddressRow, t: Timestamp) -> Result<Vec<i64>> {
        let mut seen = vec![start.id];
        let mut i = 0;
        while let Some(&id) = seen.get(i) {
            i += 1;
            for r in &self.all(
                "SELECT bsuid_id FROM links WHERE business_id = $1 AND phone_id = $2 AND received_at <= $3
                 UNION SELECT phone_id FROM links WHERE business_id = $1 AND bsuid_id = $2 AND received_at <= $3",
                &[&business, &id, &t.as_millis()],
            )? {
                let n: i64 = col(r, 0)?;
                if !seen.contains(&n) {
                    seen.push(n);
                }
            }
        }
        seen.sort_unstable();
        Ok(seen)
    }

    fn has_links(&self, business: i64, id: i64) -> Result<bool> {
        let r = self.one(
            "SELECT EXISTS (SELECT 1 FROM links WHERE business_id = $1 AND phone_id = $2)
                 OR EXISTS (SELECT 1 FROM links WHERE business_id = $1 AND bsuid_id = $2)",
            &[&business, &id],
        )?;
        col(&r, 0)
    }

    fn for_each_link(
        &self,
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        f: &mut dyn FnMut(&LinkRow) -> Result<()>,
    ) -> Result<()> {
        for r in &self.all(
            &format!(
                "SELECT p.key, b.key, l.at, l.received_at, l.source
                 FROM links l JOIN users p ON p.id = l.phone_id JOIN users b ON b.id = l.bsuid_id
                 WHERE l.business_id = $1 AND l.received_at >= $2
                 ORDER BY l.received_at, p.key {BY_KEY}, b.key {BY_KEY}"
            ),
            &[&business.id, &since.map_or(i64::MIN, Timestamp::as_millis)],
        )? {
            f(&link_row(r)?)?;
        }
        Ok(())
    }

    fn add_consent(
        &self,
        business: BusinessRef<'_>,
        user: &AddressRow,
        c: &NewConsent<'_>,
    ) -> Result<()> {
        // The row lock serialises appends to one chain across instances.
        let r = self.one(
            "SELECT consent_count, consent_head FROM users WHERE id = $1 FOR UPDATE",
            &[&user.id],
        )?;
        let (count, head): (i64, Option<Vec<u8>>) = (col(&r, 0)?, col(&r, 1)?);
        let NextEvent { seq, salt, hash } = next_event(
            business,
            &self.secret()?,
            &user.key,
            (count, head.as_deref()),
            c,
        )?;
        self.exec(
            "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at,
                 effective, conditional, source, evidence, hash, salt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &business.id,
                &user.id,
                &seq,
                &c.action.as_str(),
                &c.scope.as_str(),
                &c.at.as_millis(),
                &c.received_at.as_millis(),
                &effective(c.at, c.received_at).as_millis(),
                &i64::from(c.conditional),
                &c.source,
                &c.evidence,
                &&hash.0[..],
                &&salt[..],
            ],
        )?;
        self.exec(
            "UPDATE users SET consent_count = $2, consent_head = $3 WHERE id = $1",
            &[&user.id, &seq, &&hash.0[..]],
        )?;
        Ok(())
    }

    fn has_consent(
        &self,
        business: i64,
        user: i64,
        c: &NewConsent<'_>,
        same_arrival: bool,
    ) -> Result<bool> {
        let r = self.one(
            "SELECT EXISTS (SELECT 1 FROM consent_events c
             WHERE c.business_id = $1 AND c.user_id = $2 AND c.action = $3 AND c.scope = $4
               AND c.at = $5 AND c.source = $6 AND c.evidence IS NOT DISTINCT FROM $7
               AND c.conditional = $8 AND (NOT $9 OR c.received_at = $10))",
            &[
                &business,
                &user,
                &c.action.as_str(),
                &c.scope.as_str(),
                &c.at.as_millis(),
                &c.source,
                &c.evidence,
                &i64::from(c.conditional),
                &same_arrival,
                &c.received_at.as_millis(),
            ],
        )?;
        col(&r, 0)
    }

    fn person_consent(
        &self,
        business: BusinessRef<'_>,
        addresses: &Addresses,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<ConsentFact>> {
        let mut out = Vec::new();
        self.trail_of(business, addresses, &mut |_, e| {
            if as_of.is_some_and(|t| e.received_at > t.as_millis()) {
                return Ok(());
            }
            if let Some(fact) = e.fact()? {
                out.push(fact);
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn person_trail(
        &self,
        business: BusinessRef<'_>,
        person: i64,
    ) -> Result<Vec<(String, ConsentRow)>> {
        let mut out = Vec::new();
        self.trail(business, "u.person_id = $2", person, &mut |at, e| {
            out.push((at.key.to_owned(), e.consent_row(at)?));
            Ok(())
        })?;
        out.sort_by(|(ka, a), (kb, b)| (a.effective, ka, a.seq).cmp(&(b.effective, kb, b.seq)));
        Ok(out)
    }

    fn for_each_consent(
        &self,
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        f: &mut dyn FnMut(&str, &ConsentRow) -> Result<()>,
    ) -> Result<()> {
        self.trail(business, "$2::bigint = 0", 0, &mut |at, e| {
            let row = e.consent_row(at)?;
            if since.is_none_or(|s| row.received_at >= s) {
                f(at.key, &row)?;
            }
            Ok(())
        })
    }

    fn verify_chains(&self, business: BusinessRef<'_>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let users = self.all(
            &format!(
                "SELECT id, key, consent_count, consent_head FROM users WHERE business_id = $1
                 ORDER BY key {BY_KEY}"
            ),
            &[&business.id],
        )?;
        let mut digest = Digest::new();
        for r in &users {
            let (id, key, count, head): (i64, &str, i64, Option<&[u8]>) =
                (col(r, 0)?, col(r, 1)?, col(r, 2)?, col(r, 3)?);
            report.addresses += 1;
            if count > 0 {
                digest.field(key.as_bytes());
                digest.field(count.to_string().as_bytes());
                digest.field(head.unwrap_or_default());
            }
            let mut events = 0u64;
            match self.trail(business, "u.id = $2", id, &mut |_, _| {
                events += 1;
                Ok(())
            }) {
                Ok(()) => {}
                Err(e @ (Error::ChainBroken { .. } | Error::Corrupt { .. })) => {
                    if report.broken.is_none() {
                        report.broken = Some(e.to_string());
                    }
                }
                Err(e) => return Err(e),
            }
            report.events += events;
        }
        let orphans: i64 = col(
            &self.one(
                "SELECT count(*) FROM consent_events c WHERE c.business_id = $1
                   AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id AND u.business_id = c.business_id)",
                &[&business.id],
            )?,
            0,
        )?;
        if orphans > 0 && report.broken.is_none() {
            report.broken = Some(format!(
                "{orphans} consent events belong to no address of this business"
            ));
        }
        let people = self.check_people(business.id, &mut digest)?;
        if report.broken.is_none() {
            report.broken = people;
        }
        report.heads_digest = digest.finish().to_hex();
        Ok(report)
    }

    fn chain_heads(&self, business: i64) -> Result<Vec<ChainHead>> {
        self.all(
            &format!(
                "SELECT key, consent_count, consent_head FROM users WHERE business_id = $1
                 ORDER BY key {BY_KEY}"
            ),
            &[&business],
        )?
        .iter()
        .map(|r| {
            let head: Option<Vec<u8>> = col(r, 2)?;
            Ok(ChainHead {
                user: col(r, 0)?,
                events: col(r, 1)?,
                head: head
                    .map(|h| Hash::from_slice(&h).map_or_else(|| "invalid".into(), |h| h.to_hex())),
            })
        })
        .collect()
    }

    fn insert_inbound(&self, business: i64, m: &NewInbound<'_>) -> Result<InboundInsert> {
        let n = self.exec(
            "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at,
                 received_at, keyword, referral, also_user_id, fingerprint)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (business_id, provider_id) DO NOTHING",
            &[
                &business,
                &m.id,
                &m.user,
                &m.sender,
                &m.kind.as_str(),
                &m.at.as_millis(),
                &m.received_at.as_millis(),
                &m.keyword.map(keyword_str),
                &m.referral.map(Referral::as_str),
                &m.also,
                &&m.fingerprint.0[..],
            ],
        )?;
        if n == 1 {
            return Ok(InboundInsert::New);
        }
        let Some(r) = self.opt(
            "SELECT user_id, also_user_id, sender, kind, referral, fingerprint
             FROM inbound_messages WHERE business_id = $1 AND provider_id = $2",
            &[&business, &m.id],
        )?
        else {
            return Ok(InboundInsert::Conflict);
        };
        let fingerprint: Option<Vec<u8>> = col(&r, 5)?;
        let same = match fingerprint {
            Some(f) => f.as_slice() == m.fingerprint.0.as_slice(),
            None => {
                col::<i64>(&r, 0)? == m.user
                    && col::<Option<i64>>(&r, 1)? == m.also
                    && col::<&str>(&r, 2)? == m.sender
                    && col::<&str>(&r, 3)? == m.kind.as_str()
                    && col::<Option<&str>>(&r, 4)? == m.referral.map(Referral::as_str)
            }
        };
        Ok(if same {
            InboundInsert::Duplicate
        } else {
            InboundInsert::Conflict
        })
    }

    fn raise_window(&self, business: i64, w: &WindowRaise<'_>) -> Result<()> {
        // GREATEST ignores NULLs: a column only ever grows.
        self.exec(
            "INSERT INTO windows (business_id, user_id, sender, last_inbound, closed_through, referral_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (business_id, user_id, sender) DO UPDATE SET
                 last_inbound = GREATEST(windows.last_inbound, excluded.last_inbound),
                 closed_through = GREATEST(windows.closed_through, excluded.closed_through),
                 referral_at = GREATEST(windows.referral_at, excluded.referral_at)",
            &[
                &business,
                &w.user,
                &w.sender,
                &w.last_inbound.map(Timestamp::as_millis),
                &w.closed_through.map(Timestamp::as_millis),
                &w.referral_at.map(Timestamp::as_millis),
            ],
        )?;
        Ok(())
    }

    fn person_window(
        &self,
        business: i64,
        who: &Addresses,
        sender: &str,
        as_of: Option<Timestamp>,
    ) -> Result<WindowFacts> {
        let (last, closed, referral) = match (who, as_of) {
            (Addresses::Person(p), None) => {
                let r = self.one(
                    "SELECT max(w.last_inbound), max(w.closed_through), max(w.referral_at)
                     FROM users u JOIN windows w
                       ON w.business_id = u.business_id AND w.user_id = u.id AND w.sender = $3
                     WHERE u.business_id = $1 AND u.person_id = $2",
                    &[&business, p, &sender],
                )?;
                (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?)
            }
            (Addresses::One(id), None) => match self.opt(
                "SELECT last_inbound, closed_through, referral_at FROM windows
                 WHERE business_id = $1 AND user_id = $2 AND sender = $3",
                &[&business, id, &sender],
            )? {
                Some(r) => (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?),
                None => (None, None, None),
            },
            (Addresses::One(id), Some(t)) => self.window_as_of(business, &[*id], sender, t)?,
            (Addresses::Person(p), Some(t)) => {
                let ids: Vec<i64> = self
                    .person_addresses(business, *p)?
                    .into_iter()
                    .map(|a| a.id)
                    .collect();
                self.window_as_of(business, &ids, sender, t)?
            }
            (Addresses::Some(ids), t) => self.window_as_of(
                business,
                ids,
                sender,
                t.unwrap_or(Timestamp::from_millis(i64::MAX)),
            )?,
        };
        let first_reply = match referral {
            None => None,
            Some(r) => self.first_send(business, who, sender, r, as_of)?,
        };
        Ok(WindowFacts {
            last_inbound: ts(last),
            closed_through: ts(closed),
            referral_at: ts(referral),
            first_reply_after_referral: first_reply,
        })
    }

    fn window_senders(&self, business: i64, person: i64) -> Result<Vec<String>> {
        self.all(
            &format!(
                "SELECT w.sender FROM users u JOIN windows w
                   ON w.business_id = u.business_id AND w.user_id = u.id
                 WHERE u.business_id = $1 AND u.person_id = $2
                 GROUP BY w.sender ORDER BY w.sender {BY_KEY}"
            ),
            &[&business, &person],
        )?
        .iter()
        .map(|r| col(r, 0))
        .collect()
    }

    fn mark_external_feedback(&self, business: i64, f: &ExternalFeedback<'_>) -> Result<bool> {
        let code = i64::from(f.code);
        let n = self.exec(
            "INSERT INTO external_feedback (business_id, provider_id, code, sender, user_id, at, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &business,
                &f.provider_id,
                &code,
                &f.sender,
                &f.user,
                &f.at.as_millis(),
                &f.received_at.as_millis(),
            ],
        )?;
        if n == 1 {
            return Ok(true);
        }
        let r = self.one(
            "SELECT sender, user_id FROM external_feedback
             WHERE business_id = $1 AND provider_id = $2 AND code = $3",
            &[&business, &f.provider_id, &code],
        )?;
        if (col::<&str>(&r, 0)?, col::<i64>(&r, 1)?) != (f.sender, f.user) {
            return Err(Error::MessageIdReused(f.provider_id.to_owned()));
        }
        Ok(false)
    }

    fn template(
        &self,
        business: i64,
        name: &str,
        language: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Option<StoredTemplate>> {
        let row = match as_of {
            None => self.opt(
                "SELECT category, body, definition_at, status, status_at, twilio_content_sid, meta_template_id
                 FROM templates WHERE business_id = $1 AND name = $2 AND language = $3",
                &[&business, &name, &language],
            )?,
            Some(t) => self.opt(
                "SELECT d.category, d.body, d.effective, s.status, s.effective,
                        (SELECT twilio_content_sid FROM template_events i
                          WHERE i.business_id = $1 AND i.name = $2 AND i.language = $3 AND i.received_at <= $4
                            AND i.twilio_content_sid IS NOT NULL ORDER BY i.effective DESC, i.id DESC LIMIT 1),
                        (SELECT meta_template_id FROM template_events i
                          WHERE i.business_id = $1 AND i.name = $2 AND i.language = $3 AND i.received_at <= $4
                            AND i.meta_template_id IS NOT NULL ORDER BY i.effective DESC, i.id DESC LIMIT 1)
                 FROM (SELECT category, body, effective FROM template_events
                        WHERE business_id = $1 AND name = $2 AND language = $3 AND received_at <= $4
                          AND body IS NOT NULL
                        ORDER BY effective DESC, id DESC LIMIT 1) d,
                      (SELECT status, effective FROM template_events
                        WHERE business_id = $1 AND name = $2 AND language = $3 AND received_at <= $4
                        ORDER BY effective DESC, id DESC LIMIT 1) s",
                &[&business, &name, &language, &t.as_millis()],
            )?,
        };
        let Some(r) = row else {
            return Ok(None);
        };
        let bad = |e: crate::policy::TemplateError| {
            corrupt("templates", format!("{name}/{language}: {e}"))
        };
        Ok(Some(StoredTemplate {
            facts: TemplateFacts {
                category: Category::parse(col(&r, 0)?).map_err(bad)?,
                status: TemplateStatus::parse(col(&r, 3)?).map_err(bad)?,
                body: TemplateBody::parse(col(&r, 1)?).map_err(bad)?,
            },
            definition_at: Timestamp::from_millis(col(&r, 2)?),
            status_at: Timestamp::from_millis(col(&r, 4)?),
            twilio_content_sid: col(&r, 5)?,
            meta_template_id: col(&r, 6)?,
        }))
    }

    fn put_template(
        &self,
        business: i64,
        t: &TemplateRecord,
        received_at: Timestamp,
    ) -> Result<()> {
        let eff = effective(t.at, received_at).as_millis();
        self.template_event(
            business,
            &t.name,
            &t.language,
            Some((t.category, t.body.as_str())),
            &t.status,
            (t.at, received_at),
            "record",
            (
                t.twilio_content_sid.as_deref(),
                t.meta_template_id.as_deref(),
            ),
        )?;
        self.exec(
            "INSERT INTO templates AS c (business_id, name, language, category, body, definition_at,
                 status, status_at, twilio_content_sid, meta_template_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $8, $9)
             ON CONFLICT (business_id, name, language) DO UPDATE SET
                 category = CASE WHEN excluded.definition_at >= c.definition_at
                                 THEN excluded.category ELSE c.category END,
                 body = CASE WHEN excluded.definition_at >= c.definition_at
                             THEN excluded.body ELSE c.body END,
                 twilio_content_sid = CASE WHEN excluded.definition_at >= c.definition_at
                     THEN coalesce(excluded.twilio_content_sid, c.twilio_content_sid)
                     ELSE c.twilio_content_sid END,
                 meta_template_id = CASE WHEN excluded.definition_at >= c.definition_at
                     THEN coalesce(excluded.meta_template_id, c.meta_template_id)
                     ELSE c.meta_template_id END,
                 definition_at = GREATEST(c.definition_at, excluded.definition_at)",
            &[
                &business,
                &t.name,
                &t.language,
                &t.category.as_str(),
                &t.body.as_str(),
                &eff,
                &t.status.as_str(),
                &t.twilio_content_sid,
                &t.meta_template_id,
            ],
        )?;
        self.exec(
            "UPDATE templates SET (status, status_at) =
                 (SELECT status, effective FROM template_events e
                   WHERE e.business_id = $1 AND e.name = $2 AND e.language = $3
                   ORDER BY effective DESC, id DESC LIMIT 1)
             WHERE business_id = $1 AND name = $2 AND language = $3",
            &[&business, &t.name, &t.language],
        )?;
        Ok(())
    }

    fn set_template_status(
        &self,
        business: i64,
        u: &TemplateStatusUpdate,
        received_at: Timestamp,
        source: &str,
    ) -> Result<bool> {
        self.template_event(
            business,
            &u.name,
            &u.language,
            None,
            &u.status,
            (u.at, received_at),
            source,
            (
                u.twilio_content_sid.as_deref(),
                u.meta_template_id.as_deref(),
            ),
        )?;
        let eff = effective(u.at, received_at).as_millis();
        let n = self.exec(
            "UPDATE templates SET
                 status = CASE WHEN $4 >= status_at THEN $5 ELSE status END,
                 status_at = GREATEST(status_at, $4),
                 twilio_content_sid = coalesce($6, twilio_content_sid),
                 meta_template_id = coalesce($7, meta_template_id)
             WHERE business_id = $1 AND name = $2 AND language = $3",
            &[
                &business,
                &u.name,
                &u.language,
                &eff,
                &u.status.as_str(),
                &u.twilio_content_sid,
                &u.meta_template_id,
            ],
        )?;
        Ok(n == 1)
    }

    fn template_keys(&self, business: i64) -> Result<Vec<(String, String)>> {
        self.all(
            &format!(
                "SELECT name, language FROM templates WHERE business_id = $1
                 ORDER BY name {BY_KEY}, language {BY_KEY}"
            ),
            &[&business],
        )?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect()
    }

    fn send_by_key(&self, business: i64, key: &str) -> Result<Option<SendRow>> {
        self.send_where(
            "business_id = $1 AND idempotency_key = $2 AND state IN ('reserved', 'sent', 'failed')",
            &[&business, &key],
        )
    }

    fn key_request(&self, business: i64, key: &str) -> Result<Option<Hash>> {
        let Some(r) = self.opt(
            "SELECT request_hash FROM sends
             WHERE business_id = $1 AND idempotency_key = $2
               AND state IN ('reserved', 'sent', 'failed', 'retryable')
             ORDER BY id DESC LIMIT 1",
            &[&business, &key],
        )?
        else {
            return Ok(None);
        };
        match col::<Option<Vec<u8>>>(&r, 0)? {
            None => Ok(None),
            Some(b) => Hash::from_slice(&b)
                .map(Some)
                .ok_or_else(|| corrupt("sends", format!("request digest under key {key:?}"))),
        }
    }

    fn send_by_provider_id(&self, business: i64, provider_id: &str) -> Result<Option<SendRow>> {
        self.send_where(
            "business_id = $1 AND provider_id = $2",
            &[&business, &provider_id],
        )
    }

    fn send_by_id(&self, id: i64) -> Result<Option<SendRow>> {
        self.send_where("id = $1", &[&id])
    }

    fn insert_send(&self, business: i64, s: &NewSend<'_>) -> Result<i64> {
        let verdict = s.reason.verdict();
        let state = if s.duplicate {
            SendState::Duplicate
        } else if verdict == Verdict::Allow {
            SendState::Reserved
        } else {
            SendState::Denied
        };
        let r = self.one(
            "INSERT INTO sends (business_id, idempotency_key, sender, recipient, user_id, at, content,
                 template_name, template_language, purpose, verdict, reason, state, request_hash, facts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
            &[
                &business,
                &s.key,
                &s.sender,
                &s.recipient,
                &s.user_id,
                &s.at.as_millis(),
                &if s.template.is_some() { "template" } else { "freeform" },
                &s.template.map(|t| t.0),
                &s.template.map(|t| t.1),
                &s.purpose,
                &verdict.as_str(),
                &s.reason.as_str(),
                &state.as_str(),
                &&s.request.0[..],
                &s.facts,
            ],
        )?;
        col(&r, 0)
    }

    fn finish_send(&self, id: i64, a: &SendAnswer<'_>) -> Result<()> {
        self.exec(
            "UPDATE sends SET state = $2, error_code = $4,
                 provider_id = CASE WHEN recipient LIKE 'erased:%' THEN NULL ELSE $3 END,
                 error = CASE WHEN recipient LIKE 'erased:%' THEN NULL ELSE $5 END
             WHERE id = $1",
            &[
                &id,
                &a.state.as_str(),
                &a.provider_id,
                &a.error_code.map(i64::from),
                &a.error,
            ],
        )?;
        Ok(())
    }

    fn advance_status(&self, id: i64, status: DeliveryStatus) -> Result<bool> {
        let n = self.exec(
            "UPDATE sends SET status = $2, status_rank = $3
             WHERE id = $1 AND (status_rank IS NULL OR status_rank < $3)",
            &[&id, &status.as_str(), &status.rank()],
        )?;
        Ok(n == 1)
    }

    fn set_pricing(&self, id: i64, pricing: &Pricing) -> Result<()> {
        let json = serde_json::to_string(pricing)
            .map_err(|e| Error::InvalidEvent(format!("pricing: {e}")))?;
        self.exec("UPDATE sends SET pricing = $2 WHERE id = $1", &[&id, &json])?;
        Ok(())
    }

    fn mark_feedback(&self, business: i64, send: i64, code: u32, at: Timestamp) -> Result<bool> {
        let n = self.exec(
            "INSERT INTO feedback (business_id, send_id, code, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&business, &send, &i64::from(code), &at.as_millis()],
        )?;
        Ok(n == 1)
    }

    fn last_confirmation(
        &self,
        business: i64,
        who: &Addresses,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Timestamp>> {
        let until = as_of.map_or(i64::MAX, Timestamp::as_millis);
        let one_address = |id: i64| -> Result<Option<i64>> {
            col(
                &self.one(
                    "SELECT max(at) FROM sends WHERE user_id = $1 AND at <= $2
                       AND reason = 'opt_out_confirmation' AND state IN ('reserved', 'sent')",
                    &[&id, &until],
                )?,
                0,
            )
        };
        let v = match who {
            Addresses::Person(p) => col(
                &self.one(
                    "SELECT max(s.at) FROM users u JOIN sends s ON s.user_id = u.id
                     WHERE u.business_id = $1 AND u.person_id = $2 AND s.at <= $3
                       AND s.reason = 'opt_out_confirmation' AND s.state IN ('reserved', 'sent')",
                    &[&business, p, &until],
                )?,
                0,
            )?,
            Addresses::One(id) => one_address(*id)?,
            Addresses::Some(ids) => {
                let mut best = None;
                for id in ids {
                    best = best.max(one_address(*id)?);
                }
                best
            }
        };
        Ok(ts(v))
    }

    fn sends(&self, business: i64, filter: &SendFilter, limit: usize) -> Result<Vec<SendRecord>> {
        let since = filter.since.map_or(i64::MIN, Timestamp::as_millis);
        let until = filter.until.map_or(i64::MAX, Timestamp::as_millis);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.all(
            "SELECT s.id, s.idempotency_key, s.at, s.sender, s.recipient, s.content, s.template_name,
                    s.template_language, s.purpose, s.verdict, s.reason, s.facts, s.state,
                    s.provider_id, s.status, s.error_code, s.error, s.pricing
             FROM sends s WHERE s.business_id = $1 AND s.at >= $2 AND s.at < $3
               AND ($4::text IS NULL OR s.idempotency_key = $4)
               AND ($5::text IS NULL OR s.provider_id = $5)
               AND ($6::text[] IS NULL OR s.recipient = ANY($6))
             ORDER BY s.at, s.id LIMIT $7",
            &[
                &business,
                &since,
                &until,
                &filter.key,
                &filter.provider_id,
                &filter.recipients,
                &limit,
            ],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = col(r, 0)?;
            let facts: Option<String> = col(r, 11)?;
            let pricing: Option<String> = col(r, 17)?;
            let feedback = self
                .all(
                    "SELECT code FROM feedback WHERE send_id = $1 ORDER BY at, code",
                    &[&id],
                )?
                .iter()
                .map(|r| col(r, 0))
                .collect::<Result<Vec<i64>>>()?;
            out.push(SendRecord {
                key: col(r, 1)?,
                at: Timestamp::from_millis(col(r, 2)?),
                from: col(r, 3)?,
                to: col(r, 4)?,
                content: col(r, 5)?,
                template: col(r, 6)?,
                language: col(r, 7)?,
                purpose: col(r, 8)?,
                decision: col(r, 9)?,
                reason: col(r, 10)?,
                facts: facts.and_then(|f| serde_json::from_str(&f).ok()),
                state: SendState::parse(col(r, 12)?)?,
                provider_id: col(r, 13)?,
                status: col(r, 14)?,
                error_code: col(r, 15)?,
                error: col(r, 16)?,
                pricing: pricing.and_then(|p| serde_json::from_str(&p).ok()),
                feedback,
            });
        }
        Ok(out)
    }

    fn stats(&self, business: i64, now: Timestamp, margin_ms: i64) -> Result<Stats> {
        let count = |sql: &str| -> Result<u64> {
            let n: i64 = col(&self.one(sql, &[&business])?, 0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let mut stats = Stats {
            users: count("SELECT count(*) FROM users WHERE business_id = $1")?,
            people: count("SELECT count(DISTINCT person_id) FROM users WHERE business_id = $1")?,
            consent_events: count("SELECT count(*) FROM consent_events WHERE business_id = $1")?,
            inbound_messages: count(
                "SELECT count(*) FROM inbound_messages WHERE business_id = $1",
            )?,
            send_attempts: count("SELECT count(*) FROM sends WHERE business_id = $1")?,
            templates: count("SELECT count(*) FROM templates WHERE business_id = $1")?,
            links: count("SELECT count(*) FROM links WHERE business_id = $1")?,
            ..Stats::default()
        };
        let since = now
            .as_millis()
            .saturating_sub(WINDOW_MS)
            .saturating_add(margin_ms.clamp(0, WINDOW_MS));
        let open: i64 = col(
            &self.one(
                "SELECT count(*) FROM windows WHERE business_id = $1 AND last_inbound > $2
                   AND (closed_through IS NULL OR closed_through < last_inbound)",
                &[&business, &since],
            )?,
            0,
        )?;
        stats.open_windows = u64::try_from(open).unwrap_or(0);
        let mut current: Option<i64> = None;
        let mut facts: Vec<ConsentFact> = Vec::new();
        let tally = |facts: &[ConsentFact], stats: &mut Stats| match fold(facts).general {
            ConsentState::OptedIn => stats.opted_in += 1,
            ConsentState::OptedOut => stats.opted_out += 1,
            ConsentState::Unknown => {}
        };
        for r in &self.all(
            "SELECT u.person_id, c.action, c.scope, c.effective, c.conditional, c.evidence_digest IS NOT NULL
             FROM consent_events c JOIN users u ON u.id = c.user_id
             WHERE c.business_id = $1 ORDER BY u.person_id",
            &[&business],
        )? {
            let person: i64 = col(r, 0)?;
            if current.is_some_and(|c| c != person) {
                tally(&facts, &mut stats);
                facts.clear();
            }
            current = Some(person);
            let action = parse_action(col(r, 1)?)?;
            if col::<bool>(r, 5)? && action == Action::OptIn {
                continue;
            }
            facts.push(ConsentFact {
                action,
                scope: parse_scope(col(r, 2)?)?,
                effective: Timestamp::from_millis(col(r, 3)?),
                conditional: flag(r, 4)?,
            });
        }
        if current.is_some() {
            tally(&facts, &mut stats);
        }
        Ok(stats)
    }

    fn purge(&self, business: i64, cutoff_ms: i64) -> Result<Purged> {
        let sends_before = cutoff_ms.saturating_sub(SEND_MARGIN_MS);
        let inbound = self.exec(
            &format!("DELETE FROM inbound_messages m USING ({KEEP}) k {PURGEABLE}"),
            &[&business, &cutoff_ms],
        )?;
        self.exec(
            "DELETE FROM feedback WHERE send_id IN
               (SELECT id FROM sends WHERE business_id = $1 AND at < $2)",
            &[&business, &sends_before],
        )?;
        let sends = self.exec(
            "DELETE FROM sends WHERE business_id = $1 AND at < $2",
            &[&business, &sends_before],
        )?;
        Ok(Purged {
            inbound_messages: usize::try_from(inbound).unwrap_or(usize::MAX),
            send_attempts: usize::try_from(sends).unwrap_or(usize::MAX),
        })
    }

    fn purgeable(&self, business: i64, cutoff_ms: i64) -> Result<Purged> {
        let inbound: i64 = col(
            &self.one(
                &format!("SELECT count(*) FROM inbound_messages m, ({KEEP}) k {PURGEABLE}"),
                &[&business, &cutoff_ms],
            )?,
            0,
        )?;
        let sends: i64 = col(
            &self.one(
                "SELECT count(*) FROM sends WHERE business_id = $1 AND at < $2",
                &[&business, &cutoff_ms.saturating_sub(SEND_MARGIN_MS)],
            )?,
            0,
        )?;
        Ok(Purged {
            inbound_messages: usize::try_from(inbound).unwrap_or(0),
            send_attempts: usize::try_from(sends).unwrap_or(0),
        })
    }

    fn forget(
        &self,
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
            self.exec(
                "UPDATE users SET key = $2, erased_at = $3 WHERE id = $1",
                &[&row.id, &tomb, &now.as_millis()],
            )?;
            for (seq, digest) in &open {
                self.exec(
                    "UPDATE consent_events SET evidence_digest = $4, salt = NULL, evidence = NULL
                     WHERE business_id = $1 AND user_id = $2 AND seq = $3",
                    &[&business.id, &row.id, seq, &&digest.0[..]],
                )?;
            }
            done.consent_events += open.len();
            done.addresses += 1;
            scrub.push((row.key.clone(), tomb));
        }
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        for row in &rows {
            let id = row.id;
            done.inbound_messages += count(self.exec(
                "DELETE FROM inbound_messages WHERE business_id = $1 AND (user_id = $2 OR also_user_id = $2)",
                &[&business.id, &id],
            )?);
            done.windows += count(self.exec(
                "DELETE FROM windows WHERE business_id = $1 AND user_id = $2",
                &[&business.id, &id],
            )?);
            done.external_feedback += count(self.exec(
                "DELETE FROM external_feedback WHERE business_id = $1 AND user_id = $2",
                &[&business.id, &id],
            )?);
            done.links += count(self.exec(
                "UPDATE links SET source = 'erased'
                 WHERE business_id = $1 AND (phone_id = $2 OR bsuid_id = $2) AND source != 'erased'",
                &[&business.id, &id],
            )?);
        }
        scrub.retain(|(key, tomb)| key != tomb);
        scrub.sort();
        scrub.dedup();
        // As SQLite: by the person's rows and by the address as sent to.
        const SCRUB: &str = "UPDATE sends SET recipient = $3, provider_id = NULL, error = NULL,
                 facts = CASE WHEN facts IS NULL THEN NULL
                              ELSE ((facts::jsonb) - 'rendered' - 'problem')::text END
             WHERE business_id = $1 AND (recipient IS DISTINCT FROM $3
                                         OR provider_id IS NOT NULL OR error IS NOT NULL) AND ";
        for row in &rows {
            let tomb = tombstone_key(&secret, business.id, &row.key)?;
            done.send_attempts += count(self.exec(
                &format!("{SCRUB} user_id = $2"),
                &[&business.id, &row.id, &tomb],
            )?);
        }
        for (key, tomb) in &scrub {
            done.send_attempts += count(self.exec(
                &format!("{SCRUB} recipient = $2"),
                &[&business.id, key, tomb],
            )?);
        }
        // PostgreSQL keeps old row versions until VACUUM reclaims them: the
        // text is gone from every query at once, from the disk after vacuum.
        done.file_scrubbed = false;
        Ok(done)
    }
}

/// As the SQLite store: sends older than the horizon by this much no
/// longer matter to any decision after it.
const SEND_MARGIN_MS: i64 = 4 * 24 * 3_600_000;

/// Per (address, sender), the newest window-opening and referral times of
/// the messages before the horizon (`$2`): the rows a purge keeps.
const KEEP: &str = "SELECT user_id, sender,
        max(CASE WHEN kind NOT IN ('reaction', 'unsupported', 'system') THEN LEAST(at, received_at) END)
            AS last_open,
        max(CASE WHEN referral IS NOT NULL AND kind NOT IN ('reaction', 'unsupported', 'system')
                 THEN LEAST(at, received_at) END) AS last_referral
     FROM inbound_messages
     WHERE business_id = $1 AND received_at < $2 AND at < $2
     GROUP BY user_id, sender";

/// The messages a purge deletes, given `m` and its address's `k`.
const PURGEABLE: &str = "WHERE k.user_id = m.user_id AND k.sender = m.sender
       AND m.business_id = $1 AND m.received_at < $2 AND m.at < $2
       AND NOT (m.kind NOT IN ('reaction', 'unsupported', 'system')
                AND LEAST(m.at, m.received_at) IS NOT DISTINCT FROM k.last_open)
       AND NOT (m.referral IS NOT NULL AND m.kind NOT IN ('reaction', 'unsupported', 'system')
                AND LEAST(m.at, m.received_at) IS NOT DISTINCT FROM k.last_referral)";
