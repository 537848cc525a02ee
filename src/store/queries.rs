//! [`Queries`]: what the gate asks of a store, one transaction at a time.
//!
//! The gate speaks to a store only through this trait, in the domain's
//! types: SQLite's [`Db`] implements it here (each method is the inherent
//! method of the same name, documented there), and another store
//! (PostgreSQL, for services on several machines) implements it beside.
//! Every method runs inside the transaction the value stands for; none
//! commits.

use super::{
    AddressRow, Addresses, BusinessRef, ChainHead, ConsentRow, Db, ExternalFeedback, Forgotten,
    InboundInsert, LinkRow, NewConsent, NewInbound, NewLink, NewSend, Purged, SendAnswer,
    SendFilter, SendRecord, SendRow, Stats, StoredTemplate, TemplateRow, VerifyReport, WindowRaise,
};
use crate::address::Address;
use crate::chain::Hash;
use crate::error::Result;
use crate::event::{DeliveryStatus, Pricing, TemplateRecord, TemplateStatusUpdate};
use crate::policy::{ConsentFact, WindowFacts};
use crate::time::Timestamp;

/// The queries of one transaction of a store (see the module docs). A
/// failure is an error, never a default: the gate fails closed on it.
#[allow(missing_docs)] // each method is documented on `Db`'s method of the same name
pub trait Queries {
    // Businesses and people (RULES R8).
    fn business_id(&self, name: &str, create: bool) -> Result<Option<i64>>;
    fn businesses(&self) -> Result<Vec<(i64, String)>>;
    fn address(&self, business: i64, key: &str) -> Result<Option<AddressRow>>;
    fn ensure_address(&self, business: i64, address: &Address) -> Result<AddressRow>;
    fn address_by_id(&self, id: i64) -> Result<AddressRow>;
    fn link(&self, business: i64, link: &NewLink<'_>) -> Result<bool>;
    fn phone_linked_to(&self, business: i64, bsuid: i64) -> Result<Option<String>>;
    fn person_addresses(&self, business: i64, person: i64) -> Result<Vec<AddressRow>>;
    fn person_links(&self, business: i64, person: i64) -> Result<Vec<LinkRow>>;
    fn person_as_of(&self, business: i64, start: &AddressRow, t: Timestamp) -> Result<Vec<i64>>;
    fn has_links(&self, business: i64, id: i64) -> Result<bool>;
    fn for_each_link(
        &self,
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        f: &mut dyn FnMut(&LinkRow) -> Result<()>,
    ) -> Result<()>;

    // The consent trail (R3, R4), hash-chained.
    fn add_consent(
        &self,
        business: BusinessRef<'_>,
        user: &AddressRow,
        c: &NewConsent<'_>,
    ) -> Result<()>;
    fn has_consent(
        &self,
        business: i64,
        user: i64,
        c: &NewConsent<'_>,
        same_arrival: bool,
    ) -> Result<bool>;
    fn person_consent(
        &self,
        business: BusinessRef<'_>,
        addresses: &Addresses,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<ConsentFact>>;
    fn person_trail(
        &self,
        business: BusinessRef<'_>,
        person: i64,
    ) -> Result<Vec<(String, ConsentRow)>>;
    fn for_each_consent(
        &self,
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        f: &mut dyn FnMut(&str, &ConsentRow) -> Result<()>,
    ) -> Result<()>;
    fn verify_chains(&self, business: BusinessRef<'_>) -> Result<VerifyReport>;
    fn chain_heads(&self, business: i64) -> Result<Vec<ChainHead>>;

    // Inbound messages and windows (R2).
    fn insert_inbound(&self, business: i64, m: &NewInbound<'_>) -> Result<InboundInsert>;
    fn raise_window(&self, business: i64, w: &WindowRaise<'_>) -> Result<()>;
    fn person_window(
        &self,
        business: i64,
        who: &Addresses,
        sender: &str,
        as_of: Option<Timestamp>,
    ) -> Result<WindowFacts>;
    /// The senders with a window with any address of a person, in order.
    fn window_senders(&self, business: i64, person: i64) -> Result<Vec<String>>;
    fn mark_external_feedback(&self, business: i64, f: &ExternalFeedback<'_>) -> Result<bool>;

    // Templates (R5).
    fn template(
        &self,
        business: i64,
        name: &str,
        language: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Option<StoredTemplate>>;
    fn put_template(&self, business: i64, t: &TemplateRecord, received_at: Timestamp)
    -> Result<()>;
    fn set_template_status(
        &self,
        business: i64,
        u: &TemplateStatusUpdate,
        received_at: Timestamp,
        source: &str,
    ) -> Result<bool>;
    /// (name, language) of every registered template, in order.
    fn template_keys(&self, business: i64) -> Result<Vec<(String, String)>>;

    // Sends and feedback (R7).
    fn send_by_key(&self, business: i64, key: &str) -> Result<Option<SendRow>>;
    fn key_request(&self, business: i64, key: &str) -> Result<Option<Hash>>;
    fn send_by_provider_id(&self, business: i64, provider_id: &str) -> Result<Option<SendRow>>;
    fn send_by_id(&self, id: i64) -> Result<Option<SendRow>>;
    fn insert_send(&self, business: i64, s: &NewSend<'_>) -> Result<i64>;
    fn finish_send(&self, id: i64, answer: &SendAnswer<'_>) -> Result<()>;
    fn advance_status(&self, id: i64, status: DeliveryStatus) -> Result<bool>;
    fn set_pricing(&self, id: i64, pricing: &Pricing) -> Result<()>;
    fn mark_feedback(&self, business: i64, send: i64, code: u32, at: Timestamp) -> Result<bool>;
    fn last_confirmation(
        &self,
        business: i64,
        who: &Addresses,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Timestamp>>;
    fn sends(&self, business: i64, filter: &SendFilter, limit: usize) -> Result<Vec<SendRecord>>;

    // Housekeeping.
    fn stats(&self, business: i64, now: Timestamp, margin_ms: i64) -> Result<Stats>;
    fn purge(&self, business: i64, cutoff_ms: i64) -> Result<Purged>;
    fn purgeable(&self, business: i64, cutoff_ms: i64) -> Result<Purged>;
    fn forget(&self, business: BusinessRef<'_>, address: &str, now: Timestamp)
    -> Result<Forgotten>;

    // What both stores compute the same way from the queries above.

    /// Checks that the person an address is read as is what its links say:
    /// an unlinked address has no link, and a linked person is exactly the
    /// addresses its links reach. A decision on a person whose rows were
    /// altered would otherwise read only part of them (fail closed).
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] when they disagree, or a store error.
    fn check_person(&self, business: i64, address: &AddressRow) -> Result<()> {
        let bad = |detail: String| super::corrupt("users", detail);
        if !address.linked {
            if self.has_links(business, address.id)? {
                return Err(bad(format!(
                    "{} has links but is recorded as unlinked: the people of this database were altered (run `wagate verify`)",
                    address.key
                )));
            }
            return Ok(());
        }
        let reached = self.person_as_of(business, address, Timestamp::from_millis(i64::MAX))?;
        let mut members: Vec<i64> = self
            .person_addresses(business, address.person)?
            .iter()
            .map(|a| a.id)
            .collect();
        members.sort_unstable();
        if reached != members || reached.first() != Some(&address.person) {
            return Err(bad(format!(
                "the person of {} is not what its links say: the people of this database were altered (run `wagate verify`)",
                address.key
            )));
        }
        Ok(())
    }

    /// Every window of a person, per sender: (sender, facts).
    ///
    /// # Errors
    /// A store error.
    fn person_windows(&self, business: i64, person: i64) -> Result<Vec<(String, WindowFacts)>> {
        self.window_senders(business, person)?
            .into_iter()
            .map(|s| {
                let w = self.person_window(business, &Addresses::Person(person), &s, None)?;
                Ok((s, w))
            })
            .collect()
    }

    /// Every registered template of a business, by name and language.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] or a store error.
    fn templates(&self, business: i64) -> Result<Vec<TemplateRow>> {
        let mut out = Vec::new();
        for (name, language) in self.template_keys(business)? {
            if let Some(template) = self.template(business, &name, &language, None)? {
                out.push(TemplateRow {
                    name,
                    language,
                    template,
                });
            }
        }
        Ok(out)
    }
}

/// An open write transaction of a store: its queries, and savepoints so
/// that one item of a batch can fail alone.
pub trait WriteTx {
    /// The transaction's queries.
    fn queries(&self) -> &dyn Queries;

    /// Runs `f` in a savepoint: its writes stay if it returns `Ok` and are
    /// undone alone if it returns `Err`; the transaction goes on either
    /// way. The outer `Err` is a store failure that fails the whole
    /// transaction; the item's own error is returned inside the `Ok`.
    ///
    /// # Errors
    /// A store failure (see above).
    fn savepoint(&mut self, f: &mut dyn FnMut(&dyn Queries) -> Result<()>) -> Result<Result<()>>;
}

impl dyn WriteTx + '_ {
    /// [`WriteTx::savepoint`] for a closure that returns a value.
    ///
    /// # Errors
    /// As [`WriteTx::savepoint`].
    pub fn item<T>(&mut self, f: impl FnOnce(&dyn Queries) -> Result<T>) -> Result<Result<T>> {
        let mut f = Some(f);
        let mut out = None;
        let done = self.savepoint(&mut |q| {
            if let Some(f) = f.take() {
                out = Some(f(q)?);
            }
            Ok(())
        })?;
        Ok(done.and_then(|()| {
            out.ok_or_else(|| crate::Error::Background("a savepoint ran its item twice".into()))
        }))
    }
}

impl WriteTx for super::Writer<'_> {
    fn queries(&self) -> &dyn Queries {
        self.connection()
    }

    fn savepoint(&mut self, f: &mut dyn FnMut(&dyn Queries) -> Result<()>) -> Result<Result<()>> {
        self.item(|db| f(&db))
    }
}

/// Forwards each method to [`Db`]'s inherent method of the same name, for
/// a `Db` and for the connection (or transaction) under it.
macro_rules! forward {
    ($($name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty;)*) => {
        impl Queries for Db<'_> {
            $(
                #[inline]
                fn $name(&self, $($arg: $ty),*) -> $ret {
                    Db::$name(*self, $($arg),*)
                }
            )*
        }

        impl Queries for rusqlite::Connection {
            $(
                #[inline]
                fn $name(&self, $($arg: $ty),*) -> $ret {
                    Db::$name(Db(self), $($arg),*)
                }
            )*
        }
    };
}

forward! {
    business_id(name: &str, create: bool) -> Result<Option<i64>>;
    businesses() -> Result<Vec<(i64, String)>>;
    address(business: i64, key: &str) -> Result<Option<AddressRow>>;
    ensure_address(business: i64, address: &Address) -> Result<AddressRow>;
    address_by_id(id: i64) -> Result<AddressRow>;
    link(business: i64, link: &NewLink<'_>) -> Result<bool>;
    phone_linked_to(business: i64, bsuid: i64) -> Result<Option<String>>;
    person_addresses(business: i64, person: i64) -> Result<Vec<AddressRow>>;
    person_links(business: i64, person: i64) -> Result<Vec<LinkRow>>;
    person_as_of(business: i64, start: &AddressRow, t: Timestamp) -> Result<Vec<i64>>;
    has_links(business: i64, id: i64) -> Result<bool>;
    for_each_link(
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        f: &mut dyn FnMut(&LinkRow) -> Result<()>
    ) -> Result<()>;
    add_consent(business: BusinessRef<'_>, user: &AddressRow, c: &NewConsent<'_>) -> Result<()>;
    has_consent(business: i64, user: i64, c: &NewConsent<'_>, same_arrival: bool) -> Result<bool>;
    person_consent(
        business: BusinessRef<'_>,
        addresses: &Addresses,
        as_of: Option<Timestamp>
    ) -> Result<Vec<ConsentFact>>;
    person_trail(business: BusinessRef<'_>, person: i64) -> Result<Vec<(String, ConsentRow)>>;
    for_each_consent(
        business: BusinessRef<'_>,
        since: Option<Timestamp>,
        f: &mut dyn FnMut(&str, &ConsentRow) -> Result<()>
    ) -> Result<()>;
    verify_chains(business: BusinessRef<'_>) -> Result<VerifyReport>;
    chain_heads(business: i64) -> Result<Vec<ChainHead>>;
    insert_inbound(business: i64, m: &NewInbound<'_>) -> Result<InboundInsert>;
    raise_window(business: i64, w: &WindowRaise<'_>) -> Result<()>;
    person_window(
        business: i64,
        who: &Addresses,
        sender: &str,
        as_of: Option<Timestamp>
    ) -> Result<WindowFacts>;
    window_senders(business: i64, person: i64) -> Result<Vec<String>>;
    mark_external_feedback(business: i64, f: &ExternalFeedback<'_>) -> Result<bool>;
    template(
        business: i64,
        name: &str,
        language: &str,
        as_of: Option<Timestamp>
    ) -> Result<Option<StoredTemplate>>;
    put_template(business: i64, t: &TemplateRecord, received_at: Timestamp) -> Result<()>;
    set_template_status(
        business: i64,
        u: &TemplateStatusUpdate,
        received_at: Timestamp,
        source: &str
    ) -> Result<bool>;
    template_keys(business: i64) -> Result<Vec<(String, String)>>;
    send_by_key(business: i64, key: &str) -> Result<Option<SendRow>>;
    key_request(business: i64, key: &str) -> Result<Option<Hash>>;
    send_by_provider_id(business: i64, provider_id: &str) -> Result<Option<SendRow>>;
    send_by_id(id: i64) -> Result<Option<SendRow>>;
    insert_send(business: i64, s: &NewSend<'_>) -> Result<i64>;
    finish_send(id: i64, answer: &SendAnswer<'_>) -> Result<()>;
    advance_status(id: i64, status: DeliveryStatus) -> Result<bool>;
    set_pricing(id: i64, pricing: &Pricing) -> Result<()>;
    mark_feedback(business: i64, send: i64, code: u32, at: Timestamp) -> Result<bool>;
    last_confirmation(
        business: i64,
        who: &Addresses,
        as_of: Option<Timestamp>
    ) -> Result<Option<Timestamp>>;
    sends(business: i64, filter: &SendFilter, limit: usize) -> Result<Vec<SendRecord>>;
    stats(business: i64, now: Timestamp, margin_ms: i64) -> Result<Stats>;
    purge(business: i64, cutoff_ms: i64) -> Result<Purged>;
    purgeable(business: i64, cutoff_ms: i64) -> Result<Purged>;
    forget(business: BusinessRef<'_>, address: &str, now: Timestamp) -> Result<Forgotten>;
}
