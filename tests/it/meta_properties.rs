//! Properties of the Meta webhook parser: any JSON, and any mutation of a
//! real payload, is read or refused with a typed error, never a panic; what
//! it reads always has a sender phone and provider ids.

use proptest::prelude::*;
use serde_json::{Map, Value};
use wagate::providers::meta::MetaWebhook;
use wagate::{Event, Timestamp};

/// Keys the parser reads, and a few it does not.
const KEYS: [&str; 40] = [
    "object",
    "entry",
    "id",
    "time",
    "changes",
    "field",
    "value",
    "messaging_product",
    "metadata",
    "display_phone_number",
    "phone_number_id",
    "contacts",
    "profile",
    "name",
    "wa_id",
    "user_id",
    "messages",
    "from",
    "from_user_id",
    "timestamp",
    "type",
    "text",
    "body",
    "image",
    "caption",
    "context",
    "referral",
    "source_type",
    "interactive",
    "button_reply",
    "title",
    "statuses",
    "status",
    "recipient_id",
    "recipient_user_id",
    "errors",
    "code",
    "pricing",
    "user_preferences",
    "event",
];

/// Strings that mean something somewhere in a payload.
const WORDS: [&str; 28] = [
    "",
    "messages",
    "statuses",
    "user_preferences",
    "message_template_status_update",
    "account_update",
    "whatsapp_business_account",
    "text",
    "image",
    "interactive",
    "reaction",
    "system",
    "sent",
    "delivered",
    "failed",
    "deleted",
    "marketing_messages",
    "stop",
    "resume",
    "APPROVED",
    "REINSTATED",
    "FLAGGED",
    "ad",
    "post",
    "15550783881",
    "16505551234",
    "US.13491208655302741918",
    "1772359200",
];

/// Real payloads, to mutate.
const FIXTURES: [&str; 10] = [
    include_str!("../fixtures/meta/multi_entry.json"),
    include_str!("../fixtures/meta/username_user.json"),
    include_str!("../fixtures/meta/phone_user_linked.json"),
    include_str!("../fixtures/meta/interactive_list_reply.json"),
    include_str!("../fixtures/meta/referral_ad.json"),
    include_str!("../fixtures/meta/statuses_failed.json"),
    include_str!("../fixtures/meta/statuses_read.json"),
    include_str!("../fixtures/meta/user_preferences_stop.json"),
    include_str!("../fixtures/meta/template_paused.json"),
    include_str!("../fixtures/meta/value_errors_130429.json"),
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(WORDS.to_vec()).prop_map(str::to_owned),
        "[0-9]{0,20}",
        ".{0,16}",
    ]
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Finite only: JSON has no NaN (from(NaN) would be null anyway).
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(1_772_359_200_i64)),
        Just(Value::from(-1_i64)),
        Just(Value::from(253_402_300_800_i64)),
        arb_string().prop_map(Value::String),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
        1 => ".{0,8}",
    ]
}

/// Any JSON value of bounded depth and size.
fn arb_json() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Arbitrary JSON in the envelope Meta uses, so the parser gets past the
/// first levels more often than by chance.
fn arb_payload() -> impl Strategy<Value = Value> {
    let change = (
        proptest::sample::select(WORDS[1..6].to_vec()),
        arb_json(),
        proptest::collection::vec(arb_json(), 0..3),
    )
        .prop_map(|(field, mut value, messages)| {
            if let Value::Object(m) = &mut value {
                m.insert("messages".into(), Value::Array(messages));
            }
            serde_json::json!({ "field": field, "value": value })
        });
    proptest::collection::vec(
        (
            proptest::option::of(arb_scalar()),
            proptest::collection::vec(change, 0..3),
        ),
        0..3,
    )
    .prop_map(|entries| {
        let entries: Vec<Value> = entries
            .into_iter()
            .map(|(time, changes)| {
                let mut e = serde_json::json!({ "id": "102290129340398", "changes": changes });
                if let Some(t) = time {
                    e["time"] = t;
                }
                e
            })
            .collect();
        serde_json::json!({ "object": "whatsapp_business_account", "entry": entries })
    })
}

/// Every place in a value, as JSON pointers.
fn pointers(v: &Value, here: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{here}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let p = format!("{here}/{i}");
                out.push(p.clone());
                pointers(child, &p, out);
            }
        }
        _ => {}
    }
}

/// One change to a payload: drop a field, or replace it with a scalar or
/// any JSON.
#[derive(Clone, Debug)]
enum Mutation {
    Drop(prop::sample::Index),
    Replace(prop::sample::Index, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<prop::sample::Index>().prop_map(Mutation::Drop),
        3 => (any::<prop::sample::Index>(), arb_scalar()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any::<prop::sample::Index>(), arb_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

/// Removes the field or item at a JSON pointer.
fn drop_at(v: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match v.pointer_mut(parent) {
        Some(Value::Object(o)) => {
            o.remove(&last);
        }
        Some(Value::Array(a)) => {
            if let Ok(k) = last.parse::<usize>()
                && k < a.len()
            {
                a.remove(k);
            }
        }
        _ => {}
    }
}

fn mutate(v: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(v, "", &mut all);
    if all.is_empty() {
        return;
    }
    match m {
        Mutation::Drop(i) => drop_at(v, &all[i.index(all.len())]),
        Mutation::Replace(i, new) => {
            if let Some(slot) = v.pointer_mut(&all[i.index(all.len())]) {
                *slot = new.clone();
            }
        }
    }
}

/// What a successful read promises, whatever the input.
fn check(hook: &MetaWebhook) -> Result<(), TestCaseError> {
    let mut inbound = 0;
    for e in &hook.events {
        match e {
            Event::Inbound(m) => {
                inbound += 1;
                prop_assert!(m.to.is_phone(), "sender {}", m.to);
                prop_assert!(m.id.as_deref().is_some_and(|id| !id.is_empty()));
                prop_assert!(m.from.is_phone() || m.from.is_bsuid());
                prop_assert!(m.user_id.as_ref().is_none_or(|u| u.is_bsuid()));
                prop_assert!(m.received_at.is_some());
            }
            Event::Status(s) => {
                prop_assert!(!s.id.is_empty());
                prop_assert!(s.from.as_ref().is_some_and(|f| f.is_phone()));
                prop_assert!(s.to.is_some());
                prop_assert!(s.received_at.is_some());
            }
            Event::Consent(c) => {
                prop_assert_eq!(c.source.as_str(), "provider_preference");
                prop_assert!(c.received_at.is_some());
            }
            Event::TemplateStatus(t) => {
                prop_assert!(!t.name.is_empty() && !t.language.is_empty());
                prop_assert!(t.meta_template_id.as_ref().is_none_or(|id| !id.is_empty()));
            }
            other => prop_assert!(false, "unexpected event {:?}", other),
        }
    }
    prop_assert_eq!(hook.messages.len(), inbound);
    prop_assert!(hook.messages.iter().all(|m| !m.id.is_empty()));
    prop_assert!(hook.statuses.iter().all(|s| !s.id.is_empty()));
    Ok(())
}

fn received() -> Timestamp {
    Timestamp::from_millis(1_772_373_600_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes, and any JSON value: a webhook or a typed error.
    #[test]
    fn parsing_never_panics_on_arbitrary_json(bytes in proptest::collection::vec(any::<u8>(), 0..128), v in arb_json()) {
        if let Ok(hook) = MetaWebhook::parse(&bytes, received()) {
            check(&hook)?;
        }
        if let Ok(hook) = MetaWebhook::from_json(&v, received()) {
            check(&hook)?;
        }
        // The same value through its bytes reads the same.
        let again = MetaWebhook::parse(&serde_json::to_vec(&v).unwrap(), received());
        prop_assert_eq!(again, MetaWebhook::from_json(&v, received()));
    }

    /// Arbitrary values inside Meta's envelope.
    #[test]
    fn parsing_never_panics_inside_the_envelope(v in arb_payload()) {
        if let Ok(hook) = MetaWebhook::from_json(&v, received()) {
            check(&hook)?;
        }
    }

    /// A real payload with fields dropped or replaced by random values.
    #[test]
    fn parsing_never_panics_on_mutated_fixtures(
        which in 0..FIXTURES.len(),
        mutations in proptest::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut v: Value = serde_json::from_str(FIXTURES[which]).unwrap();
        for m in &mutations {
            mutate(&mut v, m);
        }
        if let Ok(hook) = MetaWebhook::from_json(&v, received()) {
            check(&hook)?;
        }
    }
}

#[test]
fn every_fixture_reads_and_keeps_the_promises() {
    for text in FIXTURES {
        let hook = MetaWebhook::parse(text.as_bytes(), received()).unwrap();
        check(&hook).unwrap();
    }
}

/// A JSON pointer as the parser names places (`payload.entry[0].id`).
fn dotted(pointer: &str) -> String {
    let mut out = String::from("payload");
    for token in pointer.split('/').skip(1) {
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            out.push('.');
            out.push_str(&token.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

#[test]
fn dropping_any_one_field_of_a_fixture_reads_or_names_the_path() {
    use wagate::providers::meta::WebhookError;
    let (mut read, mut refused) = (0, 0);
    for text in FIXTURES {
        let base: Value = serde_json::from_str(text).unwrap();
        let mut all = Vec::new();
        pointers(&base, "", &mut all);
        for pointer in &all {
            let mut v = base.clone();
            drop_at(&mut v, pointer);
            match MetaWebhook::from_json(&v, received()) {
                Ok(hook) => {
                    read += 1;
                    check(&hook).unwrap();
                }
                Err(WebhookError::Missing(path) | WebhookError::Malformed { path, .. }) => {
                    refused += 1;
                    // The error names the place of what was dropped, or
                    // of the object it was dropped from.
                    let (parent, _) = pointer.rsplit_once('/').unwrap();
                    assert!(path.starts_with(&dotted(parent)), "{pointer}: {path}");
                }
                Err(e) => panic!("{pointer}: {e}"),
            }
        }
    }
    // Most fields are optional (Meta adds fields without notice); the
    // ones the events need are refused by name.
    assert!(read > refused && refused > 0);
}
