//! The async facade (feature `tokio`): the same gate for async services.
//!
//! Every store call runs on tokio's blocking pool (`spawn_blocking`), never
//! on a runtime worker, so a commit's fsync never stalls other tasks. A
//! send reserves (blocking pool), awaits the transport with no transaction
//! or lock held, then records the answer (blocking pool). A send future
//! dropped after its reservation sends nothing more: the key stays
//! reserved, and a retry reports a duplicate.
//!
//! ```
//! # async fn demo() -> Result<(), wagate::Error> {
//! use wagate::gate::tokio::AsyncBusiness;
//! use wagate::transport::RecordingTransport;
//! use wagate::{Content, Gate, SendRequest};
//! let acme = AsyncBusiness::new(Gate::open_in_memory()?.business("acme")?);
//! let req = SendRequest::new("+14155238886", "+15550001111", Content::text("hi"));
//! let d = acme.check(req.clone()).await?;
//! let out = acme.send(req, "k1".into(), &RecordingTransport::new()).await?;
//! assert_eq!(out.decision.reason, d.reason);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```

use super::{Business, Gate, Reservation, SendOutcome};
use crate::address::Address;
use crate::error::{Error, Result};
use crate::event::{Event, IngestOutcome};
use crate::policy::{Decision, SendRequest};
use crate::store::Forgotten;
use crate::time::Timestamp;
use crate::transport::AsyncTransport;

/// A [`Business`] for async code: cheap to clone, `Send + Sync + 'static`.
#[derive(Clone, Debug)]
pub struct AsyncBusiness {
    inner: Business,
}

impl AsyncBusiness {
    /// Wraps a business handle.
    pub fn new(business: Business) -> Self {
        AsyncBusiness { inner: business }
    }

    /// The sync handle underneath.
    pub fn blocking(&self) -> &Business {
        &self.inner
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Business) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let b = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&b))
            .await
            .map_err(|e| Error::Background(e.to_string()))?
    }

    /// The business `name` of `gate` (created on first use), looked up on
    /// the blocking pool: what an async service calls instead of
    /// [`Gate::business`], which blocks (and which a PostgreSQL store, whose
    /// client is blocking, refuses to run on a thread that drives the
    /// runtime).
    ///
    /// # Errors
    /// As [`Gate::business`].
    pub async fn open(gate: Gate, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        tokio::task::spawn_blocking(move || gate.business(&name))
            .await
            .map_err(|e| Error::Background(e.to_string()))?
            .map(Self::new)
    }

    /// [`Business::ingest`] on the blocking pool (group commit included).
    ///
    /// # Errors
    /// As [`Business::ingest`].
    pub async fn ingest(&self, event: Event) -> Result<IngestOutcome> {
        self.run(move |b| b.ingest(&event)).await
    }

    /// [`Business::ingest_batch`] on the blocking pool.
    ///
    /// # Errors
    /// As [`Business::ingest_batch`].
    pub async fn ingest_batch(&self, events: Vec<Event>) -> Result<Vec<Result<IngestOutcome>>> {
        self.run(move |b| b.ingest_batch(&events)).await
    }

    /// [`Business::ingest_all`] on the blocking pool.
    ///
    /// # Errors
    /// As [`Business::ingest_all`].
    pub async fn ingest_all(&self, events: Vec<Event>) -> Result<Vec<IngestOutcome>> {
        self.run(move |b| b.ingest_all(&events)).await
    }

    /// [`Business::forget`] on the blocking pool (an erasure request from
    /// a service's endpoint).
    ///
    /// # Errors
    /// As [`Business::forget`].
    pub async fn forget(&self, user: Address) -> Result<Forgotten> {
        self.run(move |b| b.forget(&user)).await
    }

    /// [`Business::check`] on the blocking pool.
    ///
    /// # Errors
    /// As [`Business::check`].
    pub async fn check(&self, req: SendRequest) -> Result<Decision> {
        self.run(move |b| b.check(&req)).await
    }

    /// [`Business::check_as_of`] on the blocking pool.
    ///
    /// # Errors
    /// As [`Business::check_as_of`].
    pub async fn check_as_of(&self, req: SendRequest, t: Timestamp) -> Result<Decision> {
        self.run(move |b| b.check_as_of(&req, t)).await
    }

    /// [`Business::check_many`] on the blocking pool.
    ///
    /// # Errors
    /// As [`Business::check_many`].
    pub async fn check_many(
        &self,
        requests: Vec<(SendRequest, Option<Timestamp>)>,
    ) -> Result<Vec<Result<Decision>>> {
        self.run(move |b| b.check_many(&requests)).await
    }

    /// Decides, reserves, awaits `transport` with nothing held, records the
    /// answer. Dropping the future after the reservation leaves the key
    /// reserved: a retry reports a duplicate, never a second send.
    ///
    /// # Errors
    /// As [`Business::send`].
    pub async fn send<T: AsyncTransport + ?Sized>(
        &self,
        req: SendRequest,
        key: String,
        transport: &T,
    ) -> Result<SendOutcome> {
        let pending = match self.run(move |b| b.reserve(&req, &key)).await? {
            Reservation::Done(outcome) => return Ok(outcome),
            Reservation::Ready(pending) => pending,
        };
        let answer = transport.send(pending.message()).await;
        self.run(move |b| b.complete(pending, &answer)).await
    }
}
