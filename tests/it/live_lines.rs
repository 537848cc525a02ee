//! Live lines (`wagate ingest`, `wagate import`): a line without
//! `received_at` counts from when the gate takes it, not from its `at`
//! (RULES, effective time), while a scenario line without it was received
//! at its `at`.

use wagate::scenario::{Line, parse_line, parse_live_line};
use wagate::{Content, Event, Reason, SendRequest};

use crate::common::*;

const OPT_IN: &str = r#"{"op":"consent","at":"2026-03-01T01:00:00Z","user":"whatsapp:+15550000000","action":"opt_in","source":"web_form"}"#;

fn event(line: Result<Line, wagate::scenario::LineError>) -> Event {
    match line.unwrap() {
        Line::Event { event, .. } => event,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn a_live_line_without_received_at_was_received_when_the_gate_took_it() {
    let Event::Consent(scenario) = event(parse_line(OPT_IN)) else {
        panic!("consent expected")
    };
    assert_eq!(scenario.received_at, Some(t(HOUR)));
    let Event::Consent(live) = event(parse_live_line(OPT_IN)) else {
        panic!("consent expected")
    };
    assert_eq!(live.received_at, None);

    // Taken at 3h: as of 2h it had not arrived yet, so it allowed nothing.
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    clock.set(t(3 * HOUR));
    b.ingest(&Event::Consent(live)).unwrap();
    let req = SendRequest::between(sender(0), user(0), Content::text("hi"));
    assert_eq!(
        b.check_as_of(&req, t(2 * HOUR)).unwrap().reason,
        Reason::NoOptIn
    );
    assert_eq!(b.check(&req).unwrap().reason, Reason::NoWindow);
    let history = b.consent_history(&user(0)).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].received_at, t(3 * HOUR));

    // The scenario's reading: received at its `at`, so it counted by 2h.
    let (gate, clock) = crate::common::gate();
    let b = gate.business("acme").unwrap();
    clock.set(t(3 * HOUR));
    b.ingest(&Event::Consent(scenario)).unwrap();
    assert_eq!(
        b.check_as_of(&req, t(2 * HOUR)).unwrap().reason,
        Reason::NoWindow
    );
}
