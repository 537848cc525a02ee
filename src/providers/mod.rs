//! Providers: what Twilio and Meta send us and what we send them.
//!
//! The provider code does no IO (as the `oauth2` crate does it): it builds
//! [`http::Request`]s and reads [`http::Response`]s, and any HTTP client
//! carries them through [`SyncHttpClient`](http::SyncHttpClient) or
//! [`AsyncHttpClient`](http::AsyncHttpClient); `ureq` and `reqwest` are
//! ready behind features of the same names. Webhook parsing and signature
//! checks take what every web framework gives (the URL, the headers, the
//! body bytes). Providers never touch the store: they turn webhooks into
//! [`Event`](crate::Event)s for [`Business::ingest`](crate::Business::ingest)
//! and implement [`Transport`](crate::transport::Transport).

pub mod http;
#[cfg(feature = "meta")]
pub mod meta;
#[cfg(feature = "twilio")]
pub mod twilio;
