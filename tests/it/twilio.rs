//! Twilio (feature `twilio`): signatures against the official SDKs'
//! vectors, webhooks to events, and the transport against a fake Twilio
//! on 127.0.0.1, end to end through the gate.

use std::time::Duration;

use wagate::providers::twilio::signature::{self, SignatureError, sign, validate};
use wagate::providers::twilio::webhook::Form;
use wagate::providers::twilio::{
    Credentials, TwilioConfig, TwilioError, TwilioTransport, TwilioWebhook, WebhookError, api,
};
use wagate::transport::{Failure, Transport};
use wagate::{
    Category, Content, Decision, Delivery, DeliveryStatus, Event, MessageKind, Reason, Referral,
    SendRequest, TemplateBody, TemplateRecord, TemplateStatus, Variables,
};

use crate::common::*;
use crate::fake_http::{Answer, FakeServer};

const TOKEN: &str = "12345";
const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const DOC_PARAMS: [(&str, &str); 5] = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
];

// ---- X-Twilio-Signature: the vectors of twilio-python and twilio-node ----

#[test]
fn the_documented_example_and_the_sdks_port_vectors_validate() {
    assert_eq!(
        sign(TOKEN, DOC_URL, &DOC_PARAMS),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    let ok = |url: &str, sig: &str| validate(TOKEN, url, &DOC_PARAMS, Some(sig));
    ok(DOC_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=").unwrap();
    // Signed without the port, received with one: stripped.
    ok(
        "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    )
    .unwrap();
    // Signed with the port as received.
    ok(
        "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
    )
    .unwrap();
    // Signed with the default port, received without it: added.
    ok(DOC_URL, "kvajT1Ptam85bY51eRf/AJRuM3w=").unwrap();
    ok(
        "http://mycompany.com/myapp.php?foo=1&bar=2",
        "0ZXoZLH/DfblKGATFgpif+LLRf4=",
    )
    .unwrap();
    // Credentials in the URL are part of what is signed (twilio-node).
    ok(
        "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
        "CukzLTc1tT5dXEDIHm/tKBanW10=",
    )
    .unwrap();
    ok(
        "https://user@mycompany.com/myapp.php?foo=1&bar=2",
        "2YRLlVAflCqxaNicjMpJcSTgzSs=",
    )
    .unwrap();
}

#[test]
fn repeated_parameters_sort_their_values_and_count_each_once() {
    // twilio-python's duplicate vector: keys sorted, values sorted, repeats once.
    let params = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ];
    assert_eq!(
        sign(TOKEN, DOC_URL, &params),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    );
    // The same pairs as a posted body, decoded by the form parser.
    let form = Form::parse(b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234");
    validate(
        TOKEN,
        DOC_URL,
        form.pairs(),
        Some("IK+Dwps556ElfBT0I3Rgjkr1wJU="),
    )
    .unwrap();
}

#[test]
fn json_bodies_are_signed_through_body_sha256() {
    let body = br#"{"property": "value", "boolean": true}"#;
    let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    assert_eq!(signature::body_sha256(body), hash);
    let url = format!("{DOC_URL}&bodySHA256={hash}");
    signature::validate_body(TOKEN, &url, body, Some("a9nBmqA0ju/hNViExpshrM61xv4=")).unwrap();
    // twilio-node: an empty JSON object, and a URL with only the hash.
    let empty = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    signature::validate_body(
        TOKEN,
        &format!("{DOC_URL}&bodySHA256={empty}"),
        b"{}",
        Some("Ldidvp12m26NI7eqEvxnEpkd9Hc="),
    )
    .unwrap();
    signature::validate_body(
        TOKEN,
        &format!("https://mycompany.com/myapp.php?bodySHA256={hash}"),
        body,
        Some("y77kIzt2vzLz71DgmJGsen2scGs="),
    )
    .unwrap();
    // A changed body fails even with the right signature over the URL.
    assert_eq!(
        signature::validate_body(
            TOKEN,
            &url,
            br#"{"property": "evil"}"#,
            Some("a9nBmqA0ju/hNViExpshrM61xv4=")
        ),
        Err(SignatureError::BodyHash)
    );
    // The SDKs refuse a body without bodySHA256 in the URL.
    assert!(
        signature::validate_body(TOKEN, DOC_URL, body, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="))
            .is_err()
    );
}

#[test]
fn a_quote_in_the_query_validates_escaped_or_not() {
    for (signed, received) in [
        (
            "https://example.com/path?test=param'WithQuote",
            "https://example.com/path?test=param%27WithQuote",
        ),
        (
            "https://example.com/path?test=param%27WithQuote",
            "https://example.com/path?test=param'WithQuote",
        ),
    ] {
        let none: [(&str, &str); 0] = [];
        let sig = sign("s3cr3t", signed, &none);
        validate("s3cr3t", received, &none, Some(&sig)).unwrap();
        validate(
            "s3cr3t",
            "https://example.com/path?test=param2",
            &none,
            Some(&sig),
        )
        .unwrap_err();
    }
}

#[test]
fn tampering_with_url_parameters_token_or_signature_fails() {
    let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    let mismatch =
        |r: Result<(), SignatureError>| matches!(r, Err(SignatureError::Mismatch { .. }));
    assert!(mismatch(validate(
        TOKEN,
        "https://mycompany.com/myapp.php?foo=1&bar=3",
        &DOC_PARAMS,
        Some(good)
    )));
    assert!(mismatch(validate(
        TOKEN,
        "https://evil.com/myapp.php?foo=1&bar=2",
        &DOC_PARAMS,
        Some(good)
    )));
    let mut params = DOC_PARAMS;
    params[2] = ("Digits", "1235");
    assert!(mismatch(validate(TOKEN, DOC_URL, &params, Some(good))));
    assert!(mismatch(validate(
        TOKEN,
        DOC_URL,
        &DOC_PARAMS[..4],
        Some(good)
    )));
    assert!(mismatch(validate(
        "12346",
        DOC_URL,
        &DOC_PARAMS,
        Some(good)
    )));
    assert!(mismatch(validate(
        TOKEN,
        DOC_URL,
        &DOC_PARAMS,
        Some("RSOYDt4T1cUTdK1PDd93/VVr8C8=")
    )));
    // The last character's low bits are padding: changing only them is not
    // another encoding of the same MAC but a malformed one.
    assert!(matches!(
        validate(
            TOKEN,
            DOC_URL,
            &DOC_PARAMS,
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B9=")
        ),
        Err(SignatureError::Malformed(_))
    ));
    assert_eq!(
        validate(TOKEN, DOC_URL, &DOC_PARAMS, None),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        validate(TOKEN, DOC_URL, &DOC_PARAMS, Some("")),
        Err(SignatureError::Missing)
    );
    assert!(matches!(
        validate(TOKEN, DOC_URL, &DOC_PARAMS, Some("WRONG_SIGNATURE")),
        Err(SignatureError::Malformed(_))
    ));
    assert!(matches!(
        validate(TOKEN, "/myapp.php", &DOC_PARAMS, Some(good)),
        Err(SignatureError::Url(_))
    ));
}

#[test]
fn a_mismatch_names_the_likely_mistake() {
    let sig = sign(TOKEN, DOC_URL, &DOC_PARAMS);
    let hint = |url: &str| match validate(TOKEN, url, &DOC_PARAMS, Some(&sig)) {
        Err(SignatureError::Mismatch { hint }) => hint,
        other => panic!("expected a mismatch, got {other:?}"),
    };
    assert!(
        hint("http://mycompany.com/myapp.php?foo=1&bar=2").contains("https://"),
        "scheme"
    );
    assert!(hint("https://mycompany.com/myapp.php/?foo=1&bar=2").contains("no trailing slash"));
    let bare = sign(TOKEN, "https://mycompany.com/myapp.php", &DOC_PARAMS);
    match validate(TOKEN, DOC_URL, &DOC_PARAMS, Some(&bare)) {
        Err(SignatureError::Mismatch { hint }) => {
            assert!(hint.contains("without its query"), "{hint}")
        }
        other => panic!("{other:?}"),
    }
    assert!(hint("https://mycompany.com/other?foo=1&bar=2").contains("auth token"));
}

// ---- Webhooks to events (RULES R9) ----

fn at() -> wagate::Timestamp {
    t(HOUR)
}

fn inbound_of(body: &str) -> wagate::InboundMessage {
    match TwilioWebhook::parse(body.as_bytes()).unwrap().event(at()) {
        Event::Inbound(m) => m,
        other => panic!("expected an inbound, got {other:?}"),
    }
}

const BASE: &str =
    "MessageSid=SM1&AccountSid=AC1&From=whatsapp%3A%2B15550001111&To=whatsapp%3A%2B14155238886";

#[test]
fn an_inbound_text_is_dated_at_receipt() {
    let m = inbound_of(&format!(
        "{BASE}&Body=Where+is+my+order%3F&NumMedia=0&ProfileName=Ana&WaId=15550001111&SmsStatus=received&ApiVersion=2010-04-01&ChannelMetadata=%7B%7D"
    ));
    assert_eq!(m.id.as_deref(), Some("SM1"));
    assert_eq!(m.from, addr("whatsapp:+15550001111"));
    assert_eq!(m.to, addr("whatsapp:+14155238886"));
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.body.as_deref(), Some("Where is my order?"));
    assert_eq!((m.at, m.received_at), (at(), Some(at())));
    assert_eq!((m.user_id, m.referral), (None, None));
}

#[test]
fn kinds_follow_message_type_then_the_parameters_present() {
    let kind = |extra: &str| inbound_of(&format!("{BASE}&Body=&{extra}")).kind;
    for (t, k) in [
        ("text", MessageKind::Text),
        ("image", MessageKind::Media),
        ("video", MessageKind::Media),
        ("audio", MessageKind::Media),
        ("document", MessageKind::Media),
        ("sticker", MessageKind::Media),
        ("location", MessageKind::Location),
        ("contacts", MessageKind::Contacts),
        ("button", MessageKind::Button),
        ("interactive", MessageKind::Interactive),
        ("order", MessageKind::Order),
        ("reaction", MessageKind::Reaction),
        ("poll", MessageKind::Unsupported),
    ] {
        assert_eq!(kind(&format!("MessageType={t}")), k, "{t}");
    }
    let media = inbound_of(&format!(
        "{BASE}&Body=&NumMedia=2&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm0&MediaContentType0=image%2Fjpeg&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm1"
    ));
    assert_eq!((media.kind, media.body), (MessageKind::Media, None));
    assert_eq!(
        kind("Latitude=52.52&Longitude=13.40&Address=Alexanderplatz&Label=Meet"),
        MessageKind::Location
    );
    assert_eq!(kind("ButtonPayload=yes"), MessageKind::Button);
    assert_eq!(kind("ButtonText=Yes"), MessageKind::Button);
    // MessageType wins over the parameters.
    assert_eq!(
        kind("MessageType=reaction&NumMedia=1&MediaUrl0=x"),
        MessageKind::Reaction
    );
}

#[test]
fn every_documented_field_is_read() {
    let body = format!(
        "{BASE}&MessagingServiceSid=MG1&Body=&NumMedia=1&MediaUrl0=https%3A%2F%2Fm%2F0&MediaContentType0=image%2Fpng\
         &ProfileName=Ana&WaId=15550001111&Latitude=1.5&Longitude=-2.25&Address=Here&Label=Shop\
         &ButtonText=Yes&ButtonPayload=p1&OriginalRepliedMessageSid=SM0&OriginalRepliedMessageSender=whatsapp%3A%2B14155238886\
         &Forwarded=true&ReferralSourceType=post&ReferralSourceId=123&ReferralHeadline=Sale&ReferralBody=Now\
         &ReferralSourceUrl=https%3A%2F%2Ffb.com%2Fp&ReferralMediaId=m1&ReferralMediaContentType=image%2Fjpeg\
         &ReferralMediaUrl=https%3A%2F%2Fm&ReferralNumMedia=1&Unknown=ignored"
    );
    let TwilioWebhook::Inbound(m) = TwilioWebhook::parse(body.as_bytes()).unwrap() else {
        panic!("not an inbound")
    };
    assert_eq!(m.messaging_service_sid.as_deref(), Some("MG1"));
    assert_eq!(m.media.len(), 1);
    assert_eq!(m.media[0].content_type.as_deref(), Some("image/png"));
    let loc = m.location.clone().unwrap();
    assert_eq!(
        (loc.latitude, loc.longitude, loc.label.as_deref()),
        (1.5, -2.25, Some("Shop"))
    );
    assert_eq!(
        (m.button_text.as_deref(), m.button_payload.as_deref()),
        (Some("Yes"), Some("p1"))
    );
    assert_eq!(m.original_replied_message_sid.as_deref(), Some("SM0"));
    assert!(m.forwarded);
    assert_eq!(
        m.referral.as_ref().unwrap().headline.as_deref(),
        Some("Sale")
    );
    assert_eq!(m.message(at()).referral, Some(Referral::PageCta));
    assert_eq!(m.profile_name.as_deref(), Some("Ana"));
}

#[test]
fn referrals_and_business_scoped_ids() {
    assert_eq!(
        inbound_of(&format!("{BASE}&Body=hi&ReferralCtwaClid=ARAkLk")).referral,
        Some(Referral::CtwaAd)
    );
    assert_eq!(
        inbound_of(&format!("{BASE}&Body=hi&ReferralSourceType=ad")).referral,
        Some(Referral::CtwaAd)
    );
    assert_eq!(
        inbound_of(&format!("{BASE}&Body=hi&ReferralSourceType=post")).referral,
        Some(Referral::PageCta)
    );
    assert_eq!(
        inbound_of(&format!("{BASE}&Body=hi&ReferralSourceType=other")).referral,
        None
    );
    // ExternalUserId links the phone and the BSUID (R8).
    let m = inbound_of(&format!(
        "{BASE}&Body=hi&ExternalUserId=whatsapp%3AUS.13491208655302741918"
    ));
    assert_eq!(m.user_id, Some(addr("bsuid:US.13491208655302741918")));
    // A user without a phone: From is the BSUID.
    let m =
        inbound_of("MessageSid=SM2&From=whatsapp%3AUS.1349&To=whatsapp%3A%2B14155238886&Body=hi");
    assert_eq!(m.from, addr("bsuid:US.1349"));
    // An empty parameter is an absent one.
    assert_eq!(
        inbound_of(&format!("{BASE}&Body=hi&ExternalUserId=")).user_id,
        None
    );
}

#[test]
fn a_missing_or_malformed_required_parameter_is_named() {
    let err = |body: &str| TwilioWebhook::parse(body.as_bytes()).unwrap_err();
    assert_eq!(
        err("From=whatsapp%3A%2B15550001111&To=whatsapp%3A%2B14155238886&Body=hi"),
        WebhookError::Missing("MessageSid")
    );
    assert_eq!(
        err("MessageSid=SM1&To=whatsapp%3A%2B14155238886&Body=hi"),
        WebhookError::Missing("From")
    );
    assert_eq!(
        err("MessageSid=SM1&From=whatsapp%3A%2B15550001111&Body=hi"),
        WebhookError::Missing("To")
    );
    assert_eq!(
        err("MessageSid=&From=whatsapp%3A%2B15550001111&To=whatsapp%3A%2B14155238886"),
        WebhookError::Missing("MessageSid")
    );
    let named = |body: &str| match err(body) {
        WebhookError::Malformed { name, .. } => name,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        named("MessageSid=SM1&From=whatsapp%3A%2B1&To=whatsapp%3A%2B14155238886"),
        "From"
    );
    assert_eq!(
        named("MessageSid=SM1&From=whatsapp%3A%2B15550001111&To=whatsapp%3AUS.1"),
        "To"
    );
    // Another channel (an SMS on a shared Messaging Service) is not WhatsApp.
    assert_eq!(
        named("MessageSid=SM1&From=%2B15550001111&To=whatsapp%3A%2B14155238886&Body=STOP"),
        "From"
    );
    assert_eq!(
        named("MessageSid=SM1&From=whatsapp%3A%2B15550001111&To=%2B14155238886&Body=STOP"),
        "To"
    );
    // Optional parameters that cannot be read are left out with a warning:
    // the message (a STOP here) still counts.
    for extra in [
        "NumMedia=two",
        "Latitude=north&Longitude=1",
        "Latitude=91&Longitude=1",
        "Latitude=1",
        "ExternalUserId=whatsapp%3Ahas%20space",
    ] {
        let hook = TwilioWebhook::parse(format!("{BASE}&Body=STOP&{extra}").as_bytes()).unwrap();
        let TwilioWebhook::Inbound(m) = &hook else {
            panic!("{extra}")
        };
        assert!(!m.warnings.is_empty(), "{extra}");
        let Event::Inbound(e) = hook.event(at()) else {
            panic!()
        };
        assert_eq!(
            (e.body.as_deref(), e.user_id),
            (Some("STOP"), None),
            "{extra}"
        );
    }
    assert_eq!(named("MessageSid=SM1&MessageStatus=lost"), "MessageStatus");
    assert_eq!(
        named("MessageSid=SM1&MessageStatus=failed&ErrorCode=E1"),
        "ErrorCode"
    );
}

#[test]
fn status_callbacks_carry_every_documented_status() {
    for s in [
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "failed",
        "undelivered",
        "accepted",
        "scheduled",
        "canceled",
        "partially_delivered",
        "receiving",
        "received",
    ] {
        let body = format!(
            "MessageSid=SM9&MessageStatus={s}&From=whatsapp%3A%2B14155238886&To=whatsapp%3A%2B15550001111&AccountSid=AC1&ChannelPrefix=whatsapp"
        );
        let Event::Status(cb) = TwilioWebhook::parse(body.as_bytes()).unwrap().event(at()) else {
            panic!("{s}: not a status")
        };
        assert_eq!(cb.status.as_str(), s);
        assert_eq!((cb.id.as_str(), cb.at), ("SM9", at()));
        assert_eq!(cb.from, Some(sender(0)));
        assert_eq!(cb.to, Some(addr("whatsapp:+15550001111")));
        assert_eq!(cb.error_code, None);
    }
    let Event::Status(cb) =
        TwilioWebhook::parse(b"MessageSid=SM9&MessageStatus=undelivered&ErrorCode=63016")
            .unwrap()
            .event(at())
    else {
        panic!()
    };
    assert_eq!(
        (cb.status, cb.error_code),
        (DeliveryStatus::Undelivered, Some(63016))
    );
}

// ---- The transport, against a fake Twilio ----

fn created(sid: &str) -> Answer {
    Answer::json(
        201,
        &format!(r#"{{"sid":"{sid}","status":"queued","account_sid":"AC1"}}"#),
    )
}

fn config(server: &FakeServer) -> TwilioConfig {
    TwilioConfig::new("AC1", Credentials::auth_token("tok"))
        .with_base_url(&server.base_url)
        .with_status_callback("https://hooks.example.com/twilio/status")
        .with_timeout(Duration::from_millis(500))
}

fn outbound(content: Content, content_sid: Option<&str>) -> wagate::transport::OutboundMessage {
    wagate::transport::OutboundMessage {
        key: "k1".into(),
        from: sender(0),
        to: user(1),
        phone: None,
        content,
        rendered: None,
        twilio_content_sid: content_sid.map(str::to_owned),
        meta_template_id: None,
        purpose: None,
    }
}

#[test]
fn the_transport_posts_freeform_text_with_basic_auth() {
    let server = FakeServer::start(created("SM100"));
    let t = TwilioTransport::new(config(&server), ureq::Agent::new_with_defaults());
    let receipt = t
        .send(&outbound(Content::text("It ships today."), None))
        .unwrap();
    assert_eq!(receipt.sid, "SM100");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/2010-04-01/Accounts/AC1/Messages.json")
    );
    // base64("AC1:tok")
    assert_eq!(r.header("authorization"), Some("Basic QUMxOnRvaw=="));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.field("To").as_deref(), Some("whatsapp:+15550000001"));
    assert_eq!(r.field("From").as_deref(), Some("whatsapp:+14155238886"));
    assert_eq!(r.field("Body").as_deref(), Some("It ships today."));
    assert_eq!(
        r.field("StatusCallback").as_deref(),
        Some("https://hooks.example.com/twilio/status")
    );
    assert_eq!(r.field("ContentSid"), None);
}

#[test]
fn templates_go_as_content_sid_and_variables_never_as_body() {
    let server = FakeServer::start(created("SM101"));
    let cfg = config(&server).with_messaging_service("MG9");
    let cfg = TwilioConfig {
        credentials: Credentials::api_key("SK1", "sec"),
        ..cfg
    };
    let t = TwilioTransport::new(cfg, ureq::Agent::new_with_defaults());
    let content = Content::Template {
        name: "order_update".into(),
        language: "en".into(),
        variables: Variables::positional(["A-17", "shipped"]),
    };
    t.send(&outbound(content.clone(), Some("HX123"))).unwrap();
    let r = &server.seen()[0];
    assert_eq!(r.header("authorization"), Some("Basic U0sxOnNlYw==")); // SK1:sec
    assert_eq!(r.field("ContentSid").as_deref(), Some("HX123"));
    assert_eq!(
        r.field("ContentVariables").as_deref(),
        Some(r#"{"1":"A-17","2":"shipped"}"#)
    );
    assert_eq!(r.field("Body"), None);
    assert_eq!(r.field("MessagingServiceSid").as_deref(), Some("MG9"));
    assert_eq!(r.field("From"), None);
    // Without a ContentSid nothing is sent.
    let err = t.send(&outbound(content, None)).unwrap_err();
    assert!(
        matches!(err, TwilioError::Request(_)) && !err.is_transient(),
        "{err}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn both_error_shapes_and_their_classes() {
    let server = FakeServer::start(created("SMx"));
    let t = TwilioTransport::new(config(&server), ureq::Agent::new_with_defaults());
    let msg = outbound(Content::text("hi"), None);
    server.then(Answer::json(
        400,
        r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","more_info":"https://www.twilio.com/docs/errors/21610","status":400}"#,
    ));
    let e = t.send(&msg).unwrap_err();
    assert_eq!(
        (e.provider_code(), e.is_transient()),
        (Some(21610), false),
        "{e}"
    );
    server.then(
        Answer::json(
            400,
            r#"{"type":"https://www.twilio.com/docs/errors/63016","title":"Outside the allowed window","status":400,"detail":"Freeform message outside the window","instance":"/2010-04-01/Accounts/AC1/Messages.json"}"#,
        )
        .header("Content-Type", "application/problem+json"),
    );
    let e = t.send(&msg).unwrap_err();
    assert_eq!(e.provider_code(), Some(63016), "{e}");
    assert!(
        e.to_string()
            .contains("Freeform message outside the window"),
        "{e}"
    );
    server.then(
        Answer::json(
            429,
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
        )
        .header("Retry-After", "7"),
    );
    let e = t.send(&msg).unwrap_err();
    assert!(e.is_transient());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    server.then(Answer::json(503, "upstream down"));
    let e = t.send(&msg).unwrap_err();
    assert!(e.is_transient() && e.provider_code().is_none(), "{e}");
    server.then(Answer::json(
        401,
        r#"{"code":20003,"message":"Authenticate","status":401}"#,
    ));
    let e = t.send(&msg).unwrap_err();
    assert_eq!((e.provider_code(), e.is_transient()), (Some(20003), false));
    // A slow answer past the timeout: no answer, transient.
    server.then(created("SMslow").after(Duration::from_millis(1500)));
    let started = std::time::Instant::now();
    let e = t.send(&msg).unwrap_err();
    assert!(matches!(e, TwilioError::Http(_)) && e.is_transient(), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    // A 2xx whose body stalls past the timeout: an answer, not "no answer"
    // (the message may be queued: a retry could send it twice).
    server.then(Answer::stalling(
        201,
        r#"{"sid":"SMst"#,
        Duration::from_millis(1500),
    ));
    let e = t.send(&msg).unwrap_err();
    assert!(
        matches!(e, TwilioError::Answer { status: 201, .. }) && !e.is_transient(),
        "{e}"
    );
    // A 2xx that is not a message: not transient (it may be queued).
    server.then(Answer::json(201, "{}"));
    let e = t.send(&msg).unwrap_err();
    assert!(
        matches!(e, TwilioError::Answer { .. }) && !e.is_transient(),
        "{e}"
    );
}

#[test]
fn api_reads_answers_without_a_socket() {
    let answer = |status: u16, body: &str| {
        http::Response::builder()
            .status(status)
            .header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    // A date in the past means "now".
    match api::message_response(answer(503, "")) {
        Err(TwilioError::Api {
            retry_after,
            message,
            ..
        }) => {
            assert_eq!(retry_after, Some(Duration::ZERO));
            assert_eq!(message, "Service Unavailable");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        api::message_response(answer(200, "not json")),
        Err(TwilioError::Answer { status: 200, .. })
    ));
}

// ---- End to end through the gate ----

/// user(1), as Twilio writes it.
const U1: &str = "whatsapp:+15550000001";
const HOOK: &str = "https://hooks.example.com/twilio";
const AUTH: &str = "auth-token";

/// A webhook as Twilio posts it: the body and its signature.
fn signed(params: &[(&str, &str)]) -> (Vec<u8>, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    (body.into_bytes(), sign(AUTH, HOOK, params))
}

fn deliver(b: &wagate::Business, body: &[u8], sig: &str, at_ms: i64) -> wagate::IngestOutcome {
    let hook = TwilioWebhook::verified(AUTH, HOOK, body, Some(sig)).unwrap();
    b.ingest(&hook.event(t(at_ms))).unwrap()
}

fn register_template(b: &wagate::Business) {
    b.ingest(&Event::Template(TemplateRecord {
        name: "order_update".into(),
        language: "en".into(),
        category: Category::Utility,
        status: TemplateStatus::parse("approved").unwrap(),
        body: TemplateBody::parse("Order {{1}} is {{2}}.").unwrap(),
        at: t(0),
        received_at: None,
        twilio_content_sid: Some("HX77".into()),
        meta_template_id: None,
    }))
    .unwrap();
}

fn end_to_end_inbound_send_and_a_63016_callback_close_the_window(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    register_template(&b);
    let server = FakeServer::start(created("SM500"));
    let transport = TwilioTransport::new(config(&server), ureq::Agent::new_with_defaults());
    b.ingest(&consent(
        &user(1),
        wagate::Action::OptIn,
        wagate::Scope::All,
        0,
    ))
    .unwrap();
    let (body, sig) = signed(&[
        ("MessageSid", "SMin1"),
        ("From", U1),
        ("To", "whatsapp:+14155238886"),
        ("Body", "Where is my order?"),
        ("NumMedia", "0"),
    ]);
    // A forged copy changes nothing.
    let forged = TwilioWebhook::verified(AUTH, HOOK, &body, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    assert!(matches!(forged, Err(WebhookError::Signature(_))));
    clock.set(t(HOUR));
    assert!(deliver(&b, &body, &sig, HOUR).opened_window);
    // Twilio retries the same webhook: a duplicate.
    assert!(deliver(&b, &body, &sig, HOUR + 5).duplicate);

    clock.set(t(HOUR + MINUTE));
    let reply = SendRequest::between(sender(0), user(1), Content::text("It ships today."));
    let out = b.send(&reply, "reply-1", &transport).unwrap();
    assert_eq!(
        out.delivery,
        Delivery::Accepted {
            provider_id: "SM500".into()
        }
    );
    assert_eq!(
        server.seen()[0].field("Body").as_deref(),
        Some("It ships today.")
    );

    // Twilio reports 63016 twice (failed, then undelivered): once is enough.
    for (status, ms) in [("failed", 2 * MINUTE), ("undelivered", 3 * MINUTE)] {
        let (body, sig) = signed(&[
            ("MessageSid", "SM500"),
            ("MessageStatus", status),
            ("ErrorCode", "63016"),
            ("From", "whatsapp:+14155238886"),
            ("To", U1),
        ]);
        let outcome = deliver(&b, &body, &sig, HOUR + ms);
        assert_eq!(
            outcome.feedback,
            if status == "failed" {
                Some(63016)
            } else {
                None
            },
            "{status}"
        );
    }
    clock.set(t(HOUR + 4 * MINUTE));
    let d: Decision = b.check(&reply).unwrap();
    assert_eq!(
        (d.verdict, d.reason),
        (wagate::Verdict::TemplateRequired, Reason::WindowClosed)
    );
    // A template still goes, as ContentSid.
    let template = SendRequest::between(
        sender(0),
        user(1),
        Content::Template {
            name: "order_update".into(),
            language: "en".into(),
            variables: Variables::positional(["A-17", "shipped"]),
        },
    );
    server.then(created("SM501"));
    let out = b.send(&template, "t-1", &transport).unwrap();
    assert!(out.sent(), "{out:?}");
    assert_eq!(
        server.seen()[1].field("ContentSid").as_deref(),
        Some("HX77")
    );
    assert_eq!(server.seen()[1].field("Body"), None);
}

fn end_to_end_stop_opts_out_and_nothing_reaches_twilio(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    let server = FakeServer::start(created("SM600"));
    let transport = TwilioTransport::new(config(&server), ureq::Agent::new_with_defaults());
    b.ingest(&consent(
        &user(1),
        wagate::Action::OptIn,
        wagate::Scope::All,
        0,
    ))
    .unwrap();
    let (body, sig) = signed(&[
        ("MessageSid", "SMstop"),
        ("From", U1),
        ("To", "whatsapp:+14155238886"),
        ("Body", "STOP"),
    ]);
    clock.set(t(HOUR));
    let outcome = deliver(&b, &body, &sig, HOUR);
    assert_eq!(outcome.keyword, Some(wagate::Keyword::OptOut));
    let reply = SendRequest::between(sender(0), user(1), Content::text("Wait, come back"));
    let out = b.send(&reply, "r-1", &transport).unwrap();
    assert_eq!(
        (out.decision.reason, out.delivery),
        (Reason::OptedOut, Delivery::NotSent)
    );
    assert!(server.seen().is_empty(), "Twilio was never called");
}

fn a_21610_refusal_opts_the_user_out(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    let server = FakeServer::start(created("SMx"));
    let transport = TwilioTransport::new(config(&server), ureq::Agent::new_with_defaults());
    clock.set(t(HOUR));
    for u in [user(1), user(2)] {
        b.ingest(&consent(&u, wagate::Action::OptIn, wagate::Scope::All, 0))
            .unwrap();
    }
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        "SM1",
    ))
    .unwrap();
    server.then(Answer::json(
        400,
        r#"{"code":21610,"message":"unsubscribed","status":400}"#,
    ));
    let reply = SendRequest::between(sender(0), user(1), Content::text("hello"));
    let out = b.send(&reply, "r-1", &transport).unwrap();
    assert!(matches!(
        out.delivery,
        Delivery::Refused {
            code: Some(21610),
            transient: false,
            ..
        }
    ));
    assert_eq!(b.check(&reply).unwrap().reason, Reason::OptedOut);
    // 429 with Retry-After: the gate reports when to come back.
    b.ingest(&inbound(
        &user(2),
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        "SM2",
    ))
    .unwrap();
    server.then(
        Answer::json(
            429,
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
        )
        .header("Retry-After", "3"),
    );
    let other = SendRequest::between(sender(0), user(2), Content::text("hello"));
    let out = b.send(&other, "r-2", &transport).unwrap();
    assert!(
        matches!(
            out.delivery,
            Delivery::Refused {
                transient: true,
                retry_after_secs: Some(3),
                ..
            }
        ),
        "{out:?}"
    );
    // The retry with the same key goes through.
    assert!(b.send(&other, "r-2", &transport).unwrap().sent());
}

#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_async_over_reqwest() {
    use wagate::gate::tokio::AsyncBusiness;
    let (gate, clock) = gate();
    let b = AsyncBusiness::new(gate.business("acme").unwrap());
    let server = FakeServer::start(created("SM700"));
    let transport = TwilioTransport::new(config(&server), reqwest::Client::new());
    for u in [user(1), user(2)] {
        b.ingest(consent(&u, wagate::Action::OptIn, wagate::Scope::All, 0))
            .await
            .unwrap();
    }
    let (body, sig) = signed(&[
        ("MessageSid", "SMa1"),
        ("From", U1),
        ("To", "whatsapp:+14155238886"),
        ("Body", "hi"),
    ]);
    clock.set(t(HOUR));
    let hook = TwilioWebhook::verified(AUTH, HOOK, &body, Some(&sig)).unwrap();
    b.ingest(hook.event(t(HOUR))).await.unwrap();
    let reply = SendRequest::between(sender(0), user(1), Content::text("hello"));
    let out = b
        .send(reply.clone(), "a-1".into(), &transport)
        .await
        .unwrap();
    assert_eq!(
        out.delivery,
        Delivery::Accepted {
            provider_id: "SM700".into()
        }
    );
    let (body, sig) = signed(&[
        ("MessageSid", "SM700"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "63016"),
    ]);
    let hook = TwilioWebhook::verified(AUTH, HOOK, &body, Some(&sig)).unwrap();
    assert_eq!(
        b.ingest(hook.event(t(HOUR + MINUTE)))
            .await
            .unwrap()
            .feedback,
        Some(63016)
    );
    assert_eq!(b.check(reply).await.unwrap().reason, Reason::WindowClosed);
    // A slow Twilio: the timeout is honoured by the async client too.
    b.ingest(inbound(
        &user(2),
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR + MINUTE,
        "SMa2",
    ))
    .await
    .unwrap();
    server.then(created("SMslow").after(Duration::from_millis(1500)));
    let other = SendRequest::between(sender(0), user(2), Content::text("hello"));
    let out = b.send(other, "a-2".into(), &transport).await.unwrap();
    assert!(
        matches!(
            out.delivery,
            Delivery::Refused {
                transient: true,
                ..
            }
        ),
        "{out:?}"
    );
}

fn media_goes_as_media_url_and_is_part_of_what_a_key_names(on: On) {
    let (gate, clock, _kept) = open(on);
    let b = gate.business("acme").unwrap();
    let server = FakeServer::start(created("SM800"));
    let transport = TwilioTransport::new(config(&server), ureq::Agent::new_with_defaults());
    clock.set(t(HOUR));
    b.ingest(&consent(
        &user(1),
        wagate::Action::OptIn,
        wagate::Scope::All,
        0,
    ))
    .unwrap();
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "invoice?",
        HOUR,
        "SM1",
    ))
    .unwrap();
    let invoice = Content::media(
        "Your invoice",
        ["https://example.com/a.pdf", "https://example.com/b.pdf"],
    );
    let req = SendRequest::between(sender(0), user(1), invoice);
    assert!(b.send(&req, "m-1", &transport).unwrap().sent());
    let r = &server.seen()[0];
    let urls: Vec<String> = r
        .form()
        .into_iter()
        .filter(|(k, _)| k == "MediaUrl")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        urls,
        ["https://example.com/a.pdf", "https://example.com/b.pdf"]
    );
    assert_eq!(r.field("Body").as_deref(), Some("Your invoice"));
    // The same key with other media is another request: an error, not a duplicate.
    let other = SendRequest::between(
        sender(0),
        user(1),
        Content::media("Your invoice", ["https://example.com/c.pdf"]),
    );
    assert!(matches!(
        b.send(&other, "m-1", &transport),
        Err(wagate::Error::KeyReused(_))
    ));
    assert!(b.send(&req, "m-1", &transport).unwrap().duplicate());
    // Media without a caption sends no empty Body.
    let bare = SendRequest::between(
        sender(0),
        user(1),
        Content::media("", ["https://example.com/d.png"]),
    );
    server.then(created("SM801"));
    assert!(b.send(&bare, "m-2", &transport).unwrap().sent());
    assert_eq!(server.seen()[1].field("Body"), None);
    // A window closed: media is freeform, so a template is required.
    clock.set(t(HOUR + 25 * HOUR));
    assert_eq!(b.check(&req).unwrap().reason, Reason::WindowClosed);
}

on_both!(
    end_to_end_inbound_send_and_a_63016_callback_close_the_window,
    end_to_end_stop_opts_out_and_nothing_reaches_twilio,
    a_21610_refusal_opts_the_user_out,
    media_goes_as_media_url_and_is_part_of_what_a_key_names,
);
