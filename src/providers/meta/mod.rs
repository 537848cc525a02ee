//! Meta's WhatsApp Cloud API (feature `meta`): webhook payloads to events,
//! `X-Hub-Signature-256` and the subscription handshake, and a transport
//! for the Graph API's messages endpoint.
//!
//! - [`signature`]: [`verify`](signature::verify) a payload's raw bytes
//!   before parsing them; [`handshake`](signature::handshake) answers the
//!   GET that subscribes a webhook.

pub mod signature;
pub mod webhook;

pub use webhook::{MetaWebhook, WebhookError};
