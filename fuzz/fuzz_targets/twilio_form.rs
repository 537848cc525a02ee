//! `TwilioWebhook::parse` on arbitrary bytes, then `.event(ts)`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::Timestamp;
use wagate::providers::twilio::TwilioWebhook;

fuzz_target!(|input: (i64, &[u8])| {
    let (ms, body) = input;
    if let Ok(hook) = TwilioWebhook::parse(body) {
        let _ = hook.event(Timestamp::from_millis(ms));
    }
});
