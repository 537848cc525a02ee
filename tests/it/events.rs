//! The event types' public helpers: message kinds print and parse as the
//! scenario format writes them and open a window as RULES R2 says, and an
//! inbound message lists the user addresses it carries (R8).

use std::str::FromStr;

use wagate::{Address, InboundMessage, MessageKind};

use crate::common::*;

#[test]
fn message_kinds_print_parse_and_open_windows_as_the_rules_say() {
    let kinds = [
        ("text", true),
        ("media", true),
        ("location", true),
        ("contacts", true),
        ("button", true),
        ("interactive", true),
        ("order", true),
        ("call", true),
        ("reaction", false),
        ("unsupported", false),
        ("system", false),
    ];
    for (name, opens) in kinds {
        let k = MessageKind::from_str(name).unwrap();
        assert_eq!(k.to_string(), name);
        assert_eq!(k.as_str(), name);
        assert_eq!(k.opens_window(), opens, "{name}");
    }
    assert!(MessageKind::from_str("Text").is_err());
}

#[test]
fn an_inbound_lists_its_phone_then_its_business_scoped_id_once() {
    let phone = user(0);
    let bsuid = Address::from_bsuid("US.1").unwrap();
    let m = InboundMessage::text(phone.clone(), sender(0), "hi", t(0));
    assert_eq!(m.addresses().collect::<Vec<_>>(), [&phone]);
    let both = m.clone().with_user_id(bsuid.clone());
    assert_eq!(both.addresses().collect::<Vec<_>>(), [&phone, &bsuid]);
    // A user id equal to `from` is one address, not two.
    let same = m.with_user_id(phone.clone());
    assert_eq!(same.addresses().collect::<Vec<_>>(), [&phone]);
}

#[test]
fn only_a_help_keyword_is_a_help_request() {
    let (gate, _clock) = gate();
    let b = gate.business("acme").unwrap();
    for (i, (body, help)) in [
        ("HELP", true),
        ("info!", true),
        ("hi", false),
        ("STOP", false),
    ]
    .into_iter()
    .enumerate()
    {
        let out = b
            .ingest(&inbound(
                &user(0),
                &sender(0),
                MessageKind::Text,
                body,
                0,
                &format!("m{i}"),
            ))
            .unwrap();
        assert_eq!(out.is_help(), help, "{body:?}");
    }
}
