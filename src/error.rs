//! The error family.

use std::sync::Arc;

use crate::address::AddressError;
use crate::policy::{ParseEnumError, TemplateError};
use crate::time::TimeError;

/// Everything that can go wrong outside the pure decision.
///
/// Bad input names the problem; a store problem is never turned into an
/// allow (RULES R6, fail closed). `Clone`, so that one failed group commit
/// can answer every caller in the group.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An invalid address in an event.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A time that is not RFC 3339.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// A malformed template record.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// An unknown action or scope word.
    #[error(transparent)]
    Word(#[from] ParseEnumError),
    /// An event names a template that was never registered.
    #[error("unknown template {name:?} ({language})")]
    UnknownTemplate {
        /// Template name.
        name: String,
        /// Template language.
        language: String,
    },
    /// A status callback for a message that never reached the transport
    /// and that does not name both sender and user.
    #[error(
        "unknown message id {0:?}: no send with this provider id reached the transport, and the callback does not name both sender (from) and user (to)"
    )]
    UnknownMessage(String),
    /// An inbound message id that arrives again saying something else
    /// (RULES R2): nothing of it is applied.
    #[error(
        "message id {0:?} reused for a different message (other user, sender, kind, body or referral): not applied"
    )]
    MessageIdReused(String),
    /// An idempotency key that reached the transport, used again for a
    /// different request (RULES R7): nothing is sent.
    #[error(
        "idempotency key {0:?} reused for a different request (other sender, recipient, content, template, variables or purpose): nothing sent"
    )]
    KeyReused(String),
    /// A business that does not exist, asked for by a command that never
    /// creates one.
    #[error("unknown business {name:?}; known businesses: {}", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownBusiness {
        /// The name asked for.
        name: String,
        /// The businesses the database holds.
        known: Vec<String>,
    },
    /// A business name that is empty or has surrounding whitespace or
    /// control characters.
    #[error(
        "invalid business name {0:?}: it must be non-empty, at most 200 characters, without surrounding whitespace or control characters"
    )]
    BusinessName(String),
    /// No database file where one must exist.
    #[error("no database at {0}: nothing to read (write commands such as ingest create it)")]
    NoDatabase(String),
    /// A consent trail whose hash chain does not verify: the database was
    /// altered or corrupted. Nothing is decided from it (fail closed).
    #[error(
        "the consent trail of {user} is broken at event {seq}: {detail}; the database was altered or corrupted (run `wagate verify`)"
    )]
    ChainBroken {
        /// The address whose chain is broken.
        user: String,
        /// The first event that does not verify.
        seq: i64,
        /// What is wrong.
        detail: String,
    },
    /// An event that is incomplete or inconsistent.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The database was written by a newer wagate.
    #[error(
        "database schema version {found} is newer than this wagate supports ({supported}); upgrade wagate"
    )]
    SchemaTooNew {
        /// The database's `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The file is a SQLite database of another application: it is left
    /// alone.
    #[error("not a wagate database: {0}")]
    Foreign(String),
    /// The file says it holds one schema version but its tables are not
    /// those of that version (a file edited by hand, or another tool's).
    #[error(
        "the database says schema version {found}, but its tables are not those of version {found} ({why}); this wagate uses version {supported}"
    )]
    SchemaMismatch {
        /// The version the file claims (`PRAGMA user_version`).
        found: i64,
        /// The newest version this build knows.
        supported: i64,
        /// What SQLite said when the next migration was applied.
        why: String,
    },
    /// A row holds a value the code does not know: the database is not
    /// trusted.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// One event of an all-or-nothing batch
    /// ([`Business::ingest_all`](crate::Business::ingest_all)) failed:
    /// nothing of the batch was written.
    #[error("event {index} of the batch: {source}; nothing of the batch was applied")]
    InBatch {
        /// Its position in the batch, from 0.
        index: usize,
        /// Why it failed.
        source: Box<Error>,
    },
    /// The lock file that queues writers across processes could not be
    /// opened or locked (a read-only directory, a full disk).
    #[error("cannot take the writers' lock {path}: {reason}")]
    WriteLock {
        /// The lock file.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// A retention setting that could change decisions.
    #[error("{0}")]
    Retention(String),
    /// The operating system gave no random bytes (for a salt or the
    /// database's secret): nothing was written.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// SQLite failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// PostgreSQL failed (feature `postgres`): the server, the connection,
    /// the pool, or a setting the PostgreSQL store refuses. A constraint
    /// the server enforces is the item's fault, as with SQLite.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL store error: {0}")]
    Postgres(#[from] crate::store::postgres::PgError),
    /// A background task doing store work (the async facade's blocking
    /// pool) panicked or was cancelled by its runtime.
    #[error("a background store task did not finish: {0}")]
    Background(String),
    /// A thread panicked while holding the store.
    #[error("the store lock is poisoned by an earlier panic; reopen the gate")]
    Poisoned,
}

impl Error {
    /// Whether the store failed (SQLite, a corrupt row, a schema this build
    /// does not know, a poisoned lock), as opposed to bad input. A store
    /// failure fails a whole batch; bad input fails only its own item. A
    /// broken consent chain fails only what touches that address (every
    /// decision for it is an error), so one altered trail does not stop
    /// the rest of the business.
    pub fn is_store_failure(&self) -> bool {
        match self {
            // A constraint the item broke (a CHECK, a trigger) is the
            // item's fault: it fails alone.
            Error::Store(e) => !e.is_constraint(),
            #[cfg(feature = "postgres")]
            Error::Postgres(e) => !e.is_constraint(),
            Error::Poisoned
            | Error::Corrupt { .. }
            | Error::SchemaTooNew { .. }
            | Error::SchemaMismatch { .. }
            | Error::Foreign(_)
            | Error::WriteLock { .. }
            | Error::Random(_) => true,
            _ => false,
        }
    }
}

/// A failure inside SQLite (IO, locking, constraint).
#[derive(Clone, Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(Arc<rusqlite::Error>);

impl StoreError {
    /// Whether SQLite refused a write for breaking a constraint (a CHECK, a
    /// uniqueness rule, a trigger), as opposed to failing itself.
    pub fn is_constraint(&self) -> bool {
        matches!(
            &*self.0,
            rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation
        )
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(StoreError(Arc::new(e)))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
