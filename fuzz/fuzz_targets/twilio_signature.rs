//! `twilio::signature::validate` and `validate_body` on arbitrary token,
//! URL, parameters, body and header; a signature made by `sign` holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wagate::providers::twilio::signature::{
    body_sha256, public_url, sign, validate, validate_body,
};

fuzz_target!(
    |input: (&str, &str, Vec<(&str, &str)>, &[u8], Option<&str>)| {
        let (token, url, pairs, body, header) = input;
        let _ = validate(token, url, &pairs, header);
        let _ = validate_body(token, url, body, header);
        let _ = public_url(token, url);
        let _ = body_sha256(body);
        if !token.trim().is_empty() {
            let sig = sign(token, url, &pairs);
            let _ = validate(token, url, &pairs, Some(&sig));
        }
    }
);
