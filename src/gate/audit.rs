//! Reading back what happened, for an auditor: a person's consent trail,
//! addresses and links, windows, send attempts, and chain verification.

use serde::Serialize;

use super::Business;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::event::ConsentEvent;
use crate::policy::{Action, ConsentFact, Scope, WindowFacts, fold_applied};
use crate::store::{
    ChainHead, ConsentRow, LinkRow, NewConsent, SendFilter, SendRecord, Stats, TemplateRow,
    VerifyReport,
};
use crate::time::Timestamp;

/// One consent event in a person's history, for an auditor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    /// The address it was recorded under.
    pub user: String,
    /// Position in that address's trail, from 1.
    pub seq: i64,
    /// opt_in / opt_out.
    pub action: Action,
    /// all / marketing.
    pub scope: Scope,
    /// When it happened at its source.
    pub at: Timestamp,
    /// When wagate received it.
    pub received_at: Timestamp,
    /// min(at, received_at): the time it takes effect.
    pub effective: Timestamp,
    /// Where it came from (keyword, web_form, provider_error, ...).
    pub source: String,
    /// The proof given with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// An opt-in keyword, which counts only after an opt-out.
    pub conditional: bool,
    /// Whether it takes part in the state (a conditional opt-in that found
    /// the person not opted out does not).
    pub counted: bool,
    /// Its chain hash (hex).
    pub hash: String,
}

/// A person as the store knows them: every address and every link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PersonView {
    /// The person's addresses, in the order they were first seen.
    pub addresses: Vec<String>,
    /// The links that join them.
    pub links: Vec<LinkRow>,
}

/// Which send attempts to read back (see [`Business::sends`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendQuery {
    /// Attempts to any address of this user's person.
    pub user: Option<Address>,
    /// Attempts under this idempotency key.
    pub key: Option<String>,
    /// The attempt the provider knows by this message id.
    pub provider_id: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
}

impl Business {
    /// For each consent event, whether the trail of its address already
    /// holds one with the same content (action, scope, `at`, source,
    /// evidence, conditional, and `received_at` when it is given and not in
    /// the future), in one read transaction: what `wagate import` keys its
    /// rows by, so that running an import again lands only what had not
    /// landed. A forgotten address is found through its tombstone; its
    /// sealed events have no evidence left to match.
    ///
    /// ```
    /// use wagate::{Action, Address, ConsentEvent, Event, Gate, Scope, Timestamp};
    /// let acme = Gate::open_in_memory()?.business("acme")?;
    /// let at = Timestamp::parse("2026-03-01T08:00:00Z")?;
    /// let row = ConsentEvent::new(Address::parse("+15550001111")?, Action::OptIn, Scope::All, at, "import");
    /// assert_eq!(acme.recorded([&row])?, [false]);
    /// acme.ingest(&Event::Consent(row.clone()))?;
    /// assert_eq!(acme.recorded([&row])?, [true]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A store error.
    pub fn recorded<'e>(
        &self,
        events: impl IntoIterator<Item = &'e ConsentEvent>,
    ) -> Result<Vec<bool>> {
        let now = self.gate.clock.now();
        self.gate.read(|db| {
            events
                .into_iter()
                .map(|c| {
                    let Some(row) = db.address(self.id, c.user.as_str())? else {
                        return Ok(false);
                    };
                    // A received_at in the future is stored as now: it
                    // cannot be matched as given.
                    let same_arrival = c.received_at.is_some_and(|r| r <= now);
                    let new = NewConsent {
                        action: c.action,
                        scope: c.scope,
                        at: c.at,
                        received_at: c.received_at.unwrap_or(now),
                        conditional: c.conditional,
                        source: &c.source,
                        evidence: c.evidence.as_deref(),
                    };
                    db.has_consent(self.id, row.id, &new, same_arrival)
                })
                .collect()
        })
    }

    /// The consent history of the person an address belongs to, oldest
    /// first (by effective time), each event with the address it came
    /// under and whether it counts. Every chain is verified.
    ///
    /// # Errors
    /// [`Error::ChainBroken`] when the trail was altered, a store error or
    /// an unreadable row.
    pub fn consent_history(&self, user: &Address) -> Result<Vec<ConsentRecord>> {
        self.gate.read(|db| {
            let Some(address) = db.address(self.id, user.as_str())? else {
                return Ok(Vec::new());
            };
            let rows = db.person_trail(self.r(), address.person)?;
            // A forgotten person's opt-ins take no part (their proof is
            // gone); decisions read the trail the same way.
            let erased =
                |r: &crate::store::ConsentRow| r.action == Action::OptIn && r.sealed.is_some();
            let facts: Vec<ConsentFact> = rows
                .iter()
                .filter(|(_, r)| !erased(r))
                .map(|(_, r)| ConsentFact {
                    action: r.action,
                    scope: r.scope,
                    effective: r.effective,
                    conditional: r.conditional,
                })
                .collect();
            let (_, counted) = fold_applied(&facts);
            let mut counted = counted.into_iter();
            let counted: Vec<bool> = rows
                .iter()
                .map(|(_, r)| !erased(r) && counted.next().unwrap_or(false))
                .collect();
            Ok(rows
                .into_iter()
                .zip(counted)
                .map(|((user, r), counted)| ConsentRecord {
                    user,
                    seq: r.seq,
                    action: r.action,
                    scope: r.scope,
                    at: r.at,
                    received_at: r.received_at,
                    effective: r.effective,
                    source: r.source,
                    evidence: r.evidence,
                    conditional: r.conditional,
                    counted,
                    hash: r.hash.to_hex(),
                })
                .collect())
        })
    }

    /// The addresses and links of the person an address belongs to (just
    /// the address itself when it is unknown or unlinked).
    ///
    /// # Errors
    /// A store error.
    pub fn person(&self, user: &Address) -> Result<PersonView> {
        self.gate.read(|db| {
            let Some(address) = db.address(self.id, user.as_str())? else {
                return Ok(PersonView {
                    addresses: vec![user.as_str().to_owned()],
                    links: Vec::new(),
                });
            };
            Ok(PersonView {
                addresses: db
                    .person_addresses(self.id, address.person)?
                    .into_iter()
                    .map(|a| a.key)
                    .collect(),
                links: db.person_links(self.id, address.person)?,
            })
        })
    }

    /// The windows of the person an address belongs to, per sender (the
    /// maxima over the person's addresses).
    ///
    /// # Errors
    /// A store error.
    pub fn windows(&self, user: &Address) -> Result<Vec<(Address, WindowFacts)>> {
        self.gate.read(|db| {
            let Some(address) = db.address(self.id, user.as_str())? else {
                return Ok(Vec::new());
            };
            db.person_windows(self.id, address.person)?
                .into_iter()
                .map(|(s, w)| {
                    let a = Address::parse(&s).map_err(|e| Error::Corrupt {
                        table: "windows",
                        detail: e.to_string(),
                    })?;
                    Ok((a, w))
                })
                .collect()
        })
    }

    /// Calls `f` with every consent event of this business received at or
    /// after `since` (all when `None`), with its address, address by
    /// address in chain order, streaming from one read snapshot. Each row
    /// carries its `prev` and `hash`, so the export can be re-verified
    /// outside the database.
    ///
    /// # Errors
    /// What `f` returns, [`Error::ChainBroken`], or a store error.
    pub fn export_consent(
        &self,
        since: Option<Timestamp>,
        mut f: impl FnMut(&str, &ConsentRow) -> Result<()>,
    ) -> Result<()> {
        self.gate
            .read(|db| db.for_each_consent(self.r(), since, &mut f))
    }

    /// Calls `f` with every link of this business received at or after
    /// `since` (all when `None`).
    ///
    /// # Errors
    /// What `f` returns, or a store error.
    pub fn export_links(
        &self,
        since: Option<Timestamp>,
        mut f: impl FnMut(&LinkRow) -> Result<()>,
    ) -> Result<()> {
        self.gate
            .read(|db| db.for_each_link(self.r(), since, &mut f))
    }

    /// Verifies every consent chain of this business, with a digest of
    /// all heads to record elsewhere.
    ///
    /// # Errors
    /// A store error (a broken chain is reported in the result).
    pub fn verify(&self) -> Result<VerifyReport> {
        self.gate.read(|db| db.verify_chains(self.r()))
    }

    /// The head of every address's consent chain.
    ///
    /// # Errors
    /// A store error.
    pub fn chain_heads(&self) -> Result<Vec<ChainHead>> {
        self.gate.read(|db| db.chain_heads(self.id))
    }

    /// The recorded send attempts that match `query`, oldest first, at most
    /// `limit`: the decision, reason and facts, what the transport did,
    /// the delivery status and the provider codes that took effect.
    ///
    /// ```
    /// use wagate::{Content, Gate, SendRequest, gate::SendQuery, transport::RecordingTransport};
    /// let gate = Gate::open_in_memory()?;
    /// let acme = gate.business("acme")?;
    /// let req = SendRequest::new("+14155238886", "+15550001111", Content::text("hi"));
    /// acme.send(&req, "k1", &RecordingTransport::new())?;
    /// let q = SendQuery { key: Some("k1".into()), ..SendQuery::default() };
    /// let found = acme.sends(&q, 10)?;
    /// assert_eq!((found.len(), found[0].reason.as_str()), (1, "no_opt_in"));
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// A store error.
    pub fn sends(&self, query: &SendQuery, limit: usize) -> Result<Vec<SendRecord>> {
        self.gate.read(|db| {
            // Every address of the person, as sends record the address
            // they went to (also one never seen before, with no user row).
            let recipients = match &query.user {
                None => None,
                Some(u) => Some(match db.address(self.id, u.as_str())? {
                    Some(a) => db
                        .person_addresses(self.id, a.person)?
                        .into_iter()
                        .map(|a| a.key)
                        .collect(),
                    None => vec![u.as_str().to_owned()],
                }),
            };
            let filter = SendFilter {
                recipients,
                key: query.key.clone(),
                provider_id: query.provider_id.clone(),
                since: query.since,
                until: query.until,
            };
            db.sends(self.id, &filter, limit)
        })
    }

    /// Counts of people, consent states and windows open now.
    ///
    /// # Errors
    /// A store error or an unreadable row.
    pub fn stats(&self) -> Result<Stats> {
        let now = self.gate.clock.now();
        let margin = self.gate.config.policy.margin_ms;
        self.gate.read(|db| db.stats(self.id, now, margin))
    }

    /// Every registered template, by name and language.
    ///
    /// # Errors
    /// A store error or an unreadable row.
    pub fn templates(&self) -> Result<Vec<TemplateRow>> {
        self.gate.read(|db| db.templates(self.id))
    }
}
