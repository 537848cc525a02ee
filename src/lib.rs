#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! # wagate
//!
//! A policy gate for WhatsApp Business messages. Before a message goes out,
//! wagate answers: *may it go out now, and in what form?* — `allow`,
//! `template_required` or `deny`, with exactly one reason code and the
//! facts behind it.
//!
//! It keeps what the answer depends on in SQLite, durably:
//! - people: a user is a phone (`whatsapp:+...`) or a business-scoped id
//!   (`bsuid:...`); a message carrying both links them, and every rule
//!   applies to the person;
//! - the 24-hour customer service window per (business, sender, person),
//!   opened only by user messages, never moved back by late webhooks;
//! - consent per (business, person) as an append-only, hash-chained audit
//!   trail of opt-in and opt-out events, keywords (STOP, START, ...)
//!   included, verified whenever it is read;
//! - templates with their category, status and placeholders;
//! - every send attempt with its decision, and provider feedback (error
//!   codes such as Twilio 63016 or Meta 131047) learned from callbacks.
//!
//! The rules (R1 addresses, R2 windows, R3 consent, R4 keywords, R5
//! templates, R6 the decision, R7 sending and feedback, R8 people, R9
//! provider webhooks) are written down in `docs/rules.md`.
//!
//! ## Which handle do I use?
//! - **A sync service or a script**: [`Gate::open`] once, then
//!   [`Gate::business`] for a [`Business`]: an owned, cheap-to-clone handle
//!   (`Send + Sync + 'static`) to keep in your state and hand to threads.
//!   [`Business::ingest`] for webhooks, [`Business::check`] to ask,
//!   [`Business::send`] to ask and send through a
//!   [`Transport`](transport::Transport).
//! - **Your own HTTP client**: [`Business::reserve`], your call, then
//!   [`Business::complete`].
//! - **An async service** (feature `tokio`): `gate::tokio::AsyncBusiness`
//!   wraps a `Business`; its store work runs on tokio's blocking pool and
//!   its `send` awaits an `AsyncTransport`.
//! - **A campaign**: [`Business::check_many`] decides thousands of requests
//!   in one read.
//! - **An operator**: the `wagate` command line (`wagate --help`).

//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use wagate::{Action, Address, ConsentEvent, Content, Event, Gate, InboundMessage,
//!     ManualClock, Reason, Scope, SendRequest, Timestamp};
//! use wagate::transport::RecordingTransport;
//!
//! let t = |s: &str| Timestamp::parse(s);
//! // A fixed clock for the example; the default is the system clock.
//! let clock = Arc::new(ManualClock::new(t("2026-03-01T10:05:00Z")?));
//! let gate = Gate::open_in_memory()?.with_clock(clock); // or Gate::open("wagate.db")?
//! let acme = gate.business("acme")?;
//! let user = Address::parse("whatsapp:+15550001111")?;
//! let sender = Address::parse("whatsapp:+14155238886")?;
//!
//! // The user opted in on a web form, then wrote to us.
//! acme.ingest(&Event::Consent(
//!     ConsentEvent::new(user.clone(), Action::OptIn, Scope::All, t("2026-03-01T08:00:00Z")?, "web_form")
//!         .with_evidence("signup form v3"),
//! ))?;
//! acme.ingest(&Event::Inbound(
//!     InboundMessage::text(user.clone(), sender.clone(), "Where is my order?",
//!         t("2026-03-01T10:00:00Z")?).with_id("SM1"),
//! ))?;
//!
//! // A freeform reply inside the window goes out through the transport.
//! let transport = RecordingTransport::new();
//! let reply = SendRequest::between(sender.clone(), user.clone(), Content::text("It ships today."));
//! let out = acme.send(&reply, "reply-1", &transport)?;
//! assert_eq!(out.decision.reason, Reason::WindowOpen);
//! assert_eq!(transport.sent().len(), 1);
//!
//! // A retry with the same key never sends twice.
//! assert!(acme.send(&reply, "reply-1", &transport)?.duplicate());
//! assert_eq!(transport.sent().len(), 1);
//! # Ok::<(), wagate::Error>(())
//! ```
//!
//! The pure core is [`policy::decide`]: it takes the facts and `now` and
//! cannot fail. [`Gate`] adds the store (reads are a consistent snapshot;
//! sends decide and reserve in one `BEGIN IMMEDIATE` transaction, call the
//! transport with no transaction open, then record the answer).
//!
//! ## Layers
//! [`address`] and [`time`] → [`policy`] (pure) → [`chain`] (the consent
//! hash chain, pure) → `store` (SQLite, internal) → [`gate`] (store +
//! policy + [`transport`]) → [`scenario`] (the replay format) → the
//! `wagate` binary. Each module imports only from the ones before it.

pub mod address;
pub mod chain;
pub mod error;
pub mod event;
pub mod gate;
pub mod policy;
#[cfg(any(
    feature = "twilio",
    feature = "meta",
    feature = "ureq",
    feature = "reqwest"
))]
pub mod providers;
pub mod scenario;
#[doc(hidden)]
pub mod store;
pub mod time;
pub mod transport;

pub use address::{Address, AddressError};
pub use error::{Error, Result, StoreError};
pub use event::{
    ConsentEvent, DeliveryStatus, Event, InboundMessage, IngestOutcome, LinkEvent, MessageKind,
    Pricing, Referral, StatusCallback, TemplateRecord, TemplateStatusUpdate,
};
pub use gate::MIN_RETENTION;
pub use gate::{
    Business, ConsentRecord, Delivery, Gate, GateConfig, Pending, PersonView, Reservation,
    SendOutcome, SendQuery,
};
pub use policy::{
    Action, Category, ConsentState, Content, Decision, Keyword, Keywords, PolicyConfig, Purpose,
    Reason, Scope, SendRequest, TemplateBody, TemplateStatus, Variables, Verdict,
};
pub use store::{
    ChainHead, ConsentRow, Forgotten, LinkRow, Purged, SendRecord, SendState, Stats, TemplateRow,
    VerifyReport,
};
pub use time::{Clock, ManualClock, SystemClock, TimeError, Timestamp};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
