//! Builders shared by the integration tests.

use std::sync::Arc;

use wagate::{
    Action, Address, ConsentEvent, Event, Gate, InboundMessage, ManualClock, MessageKind, Scope,
    Timestamp,
};

/// 2026-03-01T00:00:00Z: the origin of test times.
pub const T0: i64 = 1_772_323_200_000;
pub const HOUR: i64 = 3_600_000;
pub const MINUTE: i64 = 60_000;

pub fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

pub fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

pub fn user(i: u8) -> Address {
    addr(&format!("whatsapp:+1555000{:04}", i))
}

pub fn sender(i: u8) -> Address {
    addr(&format!("whatsapp:+1415523{:04}", 8886 + i as u16))
}

/// An in-memory gate with a manual clock.
pub fn gate() -> (Gate, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t(0)));
    (
        Gate::open_in_memory().unwrap().with_clock(clock.clone()),
        clock,
    )
}

pub fn inbound(
    from: &Address,
    to: &Address,
    kind: MessageKind,
    body: &str,
    at: i64,
    id: &str,
) -> Event {
    Event::Inbound(InboundMessage {
        id: Some(id.to_owned()),
        from: from.clone(),
        user_id: None,
        to: to.clone(),
        kind,
        body: Some(body.to_owned()),
        at: t(at),
        received_at: Some(t(at)),
        referral: None,
    })
}

pub fn consent(u: &Address, action: Action, scope: Scope, at: i64) -> Event {
    Event::Consent(ConsentEvent {
        user: u.clone(),
        action,
        scope,
        at: t(at),
        received_at: Some(t(at)),
        source: "test".into(),
        evidence: None,
        conditional: false,
    })
}

/// Which store a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum On {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// Where the PostgreSQL store of a test lives (dropped with the test).
#[cfg(feature = "postgres")]
pub type Kept = Option<crate::pg::FreshStore>;
#[cfg(not(feature = "postgres"))]
pub type Kept = Option<()>;

/// A gate on the store `on`, with a manual clock.
pub fn open(on: On) -> (Gate, Arc<ManualClock>, Kept) {
    match on {
        On::Sqlite => {
            let (gate, clock) = gate();
            (gate, clock, None)
        }
        #[cfg(feature = "postgres")]
        On::Postgres => {
            let clock = Arc::new(ManualClock::new(t(0)));
            let store = crate::pg::fresh_store();
            let gate = Gate::from_postgres((*store).clone()).with_clock(clock.clone());
            (gate, clock, Some(store))
        }
    }
}

/// Registers an approved template `name` (English, body "Order {{1}}").
pub fn template(b: &wagate::Business, name: &str, category: wagate::Category) {
    b.ingest(&Event::Template(wagate::TemplateRecord {
        name: name.into(),
        language: "en".into(),
        category,
        status: wagate::TemplateStatus::approved(),
        body: wagate::TemplateBody::parse("Order {{1}}").unwrap(),
        at: t(0),
        received_at: Some(t(0)),
        twilio_content_sid: None,
        meta_template_id: None,
    }))
    .unwrap();
}
