//! Meta's webhook payloads (feature `meta`): fixtures written from Meta's
//! documented shapes (tests/fixtures/meta), read into the events RULES R9
//! names, and applied end to end through the gate.

use serde_json::{Value, json};
use wagate::providers::meta::webhook::{self, MetaMessage, MetaStatus};
use wagate::providers::meta::{MetaWebhook, WebhookError};
use wagate::{
    Action, Address, Category, ConsentEvent, Content, DeliveryStatus, Error, Event, InboundMessage,
    Keyword, MessageKind, Pricing, Purpose, Reason, Referral, Scope, SendRequest, StatusCallback,
    TemplateBody, TemplateRecord, TemplateStatus, TemplateStatusUpdate, Timestamp, Variables,
    Verdict,
};

use crate::common::*;

/// A fixture's text, by name.
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/meta/", $name, ".json"))
    };
}

/// 2026-03-01T10:00:00Z (T0 + 10 h): the fixtures' first message.
const B: i64 = 1_772_359_200;
const PHONE: &str = "whatsapp:+16505551234";
const UK: &str = "whatsapp:+447700900123";
const BSUID: &str = "US.13491208655302741918";
const SHOP: &str = "whatsapp:+15550783881";
/// A second of the fixtures' clock.
const S: i64 = 1000;

// The wamids of the fixtures.
const W_TEXT: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzNzJFQTA4Q0FCMzNFNzFDMDJDNgA=";
const W_IMAGE: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQwRTc2MjkyNzk0ODg4RDRGMUZBNwA=";
const W_VIDEO: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRGRkJBRjU4RjEyMzE2MjhGOUFDMgA=";
const W_AUDIO: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRBMDZBNDkyOTU5Q0UxMkIzRjAyOQA=";
const W_DOCUMENT: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ0RjgyNzhDODlBRDE2REEwNUZFQwA=";
const W_STICKER: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ2NTgxRjY1NDMxNDhDQzI0MjUyRQA=";
const W_LOCATION: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ2NDY5QUM4NEE4OTc0OEJCNjdCOQA=";
const W_CONTACTS: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ5REI0OUE1OTI0OUVFRkI2RjY1MgA=";
const W_BUTTON: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ3QjdGQ0M3OEQ2Q0QxNTA3OTI1QgA=";
const W_IREPLY: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ3MjcwODc3NEIyRUI2Q0MzOEIxMQA=";
const W_LREPLY: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQwN0YxNDAxOEIxMzNBMEU1RTk0NgA=";
const W_ORDER: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRDQ0U1NUU0MzA5QTc1Mzk4NUJERAA=";
const W_REACTION: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRBOTA0M0ZGRTQ2OTgwM0Y3QTdGMAA=";
const W_SYSTEM: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzMTdGMUU3NjFGMkZBQThEQTc4MQA=";
const W_UNSUPPORTED: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ5OTVGRUUxRjFBN0VCM0EyQTkzNQA=";
const W_POLL: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ0QjY4Nzg5MTM4MkZENjU4RjU5NAA=";
const W_AD: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ0QUVCMTk1Q0Q2OUVEOTM1MjBCOQA=";
const W_POST: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ5QjQ2NjA5NEVDOTkxQTAzQ0I5NQA=";
const W_USERNAME: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQyNDlCQTM2MDAwMDI5QkJFOTc0OQA=";
const W_LINKED: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRGRjUzOUM5NkEyRUQ5RjcyQTQ3QQA=";
const W_M1: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRBRTIzQjk0Q0NBRjcxNDMzN0U0QwA=";
const W_M2: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzMkQzMzJEQTc2MUY0NERGNzk1OQA=";
const W_STOP: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQxQjQ4MDE1OEUxRjMwRTBCNkNFRQA=";
// Outbound messages the statuses are about.
const W_OUT1: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ4RTc0QUJFMTYxQUExMjFGQjhBNQA=";
const W_OUT2: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRGNzI4QUY5MzUwMjkzMDU4MzlFMAA=";
const W_OUT3: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBRCMEFEQ0ZENjBERjJBQTlDMDcwNgA=";
const W_OUT4: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ3RUU2MUZDQ0E4MkZFNkNDNzJBQgA=";
const W_OUT5: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ3RjA0NkY2OTk5MEE4NTA2RjIyQQA=";
const W_OUT6: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBREMzk0REIzNjMxMTNGREVBRkIwOAA=";
const W_UK_OUT1: &str = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUOEU3NEFCRTE2MUFBMTIxRkI4QTUA";

/// Unix seconds as a timestamp.
fn secs(s: i64) -> Timestamp {
    Timestamp::from_millis(s * S)
}

/// When the parse tests receive their payloads.
fn received() -> Timestamp {
    secs(B + 4 * 3600)
}

fn phone() -> Address {
    addr(PHONE)
}

fn bsuid() -> Address {
    Address::from_bsuid(BSUID).unwrap()
}

fn shop() -> Address {
    addr(SHOP)
}

fn parse(json: &str) -> MetaWebhook {
    MetaWebhook::parse(json.as_bytes(), received()).unwrap()
}

fn parse_err(json: &str) -> WebhookError {
    MetaWebhook::parse(json.as_bytes(), received()).unwrap_err()
}

/// A fixture as JSON, to change a field of it.
fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn parse_value(v: &Value) -> Result<MetaWebhook, WebhookError> {
    MetaWebhook::parse(&serde_json::to_vec(v).unwrap(), received())
}

/// An inbound from the phone user to the shop, received at [`received`].
fn inbound_msg(id: &str, kind: MessageKind, body: Option<&str>, at: i64) -> InboundMessage {
    InboundMessage {
        id: Some(id.to_owned()),
        from: phone(),
        user_id: None,
        to: shop(),
        kind,
        body: body.map(str::to_owned),
        at: secs(at),
        received_at: Some(received()),
        referral: None,
    }
}

fn meta_msg(id: &str, message_type: &str) -> MetaMessage {
    MetaMessage {
        id: id.to_owned(),
        phone_number_id: Some("106540352242922".into()),
        message_type: message_type.to_owned(),
        profile_name: Some("Sheena Nelson".into()),
        context_id: None,
        context_from: None,
        forwarded: false,
        media_id: None,
        referral_source_type: None,
        ctwa_clid: None,
    }
}

fn status_cb(id: &str, status: DeliveryStatus, at: i64, to: Address) -> StatusCallback {
    StatusCallback {
        id: id.to_owned(),
        status,
        error_code: None,
        at: secs(at),
        received_at: Some(received()),
        from: Some(shop()),
        to: Some(to),
        pricing: None,
    }
}

fn pricing(category: &str, kind: &str, billable: bool) -> Option<Pricing> {
    Some(Pricing {
        category: Some(category.into()),
        kind: Some(kind.into()),
        billable: Some(billable),
    })
}

fn template_update(status: &str, at: Timestamp) -> TemplateStatusUpdate {
    TemplateStatusUpdate {
        name: "spring_sale".into(),
        language: "en_US".into(),
        status: TemplateStatus::parse(status).unwrap(),
        at,
        received_at: Some(received()),
        twilio_content_sid: None,
        meta_template_id: Some("1689556908129832".into()),
    }
}

fn preference(user: Address, action: Action, at: i64, evidence: &str) -> ConsentEvent {
    ConsentEvent {
        user,
        action,
        scope: Scope::Marketing,
        at: secs(at),
        received_at: Some(received()),
        source: "provider_preference".into(),
        evidence: Some(evidence.into()),
        conditional: false,
    }
}

// ---- messages[]: every type to the inbound of its R9 kind ----

#[test]
fn every_message_type_becomes_one_inbound_of_its_r9_kind() {
    let media = |id: &str, t: &str, media_id: &str| MetaMessage {
        media_id: Some(media_id.into()),
        ..meta_msg(id, t)
    };
    let replying_to = |id: &str, t: &str, to: &str| MetaMessage {
        context_id: Some(to.into()),
        context_from: Some("15550783881".into()),
        ..meta_msg(id, t)
    };
    use MessageKind::*;
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, InboundMessage, MetaMessage)> = vec![
        ("text", fixture!("text"),
            inbound_msg(W_TEXT, Text, Some("Bonjour, je voudrais r\u{e9}server une table pour deux \u{e0} 20h \u{1f37d}\u{fe0f}"), B),
            meta_msg(W_TEXT, "text")),
        ("image", fixture!("image"),
            inbound_msg(W_IMAGE, Media, Some("The box arrived damaged"), B + 60),
            media(W_IMAGE, "image", "1003383421387256")),
        ("video", fixture!("video"),
            inbound_msg(W_VIDEO, Media, None, B + 120),
            media(W_VIDEO, "video", "1166846181421424")),
        ("audio", fixture!("audio"),
            inbound_msg(W_AUDIO, Media, None, B + 180),
            media(W_AUDIO, "audio", "1200232781225856")),
        ("document", fixture!("document"),
            inbound_msg(W_DOCUMENT, Media, Some("Invoice March"), B + 240),
            media(W_DOCUMENT, "document", "1230789001234567")),
        ("sticker", fixture!("sticker"),
            inbound_msg(W_STICKER, Media, None, B + 300),
            media(W_STICKER, "sticker", "1228812345678901")),
        ("location", fixture!("location"),
            inbound_msg(W_LOCATION, Location, None, B + 360),
            meta_msg(W_LOCATION, "location")),
        ("contacts", fixture!("contacts"),
            inbound_msg(W_CONTACTS, Contacts, None, B + 420),
            meta_msg(W_CONTACTS, "contacts")),
        ("button", fixture!("button"),
            inbound_msg(W_BUTTON, Button, Some("Unsubscribe from promos"), B + 480),
            replying_to(W_BUTTON, "button", W_OUT1)),
        ("interactive_button_reply", fixture!("interactive_button_reply"),
            inbound_msg(W_IREPLY, Interactive, Some("Change"), B + 540),
            replying_to(W_IREPLY, "interactive", W_OUT2)),
        ("interactive_list_reply", fixture!("interactive_list_reply"),
            inbound_msg(W_LREPLY, Interactive, Some("Express Shipping"), B + 600),
            replying_to(W_LREPLY, "interactive", W_OUT3)),
        ("order", fixture!("order"),
            inbound_msg(W_ORDER, Order, Some("Love these!"), B + 660),
            meta_msg(W_ORDER, "order")),
        ("reaction", fixture!("reaction"),
            inbound_msg(W_REACTION, Reaction, None, B + 720),
            meta_msg(W_REACTION, "reaction")),
        // System messages come without contacts[]: no profile name.
        ("system", fixture!("system"),
            inbound_msg(W_SYSTEM, System, Some("User Sheena Nelson changed from 16505551234 to 16505559999"), B + 780),
            MetaMessage { profile_name: None, ..meta_msg(W_SYSTEM, "system") }),
        ("unsupported", fixture!("unsupported"),
            inbound_msg(W_UNSUPPORTED, Unsupported, None, B + 840),
            meta_msg(W_UNSUPPORTED, "unsupported")),
        // A type Meta adds later is unsupported, and keeps its name.
        ("unknown_type", fixture!("unknown_type"),
            inbound_msg(W_POLL, Unsupported, None, B + 900),
            meta_msg(W_POLL, "poll_vote")),
        ("referral_ad", fixture!("referral_ad"),
            InboundMessage { referral: Some(Referral::CtwaAd), ..inbound_msg(W_AD, Text, Some("Hi! Is this still available?"), B + 960) },
            MetaMessage {
                referral_source_type: Some("ad".into()),
                ctwa_clid: Some("ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a".into()),
                ..meta_msg(W_AD, "text")
            }),
        ("referral_post", fixture!("referral_post"),
            InboundMessage { referral: Some(Referral::PageCta), ..inbound_msg(W_POST, Text, Some("I saw your post about the opening hours"), B + 1020) },
            MetaMessage { referral_source_type: Some("post".into()), ..meta_msg(W_POST, "text") }),
    ];
    for (name, text, event, message) in cases {
        let hook = parse(text);
        assert_eq!(hook.events, vec![Event::Inbound(event)], "{name}");
        assert_eq!(hook.messages, vec![message], "{name}");
        assert!(hook.statuses.is_empty(), "{name}");
        assert!(hook.errors.is_empty(), "{name}");
        assert!(hook.ignored.is_empty(), "{name}");
    }
}

#[test]
fn text_escaped_the_way_meta_escapes_it_is_read_as_unicode() {
    let raw = fixture!("text");
    // Meta writes non-ASCII as \u escapes, and an emoji as a surrogate pair.
    assert!(raw.is_ascii());
    assert!(raw.contains(r"r\u00e9server") && raw.contains(r"\ud83c\udf7d"));
    let Event::Inbound(m) = &parse(raw).events[0] else {
        panic!("not an inbound")
    };
    assert_eq!(
        m.body.as_deref(),
        Some("Bonjour, je voudrais réserver une table pour deux à 20h 🍽️")
    );
}

#[test]
fn a_forwarded_reply_keeps_its_context() {
    let mut v = json_of(fixture!("button"));
    v["entry"][0]["changes"][0]["value"]["messages"][0]["context"]["forwarded"] = json!(true);
    let hook = parse_value(&v).unwrap();
    assert!(hook.messages[0].forwarded);
    assert_eq!(hook.messages[0].context_id.as_deref(), Some(W_OUT1));
    // The context is not part of the event.
    assert!(matches!(&hook.events[0], Event::Inbound(m) if m.kind == MessageKind::Button));
}

// ---- business-scoped user ids ----

#[test]
fn a_username_user_is_known_by_the_bsuid_alone() {
    let hook = parse(fixture!("username_user"));
    assert_eq!(
        hook.events,
        vec![Event::Inbound(InboundMessage {
            from: bsuid(),
            ..inbound_msg(W_USERNAME, MessageKind::Text, Some("STOP"), B + 3600)
        })]
    );
    assert_eq!(hook.messages, vec![meta_msg(W_USERNAME, "text")]);
}

#[test]
fn a_phone_user_is_linked_to_the_bsuid_through_contacts() {
    let hook = parse(fixture!("phone_user_linked"));
    assert_eq!(
        hook.events,
        vec![Event::Inbound(InboundMessage {
            user_id: Some(bsuid()),
            ..inbound_msg(
                W_LINKED,
                MessageKind::Text,
                Some("Hi, it's Sheena again"),
                B + 7200
            )
        })]
    );
}

#[test]
fn from_and_from_user_id_together_link_without_contacts() {
    let mut v = json_of(fixture!("username_user"));
    let value = &mut v["entry"][0]["changes"][0]["value"];
    value["messages"][0]["from"] = json!("16505551234");
    value.as_object_mut().unwrap().remove("contacts");
    let hook = parse_value(&v).unwrap();
    assert_eq!(
        hook.events,
        vec![Event::Inbound(InboundMessage {
            user_id: Some(bsuid()),
            ..inbound_msg(W_USERNAME, MessageKind::Text, Some("STOP"), B + 3600)
        })]
    );
    assert_eq!(hook.messages[0].profile_name, None);
}

#[test]
fn contacts_that_name_a_phone_fill_in_a_missing_from() {
    // Meta shares the phone in contacts[] but not as `from`.
    let mut v = json_of(fixture!("username_user"));
    v["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = json!("16505551234");
    let Event::Inbound(m) = &parse_value(&v).unwrap().events[0] else {
        panic!("not an inbound")
    };
    assert_eq!((&m.from, &m.user_id), (&phone(), &Some(bsuid())));
}

// ---- statuses[] ----

#[test]
fn statuses_sent_delivered_read_and_played_name_the_user_and_keep_pricing() {
    // sent: recipient_id wins over recipient_user_id, and the contacts[]
    // Meta adds to a status links nothing (R8).
    let hook = parse(fixture!("statuses_sent"));
    let sent_pricing = pricing("marketing", "regular", true);
    assert_eq!(
        hook.events,
        vec![Event::Status(StatusCallback {
            pricing: sent_pricing.clone(),
            ..status_cb(W_OUT4, DeliveryStatus::Sent, B + 1200, phone())
        })]
    );
    assert_eq!(
        hook.statuses,
        vec![MetaStatus {
            id: W_OUT4.into(),
            phone_number_id: Some("106540352242922".into()),
            status: "sent".into(),
            pricing: sent_pricing,
            errors: vec![],
        }]
    );

    let hook = parse(fixture!("statuses_delivered"));
    let free = pricing("service", "free_customer_service", false);
    assert_eq!(
        hook.events,
        vec![Event::Status(StatusCallback {
            pricing: free.clone(),
            ..status_cb(W_OUT1, DeliveryStatus::Delivered, B + 1260, phone())
        })]
    );
    assert_eq!(hook.statuses[0].pricing, free);

    // read, sent to a username user: recipient_id is empty, so the BSUID.
    let hook = parse(fixture!("statuses_read"));
    assert_eq!(
        hook.events,
        vec![Event::Status(status_cb(
            W_OUT2,
            DeliveryStatus::Read,
            B + 1320,
            bsuid()
        ))]
    );

    let hook = parse(fixture!("statuses_played"));
    assert_eq!(
        hook.events,
        vec![Event::Status(status_cb(
            W_OUT6,
            DeliveryStatus::Played,
            B + 1440,
            phone()
        ))]
    );
    assert!(hook.ignored.is_empty() && hook.errors.is_empty());
}

#[test]
fn a_failed_status_carries_each_error_code_as_feedback() {
    let hook = parse(fixture!("statuses_failed"));
    assert_eq!(
        hook.events,
        vec![Event::Status(StatusCallback {
            error_code: Some(131_047),
            ..status_cb(W_OUT5, DeliveryStatus::Failed, B + 1380, phone())
        })]
    );
    assert_eq!(
        hook.statuses[0].errors,
        vec![webhook::ReportedError {
            path: "payload.entry[0].changes[0].value.statuses[0].errors[0]".into(),
            code: Some(131_047),
            title: Some("Re-engagement message".into()),
            details: Some("Message failed to send because more than 24 hours have passed since the customer last replied to this number.".into()),
        }]
    );
    // Status errors are the status's, not the change's.
    assert!(hook.errors.is_empty());
}

#[test]
fn deleted_and_warning_statuses_change_nothing() {
    let hook = parse(fixture!("statuses_deleted"));
    assert_eq!(hook.events, vec![]);
    assert_eq!(
        hook.ignored,
        vec!["payload.entry[0].changes[0].value.statuses[0]: status deleted".to_owned()]
    );
    assert_eq!(hook.statuses[0].status, "deleted");
    assert_eq!(hook.statuses[0].id, W_OUT3);
    // A status that changes nothing needs no user or time to be acknowledged.
    let mut v = json_of(fixture!("statuses_deleted"));
    let s = v["entry"][0]["changes"][0]["value"]["statuses"][0]
        .as_object_mut()
        .unwrap();
    s.insert("status".into(), json!("warning"));
    s.remove("recipient_id");
    s.remove("timestamp");
    let hook = parse_value(&v).unwrap();
    assert_eq!(hook.events, vec![]);
    assert_eq!(
        hook.ignored,
        vec!["payload.entry[0].changes[0].value.statuses[0]: status warning".to_owned()]
    );
}

// ---- user_preferences ----

#[test]
fn user_preferences_stop_and_resume_are_marketing_consent() {
    let hook = parse(fixture!("user_preferences_stop"));
    // wa_id wins over user_id: a preference names one address, links nothing.
    assert_eq!(
        hook.events,
        vec![Event::Consent(preference(
            phone(),
            Action::OptOut,
            B + 5400,
            "Meta user_preferences marketing_messages=stop: User requested to stop marketing messages"
        ))]
    );
    let hook = parse(fixture!("user_preferences_resume"));
    assert_eq!(
        hook.events,
        vec![Event::Consent(preference(
            phone(),
            Action::OptIn,
            B + 9000,
            "Meta user_preferences marketing_messages=resume: User requested to resume marketing messages"
        ))]
    );
    assert!(hook.messages.is_empty() && hook.ignored.is_empty());
}

#[test]
fn a_username_users_preference_names_the_bsuid_and_other_categories_are_ignored() {
    let mut v = json_of(fixture!("user_preferences_stop"));
    v["entry"][0]["changes"][0]["value"]["user_preferences"][0]["wa_id"] = json!("");
    let hook = parse_value(&v).unwrap();
    assert!(matches!(&hook.events[..], [Event::Consent(c)] if c.user == bsuid()));

    let mut v = json_of(fixture!("user_preferences_stop"));
    v["entry"][0]["changes"][0]["value"]["user_preferences"][0]["category"] =
        json!("call_permissions");
    let hook = parse_value(&v).unwrap();
    assert_eq!(hook.events, vec![]);
    assert_eq!(
        hook.ignored,
        vec![
            "payload.entry[0].changes[0].value.user_preferences[0]: preference call_permissions=stop"
                .to_owned()
        ]
    );
}

// ---- message_template_status_update ----

#[test]
fn template_status_updates_are_dated_at_the_entry_time() {
    for (text, status, at) in [
        (fixture!("template_approved"), "approved", B - 7200),
        (fixture!("template_paused"), "paused", B + 1800),
        // REINSTATED means approved again.
        (fixture!("template_reinstated"), "approved", B + 12_600),
    ] {
        let hook = parse(text);
        assert_eq!(
            hook.events,
            vec![Event::TemplateStatus(template_update(status, secs(at)))]
        );
        assert!(hook.ignored.is_empty());
    }
}

#[test]
fn flagged_changes_nothing_and_an_update_without_time_is_dated_at_receipt() {
    let hook = parse(fixture!("template_flagged"));
    assert_eq!(hook.events, vec![]);
    assert_eq!(
        hook.ignored,
        vec!["payload.entry[0].changes[0].value: template spring_sale/en_US FLAGGED".to_owned()]
    );

    let mut v = json_of(fixture!("template_paused"));
    v["entry"][0].as_object_mut().unwrap().remove("time");
    assert_eq!(
        parse_value(&v).unwrap().events,
        vec![Event::TemplateStatus(template_update("paused", received()))]
    );
    // The id as text is kept as given.
    v["entry"][0]["changes"][0]["value"]["message_template_id"] = json!("1689556908129832");
    assert_eq!(
        parse_value(&v).unwrap().events,
        vec![Event::TemplateStatus(template_update("paused", received()))]
    );
}

// ---- errors[] of a change, other fields ----

#[test]
fn errors_of_a_change_are_reported_and_change_nothing() {
    let hook = parse(fixture!("value_errors_130429"));
    assert_eq!(hook.events, vec![]);
    assert_eq!(
        hook.errors,
        vec![webhook::ReportedError {
            path: "payload.entry[0].changes[0].value.errors[0]".into(),
            code: Some(130_429),
            title: Some("Rate limit hit".into()),
            details: Some("Cloud API message throughput has been reached.".into()),
        }]
    );
}

#[test]
fn other_fields_are_acknowledged_and_ignored() {
    let hook = parse(fixture!("account_update"));
    assert_eq!(
        hook,
        MetaWebhook {
            ignored: vec!["payload.entry[0].changes[0]: field account_update".into()],
            ..MetaWebhook::default()
        }
    );
}

#[test]
fn a_payload_of_two_entries_and_many_changes_is_read_in_order() {
    let hook = parse(fixture!("multi_entry"));
    let uk_failed = status_cb(W_UK_OUT1, DeliveryStatus::Failed, B + 75, addr(UK));
    assert_eq!(
        hook.events,
        vec![
            Event::Inbound(InboundMessage {
                user_id: Some(bsuid()),
                ..inbound_msg(
                    W_M1,
                    MessageKind::Text,
                    Some("Do you deliver on Sundays?"),
                    B + 60
                )
            }),
            Event::Inbound(InboundMessage {
                user_id: Some(bsuid()),
                ..inbound_msg(W_M2, MessageKind::Media, None, B + 65)
            }),
            Event::Status(StatusCallback {
                pricing: pricing("service", "free_customer_service", false),
                ..status_cb(W_OUT4, DeliveryStatus::Delivered, B + 70, phone())
            }),
            Event::Status(StatusCallback {
                error_code: Some(131_050),
                ..uk_failed.clone()
            }),
            Event::Status(StatusCallback {
                error_code: Some(131_026),
                ..uk_failed
            }),
            Event::Consent(preference(
                addr(UK),
                Action::OptOut,
                B + 80,
                "Meta user_preferences marketing_messages=stop: User requested to stop marketing messages"
            )),
            Event::TemplateStatus(template_update("paused", secs(B + 90))),
        ]
    );
    assert_eq!(hook.messages.len(), 2);
    assert_eq!(
        hook.messages[1].media_id.as_deref(),
        Some("1017712345678901")
    );
    assert_eq!(hook.statuses.len(), 2);
    assert_eq!(hook.statuses[1].errors.len(), 2);
    assert_eq!(
        hook.ignored,
        vec!["payload.entry[1].changes[2]: field account_update".to_owned()]
    );
}

// ---- malformed payloads: an error naming the JSON path ----

#[test]
fn a_missing_sender_number_is_an_error_naming_its_path() {
    assert_eq!(
        parse_err(fixture!("error_missing_display_phone")),
        WebhookError::Missing(
            "payload.entry[0].changes[0].value.metadata.display_phone_number".into()
        )
    );
    // Present but not a phone number.
    let mut v = json_of(fixture!("text"));
    v["entry"][0]["changes"][0]["value"]["metadata"]["display_phone_number"] = json!("N/A");
    assert!(matches!(
        parse_value(&v),
        Err(WebhookError::Malformed { path, .. })
            if path == "payload.entry[0].changes[0].value.metadata.display_phone_number"
    ));
}

#[test]
fn a_malformed_timestamp_is_an_error_naming_its_path() {
    assert!(matches!(
        parse_err(fixture!("error_bad_timestamp")),
        WebhookError::Malformed { path, .. }
            if path == "payload.entry[0].changes[0].value.messages[0].timestamp"
    ));
    for bad in [json!("-5"), json!("17723592OO"), json!(1.5e9), json!(true)] {
        let mut v = json_of(fixture!("text"));
        v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = bad.clone();
        assert!(
            matches!(parse_value(&v), Err(WebhookError::Malformed { ref path, .. })
                if path == "payload.entry[0].changes[0].value.messages[0].timestamp"),
            "{bad}"
        );
    }
    // Absent (or empty, which is absent) is missing.
    let mut v = json_of(fixture!("text"));
    v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!("");
    assert_eq!(
        parse_value(&v).unwrap_err(),
        WebhookError::Missing("payload.entry[0].changes[0].value.messages[0].timestamp".into())
    );
}

#[test]
fn a_message_from_nobody_is_an_error_naming_its_path() {
    assert_eq!(
        parse_err(fixture!("error_no_user")),
        WebhookError::Missing(
            "payload.entry[0].changes[0].value.messages[0].from (or from_user_id)".into()
        )
    );
}

#[test]
fn a_malformed_second_change_fails_the_whole_payload() {
    assert_eq!(
        parse_err(fixture!("error_second_change_malformed")),
        WebhookError::Missing("payload.entry[0].changes[1].value.statuses[0].id".into())
    );
    assert!(matches!(
        MetaWebhook::parse(b"field=messages", received()),
        Err(WebhookError::Json(_))
    ));
    assert!(matches!(
        MetaWebhook::parse(b"[]", received()),
        Err(WebhookError::Malformed { .. })
    ));
}

// ---- end to end through the gate ----

/// Delivers a payload received at `at` (unix seconds) with the clock there.
fn deliver(
    b: &wagate::Business,
    clock: &wagate::ManualClock,
    text: &str,
    at: i64,
) -> wagate::Result<Vec<wagate::IngestOutcome>> {
    clock.set(secs(at));
    let hook = MetaWebhook::parse(text.as_bytes(), secs(at)).unwrap();
    b.ingest_all(&hook.events)
}

fn freeform(to: Address) -> SendRequest {
    SendRequest::between(shop(), to, Content::text("We have a table for you"))
}

fn decision(b: &wagate::Business, req: &SendRequest) -> (Verdict, Reason) {
    let d = b.check(req).unwrap();
    (d.verdict, d.reason)
}

#[test]
fn only_user_messages_open_the_window() {
    for (name, text, at, opens) in [
        ("text", fixture!("text"), B, true),
        ("image", fixture!("image"), B + 60, true),
        ("video", fixture!("video"), B + 120, true),
        ("audio", fixture!("audio"), B + 180, true),
        ("document", fixture!("document"), B + 240, true),
        ("sticker", fixture!("sticker"), B + 300, true),
        ("location", fixture!("location"), B + 360, true),
        ("contacts", fixture!("contacts"), B + 420, true),
        ("button", fixture!("button"), B + 480, true),
        (
            "interactive",
            fixture!("interactive_button_reply"),
            B + 540,
            true,
        ),
        ("list", fixture!("interactive_list_reply"), B + 600, true),
        ("order", fixture!("order"), B + 660, true),
        ("reaction", fixture!("reaction"), B + 720, false),
        ("system", fixture!("system"), B + 780, false),
        ("unsupported", fixture!("unsupported"), B + 840, false),
        ("unknown_type", fixture!("unknown_type"), B + 900, false),
        ("referral_ad", fixture!("referral_ad"), B + 960, true),
        ("referral_post", fixture!("referral_post"), B + 1020, true),
    ] {
        let (gate, clock) = gate();
        let b = gate.business("acme").unwrap();
        let out = deliver(&b, &clock, text, at + 2).unwrap();
        assert_eq!(out.len(), 1, "{name}");
        assert_eq!(out[0].opened_window, opens, "{name}");
        let expected = if opens {
            (Verdict::Allow, Reason::WindowOpen)
        } else {
            (Verdict::Deny, Reason::NoOptIn)
        };
        assert_eq!(decision(&b, &freeform(phone())), expected, "{name}");
        // Meta retries: a duplicate.
        assert!(
            deliver(&b, &clock, text, at + 60).unwrap()[0].duplicate,
            "{name}"
        );
    }
}

#[test]
fn a_username_stop_stops_the_phone_once_a_later_payload_links_them() {
    // Either order of arrival: the STOP (11:00) and the link (12:00).
    for stop_first in [true, false] {
        let (gate, clock) = gate();
        let b = gate.business("acme").unwrap();
        b.ingest(&consent(&phone(), Action::OptIn, Scope::All, 0))
            .unwrap();
        let stop = fixture!("username_user");
        let link = fixture!("phone_user_linked");
        if stop_first {
            let out = deliver(&b, &clock, stop, B + 3602).unwrap();
            assert_eq!(out[0].keyword, Some(Keyword::OptOut));
            // Not linked yet: the phone is opted in, the BSUID opted out.
            assert_eq!(
                decision(&b, &freeform(phone())),
                (Verdict::TemplateRequired, Reason::NoWindow)
            );
            assert_eq!(
                decision(&b, &freeform(bsuid())),
                (Verdict::Deny, Reason::OptedOut)
            );
            let out = deliver(&b, &clock, link, B + 7202).unwrap();
            assert!(out[0].linked && out[0].opened_window);
        } else {
            let out = deliver(&b, &clock, link, B + 7202).unwrap();
            assert!(out[0].linked);
            assert_eq!(
                decision(&b, &freeform(phone())),
                (Verdict::Allow, Reason::WindowOpen)
            );
            // The STOP arrives late, dated before the link.
            let out = deliver(&b, &clock, stop, B + 7260).unwrap();
            assert_eq!(out[0].keyword, Some(Keyword::OptOut));
        }
        clock.set(secs(B + 7500));
        for to in [phone(), bsuid()] {
            assert_eq!(
                decision(&b, &freeform(to.clone())),
                (Verdict::Deny, Reason::OptedOut),
                "{to} (stop first: {stop_first})"
            );
        }
        let person = b.person(&phone()).unwrap();
        assert!(person.addresses.contains(&bsuid().as_str().to_owned()));
    }
}

fn register(b: &wagate::Business, name: &str, category: Category, body: &str) {
    b.ingest(&Event::Template(TemplateRecord {
        name: name.into(),
        language: "en_US".into(),
        category,
        status: TemplateStatus::approved(),
        body: TemplateBody::parse(body).unwrap(),
        at: t(0),
        received_at: None,
        twilio_content_sid: None,
        meta_template_id: Some("1689556908129832".into()),
    }))
    .unwrap();
}

fn template_request(name: &str, value: &str) -> SendRequest {
    SendRequest::between(
        shop(),
        phone(),
        Content::template(name, "en_US", Variables::positional([value])),
    )
}

fn a_user_preferences_stop_denies_marketing_templates_until_resume(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    register(
        &b,
        "spring_sale",
        Category::Marketing,
        "Spring sale: {{1}} off everything!",
    );
    register(
        &b,
        "order_update",
        Category::Utility,
        "Order {{1}} has shipped.",
    );
    b.ingest(&consent(&phone(), Action::OptIn, Scope::All, 0))
        .unwrap();
    let promo = template_request("spring_sale", "20%").with_purpose(Purpose::parse("marketing"));
    let update = template_request("order_update", "A-17");
    clock.set(secs(B + 5000));
    assert_eq!(decision(&b, &promo), (Verdict::Allow, Reason::OptedIn));

    deliver(&b, &clock, fixture!("user_preferences_stop"), B + 5402).unwrap();
    assert_eq!(
        decision(&b, &promo),
        (Verdict::Deny, Reason::MarketingOptedOut)
    );
    // Only marketing stops: a utility template still goes.
    assert_eq!(decision(&b, &update), (Verdict::Allow, Reason::OptedIn));
    let history = b.consent_history(&phone()).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.action, last.scope, last.source.as_str(), last.at),
        (
            Action::OptOut,
            Scope::Marketing,
            "provider_preference",
            secs(B + 5400)
        )
    );

    deliver(&b, &clock, fixture!("user_preferences_resume"), B + 9002).unwrap();
    assert_eq!(decision(&b, &promo), (Verdict::Allow, Reason::OptedIn));
}

fn template_status_webhooks_pause_and_reinstate_and_flagged_changes_nothing(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    register(
        &b,
        "spring_sale",
        Category::Marketing,
        "Spring sale: {{1}} off everything!",
    );
    b.ingest(&consent(&phone(), Action::OptIn, Scope::All, 0))
        .unwrap();
    let promo = template_request("spring_sale", "20%");
    deliver(&b, &clock, fixture!("template_approved"), B - 7000).unwrap();
    assert_eq!(
        deliver(&b, &clock, fixture!("template_flagged"), B + 902).unwrap(),
        vec![]
    );
    assert_eq!(decision(&b, &promo), (Verdict::Allow, Reason::OptedIn));
    deliver(&b, &clock, fixture!("template_paused"), B + 1802).unwrap();
    assert_eq!(
        decision(&b, &promo),
        (Verdict::Deny, Reason::TemplateNotApproved)
    );
    deliver(&b, &clock, fixture!("template_reinstated"), B + 12_602).unwrap();
    assert_eq!(decision(&b, &promo), (Verdict::Allow, Reason::OptedIn));
}

fn a_payload_whose_second_change_is_malformed_applies_nothing(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    b.ingest(&consent(&phone(), Action::OptIn, Scope::All, 0))
        .unwrap();
    let text = fixture!("error_second_change_malformed");
    clock.set(secs(B + 3002));
    // Parsing fails: there is nothing to ingest, the STOP of the first
    // change included.
    assert!(MetaWebhook::parse(text.as_bytes(), secs(B + 3002)).is_err());
    assert_eq!(b.consent_history(&phone()).unwrap().len(), 1);
    assert_eq!(
        decision(&b, &freeform(phone())),
        (Verdict::TemplateRequired, Reason::NoWindow)
    );
    // Meta retries the payload, whole and fixed: now all of it lands.
    let mut v = json_of(text);
    v["entry"][0]["changes"][1]["value"]["statuses"][0]["id"] = json!(W_OUT1);
    let hook = MetaWebhook::parse(&serde_json::to_vec(&v).unwrap(), secs(B + 3060)).unwrap();
    let out = b.ingest_all(&hook.events).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].keyword, Some(Keyword::OptOut));
    assert_eq!(
        decision(&b, &freeform(phone())),
        (Verdict::Deny, Reason::OptedOut)
    );
}

fn a_second_event_that_fails_in_the_gate_rolls_back_the_first(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    assert!(deliver(&b, &clock, fixture!("text"), B + 2).unwrap()[0].opened_window);
    // A STOP, then a message reusing the first one's id with other text.
    let text = fixture!("conflict_reused_id");
    let hook = MetaWebhook::parse(text.as_bytes(), secs(B + 3010)).unwrap();
    let ids: Vec<_> = hook
        .events
        .iter()
        .map(|e| match e {
            Event::Inbound(m) => m.id.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [Some(W_STOP), Some(W_TEXT)]);
    clock.set(secs(B + 3010));
    let err = b.ingest_all(&hook.events).unwrap_err();
    assert!(matches!(err, Error::InBatch { index: 1, .. }), "{err}");
    // The STOP did not land.
    assert!(b.consent_history(&phone()).unwrap().is_empty());
    assert_eq!(
        decision(&b, &freeform(phone())),
        (Verdict::Allow, Reason::WindowOpen)
    );
    // Alone, it is new (nothing of it was kept) and applies.
    let out = b.ingest_all(&hook.events[..1]).unwrap();
    assert!(!out[0].duplicate);
    assert_eq!(out[0].keyword, Some(Keyword::OptOut));
    assert_eq!(
        decision(&b, &freeform(phone())),
        (Verdict::Deny, Reason::OptedOut)
    );
}

fn the_multi_entry_payload_lands_in_one_transaction_and_a_retry_is_a_duplicate(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    let text = fixture!("multi_entry");
    let out = deliver(&b, &clock, text, B + 95).unwrap();
    assert_eq!(out.len(), 7);
    assert!(out[0].opened_window && out[0].linked);
    // 131050 on a message sent elsewhere: the user stopped marketing.
    assert_eq!(out[3].feedback, Some(131_050));
    let uk = b.consent_history(&addr(UK)).unwrap();
    assert!(
        uk.iter()
            .all(|c| c.action == Action::OptOut && c.scope == Scope::Marketing)
    );
    assert_eq!(uk.len(), 2);
    // Meta retries the whole payload: the messages are duplicates and the
    // feedback takes effect once.
    let again = deliver(&b, &clock, text, B + 400).unwrap();
    assert!(again[0].duplicate && again[1].duplicate);
    assert_eq!(again[3].feedback, None);
}

on_both!(
    a_user_preferences_stop_denies_marketing_templates_until_resume,
    template_status_webhooks_pause_and_reinstate_and_flagged_changes_nothing,
    a_payload_whose_second_change_is_malformed_applies_nothing,
    a_second_event_that_fails_in_the_gate_rolls_back_the_first,
    the_multi_entry_payload_lands_in_one_transaction_and_a_retry_is_a_duplicate,
);
