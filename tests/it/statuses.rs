//! Delivery statuses move forward only (RULES R7), as `sends` reads them
//! back: a late or duplicate callback never moves a message back, a final
//! status stays final, and pricing comes with the status that moved it.

use wagate::transport::RecordingTransport;
use wagate::{
    Action, Business, Content, Delivery, DeliveryStatus, Event, MessageKind, Pricing, Scope,
    SendQuery, SendRecord, SendRequest, StatusCallback,
};

use crate::common::*;

/// A business where user 0 opted in and wrote to sender 0, and one
/// freeform message sent under key `k1` (the recording transport gives
/// it provider id `k1`).
fn sent() -> (Business, std::sync::Arc<wagate::ManualClock>) {
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    b.ingest(&consent(&user(0), Action::OptIn, Scope::All, 0))
        .unwrap();
    b.ingest(&inbound(
        &user(0),
        &sender(0),
        MessageKind::Text,
        "hi",
        0,
        "SM1",
    ))
    .unwrap();
    clock.set(t(MINUTE));
    let req = SendRequest::between(sender(0), user(0), Content::text("hello"));
    let out = b.send(&req, "k1", &RecordingTransport::new()).unwrap();
    assert_eq!(
        out.delivery,
        Delivery::Accepted {
            provider_id: "k1".into()
        }
    );
    (b, clock)
}

fn record(b: &Business) -> SendRecord {
    let mut rows = b
        .sends(
            &SendQuery {
                key: Some("k1".into()),
                ..SendQuery::default()
            },
            10,
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    rows.remove(0)
}

fn callback(b: &Business, status: DeliveryStatus, at: i64) {
    b.ingest(&Event::Status(StatusCallback::new("k1", status, t(at))))
        .unwrap();
}

#[test]
fn statuses_only_move_forward() {
    use DeliveryStatus::*;
    let (b, _clock) = sent();
    assert_eq!(record(&b).status, None, "no callback yet");
    // (callback, status read back after it)
    let steps = [
        (Sending, "sending"),
        (Queued, "sending"),
        (Sent, "sent"),
        (Sending, "sent"),
        (Delivered, "delivered"),
        (Sent, "delivered"),
        (PartiallyDelivered, "delivered"),
        (Read, "read"),
        (Delivered, "read"),
        (Played, "read"),
        (Failed, "failed"),
        (Read, "failed"),
        (Undelivered, "failed"),
        (Received, "failed"),
    ];
    for (i, (status, want)) in steps.into_iter().enumerate() {
        callback(&b, status, 2 * MINUTE + i as i64);
        assert_eq!(
            record(&b).status.as_deref(),
            Some(want),
            "after callback {i} ({status:?})"
        );
    }
}

#[test]
fn accepted_and_scheduled_come_before_sending_and_delivered_precedes_read() {
    use DeliveryStatus::*;
    let (b, _clock) = sent();
    callback(&b, Scheduled, 2 * MINUTE);
    assert_eq!(record(&b).status.as_deref(), Some("scheduled"));
    callback(&b, Accepted, 2 * MINUTE);
    assert_eq!(record(&b).status.as_deref(), Some("scheduled"));
    callback(&b, PartiallyDelivered, 3 * MINUTE);
    assert_eq!(record(&b).status.as_deref(), Some("partially_delivered"));
    callback(&b, Played, 4 * MINUTE);
    assert_eq!(record(&b).status.as_deref(), Some("played"));
    callback(&b, Canceled, 5 * MINUTE);
    assert_eq!(record(&b).status.as_deref(), Some("canceled"));
    callback(&b, Failed, 6 * MINUTE);
    assert_eq!(
        record(&b).status.as_deref(),
        Some("canceled"),
        "final statuses share one rank: the first final one stays"
    );
}

#[test]
fn pricing_comes_with_the_status_that_moved_the_message() {
    let (b, _clock) = sent();
    let price = |kind: &str| Pricing {
        category: Some("service".into()),
        kind: Some(kind.into()),
        billable: Some(false),
    };
    let with = |status, at, kind: &str| {
        let mut cb = StatusCallback::new("k1", status, t(at));
        cb.pricing = Some(price(kind));
        b.ingest(&Event::Status(cb)).unwrap();
    };
    with(
        DeliveryStatus::Delivered,
        2 * MINUTE,
        "free_customer_service",
    );
    assert_eq!(record(&b).pricing, Some(price("free_customer_service")));
    // A late "sent" does not move the message, nor its pricing.
    with(DeliveryStatus::Sent, 3 * MINUTE, "regular");
    let r = record(&b);
    assert_eq!(r.status.as_deref(), Some("delivered"));
    assert_eq!(r.pricing, Some(price("free_customer_service")));
    // "read" moves it: its pricing is kept.
    with(DeliveryStatus::Read, 4 * MINUTE, "regular");
    assert_eq!(record(&b).pricing, Some(price("regular")));
}

#[test]
fn a_duplicate_send_reports_the_first_provider_id_and_sends_nothing() {
    let (b, _clock) = sent();
    let t2 = RecordingTransport::new();
    let req = SendRequest::between(sender(0), user(0), Content::text("hello"));
    let again = b.send(&req, "k1", &t2).unwrap();
    assert!(t2.sent().is_empty());
    assert!(again.duplicate() && !again.sent());
    assert_eq!(
        again.delivery,
        Delivery::Duplicate {
            provider_id: Some("k1".into())
        }
    );
}
