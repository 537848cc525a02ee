//! Template history (RULES R5): every record and status change is kept,
//! a status change that beats the registration still counts, a decision
//! as of an earlier time reads the template as it was then, and a template
//! without a name or language is refused.

use wagate::policy::TemplateError;
use wagate::{
    Action, Business, Category, Content, Error, Event, Reason, Scope, SendRequest, TemplateBody,
    TemplateRecord, TemplateStatus, TemplateStatusUpdate, Variables,
};

use crate::common::*;

fn record(name: &str, language: &str, at: i64, received: i64) -> Event {
    Event::Template(TemplateRecord {
        name: name.into(),
        language: language.into(),
        category: Category::Utility,
        status: TemplateStatus::approved(),
        body: TemplateBody::parse("Order {{1}} shipped").unwrap(),
        at: t(at),
        received_at: Some(t(received)),
        twilio_content_sid: None,
        meta_template_id: None,
    })
}

fn status(name: &str, language: &str, s: &str, at: i64, received: i64) -> Event {
    Event::TemplateStatus(TemplateStatusUpdate {
        name: name.into(),
        language: language.into(),
        status: TemplateStatus::parse(s).unwrap(),
        at: t(at),
        received_at: Some(t(received)),
        twilio_content_sid: None,
        meta_template_id: None,
    })
}

/// User 0 opted in at 0: an approved utility template is allowed.
fn opted_in() -> (Business, std::sync::Arc<wagate::ManualClock>) {
    let (gate, clock) = gate();
    let b = gate.business("acme").unwrap();
    b.ingest(&consent(&user(0), Action::OptIn, Scope::All, 0))
        .unwrap();
    (b, clock)
}

fn shipped() -> SendRequest {
    SendRequest::between(
        sender(0),
        user(0),
        Content::template("shipped", "en", Variables::positional(["A1"])),
    )
}

#[test]
fn a_pause_that_beats_the_registration_is_kept() {
    let (b, clock) = opted_in();
    clock.set(t(3 * HOUR));
    // Paused at 2h, seen before the (older) registration arrives.
    b.ingest(&status("shipped", "en", "PAUSED", 2 * HOUR, 2 * HOUR))
        .unwrap();
    assert_eq!(b.check(&shipped()).unwrap().reason, Reason::TemplateUnknown);
    b.ingest(&record("shipped", "en", HOUR, 3 * HOUR)).unwrap();
    let d = b.check(&shipped()).unwrap();
    assert_eq!(d.reason, Reason::TemplateNotApproved);
    assert_eq!(d.facts.template_status.unwrap().as_str(), "paused");
    // A newer approval reinstates it.
    clock.set(t(5 * HOUR));
    b.ingest(&status("shipped", "en", "approved", 4 * HOUR, 4 * HOUR))
        .unwrap();
    let d = b.check(&shipped()).unwrap();
    assert_eq!(d.reason, Reason::OptedIn);
    assert!(d.is_allowed());
}

#[test]
fn a_decision_as_of_a_time_reads_the_template_as_it_was() {
    let (b, clock) = opted_in();
    // Arrival times are never later than the gate's clock.
    clock.set(t(4 * HOUR));
    b.ingest(&record("shipped", "en", HOUR, HOUR)).unwrap();
    b.ingest(&status("shipped", "en", "paused", 3 * HOUR, 3 * HOUR))
        .unwrap();
    let as_of = |at| b.check_as_of(&shipped(), t(at)).unwrap().reason;
    assert_eq!(as_of(MINUTE), Reason::TemplateUnknown);
    assert_eq!(as_of(2 * HOUR), Reason::OptedIn);
    assert_eq!(as_of(4 * HOUR), Reason::TemplateNotApproved);
    assert_eq!(
        b.check(&shipped()).unwrap().reason,
        Reason::TemplateNotApproved
    );
}

#[test]
fn a_template_needs_a_name_and_a_language() {
    let (b, _clock) = opted_in();
    for (name, language, what) in [(" ", "en", "name"), ("shipped", "", "language")] {
        let err = b.ingest(&record(name, language, 0, 0)).unwrap_err();
        assert!(
            matches!(err, Error::Template(TemplateError::Empty(w)) if w == what),
            "{name:?}/{language:?}: {err:?}"
        );
        let err = b
            .ingest(&status(name, language, "paused", 0, 0))
            .unwrap_err();
        assert!(
            matches!(err, Error::Template(TemplateError::Empty(w)) if w == what),
            "{name:?}/{language:?}: {err:?}"
        );
    }
    assert!(b.templates().unwrap().is_empty());
}
