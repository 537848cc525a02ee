//! Meta's WhatsApp Cloud API (feature `meta`): webhook payloads to events,
//! `X-Hub-Signature-256` and the subscription handshake, and a transport
//! for the Graph API's messages endpoint.
//!
//! - [`signature`]: [`verify`](signature::verify) a payload's raw bytes
//!   before parsing them; [`handshake`](signature::handshake) answers the
//!   GET that subscribes a webhook.
//! - [`webhook`]: a payload to [`MetaWebhook`]: the events to ingest
//!   together ([`Business::ingest_all`](crate::Business::ingest_all)), and
//!   what Meta reported beside them.
//! - [`api`]: the messages request for an allowed message and the reading
//!   of Meta's answer, with no IO.
//! - [`MetaTransport`]: the two over any
//!   [`SyncHttpClient`](crate::providers::http::SyncHttpClient) or
//!   [`AsyncHttpClient`](crate::providers::http::AsyncHttpClient).

pub mod api;
pub mod signature;
mod transport;
pub mod webhook;

pub use api::{ErrorClass, MetaConfig, MetaError, MetaReceipt};
pub use transport::MetaTransport;
pub use webhook::{MetaWebhook, WebhookError};
