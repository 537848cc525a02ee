//! `twilio::api::message_response` and `meta::api::message_response` on an
//! arbitrary status, headers and body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::providers::{meta, twilio};

fn response(
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Option<http::Response<Vec<u8>>> {
    let mut b = http::Response::builder().status(status);
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(body.to_vec()).ok()
}

fuzz_target!(|input: (u16, Vec<(&str, &[u8])>, &[u8])| {
    let (status, headers, body) = input;
    let Some(r) = response(status, &headers, body) else {
        return;
    };
    let _ = twilio::api::message_response(r.clone());
    let _ = meta::api::message_response(r);
});
