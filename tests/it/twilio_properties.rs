//! Properties of the Twilio adapter: parsing never panics, and a signature
//! holds for exactly what was signed.

use proptest::prelude::*;
use wagate::providers::twilio::TwilioWebhook;
use wagate::providers::twilio::signature::{sign, validate};
use wagate::providers::twilio::webhook::Form;
use wagate::{Event, Timestamp};

/// Parameter names the parser reads, and a few it does not.
const NAMES: [&str; 24] = [
    "MessageSid",
    "From",
    "To",
    "Body",
    "MessageStatus",
    "ErrorCode",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "Latitude",
    "Longitude",
    "ExternalUserId",
    "MessageType",
    "ButtonText",
    "ButtonPayload",
    "ReferralCtwaClid",
    "ReferralSourceType",
    "Forwarded",
    "WaId",
    "ProfileName",
    "AccountSid",
    "OriginalRepliedMessageSid",
    "ChannelMetadata",
    "Unknown",
];

fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("whatsapp:+15550001111".to_owned()),
        Just("whatsapp:US.1349".to_owned()),
        Just("+14155238886".to_owned()),
        Just("failed".to_owned()),
        Just("63016".to_owned()),
        Just("4294967296".to_owned()),
        Just("-91.5".to_owned()),
        Just("NaN".to_owned()),
        Just("2".to_owned()),
        ".{0,24}",
    ]
}

fn arb_form() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (
            prop_oneof![
                proptest::sample::select(NAMES.to_vec()).prop_map(str::to_owned),
                ".{0,8}"
            ],
            arb_value(),
        ),
        0..14,
    )
}

fn encode(pairs: &[(String, String)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes and any form: a webhook or a typed error, never a panic;
    /// an inbound always has the id, user and sender the form named.
    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), pairs in arb_form()) {
        let _ = TwilioWebhook::parse(&bytes);
        let form = Form::parse(&encode(&pairs));
        prop_assert_eq!(form.pairs(), &pairs[..]);
        if let Ok(hook) = TwilioWebhook::from_form(&form) {
            match hook.event(Timestamp::from_millis(0)) {
                Event::Inbound(m) => {
                    prop_assert_eq!(m.id.as_deref(), form.get("MessageSid"));
                    prop_assert!(m.to.is_phone());
                    prop_assert!(form.get("MessageStatus").is_none());
                }
                Event::Status(s) => prop_assert_eq!(Some(s.id.as_str()), form.get("MessageSid")),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    /// verify(sign(x)) holds, and changing any single byte of the URL, a
    /// parameter or the token breaks it.
    #[test]
    fn a_signature_holds_for_exactly_what_was_signed(
        path in "[a-z0-9/._~-]{0,20}",
        query in proptest::option::of("[a-z0-9=&]{1,12}"),
        pairs in proptest::collection::vec(("[A-Za-z]{1,8}", "[ -~]{0,12}"), 0..6),
        token in "[a-zA-Z0-9]{8,32}",
        which in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let url = format!("https://hooks.example.com/{path}{}", query.map(|q| format!("?{q}")).unwrap_or_default());
        let sig = sign(&token, &url, &pairs);
        prop_assert!(validate(&token, &url, &pairs, Some(&sig)).is_ok());

        // One byte of the path part of the URL (after the host), changed to
        // another printable byte.
        let host_end = "https://hooks.example.com/".len();
        let mut u = url.clone().into_bytes();
        let i = host_end + which.index(u.len() - host_end + 1).min(u.len() - host_end);
        if i < u.len() {
            let b = printable_other(u[i], flip);
            // A quote and its escape are one character to Twilio; ports
            // are tried both ways: neither can be reached by one byte here.
            u[i] = b;
            let changed = String::from_utf8(u).unwrap();
            prop_assert!(validate(&token, &changed, &pairs, Some(&sig)).is_err(), "url {} -> {}", url, changed);
        }

        // One byte of one parameter value or name.
        if !pairs.is_empty() {
            let k = which.index(pairs.len());
            let mut changed = pairs.clone();
            let (name, value) = &mut changed[k];
            let target = if value.is_empty() { name } else { value };
            let mut bytes = target.clone().into_bytes();
            let j = which.index(bytes.len());
            bytes[j] = printable_other(bytes[j], flip);
            *target = String::from_utf8(bytes).unwrap();
            // Repeats count once: a change that makes two pairs equal, or
            // swaps two equal pairs, signs the same text; skip those.
            let mut a = pairs.clone();
            a.sort();
            a.dedup();
            let mut b = changed.clone();
            b.sort();
            b.dedup();
            let same_text = a.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect::<String>()
                == b.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect::<String>();
            if !same_text {
                prop_assert!(validate(&token, &url, &changed, Some(&sig)).is_err());
            }
        }

        // One byte of the token.
        let mut t = token.clone().into_bytes();
        let j = which.index(t.len());
        t[j] = printable_other(t[j], flip);
        prop_assert!(validate(&String::from_utf8(t).unwrap(), &url, &pairs, Some(&sig)).is_err());

        // One byte of the signature.
        let mut s = sig.clone().into_bytes();
        let j = which.index(s.len());
        s[j] = printable_other(s[j], flip);
        if let Ok(s) = String::from_utf8(s) {
            prop_assert!(validate(&token, &url, &pairs, Some(&s)).is_err());
        }
    }
}

/// Another printable ASCII byte than `b`.
fn printable_other(b: u8, flip: u8) -> u8 {
    let c = b' ' + (b.wrapping_sub(b' ').wrapping_add(flip) % 95);
    if c == b {
        if c == b'~' { b' ' } else { c + 1 }
    } else {
        c
    }
}
