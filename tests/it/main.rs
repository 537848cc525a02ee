//! All integration tests in one binary, so the suite links once.

// Test code may unwrap: a panic is a failed test.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Runs a test body `fn name(on: On)` on both stores: `name::sqlite` and,
/// with the feature, `name::postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(crate::common::On::Sqlite);
            }

            #[cfg(feature = "postgres")]
            #[test]
            fn postgres() {
                super::$name(crate::common::On::Postgres);
            }
        }
    )*};
}

#[cfg(feature = "tokio")]
mod async_gate;
mod batches;
mod cli;
mod common;
mod crash;
mod docs;
mod erasure;
mod events;
#[cfg(feature = "tokio")]
mod examples;
mod facts;
#[cfg(any(feature = "twilio", feature = "meta"))]
mod fake_http;
mod faults;
mod fuzz_regressions;
mod inputs;
mod live_lines;
#[cfg(feature = "meta")]
mod meta;
#[cfg(feature = "meta")]
mod meta_properties;
#[cfg(feature = "meta")]
mod meta_signature;
#[cfg(all(feature = "meta", feature = "ureq"))]
mod meta_transport;
mod model;
#[cfg(feature = "postgres")]
mod pg;
mod processes;
mod properties;
mod reasons;
mod replay;
mod retention;
mod scenarios;
mod schema;
mod statuses;
mod store_file;
mod tamper;
mod templates;
#[cfg(all(feature = "twilio", feature = "ureq"))]
mod twilio;
#[cfg(feature = "twilio")]
mod twilio_properties;
