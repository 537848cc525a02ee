//! The gate: store + policy + transport.
//!
//! A [`Gate`] owns one SQLite database. [`Gate::business`] gives the
//! [`Business`] handle through which everything happens: ingesting events,
//! asking for decisions, sending through a [`Transport`], and reading a
//! user's consent history for an auditor.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::Serialize;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::event::{Event, InboundMessage, IngestOutcome, MessageKind, StatusCallback};
use crate::policy::{
    Action, Decision, Facts, Keyword, Keywords, PolicyConfig, Scope, SendRequest, TemplateStatus,
    Verdict, WindowFacts, decide, fold_applied,
};
use crate::store::{
    ConsentRow, Db, NewSend, SendRow, SendState, Stats, Store, TemplateRow, Writer,
};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::transport::{Accepted, Failure, OutboundMessage, Transport};

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
/// `Gate` is `Send + Sync`: share it between threads behind an `Arc`.
pub struct Gate {
    /// The one writer connection (SQLite has one writer).
    store: Mutex<Store>,
    /// A reader connection for file databases, so that checks do not wait
    /// behind a commit's fsync.
    reader: Option<Mutex<Store>>,
    committer: Committer,
    config: GateConfig,
    clock: Arc<dyn Clock>,
}

/// Group commit: concurrent [`Business::ingest`] calls are coalesced into
/// one transaction and one fsync.
///
/// Callers queue their event and wait on a slot of their own. The first
/// caller to find no leader leads: it gathers the queue, commits it (each
/// event in its own savepoint), fills every caller's slot, and hands
/// leadership to the first caller queued meanwhile. A caller returns only
/// after the transaction holding its event committed, so durability is that
/// of a single commit. As in LevelDB's writer queue, nobody polls.
#[derive(Default)]
struct Committer {
    queue: Mutex<Queue>,
    /// Signalled when an event is queued (a gathering leader waits on it).
    arrived: Condvar,
}

#[derive(Default)]
struct Queue {
    pending: Vec<(Job, Arc<Slot>)>,
    leader: bool,
    /// A leader is waiting for `last_group` events to gather.
    gathering: bool,
    /// The size of the last group: how many callers are ingesting at once.
    last_group: usize,
}

struct Job {
    business: i64,
    event: Event,
}

/// Where a waiting caller learns its result, or that it leads next.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
enum SlotState {
    #[default]
    Waiting,
    Lead,
    Done(Result<IngestOutcome>),
}

impl Slot {
    fn set(&self, state: SlotState) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *s = state;
        self.ready.notify_one();
    }
}

/// How long a leader waits for the callers of the last group to queue
/// their next events. Only spent when the last group had several callers,
/// so a lone caller never waits; well below the fsync it saves.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

/// Finishes a leader's turn even if the commit panicked: every slot of the
/// group gets an answer ([`Error::Poisoned`] if none was computed) and
/// leadership passes on, so no caller waits forever.
struct Turn<'a> {
    committer: &'a Committer,
    slots: Vec<Arc<Slot>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        for slot in self.slots.drain(..) {
            slot.set(SlotState::Done(Err(Error::Poisoned)));
        }
        let mut q = self
            .committer
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match q.pending.first() {
            Some((_, next)) => next.set(SlotState::Lead),
            None => q.leader = false,
        }
    }
}

impl Committer {
    /// Queues `job` and returns its result once its group committed.
    fn submit(
        &self,
        job: Job,
        commit: impl Fn(&[Job]) -> Vec<Result<IngestOutcome>>,
    ) -> Result<IngestOutcome> {
        let mine = Arc::new(Slot::default());
        // No lock here is held across code that can panic; should one be
        // poisoned anyway, go on: a caller must never be left without an
        // answer or a queue without a leader.
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.pending.push((job, mine.clone()));
        if q.gathering && q.pending.len() >= q.last_group {
            // Wake the gathering leader once, when its group is complete.
            self.arrived.notify_one();
        }
        let lead = !q.leader;
        q.leader = true;
        drop(q);
        if !lead {
            let mut state = mine
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            loop {
                match std::mem::take(&mut *state) {
                    SlotState::Done(r) => return r,
                    SlotState::Lead => break,
                    SlotState::Waiting => {
                        state = mine
                            .ready
                            .wait(state)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                }
            }
        }
        // Leading. Our own job is queued, so this group includes it.
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let target = q.last_group;
        if target > 1 && q.pending.len() < target {
            // Under concurrency, let the last group's callers catch up, so
            // one fsync covers as many events as there are callers.
            let deadline = std::time::Instant::now() + GATHER;
            q.gathering = true;
            while q.pending.len() < target {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                q = self
                    .arrived
                    .wait_timeout(q, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            q.gathering = false;
        }
        let (jobs, slots): (Vec<Job>, Vec<Arc<Slot>>) =
            std::mem::take(&mut q.pending).into_iter().unzip();
        q.last_group = jobs.len();
        drop(q);
        let mut turn = Turn {
            committer: self,
            slots,
        };
        let results = commit(&jobs);
        let mut own = Err(Error::Poisoned);
        // Slots left without a result (never expected) stay in `turn` and
        // are answered by its drop.
        let answered = results.len().min(turn.slots.len());
        for (slot, r) in turn
            .slots
            .drain(..answered)
            .collect::<Vec<_>>()
            .into_iter()
            .zip(results)
        {
            if Arc::ptr_eq(&slot, &mine) {
                own = r;
            } else {
                slot.set(SlotState::Done(r));
            }
        }
        drop(turn);
        own
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Opens (creating if needed) a database file, with the default
    /// configuration and the system clock.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`], [`Error::Corrupt`] or a store error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let writer = Store::open(path.as_ref())?;
        let mut gate = Self::from_store(writer);
        gate.reader = Some(Mutex::new(Store::open_reader(path.as_ref())?));
        Ok(gate)
    }

    /// A gate on a private in-memory database.
    ///
    /// # Errors
    /// A store error.
    pub fn open_in_memory() -> Result<Self> {
        Ok(Self::from_store(Store::open_in_memory()?))
    }

    fn from_store(store: Store) -> Self {
        Gate {
            store: Mutex::new(store),
            reader: None,
            committer: Committer::default(),
            config: GateConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the configuration.
    #[must_use]
    pub fn with_config(mut self, config: GateConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the clock (for tests and replays).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// The handle of a business (tenant), created on first use.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for an empty name, or a store error.
    pub fn business(&self, name: &str) -> Result<Business<'_>> {
        if name.is_empty() {
            return Err(Error::InvalidEvent(
                "business name must not be empty".into(),
            ));
        }
        // Look up first: a business exists after its first use, and a read
        // costs no commit.
        let id = match self.read(|db| db.business_id(name, false))? {
            Some(id) => id,
            None => self.write(|w| {
                w.db().business_id(name, true)?.ok_or_else(|| {
                    Error::InvalidEvent(format!("business {name:?} could not be created"))
                })
            })?,
        };
        Ok(Business { gate: self, id })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Store>> {
        self.store.lock().map_err(|_| Error::Poisoned)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        self.lock()?.write(f)
    }

    fn read<T>(&self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        match &self.reader {
            Some(r) => r.lock().map_err(|_| Error::Poisoned)?.read(f),
            None => self.lock()?.read(f),
        }
    }

    /// Commits one group of queued events in one transaction; a failure of
    /// the transaction is every event's answer.
    fn commit_group(&self, jobs: &[Job]) -> Vec<Result<IngestOutcome>> {
        let group = self.write(|w| {
            let now = self.clock.now();
            jobs.iter()
                .map(|j| {
                    let b = Business {
                        gate: self,
                        id: j.business,
                    };
                    w.item(|db| b.apply(db, &j.event, now))
                })
                .collect()
        });
        match group {
            Ok(results) => results,
            Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}

/// One business of a [`Gate`].
#[derive(Clone, Copy, Debug)]
pub struct Business<'g> {
    gate: &'g Gate,
    id: i64,
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

/// One consent event in a user's history, for an auditor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentRecord {
    /// Ingest order among this user's events, from 1.
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
    /// the user not opted out does not).
    pub counted: bool,
}

/// Opt-outs, window closures and template changes that provider error codes
/// cause (RULES R7).
fn feedback_effect(code: u32) -> Option<Feedback> {
    match code {
        63016 | 131047 | 470 => Some(Feedback::WindowClosed),
        21610 => Some(Feedback::OptOut(Scope::All)),
        131050 => Some(Feedback::OptOut(Scope::Marketing)),
        132015 => Some(Feedback::Template("paused")),
        132016 => Some(Feedback::Template("disabled")),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Feedback {
    WindowClosed,
    OptOut(Scope),
    Template(&'static str),
}

impl Business<'_> {
    /// Ingests one event in its own transaction.
    ///
    /// ```
    /// use wagate::{Address, Event, Gate, InboundMessage, Timestamp};
    /// let gate = Gate::open_in_memory()?;
    /// let acme = gate.business("acme")?;
    /// let user = Address::parse("whatsapp:+15550001111")?;
    /// let sender = Address::parse("whatsapp:+14155238886")?;
    /// let at = Timestamp::parse("2026-03-01T10:00:00Z")?;
    /// let msg = InboundMessage::text(user, sender, "STOP", at).with_id("SM1");
    /// let first = acme.ingest(&Event::Inbound(msg.clone()))?;
    /// assert!(first.opened_window && !first.duplicate);
    /// assert!(acme.ingest(&Event::Inbound(msg))?.duplicate);
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// A typed error naming the problem with the event (nothing is
    /// written), or a store error.
    pub fn ingest(&self, event: &Event) -> Result<IngestOutcome> {
        let job = Job {
            business: self.id,
            event: event.clone(),
        };
        self.gate
            .committer
            .submit(job, |jobs| self.gate.commit_group(jobs))
    }

    /// Ingests events in one transaction. Each event is applied in a
    /// savepoint: a bad one is reported in its slot and leaves no trace,
    /// the others land together.
    ///
    /// # Errors
    /// A store error that fails the whole batch (then nothing landed).
    pub fn ingest_batch(&self, events: &[Event]) -> Result<Vec<Result<IngestOutcome>>> {
        self.gate.write(|w| {
            let now = self.gate.clock.now();
            events
                .iter()
                .map(|e| w.item(|db| self.apply(db, e, now)))
                .collect()
        })
    }

    /// Decides a send request now, recording nothing.
    ///
    /// # Errors
    /// A store error or an unreadable row: never an allow by default.
    pub fn check(&self, req: &SendRequest) -> Result<Decision> {
        self.gate
            .read(|db| self.decide(db, req, self.gate.clock.now()))
    }

    /// Decides a send request, records the attempt and its decision, and
    /// hands an allowed message to `transport`. A key that already reached
    /// the transport sends nothing and reports the first decision as a
    /// duplicate. No write transaction is held while the transport runs.
    ///
    /// ```
    /// use wagate::{Content, Gate, SendRequest, transport::RecordingTransport};
    /// let gate = Gate::open_in_memory()?;
    /// let acme = gate.business("acme")?;
    /// let t = RecordingTransport::new();
    /// let req = SendRequest::new("whatsapp:+14155238886", "whatsapp:+15550001111", Content::text("hi"));
    /// let out = acme.send(&req, "msg-1", &t)?;
    /// assert!(!out.decision.is_allowed()); // no window, no opt-in
    /// assert!(t.sent().is_empty());
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// A store error. If recording the transport's answer fails after the
    /// provider accepted, the error is returned and the key stays reserved,
    /// so a retry does not send again.
    pub fn send<T: Transport + ?Sized>(
        &self,
        req: &SendRequest,
        key: &str,
        transport: &T,
    ) -> Result<SendOutcome> {
        if key.is_empty() {
            return Err(Error::InvalidEvent(
                "idempotency key must not be empty".into(),
            ));
        }
        // `now` is read once the write lock is held: the decision and the
        // recorded send time `s` (what feedback is dated at) are those of
        // the moment of reservation.
        let reserved = self
            .gate
            .write(|w| self.reserve(w.db(), req, key, self.gate.clock.now()))?;
        let (decision, id, message) = match reserved {
            Reserved::Done(outcome) => return Ok(*outcome),
            Reserved::Go(go) => *go,
        };
        let answer = transport.send(&message);
        let delivery = self.gate.write(|w| {
            let db = w.db();
            match &answer {
                Ok(receipt) => {
                    let pid = receipt.provider_id();
                    db.finish_send(id, SendState::Sent, Some(pid), None, None)?;
                    Ok(Delivery::Accepted {
                        provider_id: pid.to_owned(),
                    })
                }
                Err(e) => {
                    let state = if e.is_transient() {
                        SendState::Retryable
                    } else {
                        SendState::Failed
                    };
                    let text = e.to_string();
                    db.finish_send(id, state, None, e.provider_code(), Some(&text))?;
                    if let Some(code) = e.provider_code()
                        && let Some(sent) = db.send_by_id(id)?
                    {
                        self.feedback(db, &sent, code, self.gate.clock.now())?;
                    }
                    Ok(Delivery::Refused {
                        transient: e.is_transient(),
                        code: e.provider_code(),
                        message: text,
                    })
                }
            }
        })?;
        Ok(SendOutcome { decision, delivery })
    }

    /// The consent history of a user, oldest first, for an auditor.
    ///
    /// # Errors
    /// A store error or an unreadable row.
    pub fn consent_history(&self, user: &Address) -> Result<Vec<ConsentRecord>> {
        self.gate.read(|db| {
            let Some(uid) = db.user_id(self.id, user.as_str(), false)? else {
                return Ok(Vec::new());
            };
            let rows = db.consent_history(self.id, uid)?;
            let facts: Vec<_> = rows
                .iter()
                .map(|r| crate::policy::ConsentFact {
                    action: r.action,
                    scope: r.scope,
                    effective: r.effective,
                    conditional: r.conditional,
                })
                .collect();
            let (_, counted) = fold_applied(&facts);
            Ok(rows
                .into_iter()
                .zip(counted)
                .map(|(r, counted)| ConsentRecord {
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
                })
                .collect())
        })
    }

    /// The windows of a user with each sender of this business.
    ///
    /// # Errors
    /// A store error.
    pub fn windows(&self, user: &Address) -> Result<Vec<(Address, WindowFacts)>> {
        self.gate.read(|db| {
            let Some(uid) = db.user_id(self.id, user.as_str(), false)? else {
                return Ok(Vec::new());
            };
            db.windows_of(self.id, uid)?
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
    /// after `since` (all when `None`), with the user's key, user by user
    /// in ingest order, streaming from one read snapshot.
    ///
    /// # Errors
    /// What `f` returns, or a store error.
    pub fn export_consent(
        &self,
        since: Option<Timestamp>,
        f: impl FnMut(&str, &ConsentRow) -> Result<()>,
    ) -> Result<()> {
        self.gate.read(|db| db.for_each_consent(self.id, since, f))
    }

    /// Counts of users, consent states and windows open now.
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

    fn facts(&self, db: Db<'_>, req: &SendRequest) -> Result<Facts> {
        let (Ok(sender), Ok(user)) = (req.sender(), req.user()) else {
            return Ok(Facts::default());
        };
        let template = match req.content().template_key() {
            Some((name, language)) => db.template(self.id, name, language)?.map(|t| t.facts),
            None => None,
        };
        let Some(uid) = db.user_id(self.id, user.as_str(), false)? else {
            return Ok(Facts {
                template,
                ..Facts::default()
            });
        };
        let consent = db.consent_facts(self.id, uid)?;
        let any_opt_out = consent
            .iter()
            .any(|c| c.action == Action::OptOut && c.scope == Scope::All);
        Ok(Facts {
            window: db.window(self.id, uid, sender.as_str())?,
            last_confirmation_at: if any_opt_out {
                db.last_confirmation(uid)?
            } else {
                None
            },
            consent,
            template,
        })
    }

    fn decide(&self, db: Db<'_>, req: &SendRequest, now: Timestamp) -> Result<Decision> {
        let facts = self.facts(db, req)?;
        Ok(decide(req, &facts, now, &self.gate.config.policy))
    }

    fn reserve(
        &self,
        db: Db<'_>,
        req: &SendRequest,
        key: &str,
        now: Timestamp,
    ) -> Result<Reserved> {
        let mut decision = self.decide(db, req, now)?;
        let prev = db.send_by_key(self.id, key)?;
        if let Some(prev) = &prev {
            decision.reason = prev.reason;
            decision.verdict = prev.reason.verdict();
        }
        let raw = |a: Result<&Address, &crate::AddressError>| match a {
            Ok(a) => a.as_str().to_owned(),
            Err(e) => e.input().to_owned(),
        };
        let user_id = match req.user() {
            Ok(u) => db.user_id(self.id, u.as_str(), false)?,
            Err(_) => None,
        };
        let template = req.content().template_key();
        let id = db.insert_send(
            self.id,
            &NewSend {
                key,
                sender: &raw(req.sender()),
                recipient: &raw(req.user()),
                user_id,
                at: now,
                template,
                purpose: req.purpose().map(|p| p.as_str()),
                reason: decision.reason,
                duplicate: prev.is_some(),
            },
        )?;
        if let Some(prev) = prev {
            let provider_id = prev.provider_id.filter(|_| prev.state == SendState::Sent);
            return Ok(Reserved::Done(Box::new(SendOutcome {
                decision,
                delivery: Delivery::Duplicate { provider_id },
            })));
        }
        let (Verdict::Allow, Ok(from), Ok(to)) = (decision.verdict, req.sender(), req.user())
        else {
            return Ok(Reserved::Done(Box::new(SendOutcome {
                decision,
                delivery: Delivery::NotSent,
            })));
        };
        let (sid, meta) = match template {
            Some((name, language)) => db
                .template(self.id, name, language)?
                .map(|t| (t.twilio_content_sid, t.meta_template_id))
                .unwrap_or_default(),
            None => (None, None),
        };
        let message = OutboundMessage {
            key: key.to_owned(),
            from: from.clone(),
            to: to.clone(),
            content: req.content().clone(),
            rendered: decision.facts.rendered.clone(),
            twilio_content_sid: sid,
            meta_template_id: meta,
            purpose: req.purpose().cloned(),
        };
        Ok(Reserved::Go(Box::new((decision, id, message))))
    }

    fn apply(&self, db: Db<'_>, event: &Event, now: Timestamp) -> Result<IngestOutcome> {
        match event {
            Event::Inbound(m) => self.inbound(db, m, now),
            Event::Consent(c) => {
                if c.source.trim().is_empty() {
                    return Err(Error::InvalidEvent(
                        "consent source must not be empty".into(),
                    ));
                }
                let uid = self.user(db, &c.user)?;
                db.add_consent(
                    self.id,
                    uid,
                    c.action,
                    c.scope,
                    c.at,
                    received(c.received_at, now),
                    c.conditional,
                    &c.source,
                    c.evidence.as_deref(),
                )?;
                Ok(IngestOutcome::default())
            }
            Event::Template(t) => {
                non_empty("name", &t.name)?;
                non_empty("language", &t.language)?;
                db.put_template(
                    self.id,
                    &t.name,
                    &t.language,
                    t.category,
                    t.body.as_str(),
                    &t.status,
                    t.at,
                    received(t.received_at, now),
                    t.twilio_content_sid.as_deref(),
                    t.meta_template_id.as_deref(),
                )?;
                Ok(IngestOutcome::default())
            }
            Event::TemplateStatus(s) => {
                db.set_template_status(
                    self.id,
                    &s.name,
                    &s.language,
                    &s.status,
                    s.at,
                    received(s.received_at, now),
                    "status_update",
                )?;
                Ok(IngestOutcome::default())
            }
            Event::Status(s) => self.status(db, s, now),
        }
    }

    fn user(&self, db: Db<'_>, user: &Address) -> Result<i64> {
        db.user_id(self.id, user.as_str(), true)?
            .ok_or_else(|| Error::InvalidEvent(format!("user {user} could not be created")))
    }

    fn inbound(&self, db: Db<'_>, m: &InboundMessage, now: Timestamp) -> Result<IngestOutcome> {
        let keyword = match (m.kind, &m.body) {
            (MessageKind::Text, Some(body)) => self.gate.config.keywords.classify(body),
            (MessageKind::Text, None) => {
                return Err(Error::InvalidEvent("a text message needs a body".into()));
            }
            _ => None,
        };
        if m.id.as_deref().is_some_and(str::is_empty) {
            return Err(Error::InvalidEvent("message id must not be empty".into()));
        }
        let received = received(m.received_at, now);
        let eff = crate::time::effective(m.at, received);
        // A duplicate changes nothing, not even the users table.
        let uid = match db.user_id(self.id, m.from.as_str(), false)? {
            Some(uid) => uid,
            None => {
                if let Some(id) = &m.id
                    && db.inbound_exists(self.id, id)?
                {
                    return Ok(IngestOutcome {
                        duplicate: true,
                        ..IngestOutcome::default()
                    });
                }
                db.insert_user(self.id, m.from.as_str())?
            }
        };
        if !db.insert_inbound(self.id, uid, m, received, keyword)? {
            return Ok(IngestOutcome {
                duplicate: true,
                ..IngestOutcome::default()
            });
        }
        let opened = m.kind.opens_window();
        if opened {
            let referral = m.referral.map(|_| eff);
            db.raise_window(self.id, uid, m.to.as_str(), Some(eff), None, referral)?;
        }
        let action = match keyword {
            Some(Keyword::OptOut) => Some((Action::OptOut, false)),
            Some(Keyword::OptIn) => Some((Action::OptIn, true)),
            _ => None,
        };
        if let Some((action, conditional)) = action {
            let evidence = format!(
                "keyword {:?} in message {} from {} to {}",
                crate::policy::normalize_keyword(m.body.as_deref().unwrap_or_default()),
                m.id.as_deref().unwrap_or("(no id)"),
                m.from,
                m.to
            );
            db.add_consent(
                self.id,
                uid,
                action,
                Scope::All,
                m.at,
                received,
                conditional,
                "keyword",
                Some(&evidence),
            )?;
        }
        Ok(IngestOutcome {
            duplicate: false,
            keyword,
            opened_window: opened,
            feedback: None,
        })
    }

    fn status(&self, db: Db<'_>, s: &StatusCallback, now: Timestamp) -> Result<IngestOutcome> {
        let send = db
            .send_by_provider_id(self.id, &s.id)?
            .ok_or_else(|| Error::UnknownMessage(s.id.clone()))?;
        db.advance_status(send.id, s.status)?;
        let mut out = IngestOutcome::default();
        if let Some(code) = s.error_code
            && self.feedback(db, &send, code, received(s.received_at, now))?
        {
            out.feedback = Some(code);
        }
        Ok(out)
    }

    /// Applies a provider error code about `send` once (RULES R7); returns
    /// whether it took effect now.
    fn feedback(&self, db: Db<'_>, send: &SendRow, code: u32, received: Timestamp) -> Result<bool> {
        let Some(effect) = feedback_effect(code) else {
            return Ok(false);
        };
        if !db.mark_feedback(self.id, send.id, code, received)? {
            return Ok(false);
        }
        let s = send.at;
        // The effect is dated at the send, whenever the callback arrived;
        // a callback stamped before `s` (clock skew) must not move it earlier.
        let received = received.max(s);
        let evidence = match &send.provider_id {
            Some(pid) => format!("provider error {code} on message {pid} (send {})", send.key),
            None => format!("provider error {code} refusing send {}", send.key),
        };
        match (effect, send.user_id) {
            (Feedback::WindowClosed, Some(uid)) => {
                db.raise_window(self.id, uid, &send.sender, None, Some(s), None)?;
            }
            (Feedback::OptOut(scope), Some(uid)) => {
                db.add_consent(
                    self.id,
                    uid,
                    Action::OptOut,
                    scope,
                    s,
                    received,
                    false,
                    "provider_error",
                    Some(&evidence),
                )?;
            }
            (Feedback::Template(status), _) => {
                if let Some((name, language)) = &send.template {
                    let status = TemplateStatus::parse(status)?;
                    db.set_template_status(
                        self.id,
                        name,
                        language,
                        &status,
                        s,
                        received,
                        "provider_error",
                    )?;
                }
            }
            (_, None) => {}
        }
        Ok(true)
    }
}

enum Reserved {
    Done(Box<SendOutcome>),
    Go(Box<(Decision, i64, OutboundMessage)>),
}

/// When an event reached us: as given, but never later than now (a time
/// in the future cannot be an arrival time), and now when not given.
fn received(given: Option<Timestamp>, now: Timestamp) -> Timestamp {
    given.map_or(now, |r| r.min(now))
}

fn non_empty(what: &'static str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        Err(Error::Template(crate::policy::TemplateError::Empty(what)))
    } else {
        Ok(())
    }
}
