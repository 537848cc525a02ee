//! Two gates, each with its own pool (two instances of a service), on one
//! PostgreSQL schema, racing: an idempotency key reaches the transport
//! once, an opt-out is confirmed once, and nothing is lost.

use std::sync::{Arc, Barrier};

use wagate::transport::RecordingTransport;
use wagate::{Content, Gate, ManualClock, MessageKind, Purpose, SendRequest};

use super::{fresh_store, url};
use crate::common::*;

const THREADS: usize = 4;

fn two_gates(schema: &str, clock: &Arc<ManualClock>) -> [Gate; 2] {
    [0, 1].map(|_| {
        Gate::open_postgres(&url(), schema)
            .unwrap()
            .with_clock(clock.clone())
    })
}

#[test]
fn two_instances_send_each_key_once_and_confirm_an_opt_out_once() {
    let store = fresh_store();
    let clock = Arc::new(ManualClock::new(t(0)));
    let gates = two_gates(store.schema(), &clock);
    let first = gates[0].business("acme").unwrap();
    // Ten users who wrote (window open); user 0 then sent STOP.
    for u in 0..10u8 {
        first
            .ingest(&inbound(
                &user(u),
                &sender(0),
                MessageKind::Text,
                "hi",
                0,
                &format!("SMa{u}"),
            ))
            .unwrap();
    }
    clock.set(t(MINUTE));
    first
        .ingest(&inbound(
            &user(0),
            &sender(0),
            MessageKind::Text,
            "STOP",
            MINUTE,
            "SMstop",
        ))
        .unwrap();
    clock.set(t(2 * MINUTE));

    let transport = Arc::new(RecordingTransport::new());
    let barrier = Arc::new(Barrier::new(2 * THREADS));
    let mut handles = Vec::new();
    for (g, gate) in gates.iter().enumerate() {
        for th in 0..THREADS {
            let b = gate.business("acme").unwrap();
            let transport = transport.clone();
            let barrier = barrier.clone();
            handles.push(std::thread::spawn(move || {
                barrier.wait();
                // Every thread of both instances sends the same keys.
                for u in 1..10u8 {
                    let req = SendRequest::between(sender(0), user(u), Content::text("order?"));
                    b.send(&req, &format!("reply-{u}"), &*transport).unwrap();
                }
                // And each tries its own confirmation of user 0's STOP.
                let confirm = SendRequest::between(
                    sender(0),
                    user(0),
                    Content::text("You are unsubscribed."),
                )
                .with_purpose(Purpose::OptOutConfirmation);
                b.send(&confirm, &format!("confirm-{g}-{th}"), &*transport)
                    .unwrap()
                    .sent()
            }));
        }
    }
    let confirmations = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|sent| *sent)
        .count();
    assert_eq!(confirmations, 1, "one confirmation of one opt-out");
    let sent = transport.sent();
    assert_eq!(
        sent.len(),
        9 + 1,
        "each key once, plus the confirmation: {sent:?}"
    );
    // Both instances read the same state.
    let second = gates[1].business("acme").unwrap();
    for u in 0..10u8 {
        let req = SendRequest::between(sender(0), user(u), Content::text("again"));
        assert_eq!(first.check(&req).unwrap(), second.check(&req).unwrap());
    }
    assert!(second.verify().unwrap().broken.is_none());
}
