//! Batches on both stores: a bad event fails alone in `ingest_batch`
//! (PostgreSQL runs a batch without savepoints first and again with them
//! when an event fails: the result must be the same), rolls everything
//! back in `ingest_all`, and leaves nothing behind in a single `ingest`.

use wagate::{Content, Error, Event, MessageKind, Reason, SendRequest};

use crate::common::{HOUR, On, inbound, open, sender, t, user};

fn reason(b: &wagate::Business, u: u8) -> Reason {
    b.check(&SendRequest::between(
        sender(1),
        user(u),
        Content::text("hi"),
    ))
    .unwrap()
    .reason
}

/// The same message id with another text: refused when the store finds
/// the first one, after earlier events of the same transaction wrote.
fn clash(u: u8, id: &str) -> Event {
    inbound(
        &user(u),
        &sender(1),
        MessageKind::Text,
        "other text",
        HOUR,
        id,
    )
}

/// A first message, `m{u}`, from user `u`.
fn hi(u: u8) -> Event {
    inbound(
        &user(u),
        &sender(1),
        MessageKind::Text,
        "hi",
        HOUR,
        &format!("m{u}"),
    )
}

/// A business on `on` that has received `m1` from user 1.
fn acme_with_m1(on: On) -> (wagate::Business, crate::common::Kept) {
    let (gate, clock, kept) = open(on);
    clock.set(t(2 * HOUR));
    let b = gate.business("acme").unwrap();
    b.ingest(&hi(1)).unwrap();
    (b, kept)
}

fn a_bad_event_in_a_batch_fails_alone(on: On) {
    let (gate, clock, _kept) = open(on);
    clock.set(t(2 * HOUR));
    let b = gate.business("acme").unwrap();
    let events = vec![hi(1), hi(2), clash(3, "m1"), hi(4), hi(1)];
    let out = b.ingest_batch(&events).unwrap();
    assert!(
        out[0]
            .as_ref()
            .is_ok_and(|o| o.opened_window && !o.duplicate)
    );
    assert!(out[1].is_ok());
    let e = out[2].as_ref().unwrap_err();
    assert!(!e.is_store_failure(), "{e}");
    assert!(e.to_string().contains("m1"), "{e}");
    assert!(out[3].is_ok());
    assert!(out[4].as_ref().is_ok_and(|o| o.duplicate));
    for u in [1, 2, 4] {
        assert_eq!(reason(&b, u), Reason::WindowOpen, "user {u}");
    }
    // The refused event left no trace: its sender never became a user.
    assert_eq!(reason(&b, 3), Reason::NoOptIn);
    assert_eq!(b.stats().unwrap().users, 3);
}

fn a_bad_event_rolls_back_ingest_all(on: On) {
    let (b, _kept) = acme_with_m1(on);
    let e = b.ingest_all(&[hi(2), clash(3, "m1")]).unwrap_err();
    assert!(matches!(e, Error::InBatch { index: 1, .. }), "{e}");
    assert_eq!(reason(&b, 2), Reason::NoOptIn);
    assert_eq!(b.stats().unwrap().users, 1);
}

fn a_bad_single_event_leaves_nothing(on: On) {
    let (b, _kept) = acme_with_m1(on);
    let e = b.ingest(&clash(2, "m1")).unwrap_err();
    assert!(!e.is_store_failure(), "{e}");
    assert_eq!(reason(&b, 2), Reason::NoOptIn);
    assert_eq!(b.stats().unwrap().users, 1);
    // The gate goes on: the next event lands.
    assert!(b.ingest(&hi(2)).unwrap().opened_window);
    assert_eq!(reason(&b, 2), Reason::WindowOpen);
}

on_both!(
    a_bad_event_in_a_batch_fails_alone,
    a_bad_event_rolls_back_ingest_all,
    a_bad_single_event_leaves_nothing
);
