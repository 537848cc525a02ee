//! The scenario replay's own API (`wagate::scenario::Replay`): what a
//! scenario handed to its recording transport, and that a failed `config`
//! line stops the scenario (`wagate replay` stops reading there).

use wagate::scenario::Replay;

const SETUP: [&str; 2] = [
    r#"{"op":"consent","at":"2026-03-01T08:00:00Z","user":"whatsapp:+15550001111","action":"opt_in","source":"web_form"}"#,
    r#"{"op":"inbound","at":"2026-03-01T10:00:00Z","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"hi","id":"SM1"}"#,
];
const SEND: &str = r#"{"op":"send","at":"2026-03-01T10:05:00Z","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"hello","id":"k1"}"#;
const CHECK: &str = r#"{"op":"check","at":"2026-03-01T10:05:00Z","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"hello"}"#;

#[test]
fn the_replay_shows_what_reached_its_transport() {
    let mut r = Replay::new();
    for (i, l) in SETUP.iter().enumerate() {
        assert_eq!(r.line(i + 1, l).unwrap(), None);
    }
    assert!(r.transport().sent().is_empty());
    let checked = r.line(3, CHECK).unwrap().unwrap();
    assert!(!checked.is_error, "{}", checked.json);
    assert!(r.transport().sent().is_empty(), "a check sends nothing");
    let out = r.line(4, SEND).unwrap().unwrap();
    assert!(!out.is_error, "{}", out.json);
    assert!(out.json.starts_with(r#"{"line":4,"#), "{}", out.json);
    let sent = r.transport().sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].key, "k1");
    assert_eq!(sent[0].to.as_str(), "whatsapp:+15550001111");
}

#[test]
fn a_failed_config_line_stops_the_replay() {
    let mut r = Replay::new();
    assert!(!r.stopped());
    assert_eq!(r.line(1, SETUP[0]).unwrap(), None);
    assert!(!r.stopped());
    // Not the first line: the scenario stops.
    let out = r
        .line(2, r#"{"op":"config","margin_seconds":60}"#)
        .unwrap()
        .unwrap();
    assert!(out.is_error);
    assert!(r.stopped());
    assert_eq!(
        r.line(3, CHECK).unwrap(),
        None,
        "every later line is ignored"
    );
    assert!(r.stopped());

    // A first config line is fine and does not stop anything.
    let mut r = Replay::new();
    assert_eq!(
        r.line(1, r#"{"op":"config","margin_seconds":60}"#).unwrap(),
        None
    );
    assert!(!r.stopped());
    assert!(r.line(2, CHECK).unwrap().is_some());
}
