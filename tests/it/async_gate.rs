//! The async facade (feature `tokio`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wagate::gate::tokio::AsyncBusiness;
use wagate::transport::{
    AsyncTransport, OutboundMessage, Receipt, RecordingTransport, TransportError,
};
use wagate::{Content, MessageKind, Reason, SendRequest};

use crate::common::*;

/// A provider that takes the message and never answers.
struct Hangs(Arc<AtomicUsize>);

impl AsyncTransport for Hangs {
    type Ok = Receipt;
    type Error = TransportError;
    fn send(
        &self,
        _: &OutboundMessage,
    ) -> impl std::future::Future<Output = Result<Receipt, TransportError>> + Send {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::pending()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_dropped_after_its_reservation_never_sends_twice() {
    let (gate, clock) = gate();
    clock.set(t(HOUR + MINUTE));
    let b = AsyncBusiness::new(gate.business("acme").unwrap());
    b.ingest(inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        "SM1",
    ))
    .await
    .unwrap();
    let req = SendRequest::between(sender(0), user(1), Content::text("hello"));
    assert_eq!(
        b.check(req.clone()).await.unwrap().reason,
        Reason::WindowOpen
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let hangs = Hangs(calls.clone());
    let dropped = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        b.send(req.clone(), "k1".into(), &hangs),
    )
    .await;
    assert!(dropped.is_err(), "the provider never answered");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the message was handed over once"
    );
    // The retry finds the key reserved: a duplicate, nothing sent again.
    let recording = RecordingTransport::new();
    let again = b.send(req.clone(), "k1".into(), &recording).await.unwrap();
    assert!(again.duplicate());
    assert!(recording.sent().is_empty());
    // Another key goes out.
    let out = b.send(req, "k2".into(), &recording).await.unwrap();
    assert!(out.sent());
    assert_eq!(recording.sent().len(), 1);
}

async fn the_async_facade_decides_as_the_sync_gate(on: On) {
    // Opening is blocking (the PostgreSQL client is): off the runtime.
    let (gate, clock, keep) = tokio::task::spawn_blocking(move || open(on)).await.unwrap();
    clock.set(t(2 * HOUR));
    let b = AsyncBusiness::open(gate.clone(), "acme").await.unwrap();
    let sync = b.blocking().clone();
    let events = vec![
        consent(&user(1), wagate::Action::OptIn, wagate::Scope::All, 0),
        inbound(&user(2), &sender(0), MessageKind::Text, "STOP", HOUR, "SM9"),
    ];
    assert!(
        b.ingest_batch(events)
            .await
            .unwrap()
            .iter()
            .all(Result::is_ok)
    );
    let reqs: Vec<_> = [1u8, 2, 3]
        .iter()
        .map(|u| {
            (
                SendRequest::between(sender(0), user(*u), Content::text("x")),
                None,
            )
        })
        .collect();
    let many = b.check_many(reqs.clone()).await.unwrap();
    // The blocking API, from a blocking thread (the PostgreSQL client
    // refuses to block a thread that drives the runtime).
    let one_by_one = tokio::task::spawn_blocking(move || {
        reqs.iter()
            .map(|(req, _)| sync.check(req).unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (d, one) in many.into_iter().zip(one_by_one) {
        assert_eq!(d.unwrap(), one);
    }
    // An erasure from a service's endpoint: user 2's STOP still holds.
    let gone = b.forget(user(2)).await.unwrap();
    assert_eq!((gone.addresses, gone.consent_events), (1, 1));
    let stop = SendRequest::between(sender(0), user(2), Content::text("x"));
    assert_eq!(b.check(stop).await.unwrap().reason, Reason::OptedOut);
    // The last clones go inside the runtime: no abort. (The schema is
    // dropped off the runtime too.)
    drop((gate, b));
    tokio::task::spawn_blocking(move || drop(keep))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_facade_decides_as_the_sync_gate_on_sqlite() {
    the_async_facade_decides_as_the_sync_gate(On::Sqlite).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_facade_decides_as_the_sync_gate_on_postgres() {
    the_async_facade_decides_as_the_sync_gate(On::Postgres).await;
}
