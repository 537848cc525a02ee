//! The stores: the interface the gate calls ([`Queries`], [`WriteTx`]) in
//! the domain's types, defined here by topic (consent, people, inbound,
//! sends, templates, erasure, retention, stats), and two implementations
//! side by side: [`sqlite`] (embedded, the default) and [`postgres`]
//! (feature `postgres`, one database shared by many machines). Logic that
//! is not SQL (walking and verifying the consent chains) is shared
//! (`trail`).
//!
//! The SQLite store:
//! - Numbered migrations in `migrations/sqlite/`, embedded at build time,
//!   tracked with `PRAGMA user_version`; a newer database is refused.
//! - People (RULES R8): a user row is one address; linked addresses share
//!   a `person_id`, and every read for a decision gathers the person.
//! - The consent trail is hash-chained per address ([`crate::chain`]) and
//!   verified whenever it is read for a decision.
//! - WAL, `synchronous=FULL`, `foreign_keys=ON`, `secure_delete=ON`, an
//!   explicit busy timeout.
//! - Write transactions are `BEGIN IMMEDIATE`; batches put each item in a
//!   savepoint, so a bad item rolls back alone.
//! - A value the code does not know in a row is [`Error::Corrupt`], never a
//!   guess.

use crate::error::Error;
use crate::time::Timestamp;

mod consent;
mod erasure;
mod inbound;
mod people;
#[cfg(feature = "postgres")]
pub mod postgres;
mod queries;
mod retention;
mod sends;
mod stats;
mod templates;
mod trail;

pub use consent::{Addresses, ChainHead, ConsentRow, NewConsent, VerifyReport};
pub use erasure::{Forgotten, TOMBSTONE};
pub use inbound::{ExternalFeedback, InboundInsert, NewInbound, WindowRaise};
pub use people::{AddressRow, LinkRow, NewLink};
pub use queries::{Queries, WriteTx};
pub use retention::Purged;
pub use sends::{NewSend, SendAnswer, SendFilter, SendRecord, SendRow, SendState};
pub use stats::Stats;
pub use templates::{StoredTemplate, TemplateRow};

pub mod sqlite;
pub use sqlite::{BUSY_TIMEOUT, CACHE_SIZE, Db, SCHEMA_VERSION, Store, Writer};

/// A business as the store names it: its row id and its name (the name
/// is part of every consent hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusinessRef<'a> {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: &'a str,
}
fn corrupt(table: &'static str, detail: String) -> Error {
    Error::Corrupt { table, detail }
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}
