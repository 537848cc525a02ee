//! Integration tests on a real SQLite file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wagate::transport::RecordingTransport;
use wagate::{
    Action, Category, Content, Error, Event, Gate, ManualClock, MessageKind, Reason, Scope,
    SendRequest, TemplateBody, TemplateRecord, TemplateStatus, Variables,
};

use crate::common::*;

/// A database path in the temp dir, removed (with its WAL files) on drop.
pub struct TempDb(pub PathBuf);

impl TempDb {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("wagate-test-{}-{n}-{name}.db", std::process::id()));
        let db = TempDb(p);
        db.remove();
        db
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", "-wagate.lock"] {
            let mut s = self.0.clone().into_os_string();
            s.push(suffix);
            let _ = std::fs::remove_file(s);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The user opted in at t(0) and wrote to sender 0 at t(1h) (id SM1).
fn opted_in_and_wrote(b: &wagate::Business, u: &wagate::Address) {
    b.ingest(&consent(u, Action::OptIn, Scope::All, 0)).unwrap();
    b.ingest(&inbound(
        u,
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        "SM1",
    ))
    .unwrap();
}

fn open(db: &TempDb, clock: &Arc<ManualClock>) -> Gate {
    Gate::open(&db.0).unwrap().with_clock(clock.clone())
}

fn template(name: &str, status: &str, at: i64) -> Event {
    Event::Template(TemplateRecord {
        name: name.into(),
        language: "en".into(),
        category: Category::Utility,
        status: TemplateStatus::parse(status).unwrap(),
        body: TemplateBody::parse("Order {{1}} shipped").unwrap(),
        at: t(at),
        received_at: None,
        twilio_content_sid: Some("HX123".into()),
        meta_template_id: None,
    })
}

#[test]
fn reopen_finds_everything() {
    let db = TempDb::new("reopen");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let u = user(1);
    let s = sender(0);
    let freeform = SendRequest::between(s.clone(), u.clone(), Content::text("hi"));
    let tpl = SendRequest::between(
        s.clone(),
        u.clone(),
        Content::template("shipped", "en", Variables::positional(["A-1"])),
    );
    let transport = RecordingTransport::new();
    let before = {
        let gate = open(&db, &clock);
        let b = gate.business("acme").unwrap();
        b.ingest(&consent(&u, Action::OptIn, Scope::All, 0))
            .unwrap();
        b.ingest(&template("shipped", "approved", 0)).unwrap();
        b.ingest(&inbound(&u, &s, MessageKind::Text, "hello", HOUR, "SM1"))
            .unwrap();
        let sent = b.send(&freeform, "out-1", &transport).unwrap();
        assert!(sent.sent());
        (
            b.check(&freeform).unwrap(),
            b.check(&tpl).unwrap(),
            b.consent_history(&u).unwrap(),
        )
    };
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    assert_eq!(b.check(&freeform).unwrap(), before.0);
    assert_eq!(before.0.reason, Reason::WindowOpen);
    assert_eq!(b.check(&tpl).unwrap(), before.1);
    assert_eq!(before.1.reason, Reason::WindowOpen);
    assert_eq!(b.consent_history(&u).unwrap(), before.2);
    assert_eq!(before.2.len(), 1);
    // The inbound id and the send key are remembered across the reopen.
    let again = b
        .ingest(&inbound(&u, &s, MessageKind::Text, "hello", HOUR, "SM1"))
        .unwrap();
    assert!(again.duplicate);
    let retry = b.send(&freeform, "out-1", &transport).unwrap();
    assert!(retry.duplicate());
    assert_eq!(transport.sent().len(), 1);
    // The window closes 24h after the inbound, after the reopen too.
    clock.set(t(25 * HOUR));
    assert_eq!(b.check(&freeform).unwrap().reason, Reason::WindowClosed);
    // A status callback names the message by its provider id.
    b.ingest(&Event::Status(wagate::StatusCallback {
        id: "out-1".into(),
        status: wagate::DeliveryStatus::Delivered,
        error_code: None,
        at: t(2 * HOUR),
        received_at: None,
        from: None,
        to: None,
        pricing: None,
    }))
    .unwrap();
}

#[test]
fn refuses_a_newer_schema() {
    let db = TempDb::new("newer");
    drop(Gate::open(&db.0).unwrap());
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, wagate::store::SCHEMA_VERSION);
    conn.pragma_update(None, "user_version", version + 1)
        .unwrap();
    drop(conn);
    match Gate::open(&db.0) {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (version + 1, version));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn refuses_a_foreign_database() {
    let db = TempDb::new("foreign");
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.pragma_update(None, "application_id", 42).unwrap();
    conn.execute_batch("CREATE TABLE notes (x TEXT)").unwrap();
    drop(conn);
    assert!(matches!(Gate::open(&db.0), Err(Error::Foreign(_))));
}

#[test]
fn pragmas_are_durable() {
    let db = TempDb::new("pragmas");
    let gate = Gate::open(&db.0).unwrap();
    drop(gate);
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let strict: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND name NOT LIKE 'sqlite_%' AND strict = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(strict, 0, "every table is STRICT");
}

#[test]
fn consent_trail_is_append_only() {
    let db = TempDb::new("append-only");
    let clock = Arc::new(ManualClock::new(t(0)));
    let gate = open(&db, &clock);
    gate.business("acme")
        .unwrap()
        .ingest(&consent(&user(1), Action::OptIn, Scope::All, 0))
        .unwrap();
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let upd = conn.execute("UPDATE consent_events SET action = 'opt_out'", []);
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = conn.execute("DELETE FROM consent_events", []);
    assert!(del.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn corrupt_rows_fail_closed() {
    let db = TempDb::new("corrupt");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let u = user(1);
    b.ingest(&consent(&u, Action::OptIn, Scope::All, 0))
        .unwrap();
    b.ingest(&template("shipped", "approved", 0)).unwrap();
    b.ingest(&inbound(
        &u,
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        "SM1",
    ))
    .unwrap();
    let freeform = SendRequest::between(sender(0), u.clone(), Content::text("hi"));
    assert!(b.check(&freeform).unwrap().is_allowed());
    // A template body that no longer parses: an error, not an allow.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.execute("UPDATE templates SET body = 'Hi {{ 1 }}'", [])
        .unwrap();
    let tpl = SendRequest::between(
        sender(0),
        u.clone(),
        Content::template("shipped", "en", Variables::positional(["A"])),
    );
    assert!(matches!(
        b.check(&tpl),
        Err(Error::Corrupt {
            table: "templates",
            ..
        })
    ));
    // A consent row with an action the code does not know.
    conn.pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    conn.execute(
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt)
         SELECT business_id, user_id, 2, 'maybe', 'all', 0, 0, 0, 0, 'x', zeroblob(32), zeroblob(16) FROM consent_events LIMIT 1",
        [],
    )
    .unwrap();
    assert!(matches!(
        b.check(&freeform),
        Err(Error::Corrupt { .. } | Error::ChainBroken { .. })
    ));
    let transport = RecordingTransport::new();
    assert!(b.send(&freeform, "k", &transport).is_err());
    assert!(transport.sent().is_empty());
}

#[test]
fn batch_items_fail_alone() {
    let db = TempDb::new("batch");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let u = user(1);
    let events = vec![
        consent(&u, Action::OptIn, Scope::All, 0),
        // A conditional opt-out means nothing (only keyword opt-ins are conditional).
        Event::Consent(wagate::ConsentEvent {
            conditional: true,
            ..match consent(&u, Action::OptOut, Scope::All, 0) {
                Event::Consent(c) => c,
                _ => unreachable!(),
            }
        }),
        inbound(&u, &sender(0), MessageKind::Text, "STOP", HOUR, "SM1"),
        Event::Inbound(wagate::InboundMessage {
            body: None,
            ..match inbound(&u, &sender(0), MessageKind::Text, "", HOUR, "SM2") {
                Event::Inbound(m) => m,
                _ => unreachable!(),
            }
        }),
    ];
    let out = b.ingest_batch(&events).unwrap();
    assert!(out[0].is_ok());
    assert!(matches!(out[1], Err(Error::InvalidEvent(_))));
    assert!(out[2].is_ok());
    assert!(matches!(out[3], Err(Error::InvalidEvent(_))));
    drop(gate);
    // Everything acknowledged is durable; nothing of the failed items is there.
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let history = b.consent_history(&u).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].source, "keyword");
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM inbound_messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the body-less text left no row");
}

#[test]
fn inbound_is_idempotent_under_concurrent_retries() {
    let db = TempDb::new("retries");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = Arc::new(open(&db, &clock));
    let u = user(1);
    let event = inbound(&u, &sender(0), MessageKind::Text, "STOP", HOUR, "SMdup");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let gate = gate.clone();
            let event = event.clone();
            std::thread::spawn(move || {
                let b = gate.business("acme").unwrap();
                (0..10)
                    .filter(|_| !b.ingest(&event).unwrap().duplicate)
                    .count()
            })
        })
        .collect();
    let firsts: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(firsts, 1, "exactly one delivery is new");
    let b = gate.business("acme").unwrap();
    assert_eq!(
        b.consent_history(&u).unwrap().len(),
        1,
        "one STOP, one opt-out"
    );
    // A second process (connection) retrying sees the same.
    let other = open(&db, &clock);
    assert!(
        other
            .business("acme")
            .unwrap()
            .ingest(&event)
            .unwrap()
            .duplicate
    );
}

#[test]
fn businesses_are_isolated() {
    let db = TempDb::new("tenants");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = open(&db, &clock);
    let a = gate.business("a").unwrap();
    let b = gate.business("b").unwrap();
    let u = user(1);
    opted_in_and_wrote(&a, &u);
    let req = SendRequest::between(sender(0), u.clone(), Content::text("hi"));
    assert_eq!(a.check(&req).unwrap().reason, Reason::WindowOpen);
    assert_eq!(b.check(&req).unwrap().reason, Reason::NoOptIn);
    // The same provider id in another business is another message.
    assert!(
        !b.ingest(&inbound(
            &u,
            &sender(0),
            MessageKind::Text,
            "hi",
            HOUR,
            "SM1"
        ))
        .unwrap()
        .duplicate
    );
}

#[test]
fn provider_feedback_takes_effect_once() {
    let db = TempDb::new("feedback");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let u = user(1);
    opted_in_and_wrote(&b, &u);
    let transport = RecordingTransport::new();
    let req = SendRequest::between(sender(0), u.clone(), Content::text("hi"));
    clock.set(t(2 * HOUR));
    assert!(b.send(&req, "out-1", &transport).unwrap().sent());
    let status = |status, code, at| {
        Event::Status(wagate::StatusCallback {
            id: "out-1".into(),
            status,
            error_code: code,
            at: t(at),
            received_at: None,
            from: None,
            to: None,
            pricing: None,
        })
    };
    use wagate::DeliveryStatus::*;
    clock.set(t(3 * HOUR));
    assert_eq!(
        b.ingest(&status(Failed, Some(21610), 3 * HOUR))
            .unwrap()
            .feedback,
        Some(21610)
    );
    // Twice, and late: no second opt-out in the trail.
    assert_eq!(
        b.ingest(&status(Undelivered, Some(21610), 3 * HOUR))
            .unwrap()
            .feedback,
        None
    );
    let history = b.consent_history(&u).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].source, "provider_error");
    assert_eq!(
        history[1].effective,
        t(2 * HOUR),
        "takes effect at the send time"
    );
    // Statuses only move forward.
    b.ingest(&status(Queued, None, 4 * HOUR)).unwrap();
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let s: String = conn
        .query_row(
            "SELECT status FROM sends WHERE idempotency_key = 'out-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(s, "failed");
    // An unknown message id is a typed error.
    let err = b
        .ingest(&Event::Status(wagate::StatusCallback {
            id: "nope".into(),
            status: Delivered,
            error_code: None,
            at: t(0),
            received_at: None,
            from: None,
            to: None,
            pricing: None,
        }))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownMessage(ref id) if id == "nope"));
}

#[test]
fn transport_errors_feed_back_and_retry_rules() {
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let db = TempDb::new("transport");
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let u = user(1);
    opted_in_and_wrote(&b, &u);
    let transport = RecordingTransport::new();
    let req = SendRequest::between(sender(0), u.clone(), Content::text("hi"));
    // A transient failure: the same key may try again, and then sends once.
    transport.fail_next(wagate::transport::TransportError {
        transient: true,
        code: None,
        message: "timeout".into(),
    });
    let first = b.send(&req, "k1", &transport).unwrap();
    assert!(matches!(
        first.delivery,
        wagate::Delivery::Refused {
            transient: true,
            ..
        }
    ));
    assert!(b.send(&req, "k1", &transport).unwrap().sent());
    assert!(b.send(&req, "k1", &transport).unwrap().duplicate());
    assert_eq!(transport.sent().len(), 1);
    // A provider refusal with 63016 closes the window at the send time.
    transport.fail_next(wagate::transport::TransportError {
        transient: false,
        code: Some(63016),
        message: "outside window".into(),
    });
    clock.set(t(2 * HOUR));
    let refused = b.send(&req, "k2", &transport).unwrap();
    assert!(matches!(
        refused.delivery,
        wagate::Delivery::Refused {
            transient: false,
            code: Some(63016),
            ..
        }
    ));
    assert_eq!(b.check(&req).unwrap().reason, Reason::WindowClosed);
    // A permanent refusal holds its key: a retry reports the duplicate.
    assert!(b.send(&req, "k2", &transport).unwrap().duplicate());
    // A new inbound opens a new window.
    clock.set(t(3 * HOUR));
    b.ingest(&inbound(
        &u,
        &sender(0),
        MessageKind::Text,
        "hello?",
        3 * HOUR,
        "SM2",
    ))
    .unwrap();
    assert_eq!(b.check(&req).unwrap().reason, Reason::WindowOpen);
}

#[test]
fn concurrent_ingest_is_grouped_durable_and_isolated() {
    let db = TempDb::new("group-commit");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = Arc::new(open(&db, &clock));
    let threads: Vec<_> = (0..8u8)
        .map(|k| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let b = gate.business("acme").unwrap();
                let mut bad = 0;
                for i in 0..40 {
                    if i % 10 == 9 {
                        // A bad event in the middle of the traffic: it fails
                        // alone, whatever group it lands in.
                        let r = b.ingest(&Event::Status(wagate::StatusCallback {
                            id: format!("never-{k}-{i}"),
                            status: wagate::DeliveryStatus::Sent,
                            error_code: None,
                            at: t(0),
                            received_at: None,
                            from: None,
                            to: None,
                            pricing: None,
                        }));
                        assert!(matches!(r, Err(Error::UnknownMessage(_))));
                        bad += 1;
                    } else {
                        let action = if i % 2 == 0 {
                            Action::OptIn
                        } else {
                            Action::OptOut
                        };
                        let out = b
                            .ingest(&consent(&user(k), action, Scope::All, i * MINUTE))
                            .unwrap();
                        assert!(!out.duplicate);
                    }
                }
                bad
            })
        })
        .collect();
    let bad: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(bad, 32);
    drop(gate);
    // Everything acknowledged is on disk, per user, in order.
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    for k in 0..8 {
        let h = b.consent_history(&user(k)).unwrap();
        assert_eq!(h.len(), 36, "user {k}");
        let seqs: Vec<i64> = h.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=36).collect::<Vec<_>>());
    }
}

/// A database written by version 0.1 (schema 1: no chain, no people) is
/// brought to schema 2 when opened: every existing event is hashed into
/// its address's chain, every address is a person of its own, and every
/// decision stays what it was.
#[test]
fn a_version_1_database_is_migrated_with_its_chains() {
    let db = TempDb::new("v1");
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", 0x7741_4754)
            .unwrap();
        // What 0.1 wrote for: web-form opt-in, an inbound, then STOP.
        conn.execute_batch(&format!(
            "INSERT INTO businesses (id, name) VALUES (1, 'acme');
             INSERT INTO users (id, business_id, key) VALUES (1, 1, 'whatsapp:+15550000001'), (2, 1, 'whatsapp:+15550000002');
             INSERT INTO consent_events VALUES
               (1, 1, 1, 'opt_in', 'all', {t0}, {t0}, {t0}, 0, 'web_form', 'form v3'),
               (1, 1, 2, 'opt_out', 'all', {t1}, {t1}, {t1}, 0, 'keyword', NULL),
               (1, 2, 1, 'opt_in', 'all', {t0}, {t0}, {t0}, 0, 'import', NULL);
             INSERT INTO windows (business_id, user_id, sender, last_inbound) VALUES
               (1, 1, 'whatsapp:+14155238886', {t1}), (1, 2, 'whatsapp:+14155238886', {t1});
             INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at)
               VALUES (1, 'SM1', 1, 'whatsapp:+14155238886', 'text', {t1}, {t1});",
            t0 = T0,
            t1 = T0 + HOUR,
        ))
        .unwrap();
    }
    let clock = Arc::new(ManualClock::new(t(HOUR + MINUTE * 30)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let report = b.verify().unwrap();
    assert_eq!(
        (report.addresses, report.events, report.broken),
        (2, 3, None)
    );
    let freeform = |u: u8| SendRequest::between(sender(0), user(u), Content::text("hi"));
    assert_eq!(b.check(&freeform(1)).unwrap().reason, Reason::OptedOut);
    assert_eq!(b.check(&freeform(2)).unwrap().reason, Reason::WindowOpen);
    let history = b.consent_history(&user(1)).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].evidence.as_deref(), Some("form v3"));
    // The chain goes on from the migrated head.
    b.ingest(&consent(&user(1), Action::OptIn, Scope::All, 2 * HOUR))
        .unwrap();
    assert!(b.verify().unwrap().broken.is_none());
    // A redelivery of the 0.1 inbound (stored without a fingerprint) is a
    // duplicate; another message under its id is an error.
    let again = inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "anything",
        HOUR,
        "SM1",
    );
    assert!(b.ingest(&again).unwrap().duplicate);
    let other = inbound(&user(2), &sender(0), MessageKind::Text, "STOP", HOUR, "SM1");
    assert!(matches!(b.ingest(&other), Err(Error::MessageIdReused(_))));
}

/// People rows edited behind the gate's back (an address unlinked, or
/// moved to another person) make decisions errors, not partial reads, and
/// `verify` names them.
#[test]
fn altered_people_fail_closed() {
    let db = TempDb::new("people-tamper");
    let clock = Arc::new(ManualClock::new(t(3 * HOUR)));
    let phone = user(1);
    let bsuid = wagate::Address::from_bsuid("US.42").unwrap();
    let build = || {
        let gate = open(&db, &clock);
        let b = gate.business("acme").unwrap();
        b.ingest(&consent(&phone, Action::OptIn, Scope::All, 0))
            .unwrap();
        b.ingest(&Event::Inbound(
            wagate::InboundMessage::text(phone.clone(), sender(0), "hi", t(HOUR))
                .with_user_id(bsuid.clone())
                .with_id("SM1"),
        ))
        .unwrap();
        b.ingest(&Event::Inbound(
            wagate::InboundMessage::text(bsuid.clone(), sender(0), "STOP", t(2 * HOUR))
                .with_id("SM2"),
        ))
        .unwrap();
    };
    build();
    let req = SendRequest::between(sender(0), phone.clone(), Content::text("hi"));
    for tamper in [
        "UPDATE users SET linked = 0 WHERE key = 'whatsapp:+15550000001'",
        "UPDATE users SET person_id = id, linked = 0 WHERE key = 'bsuid:US.42'",
        "UPDATE users SET person_id = id WHERE key = 'bsuid:US.42'",
    ] {
        let gate = open(&db, &clock);
        let b = gate.business("acme").unwrap();
        assert_eq!(b.check(&req).unwrap().reason, Reason::OptedOut);
        drop(gate);
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        let before: (i64, i64) = conn
            .query_row(
                "SELECT person_id, linked FROM users WHERE key = 'bsuid:US.42'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let phone_linked: i64 = conn
            .query_row(
                "SELECT linked FROM users WHERE key = 'whatsapp:+15550000001'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute_batch(tamper).unwrap();
        drop(conn);
        let gate = open(&db, &clock);
        let b = gate.business("acme").unwrap();
        assert!(
            matches!(b.check(&req), Err(Error::Corrupt { .. })),
            "{tamper}: {:?}",
            b.check(&req)
        );
        assert!(b.verify().unwrap().broken.is_some(), "{tamper}");
        drop(gate);
        // Put it back for the next case.
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute(
            "UPDATE users SET person_id = ?1, linked = ?2 WHERE key = 'bsuid:US.42'",
            rusqlite::params![before.0, before.1],
        )
        .unwrap();
        conn.execute(
            "UPDATE users SET linked = ?1 WHERE key = 'whatsapp:+15550000001'",
            [phone_linked],
        )
        .unwrap();
    }
}

/// Text SQLite would cut at a NUL, or a row a constraint refuses, fails
/// alone: the other events of its batch land.
#[test]
fn a_refused_item_never_takes_its_batch_down() {
    let db = TempDb::new("nul");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let mut bad = consent(&user(2), Action::OptOut, Scope::All, 0);
    if let Event::Consent(c) = &mut bad {
        c.source = "\u{0}".into();
    }
    let out = b
        .ingest_batch(&[
            consent(&user(1), Action::OptOut, Scope::All, 0),
            bad,
            consent(&user(3), Action::OptOut, Scope::All, 0),
        ])
        .unwrap();
    assert!(out[0].is_ok() && out[2].is_ok());
    assert!(out[1].as_ref().unwrap_err().to_string().contains("NUL"));
    assert_eq!(b.consent_history(&user(3)).unwrap().len(), 1);
    assert!(b.consent_history(&user(2)).unwrap().is_empty());
}

/// A key whose request was refused for now (a timeout may still have
/// delivered it) cannot be reused for another request; the same request
/// may retry.
#[test]
fn a_transiently_refused_key_names_its_request() {
    let db = TempDb::new("retry-key");
    let clock = Arc::new(ManualClock::new(t(HOUR + MINUTE)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    for u in [1, 2] {
        wrote(&b, u, &format!("SM{u}"));
    }
    let transport = RecordingTransport::new();
    transport.fail_next(wagate::transport::TransportError {
        transient: true,
        code: None,
        message: "timeout".into(),
    });
    let a = SendRequest::between(sender(0), user(1), Content::text("A"));
    let other = SendRequest::between(sender(0), user(2), Content::text("B"));
    assert!(!b.send(&a, "k1", &transport).unwrap().sent());
    assert!(matches!(
        b.send(&other, "k1", &transport),
        Err(Error::KeyReused(_))
    ));
    assert!(b.send(&a, "k1", &transport).unwrap().sent());
    assert_eq!(transport.sent().len(), 1);
}

/// Checks from several threads run on the reader pool beside a writer, and
/// see every event committed before they started.
#[test]
fn checks_from_many_threads_share_the_reader_pool() {
    let db = TempDb::new("readers");
    let clock = Arc::new(ManualClock::new(t(HOUR + MINUTE)));
    let gate = open(&db, &clock);
    assert!(gate.readers() >= 2);
    let b = gate.business("acme").unwrap();
    wrote(&b, 1, "SM1");
    let req = SendRequest::between(sender(0), user(1), Content::text("hi"));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (b, req) = (b.clone(), req.clone());
            s.spawn(move || {
                for _ in 0..200 {
                    assert_eq!(b.check(&req).unwrap().reason, Reason::WindowOpen);
                }
            });
        }
        let writer = b.clone();
        s.spawn(move || {
            for i in 0..50 {
                writer
                    .ingest(&consent(&user(2), Action::OptIn, Scope::All, i))
                    .unwrap();
            }
        });
    });
    assert_eq!(b.consent_history(&user(2)).unwrap().len(), 50);
}

/// A two-phase send whose reservation is never completed (the process
/// died, the future was dropped) keeps its key: a retry is a duplicate and
/// nothing goes out twice.
#[test]
fn an_abandoned_reservation_never_sends_twice() {
    use wagate::gate::Reservation;
    let db = TempDb::new("two-phase");
    let clock = Arc::new(ManualClock::new(t(HOUR + MINUTE)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    wrote(&b, 1, "SM1");
    let req = SendRequest::between(sender(0), user(1), Content::text("hello"));
    let Reservation::Ready(pending) = b.reserve(&req, "k1").unwrap() else {
        panic!("allowed and reserved");
    };
    assert_eq!(pending.message().key, "k1");
    drop(pending);
    let transport = RecordingTransport::new();
    let again = b.send(&req, "k1", &transport).unwrap();
    assert!(again.duplicate());
    assert!(transport.sent().is_empty());
    // Reopened: the reservation is durable.
    drop(gate);
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    assert!(b.send(&req, "k1", &transport).unwrap().duplicate());
    assert!(transport.sent().is_empty());
}

/// User `u` wrote "hi" to sender 0 an hour after T0 (its window is open for
/// checks made soon after).
fn wrote(b: &wagate::Business, u: u8, id: &str) {
    b.ingest(&inbound(
        &user(u),
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        id,
    ))
    .unwrap();
}

#[test]
fn a_send_to_a_linked_business_scoped_id_names_the_phone() {
    let db = TempDb::new("linked-phone");
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    let gate = open(&db, &clock);
    let b = gate.business("acme").unwrap();
    let bsuid = addr("bsuid:US.1349");
    let lone = addr("bsuid:US.7777");
    opted_in_and_wrote(&b, &user(1));
    // The phone's message carries the BSUID: the two are one person.
    b.ingest(&Event::Inbound(
        wagate::InboundMessage::text(user(1), sender(0), "again", t(HOUR))
            .with_id("SM-link")
            .with_user_id(bsuid.clone()),
    ))
    .unwrap();
    b.ingest(&consent(
        &lone,
        wagate::Action::OptIn,
        wagate::Scope::All,
        0,
    ))
    .unwrap();
    b.ingest(&Event::Inbound(
        wagate::InboundMessage::text(lone.clone(), sender(0), "hi", t(HOUR)).with_id("SM-lone"),
    ))
    .unwrap();
    let transport = RecordingTransport::new();
    for (to, key) in [
        (&bsuid, "k-linked"),
        (&user(1), "k-phone"),
        (&lone, "k-lone"),
    ] {
        let req =
            wagate::SendRequest::between(sender(0), to.clone(), wagate::Content::text("hello"));
        assert!(b.send(&req, key, &transport).unwrap().sent(), "{key}");
    }
    let sent = transport.sent();
    // Providers send a linked BSUID to the phone; a phone or a lone BSUID as is.
    assert_eq!(
        (sent[0].to.clone(), sent[0].phone.clone()),
        (bsuid.clone(), Some(user(1)))
    );
    assert_eq!(sent[1].phone, None);
    assert_eq!((sent[2].to.clone(), sent[2].phone.clone()), (lone, None));
    // The user's new phone, linked later: sends go to it, not the old one.
    clock.set(t(2 * HOUR));
    b.ingest(&Event::Inbound(
        wagate::InboundMessage::text(user(2), sender(0), "new phone", t(2 * HOUR))
            .with_id("SM-new-phone")
            .with_user_id(bsuid.clone()),
    ))
    .unwrap();
    let req =
        wagate::SendRequest::between(sender(0), bsuid.clone(), wagate::Content::text("hello"));
    assert!(
        b.send(&req, "k-after-new-phone", &transport)
            .unwrap()
            .sent()
    );
    assert_eq!(transport.sent()[3].phone, Some(user(2)));
}

#[test]
fn a_file_whose_tables_do_not_match_its_version_names_the_versions_not_sql() {
    let db = TempDb::new("schema-mismatch");
    {
        let raw = rusqlite::Connection::open(&db.0).unwrap();
        raw.execute_batch("PRAGMA application_id = 0x77414754; CREATE TABLE businesses (x);")
            .unwrap();
    }
    let err = Gate::open(&db.0).unwrap_err();
    assert!(
        matches!(err, wagate::Error::SchemaMismatch { found: 0, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("schema version 0") && text.contains("already exists"),
        "{text}"
    );
    assert!(
        text.len() < 300 && !text.contains("CREATE"),
        "no SQL in the message: {text}"
    );
}
