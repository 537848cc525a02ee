//! Twilio (feature `twilio`): inbound and status webhooks to events,
//! `X-Twilio-Signature`, and a transport for the Messages API.
//!
//! - [`webhook`]: a form body to [`TwilioWebhook`](webhook::TwilioWebhook),
//!   an inbound message or a status callback, and from it the
//!   [`Event`](crate::Event) RULES R9 says.
//! - [`signature`]: [`validate`](signature::validate) a request before
//!   parsing it.
//! - [`api`]: the Messages API request for an allowed message and the
//!   reading of Twilio's answer, with no IO.
//! - [`TwilioTransport`]: the two over any
//!   [`SyncHttpClient`](crate::providers::http::SyncHttpClient) or
//!   [`AsyncHttpClient`](crate::providers::http::AsyncHttpClient).

pub mod api;
pub mod signature;
mod transport;
pub mod webhook;

pub use api::{Credentials, TwilioConfig, TwilioError, TwilioReceipt};
pub use transport::TwilioTransport;
pub use webhook::{TwilioWebhook, WebhookError};
