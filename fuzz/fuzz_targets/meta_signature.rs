//! `meta::signature::verify` and `handshake` on arbitrary secret, body,
//! header, query and token; a signature made by `sign` verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::providers::meta::signature::{handshake, sign, verify};

fuzz_target!(|input: (&str, &[u8], Option<&str>, &str, &str)| {
    let (secret, body, header, query, token) = input;
    let _ = verify(secret, body, header);
    let _ = handshake(query, token);
    if !secret.trim().is_empty() {
        let sig = sign(secret, body);
        let _ = verify(secret, body, Some(&sig));
    }
});
