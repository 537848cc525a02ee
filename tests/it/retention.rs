//! Retention (RULES-neutral housekeeping): a purge never changes a
//! decision, now or as of any time in the kept period.

use std::time::Duration;

use proptest::prelude::*;
use wagate::transport::{RecordingTransport, TransportError};
use wagate::{
    Action, Category, Content, DeliveryStatus, Event, InboundMessage, MessageKind, Purpose,
    Referral, Scope, SendRequest, StatusCallback, Variables,
};

use crate::common::*;

const DAY: i64 = 24 * HOUR;

#[derive(Clone, Debug)]
enum Op {
    Inbound {
        user: u8,
        sender: u8,
        body: &'static str,
        media: bool,
        referral: bool,
    },
    Consent {
        user: u8,
        opt_in: bool,
        marketing: bool,
    },
    Send {
        user: u8,
        sender: u8,
        content: u8,
        fail: Option<u32>,
    },
    Status {
        send: usize,
        code: Option<u32>,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..2, prop::sample::select(vec!["hi", "STOP", "START", "HELP", "order?"]), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(user, sender, body, media, referral)| Op::Inbound { user, sender, body, media, referral }),
        2 => (0u8..3, any::<bool>(), any::<bool>()).prop_map(|(user, opt_in, marketing)| Op::Consent { user, opt_in, marketing }),
        4 => (0u8..3, 0u8..2, 0u8..4, prop::option::weighted(0.2, prop::sample::select(vec![63016u32, 21610, 131047, 131050, 132015])))
            .prop_map(|(user, sender, content, fail)| Op::Send { user, sender, content, fail }),
        1 => (0usize..40, prop::option::of(prop::sample::select(vec![63016u32, 131047, 131050]))).prop_map(|(send, code)| Op::Status { send, code }),
    ]
}

fn content(k: u8) -> (Content, Option<Purpose>) {
    let template = |name: &str| Content::Template {
        name: name.into(),
        language: "en".into(),
        variables: Variables::positional(["A-17"]),
    };
    match k {
        0 => (Content::text("hello"), None),
        1 => (template("utility"), None),
        2 => (template("promo"), None),
        _ => (
            Content::text("You are unsubscribed."),
            Some(Purpose::OptOutConfirmation),
        ),
    }
}

fn request(user: u8, sender_i: u8, k: u8) -> SendRequest {
    let (c, purpose) = content(k);
    let r = SendRequest::between(sender(sender_i), crate::common::user(user + 1), c);
    match purpose {
        Some(p) => r.with_purpose(p),
        None => r,
    }
}

/// Every (user, sender, content) decision now and as of `times`.
fn decisions(b: &wagate::Business, times: &[i64]) -> Vec<(wagate::Verdict, wagate::Reason)> {
    let mut out = Vec::new();
    for user in 0..3 {
        for s in 0..2 {
            for k in 0..4 {
                let req = request(user, s, k);
                let d = b.check(&req).unwrap();
                out.push((d.verdict, d.reason));
                for &at in times {
                    let d = b.check_as_of(&req, t(at)).unwrap();
                    out.push((d.verdict, d.reason));
                }
            }
        }
    }
    out
}

/// The purge property on the store `$on` with `$cases` cases.
macro_rules! purge_properties {
    ($on:expr, $cases:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: $cases, ..ProptestConfig::default() })]

    #[test]
    fn a_purge_never_changes_a_decision(
        ops in proptest::collection::vec((0i64..30 * DAY, arb_op()), 1..40),
        keep_days in 7i64..29,
        as_of_offsets in proptest::collection::vec(0i64..1000, 3),
    ) {
        let (gate, clock, _keep) = open($on);
        let b = gate.business("acme").unwrap();
        template(&b, "utility", Category::Utility);
        template(&b, "promo", Category::Marketing);
        let transport = RecordingTransport::new();
        let mut ops = ops;
        ops.sort_by_key(|(at, _)| *at);
        let mut sent: Vec<String> = Vec::new();
        for (i, (at, op)) in ops.into_iter().enumerate() {
            clock.set(t(at));
            match op {
                Op::Inbound { user, sender: s, body, media, referral } => {
                    let mut m = InboundMessage::text(crate::common::user(user + 1), sender(s), body, t(at)).with_id(format!("SM{i}"));
                    if media {
                        m.kind = MessageKind::Media;
                    }
                    if referral {
                        m.referral = Some(Referral::CtwaAd);
                    }
                    m.received_at = Some(t(at));
                    b.ingest(&Event::Inbound(m)).unwrap();
                }
                Op::Consent { user, opt_in, marketing } => {
                    let action = if opt_in { Action::OptIn } else { Action::OptOut };
                    let scope = if marketing { Scope::Marketing } else { Scope::All };
                    b.ingest(&consent(&crate::common::user(user + 1), action, scope, at)).unwrap();
                }
                Op::Send { user, sender: s, content: k, fail } => {
                    if let Some(code) = fail {
                        transport.fail_next(TransportError { transient: false, code: Some(code), message: "refused".into() });
                    }
                    let key = format!("k{i}");
                    let out = b.send(&request(user, s, k), &key, &transport).unwrap();
                    if out.sent() {
                        sent.push(key);
                    }
                }
                Op::Status { send, code } => {
                    if let Some(id) = sent.get(send % sent.len().max(1)).cloned() {
                        let mut cb = StatusCallback::new(id, DeliveryStatus::Failed, t(at));
                        cb.error_code = code;
                        cb.received_at = Some(t(at));
                        b.ingest(&Event::Status(cb)).unwrap();
                    }
                }
            }
        }
        let now = 30 * DAY;
        clock.set(t(now));
        let keep = keep_days * DAY;
        // As-of times inside the kept period.
        let times: Vec<i64> = as_of_offsets.iter().map(|o| now - keep + (keep * o / 1000)).collect();
        let before = decisions(&b, &times);
        let purged = b.purge(Duration::from_millis(u64::try_from(keep).unwrap()), false).unwrap();
        let after = decisions(&b, &times);
        prop_assert_eq!(before, after, "purged {:?}", purged);
        // And the trail still verifies.
        prop_assert!(b.verify().is_ok());
    }
        }
    };
}

mod on_sqlite {
    use super::*;
    purge_properties!(On::Sqlite, 48);
}

#[cfg(feature = "postgres")]
mod on_postgres {
    use super::*;
    purge_properties!(On::Postgres, 12);
}

fn a_purge_removes_old_rows_only_and_counts_them(on: On) {
    let (gate, clock, _keep) = open(on);
    let b = gate.business("acme").unwrap();
    let transport = RecordingTransport::new();
    for (day, id) in [(1, "SM-old"), (2, "SM-older-newest"), (25, "SM-new")] {
        clock.set(t(day * DAY));
        b.ingest(&consent(&user(1), Action::OptIn, Scope::All, day * DAY))
            .unwrap();
        b.ingest(&inbound(
            &user(1),
            &sender(0),
            MessageKind::Text,
            "hi",
            day * DAY,
            id,
        ))
        .unwrap();
        let req = SendRequest::between(sender(0), user(1), Content::text("hello"));
        assert!(
            b.send(&req, &format!("key-{day}"), &transport)
                .unwrap()
                .sent()
        );
    }
    clock.set(t(30 * DAY));
    let keep = Duration::from_secs(14 * 24 * 3600);
    let would = b.purge(keep, true).unwrap();
    // Inbound: the newest old message of the address and sender stays (as-of
    // answers read it); sends: both old ones go.
    assert_eq!((would.inbound_messages, would.send_attempts), (1, 2));
    assert_eq!(b.purge(keep, false).unwrap(), would);
    assert_eq!(b.purge(keep, false).unwrap(), wagate::Purged::default());
    let stats = b.stats().unwrap();
    assert_eq!(
        (
            stats.inbound_messages,
            stats.send_attempts,
            stats.consent_events
        ),
        (2, 1, 3)
    );
    // A recent key still holds; the old one is forgotten.
    let req = SendRequest::between(sender(0), user(1), Content::text("hello"));
    assert!(b.send(&req, "key-25", &transport).unwrap().duplicate());
    assert!(matches!(
        b.purge(Duration::from_secs(6 * 24 * 3600), false),
        Err(wagate::Error::Retention(_))
    ));
}

mod a_purge_removes_old_rows_only_and_counts_them {
    #[test]
    fn sqlite() {
        super::a_purge_removes_old_rows_only_and_counts_them(super::On::Sqlite);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres() {
        super::a_purge_removes_old_rows_only_and_counts_them(super::On::Postgres);
    }
}
