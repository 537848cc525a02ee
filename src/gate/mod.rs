//! The gate: store + policy + transport.
//!
//! A [`Gate`] owns one SQLite database. [`Gate::business`] gives the
//! [`Business`] handle through which everything happens: ingesting events
//! ([`ingest`](Business::ingest)), asking for decisions
//! ([`check`](Business::check)), sending through a [`Transport`](crate::transport::Transport)
//! ([`send`](Business::send)), and reading back what happened for an
//! auditor ([`consent_history`](Business::consent_history),
//! [`sends`](Business::sends), [`verify`](Business::verify)).
//!
//! Everything is per person (R8): a decision for any address of a
//! person reads the consent, windows and confirmations of all of them.

mod audit;
mod commit;
mod erasure;
mod ingest;
mod readers;
mod retention;
mod send;

pub use retention::MIN_RETENTION;
#[cfg(feature = "tokio")]
pub mod tokio;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::policy::{Action, Decision, Facts, Keywords, PolicyConfig, Scope, SendRequest, decide};
use crate::store::{Addresses, BusinessRef, Queries, Store, WriteTx};
use crate::time::{Clock, SystemClock, Timestamp};

use commit::{Committer, Done, Job, Work};
use readers::Readers;

pub use audit::{ConsentRecord, PersonView, SendQuery};
pub use send::{Pending, Reservation};

/// Settings of a gate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateConfig {
    /// Policy settings (the window margin).
    pub policy: PolicyConfig,
    /// Keyword lists.
    pub keywords: Keywords,
}

/// The policy gate over one SQLite database.
///
/// A cheap handle: `Clone`, `Send + Sync + 'static`; clones share the
/// database, its connections and its group commit, so a service keeps one
/// in its state and hands clones to threads and tasks.
#[derive(Clone)]
pub struct Gate {
    shared: Arc<Shared>,
    config: Arc<GateConfig>,
    clock: Arc<dyn Clock>,
}

/// What every clone of a [`Gate`] shares: the store. (One per gate, behind
/// an `Arc`: the variants' sizes do not matter.)
#[allow(clippy::large_enum_variant)]
enum Shared {
    /// SQLite, embedded.
    Sqlite {
        /// The one writer connection (SQLite has one writer).
        store: Mutex<Store>,
        /// Reader connections for file databases, so that checks run
        /// beside each other and beside a commit's fsync.
        readers: Option<Readers>,
        committer: Committer,
    },
    /// PostgreSQL, shared by services on many machines: a pool; writes run
    /// side by side (the server groups their commits).
    /// (Always `Some` until the gate goes: see `Drop`.)
    #[cfg(feature = "postgres")]
    Postgres(Option<crate::store::postgres::PgStore>),
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The longest business name accepted.
pub const MAX_BUSINESS_NAME: usize = 200;

/// Checks a business name: non-empty, at most [`MAX_BUSINESS_NAME`]
/// characters, no surrounding whitespace, no control or invisible
/// characters.
///
/// ```
/// use wagate::gate::check_business_name;
/// assert!(check_business_name("acme-shop").is_ok());
/// for bad in ["", " acme", "ac\u{200b}me", "acme\n", &"a".repeat(201)] {
///     assert!(check_business_name(bad).is_err(), "{bad:?}");
/// }
/// ```
///
/// # Errors
/// [`Error::BusinessName`].
pub fn check_business_name(name: &str) -> Result<()> {
    // Invisible characters (zero-width spaces, direction marks, a soft
    // hyphen) would make two names that look the same.
    let invisible = |c: char| {
        matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
    };
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_BUSINESS_NAME
        && name.trim() == name
        && !name.chars().any(|c| c.is_control() || invisible(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BusinessName(name.to_owned()))
    }
}

/// The database named as a PostgreSQL URL, if it is one.
fn postgres_url(path: &Path) -> Option<&str> {
    path.to_str()
        .filter(|p| p.starts_with("postgres://") || p.starts_with("postgresql://"))
}

impl Gate {
    /// Opens (creating if needed) a database file, with the default
    /// configuration and the system clock. A `postgres://` (or
    /// `postgresql://`) URL opens the PostgreSQL store instead, in its
    /// default schema (feature `postgres`; see [`Gate::open_postgres`]).
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`], [`Error::Corrupt`] or a store error;
    /// [`Error::InvalidEvent`] for a URL in a build without PostgreSQL.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        if let Some(url) = postgres_url(path.as_ref()) {
            #[cfg(feature = "postgres")]
            return Self::open_postgres(url, crate::store::postgres::DEFAULT_SCHEMA);
            #[cfg(not(feature = "postgres"))]
            return Err(Error::InvalidEvent(format!(
                "{url}: this build has no PostgreSQL store (cargo feature `postgres`)"
            )));
        }
        let writer = Store::open(path.as_ref())?;
        Ok(Self::from_stores(writer, Some(Readers::new(path.as_ref()))))
    }

    /// Opens a database file that must exist: what read-only tools use, so
    /// that a mistyped path is an error instead of a new empty database.
    ///
    /// # Errors
    /// [`Error::NoDatabase`] when there is no such file, otherwise as
    /// [`Gate::open`].
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        let writer = Store::open_existing(path.as_ref())?;
        Ok(Self::from_stores(writer, Some(Readers::new(path.as_ref()))))
    }

    /// A gate on a private in-memory database.
    ///
    /// # Errors
    /// A store error.
    pub fn open_in_memory() -> Result<Self> {
        Ok(Self::from_stores(Store::open_in_memory()?, None))
    }

    fn from_stores(store: Store, readers: Option<Readers>) -> Self {
        Self::from_shared(Shared::Sqlite {
            store: Mutex::new(store),
            readers,
            committer: Committer::default(),
        })
    }

    fn from_shared(shared: Shared) -> Self {
        Gate {
            shared: Arc::new(shared),
            config: Arc::new(GateConfig::default()),
            clock: Arc::new(SystemClock),
        }
    }

    /// A gate on a PostgreSQL database (feature `postgres`): the store
    /// lives in `schema` ([`crate::store::postgres::DEFAULT_SCHEMA`] for
    /// most), created and migrated if needed. Several processes on several
    /// machines may open the same one.
    ///
    /// The PostgreSQL client is blocking: in an async service, open the
    /// gate outside the runtime or in `tokio::task::spawn_blocking`, and
    /// use it through [`crate::gate::tokio::AsyncBusiness`] (which runs
    /// store work on the blocking pool). Dropping the last clone anywhere
    /// is safe: the pool is closed on a thread of its own.
    ///
    /// # Errors
    /// As [`crate::store::postgres::PgStore::open`].
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str, schema: &str) -> Result<Self> {
        Ok(Self::from_postgres(crate::store::postgres::PgStore::open(
            url, schema,
        )?))
    }

    /// A gate on an open PostgreSQL store.
    #[cfg(feature = "postgres")]
    pub fn from_postgres(store: crate::store::postgres::PgStore) -> Self {
        Self::from_shared(Shared::Postgres(Some(store)))
    }

    /// Replaces the configuration (of this handle and the clones made from
    /// it afterwards; the database is shared either way).
    #[must_use]
    pub fn with_config(mut self, config: GateConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// Replaces the clock (for tests and replays), as
    /// [`with_config`](Gate::with_config) does the configuration.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// How many reader connections checks may use at once (1 for an
    /// in-memory gate, whose one connection does everything).
    pub fn readers(&self) -> usize {
        match &*self.shared {
            Shared::Sqlite { readers, .. } => readers.as_ref().map_or(1, Readers::size),
            #[cfg(feature = "postgres")]
            Shared::Postgres(pg) => pg.as_ref().map_or(1, |pg| pg.pool_size()),
        }
    }

    /// The handle of a business (tenant), created on first use.
    ///
    /// # Errors
    /// [`Error::BusinessName`] for a name that is empty, too long, has
    /// surrounding whitespace or control characters; a store error.
    pub fn business(&self, name: &str) -> Result<Business> {
        check_business_name(name)?;
        // Look up first: a business exists after its first use, and a read
        // costs no commit.
        let id = match self.read(|db| db.business_id(name, false))? {
            Some(id) => id,
            None => self.write(|w| {
                w.queries().business_id(name, true)?.ok_or_else(|| {
                    Error::InvalidEvent(format!("business {name:?} could not be created"))
                })
            })?,
        };
        Ok(Business {
            gate: self.clone(),
            id,
            name: name.into(),
        })
    }

    /// The handle of a business that exists already: what read-only tools
    /// use, so that a mistyped name is an error, never a new business.
    ///
    /// # Errors
    /// [`Error::UnknownBusiness`] listing the known businesses, or a store
    /// error.
    pub fn existing_business(&self, name: &str) -> Result<Business> {
        match self.read(|db| db.business_id(name, false))? {
            Some(id) => Ok(Business {
                gate: self.clone(),
                id,
                name: name.into(),
            }),
            None => Err(Error::UnknownBusiness {
                name: name.to_owned(),
                known: self.businesses()?,
            }),
        }
    }

    /// The names of every business in the database.
    ///
    /// # Errors
    /// A store error.
    pub fn businesses(&self) -> Result<Vec<String>> {
        Ok(self
            .read(|db| db.businesses())?
            .into_iter()
            .map(|(_, name)| name)
            .collect())
    }

    /// The SQLite writer, for what only SQLite does (checkpoints, vacuum);
    /// `None` on PostgreSQL.
    fn sqlite(&self) -> Result<Option<MutexGuard<'_, Store>>> {
        match &*self.shared {
            Shared::Sqlite { store, .. } => Ok(Some(store.lock().map_err(|_| Error::Poisoned)?)),
            #[cfg(feature = "postgres")]
            Shared::Postgres(_) => Ok(None),
        }
    }

    /// Runs `f` in one write transaction. On PostgreSQL a transaction that
    /// loses a race with another instance is rolled back and `f` runs
    /// again: it must do nothing outside the transaction.
    fn write<T>(&self, mut f: impl FnMut(&mut dyn WriteTx) -> Result<T>) -> Result<T> {
        match &*self.shared {
            Shared::Sqlite { store, .. } => {
                store.lock().map_err(|_| Error::Poisoned)?.write(|w| f(w))
            }
            #[cfg(feature = "postgres")]
            Shared::Postgres(pg) => pg.as_ref().ok_or(Error::Poisoned)?.write(|w| {
                let mut q = crate::store::postgres::PgQueries::new(w.db());
                f(&mut q)
            }),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&dyn Queries) -> Result<T>) -> Result<T> {
        match &*self.shared {
            Shared::Sqlite {
                readers: Some(r), ..
            } => r.read(|db| f(&db)),
            Shared::Sqlite { store, .. } => {
                store.lock().map_err(|_| Error::Poisoned)?.read(|db| f(&db))
            }
            #[cfg(feature = "postgres")]
            Shared::Postgres(pg) => pg
                .as_ref()
                .ok_or(Error::Poisoned)?
                .read(|db| f(&crate::store::postgres::PgQueries::new(db))),
        }
    }

    /// Runs `f` on each item in one write transaction: an item's own error
    /// is its answer and leaves no trace, the others land together; a
    /// store failure fails them all.
    ///
    /// SQLite runs each item in a savepoint (in-process, cheap). On
    /// PostgreSQL a savepoint costs two round trips per item, so the batch
    /// runs first without them, which writes the same when no item fails;
    /// when one does, that transaction is rolled back and the batch runs
    /// again with a savepoint per item.
    fn write_items<I, T>(
        &self,
        items: &[I],
        f: impl Fn(&dyn Queries, &I, Timestamp) -> Result<T>,
    ) -> Result<Vec<Result<T>>> {
        #[cfg(feature = "postgres")]
        if let Shared::Postgres(_) = &*self.shared {
            let failed = std::cell::Cell::new(false);
            let whole = self.write(|w| {
                failed.set(false);
                let now = self.clock.now();
                let db = w.queries();
                items
                    .iter()
                    .map(|i| match f(db, i, now) {
                        Ok(v) => Ok(Ok(v)),
                        Err(e) => {
                            failed.set(!e.is_store_failure());
                            Err(e)
                        }
                    })
                    .collect::<Result<Vec<_>>>()
            });
            match whole {
                Err(_) if failed.get() => {}
                done => return done,
            }
        }
        self.write(|w| {
            let now = self.clock.now();
            items.iter().map(|i| w.item(|db| f(db, i, now))).collect()
        })
    }

    /// Runs one queued job's work.
    fn run_job(&self, db: &dyn Queries, j: &Job, now: Timestamp) -> Result<Done> {
        let b = Business {
            gate: self.clone(),
            id: j.business,
            name: j.name.clone(),
        };
        match &j.work {
            Work::Ingest(event) => b.apply(db, event, now).map(Done::Ingest),
            Work::Reserve { request, key } => {
                b.reserve_in(db, request, key, now).map(Done::Reserve)
            }
            Work::Complete { send, answer } => {
                b.complete_in(db, *send, answer, now).map(Done::Complete)
            }
        }
    }

    /// Commits one group of queued events in one transaction; a failure of
    /// the transaction is every event's answer.
    fn commit_group(&self, jobs: &[Job]) -> Vec<Result<Done>> {
        match self.write_items(jobs, |db, j, now| self.run_job(db, j, now)) {
            Ok(results) => results,
            Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Queues a write for the group commit and waits until it is durable.
    fn commit(&self, business: &Business, work: Work) -> Result<Done> {
        let job = Job {
            business: business.id,
            name: business.name.clone(),
            work,
        };
        match &*self.shared {
            Shared::Sqlite { committer, .. } => {
                committer.submit(job, |jobs| self.commit_group(jobs))
            }
            // PostgreSQL groups concurrent commits itself: each job is its
            // own transaction, side by side with the others, and needs no
            // savepoint (its error rolls back its transaction alone).
            #[cfg(feature = "postgres")]
            Shared::Postgres(_) => {
                self.write(|w| self.run_job(w.queries(), &job, self.clock.now()))
            }
        }
    }
}

/// One business of a [`Gate`]: a cheap, owned handle (`Clone`, `Send +
/// Sync + 'static`) that keeps the gate alive; resolve it once and keep it
/// (in a service's state, in a task).
///
/// ```
/// use wagate::{Business, Gate};
/// fn assert_handle<T: Clone + Send + Sync + 'static>(_: &T) {}
/// let acme: Business = Gate::open_in_memory()?.business("acme")?; // the gate lives on in it
/// assert_handle(&acme);
/// std::thread::spawn(move || acme.name().to_owned()).join().ok();
/// # Ok::<(), wagate::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Business {
    gate: Gate,
    id: i64,
    name: Arc<str>,
}

/// What happened to an allowed message at the transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "delivery")]
pub enum Delivery {
    /// The decision was not `allow`: the transport was not called.
    NotSent,
    /// The provider accepted it.
    Accepted {
        /// The provider's message id.
        provider_id: String,
    },
    /// The provider refused it.
    Refused {
        /// Whether a retry with the same key may try again.
        transient: bool,
        /// The provider's error code.
        code: Option<u32>,
        /// The provider's message.
        message: String,
        /// How long the provider asked to wait before a retry, in seconds
        /// (`Retry-After`), when it said.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// The key was handed to the transport before; nothing was sent now.
    /// `accepted` tells whether that earlier send was accepted.
    Duplicate {
        /// The earlier send's provider id, if it was accepted.
        provider_id: Option<String>,
    },
}

/// The result of [`Business::send`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SendOutcome {
    /// The decision. For a duplicate, verdict and reason are those of the
    /// first send; the facts are as of now.
    #[serde(flatten)]
    pub decision: Decision,
    /// What the transport did.
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl SendOutcome {
    /// Whether this call handed the message to the provider and it was
    /// accepted.
    pub fn sent(&self) -> bool {
        matches!(self.delivery, Delivery::Accepted { .. })
    }

    /// Whether this key had already gone to the transport.
    pub fn duplicate(&self) -> bool {
        matches!(self.delivery, Delivery::Duplicate { .. })
    }
}

impl Business {
    /// The business's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn r(&self) -> BusinessRef<'_> {
        BusinessRef {
            id: self.id,
            name: &self.name,
        }
    }

    /// Decides a send request now, recording nothing.
    ///
    /// # Errors
    /// A store error, an unreadable row or a broken consent chain: never
    /// an allow by default.
    pub fn check(&self, req: &SendRequest) -> Result<Decision> {
        self.gate
            .read(|db| self.decide(db, req, self.gate.clock.now(), None))
    }

    /// Decides a send request as of `t`: only what was received at or
    /// before `t` counts (consent events, inbound messages kept by id,
    /// links, template records, sends and provider feedback). For "would
    /// this have been allowed then?". Inbound messages without a provider
    /// id are not kept one by one, so their windows do not count here.
    ///
    /// ```
    /// use wagate::{Address, Content, Event, Gate, InboundMessage, Reason, SendRequest, Timestamp};
    /// let gate = Gate::open_in_memory()?;
    /// let acme = gate.business("acme")?;
    /// let (user, shop) = (Address::parse("+15550001111")?, Address::parse("+14155238886")?);
    /// let at = Timestamp::parse("2026-03-01T10:00:00Z")?;
    /// let mut m = InboundMessage::text(user.clone(), shop.clone(), "hi", at).with_id("SM1");
    /// m.received_at = Some(at);
    /// acme.ingest(&Event::Inbound(m))?;
    /// let req = SendRequest::between(shop, user, Content::text("hello"));
    /// let before = acme.check_as_of(&req, Timestamp::parse("2026-03-01T09:59:00Z")?)?;
    /// assert_eq!(before.reason, Reason::NoOptIn); // the message had not arrived yet
    /// let after = acme.check_as_of(&req, Timestamp::parse("2026-03-01T10:01:00Z")?)?;
    /// assert_eq!(after.reason, Reason::WindowOpen);
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Business::check`].
    pub fn check_as_of(&self, req: &SendRequest, t: Timestamp) -> Result<Decision> {
        self.gate.read(|db| self.decide(db, req, t, Some(t)))
    }

    /// Decides many requests in one read transaction (one consistent
    /// snapshot): the campaign pre-flight, "who may receive this?". Each
    /// item is decided now (`None`) or as of a time (`Some(t)`, as
    /// [`check_as_of`](Business::check_as_of)); one item's trouble (a
    /// broken chain, say) is its own error and the others are decided.
    ///
    /// ```
    /// use wagate::{Content, Gate, Reason, SendRequest};
    /// let acme = Gate::open_in_memory()?.business("acme")?;
    /// let reqs: Vec<_> = ["+15550001111", "bsuid:US.1", "+0123"]
    ///     .iter()
    ///     .map(|to| (SendRequest::new("+14155238886", to, Content::text("Sale!")), None))
    ///     .collect();
    /// let out = acme.check_many(&reqs)?;
    /// assert_eq!(out[0].as_ref().map(|d| d.reason).ok(), Some(Reason::NoOptIn));
    /// assert_eq!(out[2].as_ref().map(|d| d.reason).ok(), Some(Reason::InvalidAddress));
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// A store error that fails the whole read (each item's own error is in
    /// its slot).
    pub fn check_many(
        &self,
        requests: &[(SendRequest, Option<Timestamp>)],
    ) -> Result<Vec<Result<Decision>>> {
        let now = self.gate.clock.now();
        self.gate.read(|db| {
            requests
                .iter()
                .map(|(req, at)| {
                    let r = match at {
                        Some(t) => self.decide(db, req, *t, Some(*t)),
                        None => self.decide(db, req, now, None),
                    };
                    match r {
                        Err(e) if e.is_store_failure() => Err(e),
                        r => Ok(r),
                    }
                })
                .collect()
        })
    }

    /// Gathers the facts of a request from the store: per person (R8),
    /// chains verified; with `as_of`, only what was received by then.
    fn facts(
        &self,
        db: &dyn Queries,
        req: &SendRequest,
        as_of: Option<Timestamp>,
    ) -> Result<Facts> {
        let (Ok(sender), Ok(user)) = (req.sender(), req.user()) else {
            return Ok(Facts::default());
        };
        let template = match req.content().template_key() {
            Some((name, language)) => db
                .template(self.id, name, language, as_of)?
                .map(|t| t.facts),
            None => None,
        };
        // An address never seen is a person with no history (R8).
        let Some(address) = db.address(self.id, user.as_str())? else {
            return Ok(Facts {
                template,
                ..Facts::default()
            });
        };
        let who = match as_of {
            None => {
                db.check_person(self.id, &address)?;
                Addresses::of(&address)
            }
            Some(t) => Addresses::Some(db.person_as_of(self.id, &address, t)?),
        };
        let consent = db.person_consent(self.r(), &who, as_of)?;
        let any_opt_out = consent
            .iter()
            .any(|c| c.action == Action::OptOut && c.scope == Scope::All);
        Ok(Facts {
            window: db.person_window(self.id, &who, sender.as_str(), as_of)?,
            last_confirmation_at: if any_opt_out {
                db.last_confirmation(self.id, &who, as_of)?
            } else {
                None
            },
            consent,
            template,
        })
    }

    fn decide(
        &self,
        db: &dyn Queries,
        req: &SendRequest,
        now: Timestamp,
        as_of: Option<Timestamp>,
    ) -> Result<Decision> {
        let facts = self.facts(db, req, as_of)?;
        Ok(decide(req, &facts, now, &self.gate.config.policy))
    }
}

/// When an event reached us: as given, but never later than now (a time
/// in the future cannot be an arrival time), and now when not given.
fn received(given: Option<Timestamp>, now: Timestamp) -> Timestamp {
    given.map_or(now, |r| r.min(now))
}

#[cfg(feature = "postgres")]
impl Drop for Shared {
    /// The PostgreSQL client is blocking and runs a small runtime of its own
    /// per connection, which may not start, or stop, on a thread that
    /// drives an async runtime: the last clone of a gate dropped in an
    /// async task would abort the process. The pool goes down on a thread
    /// of its own.
    fn drop(&mut self) {
        if let Shared::Postgres(slot) = self
            && let Some(store) = slot.take()
        {
            let _ = std::thread::Builder::new()
                .name("wagate-pg-close".into())
                .spawn(move || drop(store));
        }
    }
}
