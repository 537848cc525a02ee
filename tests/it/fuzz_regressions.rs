//! The fuzz targets' entry points (see `fuzz/`, not built by CI), kept in
//! CI as "never panics" properties where no other file has one, and each
//! input a fuzzer found crashing, embedded as bytes.
//!
//! Entry points already covered elsewhere: `Address::parse` (properties.rs,
//! widened here to any text), `TemplateBody::parse` (properties.rs),
//! `TwilioWebhook::parse` and `.event` (twilio_properties.rs),
//! `twilio::signature::validate` on signed input (twilio_properties.rs),
//! `MetaWebhook::parse` (meta_properties.rs). Added here: `Address::parse`
//! and `Address::from_bsuid` on any text, `Timestamp::parse`, rendering
//! with `Variables::from_json`, scenario lines through `Replay::line` and
//! `scenario::parse_json`, `validate`/`validate_body` on arbitrary
//! signatures and URLs, Meta's `verify` and `handshake`, and both
//! providers' `message_response`.

use proptest::prelude::*;
use wagate::policy::{TemplateBody, Variables};
use wagate::scenario::{OPS, Replay, parse_json};
use wagate::{Address, Timestamp};

/// Text made of the pieces a parser looks for, and anything else.
fn arb_text(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(pieces).prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
            1 => "[ -~]{0,4}",
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

const TIME_PIECES: &[&str] = &[
    "2026",
    "-",
    "02",
    "29",
    "T",
    "t",
    " ",
    "23",
    ":",
    "59",
    "60",
    ".",
    "999999999",
    "Z",
    "z",
    "+",
    "14",
    "00",
    "-00",
    "9999",
    "0000",
    "12",
    "31",
];

const ADDRESS_PIECES: &[&str] = &[
    "whatsapp:",
    "bsuid:",
    "+",
    "1",
    "0",
    "5550001111",
    " ",
    "(",
    ")",
    "-",
    ".",
    "US.",
    "_",
    "\u{a0}",
];

const TEMPLATE_PIECES: &[&str] = &["{{", "}}", "{", "}", "1", "2", "0", "name", "_", " ", "é"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any text: an address or an error, never a panic; a parsed address
    /// re-parses to itself.
    #[test]
    fn addresses_never_panic(s in prop_oneof![arb_text(ADDRESS_PIECES), any::<String>()]) {
        if let Ok(a) = Address::parse(&s) {
            prop_assert_eq!(Address::parse(a.as_str()).unwrap(), a);
        }
        let _ = Address::parse_phone(&s);
        if let Ok(a) = Address::from_bsuid(&s) {
            prop_assert_eq!(a.bsuid(), Some(s.as_str()));
        }
    }

    /// Any text: a time or an error, never a panic; a time printed in
    /// RFC 3339 parses back to itself.
    #[test]
    fn timestamps_never_panic(s in prop_oneof![arb_text(TIME_PIECES), any::<String>()]) {
        if let Ok(t) = Timestamp::parse(&s)
            && let Ok(back) = Timestamp::parse(&t.to_rfc3339())
        {
            prop_assert_eq!(back, t);
        }
    }

    /// Any body and any JSON variables: rendered or refused, never a panic.
    #[test]
    fn rendering_json_variables_never_panics(
        body in arb_text(TEMPLATE_PIECES),
        vars in arb_json(),
    ) {
        if let Ok(t) = TemplateBody::parse(&body) {
            let vars = Variables::from_json(&vars);
            let _ = vars.as_given();
            let _ = vars.to_json();
            let _ = t.render(&vars);
        }
    }

    /// Any JSON text, strict or not: a value or an error, never a panic.
    #[test]
    fn scenario_json_never_panics(s in prop_oneof![arb_json().prop_map(|v| v.to_string()), arb_text(JSON_PIECES)]) {
        let _ = parse_json(&s);
    }
}

proptest! {
    // Each case replays through an in-memory store: fewer cases.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any scenario lines, one replay: an output or an error line, never a
    /// panic (`Err` only when the store itself fails).
    #[test]
    fn scenario_lines_never_panic(lines in proptest::collection::vec(arb_line(), 1..8)) {
        let mut replay = Replay::new();
        for (i, text) in lines.iter().enumerate() {
            replay.line(i + 1, text).unwrap();
            if replay.stopped() {
                break;
            }
        }
    }
}

const JSON_PIECES: &[&str] = &[
    "{", "}", "[", "]", "\"", ":", ",", "\"a\"", "1e999", "-0", "null", "true", "\\u", "d800",
    "\\", " ",
];

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        arb_text(TEMPLATE_PIECES).prop_map(Value::String),
        "[ -~]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((arb_text(TEMPLATE_PIECES), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A scenario line: an object with a known `op` and fields of any kind,
/// or any text.
fn arb_line() -> impl Strategy<Value = String> {
    let field = proptest::sample::select(
        &[
            "at",
            "received_at",
            "user",
            "sender",
            "name",
            "language",
            "category",
            "status",
            "body",
            "action",
            "scope",
            "source",
            "vars",
            "template",
            "kind",
            "id",
            "now",
            "error_code",
            "window_hours",
        ][..],
    );
    let value = prop_oneof![
        arb_json(),
        arb_text(TIME_PIECES).prop_map(serde_json::Value::String),
        arb_text(ADDRESS_PIECES).prop_map(serde_json::Value::String),
    ];
    prop_oneof![
        4 => (
            proptest::sample::select(&OPS[..]),
            proptest::collection::vec((field, value), 0..6),
        )
            .prop_map(|(op, fields)| {
                let mut m = serde_json::Map::new();
                m.insert("op".into(), op.into());
                for (k, v) in fields {
                    m.insert(k.into(), v);
                }
                serde_json::Value::Object(m).to_string()
            }),
        1 => arb_text(JSON_PIECES),
    ]
}

#[cfg(feature = "twilio")]
mod twilio {
    use proptest::prelude::*;
    use wagate::providers::twilio::api::message_response;
    use wagate::providers::twilio::signature::{validate, validate_body};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any token, URL, parameters, body and header: accepted or
        /// refused, never a panic.
        #[test]
        fn signature_checks_never_panic(
            token in "[ -~]{0,12}",
            url in prop_oneof!["https://[a-z.]{1,8}(:[0-9]{1,6})?/[ -~]{0,24}", any::<String>()],
            pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..4),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            header in proptest::option::of(prop_oneof!["[A-Za-z0-9+/=]{0,32}", any::<String>()]),
        ) {
            let _ = validate(&token, &url, &pairs, header.as_deref());
            let _ = validate_body(&token, &url, &body, header.as_deref());
        }

        /// Any status, headers and body: a receipt or an error, never a panic.
        #[test]
        fn message_response_never_panics(answer in super::arb_response()) {
            let _ = message_response(answer);
        }
    }
}

#[cfg(feature = "meta")]
mod meta {
    use proptest::prelude::*;
    use wagate::providers::meta::api::message_response;
    use wagate::providers::meta::signature::{handshake, verify};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any secret, body and header; any query and token: accepted or
        /// refused, never a panic.
        #[test]
        fn signature_and_handshake_never_panic(
            secret in "[ -~]{0,12}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            header in proptest::option::of(prop_oneof!["sha256=[0-9a-fA-F]{0,66}", any::<String>()]),
            query in prop_oneof![
                "(hub\\.(mode|verify_token|challenge)=[ -~]{0,8}&?){0,4}",
                any::<String>(),
            ],
            token in "[ -~]{0,8}",
        ) {
            let _ = verify(&secret, &body, header.as_deref());
            let _ = handshake(&query, &token);
        }

        /// Any status, headers and body: a receipt or an error, never a panic.
        #[test]
        fn message_response_never_panics(answer in super::arb_response()) {
            let _ = message_response(answer);
        }
    }
}

/// An HTTP answer: any status, a few headers a reader looks at with any
/// value, and a body that is JSON of the right shape, any JSON, or bytes.
#[cfg(any(feature = "twilio", feature = "meta"))]
fn arb_response() -> impl Strategy<Value = http::Response<Vec<u8>>> {
    let header = (
        proptest::sample::select(
            &[
                "retry-after",
                "content-type",
                "x-twilio-request-id",
                "x-other",
            ][..],
        ),
        prop_oneof![
            "[0-9]{0,12}",
            "[ -~]{0,16}",
            proptest::collection::vec(any::<u8>(), 0..8)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    );
    let body = prop_oneof![
        arb_json().prop_map(|v| v.to_string().into_bytes()),
        (arb_json(), arb_json()).prop_map(|(a, b)| {
            serde_json::json!({
                "sid": a, "status": b, "code": 21610, "message": "m",
                "messages": [{"id": a}], "error": {"code": b, "message": a, "error_subcode": 2494010},
            })
            .to_string()
            .into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    (100u16..1000, proptest::collection::vec(header, 0..3), body).prop_map(
        |(status, headers, body)| {
            let mut b = http::Response::builder().status(status);
            for (k, v) in headers {
                if let Ok(v) = http::HeaderValue::from_str(&v) {
                    b = b.header(k, v);
                }
            }
            b.body(body).unwrap()
        },
    )
}
