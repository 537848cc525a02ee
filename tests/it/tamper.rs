//! The consent trail is tamper-evident (RULES R3; `src/chain.rs`): flipping
//! any byte of the page that holds the consent events never turns an
//! opted-out person's answer into an allow. Each flip gives a deny or an
//! error (a broken chain, a malformed page), never a decision built on
//! altered events.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use wagate::{
    Action, Category, Content, Event, Gate, ManualClock, MessageKind, Scope, SendRequest,
    TemplateBody, TemplateRecord, TemplateStatus, Variables,
};

use crate::common::*;
use crate::store_file::TempDb;

const USERS: u8 = 8;

fn requests() -> Vec<SendRequest> {
    let mut out = Vec::new();
    for u in 0..USERS {
        out.push(SendRequest::between(
            sender(0),
            user(u),
            Content::text("hi"),
        ));
        out.push(SendRequest::between(
            sender(0),
            user(u),
            Content::template("shipped", "en", Variables::positional(["A"])),
        ));
    }
    out
}

/// A database where every user opted in, wrote (the window is open), then
/// sent STOP: every check must deny.
fn build(db: &TempDb) -> Arc<ManualClock> {
    let clock = Arc::new(ManualClock::new(t(2 * HOUR)));
    let gate = Gate::open(&db.0).unwrap().with_clock(clock.clone());
    let b = gate.business("acme").unwrap();
    b.ingest(&Event::Template(TemplateRecord {
        name: "shipped".into(),
        language: "en".into(),
        category: Category::Utility,
        status: TemplateStatus::approved(),
        body: TemplateBody::parse("Order {{1}} shipped").unwrap(),
        at: t(0),
        received_at: Some(t(0)),
        twilio_content_sid: None,
        meta_template_id: None,
    }))
    .unwrap();
    for u in 0..USERS {
        let who = user(u);
        b.ingest(&consent(&who, Action::OptIn, Scope::All, 0))
            .unwrap();
        b.ingest(&inbound(
            &who,
            &sender(0),
            MessageKind::Text,
            "hi",
            HOUR,
            &format!("a{u}"),
        ))
        .unwrap();
        b.ingest(&consent(&who, Action::OptOut, Scope::All, HOUR + MINUTE))
            .unwrap();
    }
    for r in requests() {
        assert!(!b.check(&r).unwrap().is_allowed());
    }
    clock
}

#[test]
fn flipping_any_byte_of_the_consent_page_never_allows() {
    let db = TempDb::new("tamper");
    let clock = build(&db);
    // The gate is closed: the WAL is checkpointed into the file.
    let (root, page_size) = {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 'consent_events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, page_size)
    };
    let offset = u64::try_from((root - 1) * page_size).unwrap();
    let len = usize::try_from(page_size).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db.0)
        .unwrap();
    let mut page = vec![0u8; len];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut page).unwrap();
    // 0x0a: a leaf page of an index b-tree (a WITHOUT ROWID table): all
    // the events are on this one page.
    assert_eq!(page[0], 0x0a, "the consent events no longer fit one page");
    let requests = requests();
    let pristine: Vec<_> = {
        let gate = Gate::open(&db.0).unwrap();
        let b = gate.business("acme").unwrap();
        (0..USERS)
            .map(|u| b.consent_history(&user(u)).unwrap())
            .collect()
    };
    let (mut denied, mut errors, mut unopenable, mut silent) = (0, 0, 0, 0);
    for (i, &original) in page.iter().enumerate() {
        for mask in [0xffu8, 0x01] {
            let flipped = original ^ mask;
            file.seek(SeekFrom::Start(offset + i as u64)).unwrap();
            file.write_all(&[flipped]).unwrap();
            file.sync_all().unwrap();
            match Gate::open(&db.0) {
                Err(_) => unopenable += 1,
                Ok(gate) => {
                    let gate = gate.with_clock(clock.clone());
                    let b = gate.business("acme").unwrap();
                    for r in &requests {
                        match b.check(r) {
                            Ok(d) => {
                                assert!(
                                    !d.is_allowed(),
                                    "byte {i} ^ {mask:#x}: {r:?} allowed: {d:?}"
                                );
                                denied += 1;
                            }
                            Err(_) => errors += 1,
                        }
                    }
                    // Nothing an auditor reads changes silently: either the
                    // trail is reported broken, or it reads exactly as before
                    // (the flip hit free space).
                    let broken = b.verify().map_or(true, |r| r.broken.is_some());
                    if !broken {
                        silent += 1;
                        for u in 0..USERS {
                            assert_eq!(
                                b.consent_history(&user(u)).ok().as_ref(),
                                pristine.get(usize::from(u)),
                                "byte {i} ^ {mask:#x} changed the trail of user {u} unnoticed"
                            );
                        }
                    }
                }
            }
            file.seek(SeekFrom::Start(offset + i as u64)).unwrap();
            file.write_all(&[original]).unwrap();
        }
    }
    file.sync_all().unwrap();
    eprintln!(
        "tamper: {} flips of {len} bytes: {denied} denies, {errors} errors, {unopenable} unopenable, {silent} flips in free space",
        2 * len
    );
    assert!(errors > 0, "some flips must be detected as errors");
    // The page restored: the trail verifies again.
    let gate = Gate::open(&db.0).unwrap().with_clock(clock);
    let b = gate.business("acme").unwrap();
    assert!(b.verify().unwrap().broken.is_none());
    for r in &requests {
        assert!(!b.check(r).unwrap().is_allowed());
    }
}
