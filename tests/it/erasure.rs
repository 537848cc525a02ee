//! Erasure (`Business::forget`, `wagate forget`): the person's data goes,
//! an opt-out they gave stays, and the consent chain still verifies.

use std::process::Command;
use std::sync::Arc;

use proptest::prelude::*;
use wagate::transport::{RecordingTransport, TransportError};
use wagate::{
    Action, Address, Category, ConsentEvent, Content, Event, Gate, InboundMessage, ManualClock,
    MessageKind, Reason, Scope, SendRequest, Variables, Verdict,
};

use crate::common::*;
use crate::store_file::TempDb;

const DAY: i64 = 24 * HOUR;

fn bsuid() -> Address {
    Address::from_bsuid("US.13491208655302741918").unwrap()
}

fn freeform(u: &Address) -> SendRequest {
    SendRequest::between(sender(0), u.clone(), Content::text("hello"))
}

fn utility(u: &Address) -> SendRequest {
    SendRequest::between(
        sender(0),
        u.clone(),
        Content::template("shipped", "en", Variables::positional(["A-17"])),
    )
}

fn reason(b: &wagate::Business, req: &SendRequest) -> Reason {
    b.check(req).unwrap().reason
}

/// The head hashes of every chain, whatever the addresses are called.
fn heads(b: &wagate::Business) -> Vec<(i64, Option<String>)> {
    let mut h: Vec<_> = b
        .chain_heads()
        .unwrap()
        .into_iter()
        .map(|h| (h.events, h.head))
        .collect();
    h.sort();
    h
}

/// A phone and a business-scoped id, linked by one inbound; a STOP from
/// the id; evidence naming the phone; a send to the phone.
fn story(b: &wagate::Business, clock: &ManualClock) {
    template(b, "shipped", Category::Utility);
    let phone = user(1);
    b.ingest(&Event::Consent(
        ConsentEvent::new(phone.clone(), Action::OptIn, Scope::All, t(0), "web_form")
            .with_evidence("form v3 signed by Ana Lima, whatsapp:+15550000001"),
    ))
    .unwrap();
    clock.set(t(HOUR));
    let mut m = InboundMessage::text(phone.clone(), sender(0), "where is my order?", t(HOUR))
        .with_id("wamid.ana1");
    m.user_id = Some(bsuid());
    b.ingest(&Event::Inbound(m)).unwrap();
    let transport = RecordingTransport::new();
    assert!(
        b.send(&freeform(&phone), "reply-1", &transport)
            .unwrap()
            .sent()
    );
    clock.set(t(2 * HOUR));
    b.ingest(&inbound(
        &bsuid(),
        &sender(0),
        MessageKind::Text,
        "STOP",
        2 * HOUR,
        "wamid.ana2",
    ))
    .unwrap();
    // Somebody else, who must not be touched.
    b.ingest(&consent(&user(2), Action::OptIn, Scope::All, 0))
        .unwrap();
    b.ingest(&inbound(
        &user(2),
        &sender(0),
        MessageKind::Text,
        "hi",
        2 * HOUR,
        "wamid.bob1",
    ))
    .unwrap();
}

fn an_opt_out_survives_erasure_and_every_way_back(on: On) {
    let (gate, clock, _store) = open(on);
    let b = gate.business("acme").unwrap();
    story(&b, &clock);
    clock.set(t(3 * HOUR));
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::OptedOut);
    let before = heads(&b);
    let bob_before = (
        reason(&b, &freeform(&user(2))),
        b.consent_history(&user(2)).unwrap(),
    );

    let gone = b.forget(&user(1)).unwrap();
    assert_eq!(gone.addresses, 2, "the phone and the id linked to it");
    assert_eq!(gone.consent_events, 2, "{gone:?}");
    assert_eq!(gone.inbound_messages, 2, "{gone:?}");
    assert_eq!(
        gone.windows, 2,
        "one per address: the STOP came from the id"
    );
    assert_eq!(gone.send_attempts, 1, "{gone:?}");
    assert_eq!(gone.links, 1, "{gone:?}");
    assert!(gone.found());

    // The chain verifies and every head is what it was.
    let report = b.verify().unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.events, 3);
    assert_eq!(heads(&b), before);
    // What stays of the trail: no address, no evidence.
    let history = b.consent_history(&user(1)).unwrap();
    assert_eq!(history.len(), 2);
    for r in &history {
        assert!(r.user.starts_with("erased:"), "{}", r.user);
        assert_eq!(r.evidence, None);
    }
    // The opt-in went with its proof; the STOP counts.
    let counted: Vec<_> = history.iter().map(|r| (r.action, r.counted)).collect();
    assert_eq!(counted, [(Action::OptIn, false), (Action::OptOut, true)]);
    // Nobody else changed.
    assert_eq!(
        (
            reason(&b, &freeform(&user(2))),
            b.consent_history(&user(2)).unwrap()
        ),
        bob_before
    );

    // Both addresses are still opted out, by any way back.
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::OptedOut);
    assert_eq!(reason(&b, &freeform(&bsuid())), Reason::OptedOut);
    // A new message from the phone opens a window, and changes nothing.
    clock.set(t(4 * HOUR));
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "hello?",
        4 * HOUR,
        "wamid.ana3",
    ))
    .unwrap();
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::OptedOut);
    // A re-import of the old web-form opt-in lands again, and is older
    // than the STOP.
    b.ingest(&Event::Consent(
        ConsentEvent::new(user(1), Action::OptIn, Scope::All, t(0), "import")
            .with_evidence("crm row 17"),
    ))
    .unwrap();
    assert_eq!(reason(&b, &utility(&user(1))), Reason::OptedOut);
    // A send is denied and never reaches the transport.
    let transport = RecordingTransport::new();
    let out = b.send(&freeform(&user(1)), "reply-2", &transport).unwrap();
    assert!(!out.sent());
    assert!(transport.sent().is_empty());
    // The address came back under the same tombstone: one person still.
    assert!(b.verify().unwrap().broken.is_none());
    let heads_after = b.chain_heads().unwrap();
    assert_eq!(heads_after.len(), 3, "{heads_after:?}");
    // A START from the person counts: they were opted out.
    clock.set(t(5 * HOUR));
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "START",
        5 * HOUR,
        "wamid.ana4",
    ))
    .unwrap();
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::WindowOpen);
}

fn an_opted_in_person_loses_the_opt_in_with_its_proof(on: On) {
    let (gate, clock, _store) = open(on);
    let b = gate.business("acme").unwrap();
    template(&b, "shipped", Category::Utility);
    b.ingest(&Event::Consent(
        ConsentEvent::new(user(1), Action::OptIn, Scope::All, t(0), "web_form")
            .with_evidence("form v3"),
    ))
    .unwrap();
    clock.set(t(HOUR));
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "hi",
        HOUR,
        "SM1",
    ))
    .unwrap();
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::WindowOpen);
    assert_eq!(reason(&b, &utility(&user(1))), Reason::WindowOpen);
    b.forget(&user(1)).unwrap();
    // No window, no consent: as for someone never seen.
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::NoOptIn);
    assert_eq!(reason(&b, &utility(&user(1))), Reason::NoOptIn);
    assert_eq!(reason(&b, &freeform(&user(3))), Reason::NoOptIn);
    // Counted as nobody: neither opted in nor out.
    let stats = b.stats().unwrap();
    assert_eq!((stats.opted_in, stats.opted_out), (0, 0), "{stats:?}");
    // A keyword "yes" is no opt-in (there is no opt-out before it)...
    clock.set(t(2 * HOUR));
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "YES",
        2 * HOUR,
        "SM2",
    ))
    .unwrap();
    assert_eq!(reason(&b, &utility(&user(1))), Reason::WindowOpen);
    clock.set(t(3 * DAY));
    assert_eq!(reason(&b, &utility(&user(1))), Reason::NoOptIn);
    // ...but new consent, given after the erasure, counts.
    b.ingest(&consent(&user(1), Action::OptIn, Scope::All, 3 * DAY))
        .unwrap();
    assert_eq!(reason(&b, &utility(&user(1))), Reason::OptedIn);
    assert!(b.verify().unwrap().broken.is_none());
    // Forgetting again seals what came after.
    let again = b.forget(&user(1)).unwrap();
    // The "yes" (recorded, conditional) and the new opt-in.
    assert_eq!((again.addresses, again.consent_events), (1, 2), "{again:?}");
    assert_eq!(reason(&b, &utility(&user(1))), Reason::NoOptIn);
    assert!(b.verify().unwrap().broken.is_none());
}

fn forgetting_someone_never_seen_finds_nothing(on: On) {
    let (gate, _clock, _store) = open(on);
    let b = gate.business("acme").unwrap();
    b.ingest(&consent(&user(2), Action::OptIn, Scope::All, 0))
        .unwrap();
    let gone = b.forget(&user(1)).unwrap();
    assert!(!gone.found(), "{gone:?}");
    assert_eq!(b.chain_heads().unwrap().len(), 1);
    assert_eq!(b.consent_history(&user(2)).unwrap().len(), 1);
}

/// The bytes of a database file and its write-ahead log.
fn file_bytes(db: &TempDb) -> Vec<u8> {
    let mut all = std::fs::read(&db.0).unwrap();
    let mut wal = db.0.clone().into_os_string();
    wal.push("-wal");
    if let Ok(w) = std::fs::read(&wal) {
        all.extend(w);
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn the_text_leaves_the_file_not_only_the_tables() {
    let db = TempDb::new("forget-bytes");
    let clock = Arc::new(ManualClock::new(t(0)));
    let gate = Gate::open(&db.0).unwrap().with_clock(clock.clone());
    let b = gate.business("acme").unwrap();
    story(&b, &clock);
    // Enough other rows that pages are shared and reused.
    for i in 0..200u16 {
        let u = addr(&format!("whatsapp:+1666000{i:04}"));
        b.ingest(&consent(&u, Action::OptIn, Scope::All, i64::from(i)))
            .unwrap();
    }
    let secrets = [
        "+15550000001",
        "13491208655302741918",
        "Ana Lima",
        "wamid.ana",
    ];
    let bytes = file_bytes(&db);
    for s in secrets {
        assert!(contains(&bytes, s), "{s} should be on disk before");
    }
    let gone = b.forget(&user(1)).unwrap();
    assert!(gone.file_scrubbed, "{gone:?}");
    let bytes = file_bytes(&db);
    for s in secrets {
        assert!(!contains(&bytes, s), "{s} is still on disk");
    }
    // Somebody else's number is still there (the search can find one).
    assert!(contains(&bytes, "+15550000002"));
    assert!(contains(&bytes, "+16660000199"));
    drop(b);
    drop(gate);
    let gate = Gate::open(&db.0).unwrap().with_clock(clock);
    let b = gate.business("acme").unwrap();
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::OptedOut);
    assert!(b.verify().unwrap().broken.is_none());
}

#[test]
fn the_database_refuses_any_other_change_to_the_trail() {
    let db = TempDb::new("forget-guards");
    let clock = Arc::new(ManualClock::new(t(0)));
    {
        let gate = Gate::open(&db.0).unwrap().with_clock(clock.clone());
        let b = gate.business("acme").unwrap();
        story(&b, &clock);
        b.forget(&user(1)).unwrap();
    }
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let refused = |sql: &str| {
        let e = conn.execute(sql, []).unwrap_err().to_string();
        assert!(
            e.contains("append-only") || e.contains("never"),
            "{sql}: {e}"
        );
    };
    // Bob is not erased: his evidence cannot be blanked, nor his event sealed.
    refused(
        "UPDATE consent_events SET evidence = NULL, salt = NULL, evidence_digest = zeroblob(32)
         WHERE user_id = (SELECT id FROM users WHERE key = 'whatsapp:+15550000002')",
    );
    // An erased event's action cannot change, nor can it be deleted.
    refused("UPDATE consent_events SET action = 'opt_in' WHERE evidence_digest IS NOT NULL");
    refused("DELETE FROM consent_events WHERE evidence_digest IS NOT NULL");
    // Links stay, and only an erased one's source may be blanked.
    refused("DELETE FROM links");
    refused("UPDATE links SET at = at + 1");
    refused("DELETE FROM secrets");
    // An event without its salt does not get in.
    let e = conn
        .execute(
            "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at,
                 effective, conditional, source, hash)
             SELECT business_id, user_id, 99, 'opt_in', 'all', 0, 0, 0, 0, 'x', zeroblob(32)
             FROM consent_events LIMIT 1",
            [],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("salt"), "{e}");
    drop(conn);
    // A tombstone pointed at the wrong digest: the chain says so.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.execute_batch(
        "DROP TRIGGER consent_events_no_update;
         UPDATE consent_events SET evidence_digest = zeroblob(32) WHERE evidence_digest IS NOT NULL;",
    )
    .unwrap();
    drop(conn);
    let gate = Gate::open(&db.0).unwrap().with_clock(clock);
    let b = gate.business("acme").unwrap();
    let broken = b.verify().unwrap().broken.unwrap();
    assert!(broken.contains("erased:"), "{broken}");
    assert!(b.check(&freeform(&user(1))).is_err());
}

fn cli(db: &TempDb, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wagate"))
        .env_remove("WAGATE_DB")
        .arg("--db")
        .arg(&db.0)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_cli_forgets_and_the_export_still_verifies() {
    let db = TempDb::new("forget-cli");
    let clock = Arc::new(ManualClock::new(t(0)));
    {
        let gate = Gate::open(&db.0).unwrap().with_clock(clock.clone());
        story(&gate.business("default").unwrap(), &clock);
    }
    let out = cli(
        &db,
        &["forget", "--user", "whatsapp:+15550000001", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["addresses"], 2);
    assert_eq!(v["consent_events"], 2);
    // Again: the tombstone is found, nothing is left to seal.
    let out = cli(&db, &["forget", "--user", "whatsapp:+15550000001"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("forgot 2 addresses: 0 consent events"),
        "{text}"
    );
    let out = cli(&db, &["forget", "--user", "whatsapp:+15559999999"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing was recorded"));
    let out = cli(&db, &["forget", "--user", "not-an-address"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user: invalid address"));

    let export = cli(&db, &["export"]);
    assert!(export.status.success());
    let text = String::from_utf8(export.stdout).unwrap();
    assert!(!text.contains("+15550000001"), "{text}");
    assert!(text.contains("\"evidence_digest\":"), "{text}");
    let file = db.0.with_extension("export.jsonl");
    std::fs::write(&file, &text).unwrap();
    let verified = cli(&db, &["verify", "--export", file.to_str().unwrap()]);
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        String::from_utf8_lossy(&verified.stdout)
            .contains("3 consent events of 3 addresses verify")
    );
    // A changed action in a sealed line is caught.
    let tampered = text.replacen("\"action\":\"opt_out\"", "\"action\":\"opt_in\"", 1);
    std::fs::write(&file, tampered).unwrap();
    let verified = cli(&db, &["verify", "--export", file.to_str().unwrap()]);
    assert!(!verified.status.success());
    let why = String::from_utf8_lossy(&verified.stderr);
    assert!(
        why.contains("erased:") && why.contains("does not match"),
        "{why}"
    );
    let _ = std::fs::remove_file(&file);
    // And the database's own check.
    let verified = cli(&db, &["verify"]);
    assert!(verified.status.success(), "{verified:?}");
}

#[test]
fn vacuum_removes_what_an_older_writer_left_in_free_space() {
    let db = TempDb::new("forget-vacuum");
    let clock = Arc::new(ManualClock::new(t(0)));
    {
        let gate = Gate::open(&db.0).unwrap().with_clock(clock.clone());
        story(&gate.business("default").unwrap(), &clock);
    }
    // A writer without secure_delete (as every connection was before
    // schema version 4) leaves a deleted row's text in the page.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.execute_batch(
        "PRAGMA secure_delete = OFF;
         CREATE TABLE scratch (t TEXT);
         INSERT INTO scratch VALUES ('residue of whatsapp:+15550000001');
         DELETE FROM scratch;
         DROP TABLE scratch;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(conn);
    assert!(contains(&file_bytes(&db), "residue of"));
    let out = cli(&db, &["forget", "--user", "whatsapp:+15550000001"]);
    assert!(out.status.success());
    assert!(
        contains(&file_bytes(&db), "residue of"),
        "forget alone does not rewrite"
    );
    let out = cli(
        &db,
        &["forget", "--user", "whatsapp:+15550000001", "--vacuum"],
    );
    assert!(out.status.success(), "{out:?}");
    let bytes = file_bytes(&db);
    assert!(!contains(&bytes, "residue of"));
    assert!(!contains(&bytes, "+15550000001"));
    assert!(
        contains(&bytes, "+15550000002"),
        "the others are still there"
    );
}

/// What the mutation run of `store/erasure.rs` found untested: the feedback
/// rows about messages sent elsewhere, a send to an address never
/// recorded, and that each database keys its tombstones with its own
/// secret.
#[test]
fn forget_counts_what_it_removes_everywhere() {
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    // A provider error about a message sent from elsewhere to user 1.
    let mut cb = wagate::StatusCallback::new("SMelsewhere", wagate::DeliveryStatus::Failed, t(0))
        .between(sender(0), user(1));
    cb.error_code = Some(63016);
    cb.received_at = Some(t(0));
    b.ingest(&Event::Status(cb)).unwrap();
    // A denied send to user 3, never recorded otherwise.
    clock.set(t(HOUR));
    let transport = RecordingTransport::new();
    assert!(
        !b.send(&freeform(&user(3)), "k-never", &transport)
            .unwrap()
            .sent()
    );
    let gone = b.forget(&user(1)).unwrap();
    assert_eq!((gone.addresses, gone.external_feedback), (1, 1), "{gone:?}");
    let nobody = b.forget(&user(3)).unwrap();
    assert_eq!(
        (nobody.addresses, nobody.send_attempts),
        (0, 1),
        "{nobody:?}"
    );
    assert!(nobody.found());
    let scrubbed = &b.sends(&by_key("k-never"), 10).unwrap()[0];
    assert!(scrubbed.to.starts_with("erased:"), "{scrubbed:?}");
}

#[test]
fn each_database_keys_its_tombstones_with_its_own_secret() {
    let tomb = || {
        let (gate, _clock) = gate();
        let b = gate.business("acme").unwrap();
        b.ingest(&consent(&user(1), Action::OptOut, Scope::All, 0))
            .unwrap();
        b.forget(&user(1)).unwrap();
        b.chain_heads().unwrap()[0].user.clone()
    };
    let (a, b) = (tomb(), tomb());
    assert!(
        a.starts_with("erased:") && b.starts_with("erased:"),
        "{a} {b}"
    );
    assert_ne!(
        a, b,
        "two databases, two secrets: the same number, two tombstones"
    );
}

fn by_key(key: &str) -> wagate::SendQuery {
    wagate::SendQuery {
        key: Some(key.into()),
        ..Default::default()
    }
}

/// A database holding a forgotten, opted-out person (`story`), for the
/// attacks below; returns its path and clock.
fn forgotten_db(name: &str) -> (TempDb, Arc<ManualClock>) {
    let db = TempDb::new(name);
    let clock = Arc::new(ManualClock::new(t(0)));
    {
        let gate = Gate::open(&db.0).unwrap().with_clock(clock.clone());
        let b = gate.business("default").unwrap();
        story(&b, &clock);
        clock.set(t(3 * HOUR));
        b.forget(&user(1)).unwrap();
    }
    (db, clock)
}

#[test]
fn clearing_erased_at_does_not_switch_tombstones_off() {
    let (db, clock) = forgotten_db("forget-erased-at");
    rusqlite::Connection::open(&db.0)
        .unwrap()
        .execute("UPDATE users SET erased_at = NULL", [])
        .unwrap();
    let gate = Gate::open(&db.0).unwrap().with_clock(clock);
    let b = gate.business("default").unwrap();
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::OptedOut);
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "hi",
        3 * HOUR,
        "SMx",
    ))
    .unwrap();
    assert_eq!(reason(&b, &freeform(&user(1))), Reason::OptedOut);
}

#[test]
fn a_renamed_key_is_refused_and_a_forced_rename_breaks_the_chain() {
    let (db, clock) = forgotten_db("forget-rename");
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    // A tombstone never changes, and an address is never renamed.
    for sql in [
        "UPDATE users SET key = 'erased:' || hex(zeroblob(32)) WHERE key LIKE 'erased:%'",
        "UPDATE users SET key = 'whatsapp:+15550000009' WHERE key = 'whatsapp:+15550000002'",
    ] {
        let e = conn.execute(sql, []).unwrap_err().to_string();
        assert!(e.contains("never renamed"), "{sql}: {e}");
    }
    // The guard cannot tell a real tombstone from a made-up one: Bob's key
    // turned into a wrong tombstone gets past it, and his chain breaks.
    conn.execute(
        "UPDATE users SET key = 'erased:' || lower(hex(randomblob(32))) WHERE key = 'whatsapp:+15550000002'",
        [],
    )
    .unwrap();
    // Without the guard, detaching the opt-out of the forgotten person by
    // renaming their tombstone breaks their chain too: no decision, and
    // verify names it.
    conn.execute_batch(
        "DROP TRIGGER users_key_guard;
         UPDATE users SET key = 'erased:' || lower(hex(randomblob(32)))
          WHERE key LIKE 'erased:%' AND consent_count > 0;",
    )
    .unwrap();
    drop(conn);
    let gate = Gate::open(&db.0).unwrap().with_clock(clock);
    let b = gate.business("default").unwrap();
    let broken = b.verify().unwrap().broken.unwrap_or_default();
    assert!(broken.contains("does not match"), "{broken}");
    // Nothing renamed is ever allowed: the renamed numbers resolve as
    // nobody (no consent), and verify names the broken chains.
    for u in [user(1), bsuid(), user(2)] {
        let d = b.check(&freeform(&u));
        assert!(d.as_ref().map_or(true, |d| !d.is_allowed()), "{u:?}: {d:?}");
    }
}

fn a_returning_person_is_forgotten_again_with_their_new_sends(on: On) {
    let (gate, clock, _store) = open(on);
    let b = gate.business("acme").unwrap();
    template(&b, "shipped", Category::Utility);
    b.ingest(&consent(&user(1), Action::OptIn, Scope::All, 0))
        .unwrap();
    b.forget(&user(1)).unwrap();
    // They come back, opt in again, and get a template with their name.
    clock.set(t(HOUR));
    b.ingest(&consent(&user(1), Action::OptIn, Scope::All, HOUR))
        .unwrap();
    let named = SendRequest::between(
        sender(0),
        user(1),
        Content::template("shipped", "en", Variables::positional(["Zelda Quux"])),
    );
    let transport = RecordingTransport::new();
    assert!(b.send(&named, "k-back", &transport).unwrap().sent());
    let recorded = b.sends(&by_key("k-back"), 10).unwrap();
    assert_eq!(recorded[0].to, "whatsapp:+15550000001");
    assert!(recorded[0].provider_id.is_some());
    let again = b.forget(&user(1)).unwrap();
    assert_eq!(again.send_attempts, 1, "{again:?}");
    let scrubbed = &b.sends(&by_key("k-back"), 10).unwrap()[0];
    assert!(scrubbed.to.starts_with("erased:"), "{scrubbed:?}");
    assert_eq!(scrubbed.provider_id, None);
    let facts = serde_json::to_string(&scrubbed.facts).unwrap();
    assert!(!facts.contains("Zelda"), "{facts}");
    // The decision and the key stay: a retry is still a duplicate.
    assert_eq!(scrubbed.reason, "opted_in");
    assert!(b.send(&named, "k-back", &transport).unwrap().duplicate());
}

fn a_send_in_flight_during_forget_records_no_message_id(on: On) {
    let (gate, clock, _store) = open(on);
    let b = gate.business("acme").unwrap();
    b.ingest(&inbound(
        &user(1),
        &sender(0),
        MessageKind::Text,
        "hi",
        0,
        "SM1",
    ))
    .unwrap();
    clock.set(t(MINUTE));
    let wagate::Reservation::Ready(pending) = b.reserve(&freeform(&user(1)), "k1").unwrap() else {
        panic!("the window is open: the send is allowed");
    };
    b.forget(&user(1)).unwrap();
    let answer: Result<wagate::transport::Receipt, TransportError> =
        Ok(wagate::transport::Receipt {
            provider_id: "SMout-1".into(),
        });
    let out = b.complete(pending, &answer).unwrap();
    assert!(out.sent());
    let row = &b.sends(&by_key("k1"), 10).unwrap()[0];
    assert!(row.to.starts_with("erased:"), "{row:?}");
    assert_eq!(row.provider_id, None);
}

#[test]
fn a_forged_export_line_does_not_verify() {
    let (db, _clock) = forgotten_db("forget-forge");
    let export = cli(&db, &["export"]);
    let text = String::from_utf8(export.stdout).unwrap();
    let file = db.0.with_extension("forged.jsonl");
    let verify = |lines: &str| {
        std::fs::write(&file, lines).unwrap();
        let out = cli(&db, &["verify", "--export", file.to_str().unwrap()]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(verify(&text).0, "the export itself verifies");
    // Bob's line, sealed by hand: its evidence could then say anything.
    let bob = text
        .lines()
        .find(|l| l.contains("+15550000002") && l.contains("\"op\":\"consent\""))
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(bob).unwrap();
    let chain = v["chain"].as_object_mut().unwrap();
    chain.remove("salt");
    chain.insert("evidence_digest".into(), "00".repeat(32).into());
    v["evidence"] = "FORGED".into();
    let (ok, why) = verify(&text.replacen(bob, &v.to_string(), 1));
    assert!(
        !ok && why.contains("sealed event must name a tombstone"),
        "{why}"
    );
    // A tombstone that is not its subject.
    let erased = text
        .lines()
        .find(|l| l.contains("\"user\":\"erased:"))
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(erased).unwrap();
    v["user"] = format!("erased:{}", "00".repeat(32)).into();
    let (ok, why) = verify(&text.replacen(erased, &v.to_string(), 1));
    assert!(!ok && why.contains("not its chain.subject"), "{why}");
    let _ = std::fs::remove_file(&file);
}

#[derive(Clone, Debug)]
enum Op {
    Inbound {
        user: u8,
        body: &'static str,
    },
    Consent {
        user: u8,
        opt_in: bool,
        marketing: bool,
    },
    Send {
        user: u8,
        content: u8,
        fail: Option<u32>,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, prop::sample::select(vec!["hi", "STOP", "START", "yes", "HELP"]))
            .prop_map(|(user, body)| Op::Inbound { user, body }),
        2 => (0u8..3, any::<bool>(), any::<bool>())
            .prop_map(|(user, opt_in, marketing)| Op::Consent { user, opt_in, marketing }),
        2 => (0u8..3, 0u8..3, prop::option::weighted(0.3, prop::sample::select(vec![21610u32, 131050, 63016])))
            .prop_map(|(user, content, fail)| Op::Send { user, content, fail }),
    ]
}

fn request(u: &Address, k: u8) -> SendRequest {
    let tpl = |name: &str| Content::template(name, "en", Variables::positional(["A-17"]));
    let content = match k {
        0 => Content::text("hello"),
        1 => tpl("shipped"),
        _ => tpl("promo"),
    };
    SendRequest::between(sender(0), u.clone(), content)
}

fn decisions(b: &wagate::Business, u: &Address) -> Vec<(Verdict, Reason)> {
    (0..3)
        .map(|k| {
            let d = b.check(&request(u, k)).unwrap();
            (d.verdict, d.reason)
        })
        .collect()
}

/// After `forget(u)`: nobody else's decisions change; `u`'s decisions are
/// those of a person whose history holds only `u`'s opt-outs; the chain
/// verifies with every head unchanged.
fn forget_keeps_exactly_the_opt_outs(
    on: On,
    ops: Vec<(i64, Op)>,
    later: i64,
) -> Result<(), TestCaseError> {
    let (gate, clock, _store) = open(on);
    let b = gate.business("acme").unwrap();
    template(&b, "shipped", Category::Utility);
    template(&b, "promo", Category::Marketing);
    let transport = RecordingTransport::new();
    let mut ops = ops;
    ops.sort_by_key(|(at, _)| *at);
    for (i, (at, op)) in ops.into_iter().enumerate() {
        clock.set(t(at));
        match op {
            Op::Inbound { user: u, body } => {
                b.ingest(&inbound(
                    &user(u + 1),
                    &sender(0),
                    MessageKind::Text,
                    body,
                    at,
                    &format!("SM{i}"),
                ))
                .unwrap();
            }
            Op::Consent {
                user: u,
                opt_in,
                marketing,
            } => {
                let action = if opt_in {
                    Action::OptIn
                } else {
                    Action::OptOut
                };
                let scope = if marketing {
                    Scope::Marketing
                } else {
                    Scope::All
                };
                b.ingest(&consent(&user(u + 1), action, scope, at)).unwrap();
            }
            Op::Send {
                user: u,
                content,
                fail,
            } => {
                if let Some(code) = fail {
                    transport.fail_next(TransportError {
                        transient: false,
                        code: Some(code),
                        message: "refused".into(),
                    });
                }
                b.send(
                    &request(&user(u + 1), content),
                    &format!("k{i}"),
                    &transport,
                )
                .unwrap();
            }
        }
    }
    let now = 5 * DAY + later;
    clock.set(t(now));
    let forgotten = user(1);
    let others_before: Vec<_> = (2..=3).map(|u| decisions(&b, &user(u))).collect();
    let opt_outs: Vec<_> = b
        .consent_history(&forgotten)
        .unwrap()
        .into_iter()
        .filter(|r| r.action == Action::OptOut)
        .collect();
    let heads_before = heads(&b);

    b.forget(&forgotten).unwrap();

    let others_after: Vec<_> = (2..=3).map(|u| decisions(&b, &user(u))).collect();
    prop_assert_eq!(others_before, others_after);
    prop_assert_eq!(b.verify().unwrap().broken, None);
    prop_assert_eq!(heads(&b), heads_before);
    // The model: a fresh gate that only ever heard the opt-outs.
    let (model_gate, model_clock) = crate::common::gate();
    model_clock.set(t(now));
    let m = model_gate.business("acme").unwrap();
    template(&m, "shipped", Category::Utility);
    template(&m, "promo", Category::Marketing);
    for r in &opt_outs {
        let mut e = ConsentEvent::new(
            forgotten.clone(),
            Action::OptOut,
            r.scope,
            r.at,
            r.source.clone(),
        );
        e.received_at = Some(r.received_at);
        m.ingest(&Event::Consent(e)).unwrap();
    }
    prop_assert_eq!(decisions(&b, &forgotten), decisions(&m, &forgotten));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn forget_keeps_exactly_the_opt_outs_on_sqlite(
        ops in proptest::collection::vec((0i64..5 * DAY, arb_op()), 1..30),
        later in 0i64..2 * DAY,
    ) {
        forget_keeps_exactly_the_opt_outs(On::Sqlite, ops, later)?;
    }
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn forget_keeps_exactly_the_opt_outs_on_postgres(
        ops in proptest::collection::vec((0i64..5 * DAY, arb_op()), 1..30),
        later in 0i64..2 * DAY,
    ) {
        forget_keeps_exactly_the_opt_outs(On::Postgres, ops, later)?;
    }
}

mod an_opt_out_survives_erasure_and_every_way_back {
    #[test]
    fn sqlite() {
        super::an_opt_out_survives_erasure_and_every_way_back(super::On::Sqlite);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres() {
        super::an_opt_out_survives_erasure_and_every_way_back(super::On::Postgres);
    }
}

mod an_opted_in_person_loses_the_opt_in_with_its_proof {
    #[test]
    fn sqlite() {
        super::an_opted_in_person_loses_the_opt_in_with_its_proof(super::On::Sqlite);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres() {
        super::an_opted_in_person_loses_the_opt_in_with_its_proof(super::On::Postgres);
    }
}

mod forgetting_someone_never_seen_finds_nothing {
    #[test]
    fn sqlite() {
        super::forgetting_someone_never_seen_finds_nothing(super::On::Sqlite);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres() {
        super::forgetting_someone_never_seen_finds_nothing(super::On::Postgres);
    }
}

mod a_returning_person_is_forgotten_again_with_their_new_sends {
    #[test]
    fn sqlite() {
        super::a_returning_person_is_forgotten_again_with_their_new_sends(super::On::Sqlite);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres() {
        super::a_returning_person_is_forgotten_again_with_their_new_sends(super::On::Postgres);
    }
}

mod a_send_in_flight_during_forget_records_no_message_id {
    #[test]
    fn sqlite() {
        super::a_send_in_flight_during_forget_records_no_message_id(super::On::Sqlite);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres() {
        super::a_send_in_flight_during_forget_records_no_message_id(super::On::Postgres);
    }
}
