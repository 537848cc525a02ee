//! Meta (feature `meta`): `X-Hub-Signature-256` against Meta's own SDK
//! vector and an independently computed one over a body with escaped
//! non-ASCII text, and the GET subscription handshake.

use wagate::providers::meta::signature::{HandshakeError, SignatureError, handshake, sign, verify};

/// Meta's WhatsApp Node.js SDK (github.com/WhatsApp/WhatsApp-Nodejs-SDK,
/// commit 58ca3d5f): `src/__tests__/utils.test.ts` ("signature match")
/// expects `generateXHub256Sig("test", M4D_APP_SECRET)` to be this hex,
/// with `M4D_APP_SECRET: 'TEST_APP_SECRET'` from its `jest.config.ts`.
const SDK_SECRET: &str = "TEST_APP_SECRET";
const SDK_BODY: &[u8] = b"test";
const SDK_HEX: &str = "0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221";

/// A made-up app secret (32 hex characters, like Meta's).
const SECRET: &str = "8f1e0c6a2d4b7e9f3a5c1b0d2e4f6a8c";

/// A text message webhook as Meta serialises it: non-ASCII escaped
/// (`\u00e9`, an emoji as a surrogate pair) and `/` as `\/`. The raw
/// string keeps the backslashes as bytes.
const ESCAPED_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Jos\u00e9 Mu\u00f1oz"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","text":{"body":"Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \ud83d\ude00 https:\/\/example.com\/menu"},"type":"text"}]},"field":"messages"}]}]}"#;

/// HMAC-SHA256(SECRET, ESCAPED_BODY), computed independently of this crate
/// with Python's standard library:
/// `hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()` over the
/// same 554 bytes.
const ESCAPED_HEX: &str = "d43747e8bdce585ba4768d77fa4d725071ecfc148fcf940a53410c01f8928b6f";

fn mismatch_hint(r: Result<(), SignatureError>) -> String {
    match r {
        Err(SignatureError::Mismatch { hint }) => hint,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn sdk_vector_signs_and_verifies() {
    assert_eq!(sign(SDK_SECRET, SDK_BODY), format!("sha256={SDK_HEX}"));
    verify(SDK_SECRET, SDK_BODY, Some(&format!("sha256={SDK_HEX}"))).unwrap();
}

#[test]
fn upper_case_hex_and_prefix_are_accepted() {
    let upper = SDK_HEX.to_ascii_uppercase();
    verify(SDK_SECRET, SDK_BODY, Some(&format!("sha256={upper}"))).unwrap();
    verify(SDK_SECRET, SDK_BODY, Some(&format!("SHA256={upper}"))).unwrap();
    verify(SDK_SECRET, SDK_BODY, Some(&format!("Sha256={SDK_HEX}"))).unwrap();
    // Header values may carry surrounding whitespace.
    verify(SDK_SECRET, SDK_BODY, Some(&format!(" sha256={SDK_HEX} "))).unwrap();
}

#[test]
fn escaped_unicode_body_verifies_over_its_raw_bytes() {
    let raw = ESCAPED_BODY.as_bytes();
    assert!(raw.is_ascii(), "Meta's serialisation is ASCII");
    assert_eq!(sign(SECRET, raw), format!("sha256={ESCAPED_HEX}"));
    verify(SECRET, raw, Some(&format!("sha256={ESCAPED_HEX}"))).unwrap();

    // The text is what the escapes say.
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
    let text = &v["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"];
    assert_eq!(text, "Café crème brûlée 😀 https://example.com/menu");
}

#[test]
fn re_serialised_body_fails() {
    let header = format!("sha256={ESCAPED_HEX}");
    let v: serde_json::Value = serde_json::from_slice(ESCAPED_BODY.as_bytes()).unwrap();
    let again = serde_json::to_vec(&v).unwrap();
    // Same JSON, different bytes: raw UTF-8, no escaped slashes.
    assert_ne!(again, ESCAPED_BODY.as_bytes());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&again).unwrap(),
        v
    );
    assert!(String::from_utf8_lossy(&again).contains("Café"));

    let hint = mismatch_hint(verify(SECRET, &again, Some(&header)));
    assert!(hint.contains("re-serialised"), "{hint}");
    assert!(hint.contains("non-ASCII"), "{hint}");
}

#[test]
fn decoded_body_fails_and_says_so() {
    // The same bytes with only the escapes undone (what a framework that
    // decodes text before handing it on would give).
    let decoded = ESCAPED_BODY
        .replace(r"\u00e9", "é")
        .replace(r"\u00f1", "ñ")
        .replace(r"\u00e8", "è")
        .replace(r"\u00fb", "û")
        .replace(r"\ud83d\ude00", "😀")
        .replace(r"\/", "/");
    assert!(!decoded.contains(r"\u"));
    let hint = mismatch_hint(verify(
        SECRET,
        decoded.as_bytes(),
        Some(&format!("sha256={ESCAPED_HEX}")),
    ));
    assert!(hint.contains("decoded before hashing"), "{hint}");
}

#[test]
fn tampered_body_fails() {
    let header = format!("sha256={ESCAPED_HEX}");
    let tampered = ESCAPED_BODY.replace("16505551234", "16505559999");
    assert!(matches!(
        verify(SECRET, tampered.as_bytes(), Some(&header)),
        Err(SignatureError::Mismatch { .. })
    ));
    // One byte more, one byte less.
    let mut longer = ESCAPED_BODY.as_bytes().to_vec();
    longer.push(b'\n');
    assert!(verify(SECRET, &longer, Some(&header)).is_err());
    let shorter = &ESCAPED_BODY.as_bytes()[..ESCAPED_BODY.len() - 1];
    assert!(verify(SECRET, shorter, Some(&header)).is_err());
    // A flipped hex digit in the header.
    let flipped = format!("sha256={}0", &ESCAPED_HEX[..63]);
    assert!(matches!(
        verify(SECRET, ESCAPED_BODY.as_bytes(), Some(&flipped)),
        Err(SignatureError::Mismatch { .. })
    ));
}

#[test]
fn wrong_secret_fails_with_an_actionable_message() {
    let header = format!("sha256={SDK_HEX}");
    let err = verify("TEST_APP_SECRET_2", SDK_BODY, Some(&header)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("app secret"), "{msg}");
    assert!(msg.contains("access token"), "{msg}");
    assert!(msg.contains("verify token"), "{msg}");
    assert!(msg.contains("re-serialised"), "{msg}");
    // A pure ASCII body gets no non-ASCII note.
    assert!(!msg.contains("non-ASCII bytes"), "{msg}");
    // The secret never shows.
    assert!(!msg.contains("TEST_APP_SECRET"), "{msg}");

    let hint = mismatch_hint(verify("TEST_APP_SECRET\n", SDK_BODY, Some(&header)));
    assert!(hint.contains("whitespace"), "{hint}");
}

#[test]
fn missing_or_empty_header() {
    assert_eq!(
        verify(SDK_SECRET, SDK_BODY, None),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        verify(SDK_SECRET, SDK_BODY, Some("")),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        verify(SDK_SECRET, SDK_BODY, Some(" \t")),
        Err(SignatureError::Missing)
    );
    assert!(
        SignatureError::Missing
            .to_string()
            .contains("X-Hub-Signature-256")
    );
}

#[test]
fn legacy_sha1_header_points_to_the_sha256_one() {
    // HMAC-SHA1("TEST_APP_SECRET", "test"): what X-Hub-Signature carries.
    let r = verify(
        SDK_SECRET,
        SDK_BODY,
        Some("sha1=44bbe8cb5111303a241fc3f303d8d997cbf0308f"),
    );
    assert_eq!(r, Err(SignatureError::Legacy));
    let msg = SignatureError::Legacy.to_string();
    assert!(msg.contains("X-Hub-Signature-256"), "{msg}");
    assert_eq!(
        verify(SDK_SECRET, SDK_BODY, Some("SHA1=abc")),
        Err(SignatureError::Legacy)
    );
}

#[test]
fn malformed_headers() {
    let bad = [
        // No prefix.
        SDK_HEX.to_owned(),
        // Another algorithm.
        format!("sha512={SDK_HEX}"),
        format!("md5={SDK_HEX}"),
        // Too short, too long, empty.
        format!("sha256={}", &SDK_HEX[..63]),
        format!("sha256={}", &SDK_HEX[..40]),
        format!("sha256={SDK_HEX}0"),
        "sha256=".to_owned(),
        // Not hex.
        format!("sha256={}z", &SDK_HEX[..63]),
        format!("sha256=0x{}", &SDK_HEX[..62]),
        // Base64 of the digest instead of hex.
        "sha256=DGGUe2ENT0XmXz1oDiYCcSHsJBPndZi8ts/G4NmIgiE=".to_owned(),
        // Space after '='.
        format!("sha256= {SDK_HEX}"),
    ];
    for h in &bad {
        let r = verify(SDK_SECRET, SDK_BODY, Some(h));
        assert!(
            matches!(r, Err(SignatureError::Malformed(_))),
            "{h:?}: {r:?}"
        );
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("sha256=") && msg.contains("64 hex"), "{msg}");
    }
}

#[test]
fn an_empty_app_secret_is_refused() {
    let header = sign("", SDK_BODY);
    assert_eq!(
        verify("", SDK_BODY, Some(&header)),
        Err(SignatureError::NoSecret)
    );
}

const TOKEN: &str = "my verify/token+é";
const TOKEN_Q: &str = "my%20verify%2Ftoken%2B%C3%A9";

#[test]
fn handshake_answers_the_challenge() {
    let q = format!("hub.mode=subscribe&hub.verify_token={TOKEN_Q}&hub.challenge=1158201444");
    assert_eq!(handshake(&q, TOKEN).unwrap(), "1158201444");
    // Any order, a leading '?', other parameters, '+' for a space.
    let q = "?hub.challenge=42&x=1&hub.verify_token=a+b&hub.mode=subscribe";
    assert_eq!(handshake(q, "a b").unwrap(), "42");
    // The challenge comes back decoded.
    let q = "hub.mode=subscribe&hub.verify_token=t&hub.challenge=a%2Bb%20c";
    assert_eq!(handshake(q, "t").unwrap(), "a+b c");
}

#[test]
fn handshake_refusals() {
    let ok_rest = format!("hub.verify_token={TOKEN_Q}&hub.challenge=1");
    assert_eq!(handshake(&ok_rest, TOKEN), Err(HandshakeError::MissingMode));
    assert_eq!(
        handshake(&format!("hub.mode=&{ok_rest}"), TOKEN),
        Err(HandshakeError::MissingMode)
    );
    assert_eq!(handshake("", TOKEN), Err(HandshakeError::MissingMode));
    // The whole URL instead of the query.
    assert_eq!(
        handshake(
            &format!("https://example.com/meta?hub.mode=subscribe&{ok_rest}"),
            TOKEN
        ),
        Err(HandshakeError::MissingMode)
    );
    assert_eq!(
        handshake(&format!("hub.mode=unsubscribe&{ok_rest}"), TOKEN),
        Err(HandshakeError::NotSubscribe("unsubscribe".to_owned()))
    );
    assert_eq!(
        handshake(&format!("hub.mode=Subscribe&{ok_rest}"), TOKEN),
        Err(HandshakeError::NotSubscribe("Subscribe".to_owned()))
    );
    assert_eq!(
        handshake("hub.mode=subscribe&hub.challenge=1", TOKEN),
        Err(HandshakeError::MissingToken)
    );
    assert_eq!(
        handshake(
            "hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
            TOKEN
        ),
        Err(HandshakeError::MissingToken)
    );
    assert_eq!(
        handshake(
            &format!("hub.mode=subscribe&hub.verify_token={TOKEN_Q}"),
            TOKEN
        ),
        Err(HandshakeError::MissingChallenge)
    );
    assert_eq!(
        handshake(
            &format!("hub.mode=subscribe&hub.verify_token={TOKEN_Q}&hub.challenge="),
            TOKEN
        ),
        Err(HandshakeError::MissingChallenge)
    );
    // No token configured: refused, whatever the query says.
    assert_eq!(
        handshake("hub.mode=subscribe&hub.verify_token=&hub.challenge=1", ""),
        Err(HandshakeError::NoVerifyToken)
    );
}

#[test]
fn handshake_wrong_tokens() {
    let wrong = [
        // Still encoded: the token must be compared decoded.
        "hub.verify_token=my%2520verify%252Ftoken%252B%25C3%25A9",
        // '+' is a space in a query, not a plus.
        "hub.verify_token=my+verify/token+%C3%A9",
        // A prefix, an extension, another case.
        "hub.verify_token=my%20verify",
        "hub.verify_token=my%20verify%2Ftoken%2B%C3%A9x",
        "hub.verify_token=MY%20VERIFY%2FTOKEN%2B%C3%89",
    ];
    for w in wrong {
        let q = format!("hub.mode=subscribe&{w}&hub.challenge=1");
        let r = handshake(&q, TOKEN);
        assert_eq!(r, Err(HandshakeError::WrongToken), "{w}");
        // The expected token never shows.
        let msg = r.unwrap_err().to_string();
        assert!(!msg.contains(TOKEN) && !msg.contains("my verify"), "{msg}");
    }
    // Unencoded characters a sender left raw still decode.
    let q = "hub.mode=subscribe&hub.verify_token=my%20verify/token%2B\u{e9}&hub.challenge=7";
    assert_eq!(handshake(q, TOKEN).unwrap(), "7");
}
