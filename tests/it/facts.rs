//! The facts a decision reports beside its reason (RULES R2, R6): the
//! free-entry-point period (72h from the first reply to an ad or page
//! inbound, if that reply came within 24h), the time of the opt-out that
//! decides the general state, and until when its confirmation may go.

use wagate::policy::{ConsentFact, Facts, WindowFacts, decide};
use wagate::transport::RecordingTransport;
use wagate::{
    Action, ConsentState, Content, Event, InboundMessage, MessageKind, PolicyConfig, Purpose,
    Reason, Referral, Scope, SendRequest, Timestamp,
};

use crate::common::*;

fn freeform() -> SendRequest {
    SendRequest::between(sender(0), user(0), Content::text("hi"))
}

fn free_until(referral: i64, reply: i64) -> Option<Timestamp> {
    let facts = Facts {
        window: WindowFacts {
            last_inbound: Some(t(referral)),
            referral_at: Some(t(referral)),
            first_reply_after_referral: Some(t(reply)),
            ..WindowFacts::default()
        },
        ..Facts::default()
    };
    decide(&freeform(), &facts, t(reply), &PolicyConfig::default())
        .facts
        .free_entry_point_until
}

#[test]
fn a_reply_within_24h_of_an_ad_opens_72h_free_from_the_reply() {
    let day = 24 * HOUR;
    assert_eq!(free_until(HOUR, HOUR), Some(t(HOUR + 72 * HOUR)));
    assert_eq!(free_until(HOUR, 2 * HOUR), Some(t(2 * HOUR + 72 * HOUR)));
    assert_eq!(
        free_until(HOUR, HOUR + day - 1),
        Some(t(HOUR + day - 1 + 72 * HOUR))
    );
    // Exactly 24h after the ad inbound is too late; a reply before it
    // (clock skew) is no answer to it.
    assert_eq!(free_until(HOUR, HOUR + day), None);
    assert_eq!(free_until(HOUR, HOUR - 1), None);
    // No reply, no period.
    let facts = Facts {
        window: WindowFacts {
            last_inbound: Some(t(0)),
            referral_at: Some(t(0)),
            ..WindowFacts::default()
        },
        ..Facts::default()
    };
    let d = decide(&freeform(), &facts, t(MINUTE), &PolicyConfig::default());
    assert_eq!(d.facts.free_entry_point_until, None);
}

#[test]
fn the_gate_reports_the_free_entry_point_of_an_answered_ad() {
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    let mut m = InboundMessage::text(user(0), sender(0), "I saw your ad", t(HOUR)).with_id("ad1");
    m.received_at = Some(t(HOUR));
    m.referral = Some(Referral::CtwaAd);
    clock.set(t(HOUR));
    b.ingest(&Event::Inbound(m)).unwrap();
    assert_eq!(
        b.check(&freeform()).unwrap().facts.free_entry_point_until,
        None
    );
    clock.set(t(2 * HOUR));
    let out = b
        .send(&freeform(), "reply-1", &RecordingTransport::new())
        .unwrap();
    assert!(out.sent());
    let d = b.check(&freeform()).unwrap();
    assert_eq!(d.reason, Reason::WindowOpen);
    assert_eq!(d.facts.free_entry_point_until, Some(t(74 * HOUR)));
    // Pricing only: it never opens the window (R2).
    clock.set(t(30 * HOUR));
    let d = b.check(&freeform()).unwrap();
    assert_eq!(d.reason, Reason::NoOptIn);
    assert_eq!(d.facts.free_entry_point_until, Some(t(74 * HOUR)));
    // An ordinary inbound carries no referral: no period of its own.
    let (gate, clock) = crate::common::gate();
    let b = gate.business("acme").unwrap();
    b.ingest(&inbound(
        &user(0),
        &sender(0),
        MessageKind::Text,
        "hi",
        0,
        "n1",
    ))
    .unwrap();
    clock.set(t(MINUTE));
    assert!(
        b.send(&freeform(), "reply-2", &RecordingTransport::new())
            .unwrap()
            .sent()
    );
    assert_eq!(
        b.check(&freeform()).unwrap().facts.free_entry_point_until,
        None
    );
}

#[test]
fn an_opt_out_reports_when_it_took_effect_and_the_confirmation_deadline() {
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    b.ingest(&consent(&user(0), Action::OptIn, Scope::All, 0))
        .unwrap();
    b.ingest(&inbound(
        &user(0),
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        "m1",
    ))
    .unwrap();
    clock.set(t(HOUR));
    let d = b.check(&freeform()).unwrap();
    assert_eq!(d.facts.consent, ConsentState::OptedIn);
    assert_eq!(
        (d.facts.opted_out_at, d.facts.confirmation_until),
        (None, None)
    );
    // (Arrival times are never later than the gate's clock.)
    clock.set(t(2 * HOUR + MINUTE));
    b.ingest(&inbound(
        &user(0),
        &sender(0),
        MessageKind::Text,
        "STOP",
        2 * HOUR,
        "m2",
    ))
    .unwrap();
    let d = b.check(&freeform()).unwrap();
    assert_eq!(d.reason, Reason::OptedOut);
    assert_eq!(d.facts.opted_out_at, Some(t(2 * HOUR)));
    assert_eq!(d.facts.confirmation_until, Some(t(2 * HOUR + 5 * MINUTE)));
    // The confirmation may go until then, and not at it.
    let confirm = freeform().with_purpose(Purpose::OptOutConfirmation);
    assert_eq!(
        b.check(&confirm).unwrap().reason,
        Reason::OptOutConfirmation
    );
    clock.set(t(2 * HOUR + 5 * MINUTE));
    assert_eq!(b.check(&confirm).unwrap().reason, Reason::OptedOut);
    // Opted in again: no opt-out time any more.
    b.ingest(&consent(&user(0), Action::OptIn, Scope::All, 3 * HOUR))
        .unwrap();
    clock.set(t(3 * HOUR));
    let d = b.check(&freeform()).unwrap();
    assert_eq!(d.facts.consent, ConsentState::OptedIn);
    assert_eq!(
        (d.facts.opted_out_at, d.facts.confirmation_until),
        (None, None)
    );
}

#[test]
fn an_opt_out_of_marketing_alone_is_no_general_opt_out() {
    let facts = Facts {
        consent: vec![
            ConsentFact {
                action: Action::OptIn,
                scope: Scope::All,
                effective: t(0),
                conditional: false,
            },
            ConsentFact {
                action: Action::OptOut,
                scope: Scope::Marketing,
                effective: t(HOUR),
                conditional: false,
            },
        ],
        ..Facts::default()
    };
    let d = decide(&freeform(), &facts, t(2 * HOUR), &PolicyConfig::default());
    assert_eq!(d.facts.consent, ConsentState::OptedIn);
    assert_eq!(d.facts.marketing_consent, ConsentState::OptedOut);
    assert_eq!(d.facts.opted_out_at, None);
    assert_eq!(d.reason, Reason::NoWindow);
}

#[test]
fn one_confirmation_per_opt_out_counting_one_sent_at_the_opt_out_itself() {
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    let confirm = freeform().with_purpose(Purpose::OptOutConfirmation);
    let transport = RecordingTransport::new();
    clock.set(t(HOUR));
    b.ingest(&inbound(
        &user(0),
        &sender(0),
        MessageKind::Text,
        "STOP",
        HOUR,
        "m1",
    ))
    .unwrap();
    // Sent at the very millisecond of the opt-out: it is the confirmation.
    assert!(b.send(&confirm, "c1", &transport).unwrap().sent());
    clock.set(t(HOUR + MINUTE));
    assert_eq!(b.check(&confirm).unwrap().reason, Reason::OptedOut);
    // A later opt-out gets its own confirmation: the first one was before it.
    b.ingest(&consent(&user(0), Action::OptIn, Scope::All, HOUR + MINUTE))
        .unwrap();
    clock.set(t(HOUR + 2 * MINUTE));
    b.ingest(&inbound(
        &user(0),
        &sender(0),
        MessageKind::Text,
        "STOP",
        HOUR + 2 * MINUTE,
        "m2",
    ))
    .unwrap();
    assert_eq!(
        b.check(&confirm).unwrap().reason,
        Reason::OptOutConfirmation
    );
    assert!(b.send(&confirm, "c2", &transport).unwrap().sent());
    assert_eq!(b.check(&confirm).unwrap().reason, Reason::OptedOut);
    assert_eq!(transport.sent().len(), 2);
}
