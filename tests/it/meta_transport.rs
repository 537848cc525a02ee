//! The Meta transport against a fake Graph API on 127.0.0.1, and end to
//! end through the gate: signed payload in, template out, a failed status
//! closing the window, a marketing stop.

use std::time::Duration;

use serde_json::{Value, json};
use wagate::providers::meta::signature;
use wagate::providers::meta::{ErrorClass, MetaConfig, MetaError, MetaTransport, MetaWebhook};
use wagate::transport::{Failure, OutboundMessage, Transport};
use wagate::{
    Category, Content, Delivery, Event, Reason, SendRequest, TemplateBody, TemplateRecord,
    TemplateStatus, Variables,
};

use crate::common::*;
use crate::fake_http::{Answer, FakeServer};

fn accepted(id: &str) -> Answer {
    Answer::json(
        200,
        &format!(
            r#"{{"messaging_product":"whatsapp","contacts":[{{"input":"15550000001","wa_id":"15550000001"}}],"messages":[{{"id":"{id}","message_status":"accepted"}}]}}"#
        ),
    )
}

fn config(server: &FakeServer) -> MetaConfig {
    MetaConfig::new("PN1", "TOKEN-1")
        .with_base_url(&server.base_url)
        .with_version("v24.0")
        .with_timeout(Duration::from_millis(500))
}

fn message(to: &str, phone: Option<&str>, content: Content) -> OutboundMessage {
    OutboundMessage {
        key: "k".into(),
        from: sender(0),
        to: addr(to),
        phone: phone.map(addr),
        content,
        rendered: None,
        twilio_content_sid: None,
        meta_template_id: None,
        purpose: None,
    }
}

fn body(server: &FakeServer, i: usize) -> Value {
    serde_json::from_slice(&server.seen()[i].body).unwrap()
}

#[test]
fn what_the_transport_posts_for_each_content() {
    let server = FakeServer::start(accepted("wamid.A"));
    let t = MetaTransport::new(config(&server), ureq::Agent::new_with_defaults());
    let r = t
        .send(&message("whatsapp:+15550000001", None, Content::text("hi")))
        .unwrap();
    assert_eq!(r.id, "wamid.A");
    let seen = &server.seen()[0];
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v24.0/PN1/messages")
    );
    assert_eq!(seen.header("authorization"), Some("Bearer TOKEN-1"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        body(&server, 0),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "15550000001",
               "type": "text", "text": {"body": "hi", "preview_url": false}})
    );
    // A business-scoped id goes in `recipient`; linked to a phone, to the phone.
    t.send(&message("bsuid:US.1349", None, Content::text("hi")))
        .unwrap();
    let b = body(&server, 1);
    assert_eq!(
        (b["recipient"].as_str(), b.get("to")),
        (Some("US.1349"), None)
    );
    t.send(&message(
        "bsuid:US.1349",
        Some("whatsapp:+15550000001"),
        Content::text("hi"),
    ))
    .unwrap();
    let b = body(&server, 2);
    assert_eq!(
        (b["to"].as_str(), b.get("recipient")),
        (Some("15550000001"), None)
    );
    // Media by link (type from the extension, caption) and by uploaded id.
    t.send(&message(
        "whatsapp:+15550000001",
        None,
        Content::media("Invoice", ["https://x.example/inv.pdf"]),
    ))
    .unwrap();
    assert_eq!(
        body(&server, 3)["document"],
        json!({"link": "https://x.example/inv.pdf", "caption": "Invoice"})
    );
    t.send(&message(
        "whatsapp:+15550000001",
        None,
        Content::media("", ["1234567890"]),
    ))
    .unwrap();
    assert_eq!(body(&server, 4)["document"], json!({"id": "1234567890"}));
    t.send(&message(
        "whatsapp:+15550000001",
        None,
        Content::media("Look", ["https://x.example/a.jpg"]),
    ))
    .unwrap();
    assert_eq!(body(&server, 5)["type"], "image");
    // Templates: positional parameters in placeholder order, named ones by name.
    let positional = Content::Template {
        name: "order_update".into(),
        language: "en_US".into(),
        variables: Variables::positional(["A-17", "shipped"]),
    };
    t.send(&message("whatsapp:+15550000001", None, positional))
        .unwrap();
    assert_eq!(
        body(&server, 6)["template"],
        json!({"name": "order_update", "language": {"code": "en_US"}, "components": [{"type": "body",
              "parameters": [{"type": "text", "text": "A-17"}, {"type": "text", "text": "shipped"}]}]})
    );
    let named = Content::Template {
        name: "hello".into(),
        language: "en".into(),
        variables: Variables::named([("first_name", "Ana")]),
    };
    t.send(&message("whatsapp:+15550000001", None, named))
        .unwrap();
    assert_eq!(
        body(&server, 7)["template"]["components"][0]["parameters"][0],
        json!({"type": "text", "parameter_name": "first_name", "text": "Ana"})
    );
    let none = Content::Template {
        name: "hello_world".into(),
        language: "en".into(),
        variables: Variables::none(),
    };
    t.send(&message("whatsapp:+15550000001", None, none))
        .unwrap();
    assert_eq!(
        body(&server, 8)["template"],
        json!({"name": "hello_world", "language": {"code": "en"}})
    );
    // Two attachments cannot go in one message: nothing is sent.
    let two = Content::media("", ["https://x/a.jpg", "https://x/b.jpg"]);
    let e = t
        .send(&message("whatsapp:+15550000001", None, two))
        .unwrap_err();
    assert!(
        matches!(e, MetaError::Request(_)) && !e.is_transient(),
        "{e}"
    );
    assert_eq!(server.seen().len(), 9);
}

fn envelope(code: u32, message: &str) -> String {
    format!(
        r#"{{"error":{{"message":"{message}","type":"OAuthException","code":{code},"error_subcode":2494010,"error_data":{{"messaging_product":"whatsapp","details":"more about {code}"}},"fbtrace_id":"AbCdEf"}}}}"#
    )
}

#[test]
fn error_envelopes_and_their_classes() {
    let server = FakeServer::start(accepted("wamid.X"));
    let t = MetaTransport::new(config(&server), ureq::Agent::new_with_defaults());
    let msg = message("whatsapp:+15550000001", None, Content::text("hi"));
    let class = |status: u16, code: u32| {
        server.then(Answer::json(status, &envelope(code, "nope")));
        let e = t.send(&msg).unwrap_err();
        assert_eq!(e.provider_code(), Some(code), "{e}");
        (e.class(), e)
    };
    for code in [130_429, 131_056, 4, 80_007] {
        assert_eq!(class(400, code).0, ErrorClass::Transient, "{code}");
    }
    for code in [190, 10] {
        let (c, e) = class(401, code);
        assert_eq!(c, ErrorClass::Configuration, "{code}");
        assert!(e.is_configuration() && !e.is_transient());
    }
    for code in [
        131_047, 131_050, 131_026, 132_000, 132_001, 132_015, 132_016, 131_062,
    ] {
        assert_eq!(class(400, code).0, ErrorClass::Permanent, "{code}");
    }
    let (_, e) = class(400, 131_047);
    match e {
        MetaError::Api {
            subcode,
            details,
            fbtrace_id,
            ..
        } => {
            assert_eq!(subcode, Some(2_494_010));
            assert_eq!(details.as_deref(), Some("more about 131047"));
            assert_eq!(fbtrace_id.as_deref(), Some("AbCdEf"));
        }
        other => panic!("{other:?}"),
    }
    server.then(Answer::json(503, "<html>down</html>"));
    assert!(t.send(&msg).unwrap_err().is_transient());
    server.then(Answer::json(429, &envelope(80_007, "rate")).header("Retry-After", "9"));
    assert_eq!(
        t.send(&msg).unwrap_err().retry_after(),
        Some(Duration::from_secs(9))
    );
    // No answer in time: transient, and bounded by the timeout.
    server.then(accepted("wamid.slow").after(Duration::from_millis(1500)));
    let started = std::time::Instant::now();
    let e = t.send(&msg).unwrap_err();
    assert!(matches!(e, MetaError::Http(_)) && e.is_transient(), "{e}");
    assert!(started.elapsed() < Duration::from_millis(1400));
    // 200 without a message id: not transient (it may be on its way).
    server.then(Answer::json(200, r#"{"messaging_product":"whatsapp"}"#));
    assert!(matches!(
        t.send(&msg).unwrap_err(),
        MetaError::Answer { .. }
    ));
}

// ---- End to end through the gate ----

const SECRET: &str = "app-secret";

/// A payload as Meta posts it: the bytes and their signature header.
fn signed(payload: &Value) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(payload).unwrap();
    let sig = signature::sign(SECRET, &bytes);
    (bytes, sig)
}

fn deliver(b: &wagate::Business, payload: &Value, at_ms: i64) -> Vec<wagate::IngestOutcome> {
    let (bytes, sig) = signed(payload);
    signature::verify(SECRET, &bytes, Some(&sig)).unwrap();
    let hook = MetaWebhook::parse(&bytes, t(at_ms)).unwrap();
    b.ingest_all(&hook.events).unwrap()
}

fn change(field: &str, value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": [{"field": field, "value": value}]}]})
}

fn metadata() -> Value {
    json!({"display_phone_number": "14155238886", "phone_number_id": "PN1"})
}

fn secs(ms: i64) -> String {
    ((T0 + ms) / 1000).to_string()
}

#[test]
fn end_to_end_template_send_then_131047_closes_the_window_and_a_stop_denies_marketing() {
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    for (name, category) in [
        ("order_update", Category::Utility),
        ("promo", Category::Marketing),
    ] {
        b.ingest(&Event::Template(TemplateRecord {
            name: name.into(),
            language: "en".into(),
            category,
            status: TemplateStatus::approved(),
            body: TemplateBody::parse("Order {{1}} is ready.").unwrap(),
            at: t(0),
            received_at: None,
            twilio_content_sid: None,
            meta_template_id: Some("123".into()),
        }))
        .unwrap();
    }
    b.ingest(&consent(
        &user(1),
        wagate::Action::OptIn,
        wagate::Scope::All,
        0,
    ))
    .unwrap();
    let server = FakeServer::start(accepted("wamid.OUT1"));
    let transport = MetaTransport::new(config(&server), ureq::Agent::new_with_defaults());
    // The user writes: the window opens.
    clock.set(t(HOUR));
    let inbound = change(
        "messages",
        json!({
            "messaging_product": "whatsapp", "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15550000001"}],
            "messages": [{"from": "15550000001", "id": "wamid.IN1", "timestamp": secs(HOUR), "type": "text", "text": {"body": "Is my order ready?"}}]
        }),
    );
    assert!(deliver(&b, &inbound, HOUR)[0].opened_window);
    // A forged copy is refused before parsing.
    let (bytes, _) = signed(&inbound);
    assert!(signature::verify(SECRET, &bytes, Some(&signature::sign("other", &bytes))).is_err());

    // A utility template goes out.
    clock.set(t(HOUR + MINUTE));
    let template = SendRequest::between(
        sender(0),
        user(1),
        Content::Template {
            name: "order_update".into(),
            language: "en".into(),
            variables: Variables::positional(["A-17"]),
        },
    );
    let out = b.send(&template, "t-1", &transport).unwrap();
    assert_eq!(
        out.delivery,
        Delivery::Accepted {
            provider_id: "wamid.OUT1".into()
        }
    );
    assert_eq!(body(&server, 0)["type"], "template");
    // Meta reports it failed with 131047 (and delivered pricing first).
    let statuses = change(
        "messages",
        json!({
            "messaging_product": "whatsapp", "metadata": metadata(),
            "statuses": [
                {"id": "wamid.OUT1", "status": "sent", "timestamp": secs(HOUR + MINUTE), "recipient_id": "15550000001",
                 "pricing": {"billable": false, "pricing_model": "PMP", "category": "utility", "type": "free_customer_service"}},
                {"id": "wamid.OUT1", "status": "failed", "timestamp": secs(HOUR + 2 * MINUTE), "recipient_id": "15550000001",
                 "errors": [{"code": 131047, "title": "Re-engagement message", "error_data": {"details": "More than 24 hours"}}]}
            ]
        }),
    );
    let outcomes = deliver(&b, &statuses, HOUR + 2 * MINUTE);
    assert_eq!(outcomes[1].feedback, Some(131_047));
    clock.set(t(HOUR + 3 * MINUTE));
    let freeform = SendRequest::between(sender(0), user(1), Content::text("hello"));
    assert_eq!(b.check(&freeform).unwrap().reason, Reason::WindowClosed);
    // The send remembers its pricing and feedback.
    let sends = b
        .sends(
            &wagate::SendQuery {
                key: Some("t-1".into()),
                ..Default::default()
            },
            10,
        )
        .unwrap();
    let pricing = sends[0].pricing.clone().unwrap();
    assert_eq!(
        (pricing.category.as_deref(), pricing.kind.as_deref()),
        (Some("utility"), Some("free_customer_service"))
    );
    assert_eq!(sends[0].feedback, vec![131_047]);

    // Marketing stop from Meta's preferences: a marketing template is denied.
    let stop = change(
        "user_preferences",
        json!({
            "messaging_product": "whatsapp", "metadata": metadata(),
            "contacts": [{"wa_id": "15550000001"}],
            "user_preferences": [{"wa_id": "15550000001", "detail": "User requested to stop marketing messages",
                                  "category": "marketing_messages", "value": "stop", "timestamp": (T0 + 4 * MINUTE + HOUR) / 1000}]
        }),
    );
    deliver(&b, &stop, HOUR + 4 * MINUTE);
    clock.set(t(HOUR + 5 * MINUTE));
    let promo = SendRequest::between(
        sender(0),
        user(1),
        Content::Template {
            name: "promo".into(),
            language: "en".into(),
            variables: Variables::positional(["A-17"]),
        },
    );
    let out = b.send(&promo, "p-1", &transport).unwrap();
    assert_eq!(
        (out.decision.reason, &out.delivery),
        (Reason::MarketingOptedOut, &Delivery::NotSent),
        "{out:?}"
    );
    assert_eq!(server.seen().len(), 1, "nothing else reached Meta");
}

#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_transport_over_reqwest() {
    let server = FakeServer::start(accepted("wamid.ASYNC"));
    let t = MetaTransport::new(config(&server), reqwest::Client::new());
    let msg = message("bsuid:US.1349", None, Content::text("hi"));
    let r = wagate::transport::AsyncTransport::send(&t, &msg)
        .await
        .unwrap();
    assert_eq!(r.id, "wamid.ASYNC");
    assert_eq!(body(&server, 0)["recipient"], "US.1349");
    server.then(Answer::json(401, &envelope(190, "token expired")));
    let e = wagate::transport::AsyncTransport::send(&t, &msg)
        .await
        .unwrap_err();
    assert!(e.is_configuration(), "{e}");
    server.then(accepted("wamid.slow").after(Duration::from_millis(1500)));
    let e = wagate::transport::AsyncTransport::send(&t, &msg)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}
