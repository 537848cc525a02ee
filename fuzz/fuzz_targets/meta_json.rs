//! `MetaWebhook::parse` on arbitrary bytes (mostly JSON, from the corpus
//! and the dictionary) at an arbitrary receive time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::Timestamp;
use wagate::providers::meta::MetaWebhook;

fuzz_target!(|input: (i64, &[u8])| {
    let (ms, body) = input;
    let _ = MetaWebhook::parse(body, Timestamp::from_millis(ms));
});
