//! Model-based test: random operation sequences applied both to the SQLite
//! gate and to a small in-memory model (BTreeMaps), compared after every
//! step. The model keeps the facts its own simple way and asks the pure
//! `decide`; a difference means the store or the gate gathered, kept or
//! updated a fact wrongly.
//!
//! Users are four addresses: two phones and two business-scoped ids.
//! Inbound messages carrying a phone and a BSUID link them (RULES R8); the
//! model keeps the links as a list of edges and finds a person by walking
//! them, and every check is asked for every address.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use wagate::policy::{ConsentFact, Facts, TemplateFacts, WindowFacts, decide};
use wagate::transport::RecordingTransport;
use wagate::{
    Action, Address, Category, Content, DeliveryStatus, Error, Event, InboundMessage, MessageKind,
    Purpose, Reason, Scope, SendRequest, StatusCallback, TemplateBody, TemplateRecord,
    TemplateStatus, TemplateStatusUpdate, Timestamp, Variables,
};

use crate::common::*;

/// Addresses 0 and 1 are phones, 2 and 3 business-scoped ids.
const ADDRESSES: u8 = 4;

fn address(a: u8) -> Address {
    if a < 2 {
        user(a)
    } else {
        Address::from_bsuid(&format!("US.{a}")).unwrap()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Inbound {
        user: u8,
        /// A BSUID (2 or 3) carried beside a phone `user`: links them.
        also: Option<u8>,
        sender: u8,
        kind: MessageKind,
        body: &'static str,
        lag: i64,
        id: u8,
    },
    Consent {
        user: u8,
        opt_in: bool,
        all: bool,
        lag: i64,
    },
    Template {
        name: u8,
        marketing: bool,
        status: &'static str,
        lag: i64,
    },
    TemplateStatus {
        name: u8,
        status: &'static str,
        lag: i64,
    },
    Send {
        user: u8,
        sender: u8,
        content: u8,
        confirm: bool,
        key: u8,
    },
    Status {
        key: u8,
        status: DeliveryStatus,
        code: Option<u32>,
    },
    /// A callback for a message sent elsewhere (R7), naming sender and user.
    Elsewhere {
        id: u8,
        user: u8,
        sender: u8,
        code: u32,
    },
    Advance {
        minutes: i64,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    // Lags in minutes: positive = the event happened earlier (late
    // webhook), negative = stamped in the future (clock skew).
    let lag = -30i64..(30 * 60);
    let code = prop_oneof![
        Just(63016u32),
        Just(131047),
        Just(21610),
        Just(131050),
        Just(132015),
        Just(30008)
    ];
    prop_oneof![
        4 => (0u8..ADDRESSES, proptest::option::of(2u8..4), 0u8..2,
              prop_oneof![Just(MessageKind::Text), Just(MessageKind::Media), Just(MessageKind::Reaction),
                          Just(MessageKind::Button), Just(MessageKind::Unsupported), Just(MessageKind::Order)],
              prop_oneof![Just("hi"), Just("STOP"), Just(" Stop! "), Just("start"), Just("YES"),
                          Just("help"), Just("stop please")],
              lag.clone(), 0u8..10)
            .prop_map(|(user, also, sender, kind, body, lag, id)| Op::Inbound {
                user, also: also.filter(|_| user < 2), sender, kind, body, lag, id,
            }),
        2 => (0u8..ADDRESSES, any::<bool>(), any::<bool>(), lag.clone())
            .prop_map(|(user, opt_in, all, lag)| Op::Consent { user, opt_in, all, lag }),
        1 => (0u8..2, any::<bool>(), prop_oneof![Just("approved"), Just("PAUSED"), Just("pending")], lag.clone())
            .prop_map(|(name, marketing, status, lag)| Op::Template { name, marketing, status, lag }),
        1 => (0u8..3, prop_oneof![Just("approved"), Just("disabled")], lag)
            .prop_map(|(name, status, lag)| Op::TemplateStatus { name, status, lag }),
        3 => (0u8..ADDRESSES, 0u8..2, 0u8..3, any::<bool>(), 0u8..6)
            .prop_map(|(user, sender, content, confirm, key)| Op::Send { user, sender, content, confirm, key }),
        2 => (0u8..6,
              prop_oneof![Just(DeliveryStatus::Sent), Just(DeliveryStatus::Delivered), Just(DeliveryStatus::Failed)],
              proptest::option::of(code.clone()))
            .prop_map(|(key, status, code)| Op::Status { key, status, code }),
        1 => (0u8..4, 0u8..ADDRESSES, 0u8..2, code)
            .prop_map(|(id, user, sender, code)| Op::Elsewhere { id, user, sender, code }),
        2 => (1i64..(20 * 60)).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

#[derive(Clone, Debug, Default)]
struct ModelTemplate {
    /// (effective, seq, category): none until a record arrives.
    definition: Option<(i64, u64, Category)>,
    /// (effective, seq, status)
    status: Option<(i64, u64, String)>,
}

#[derive(Clone, Debug)]
struct ModelSend {
    /// What the request was, to tell a retry from another request.
    request: (u8, u8, u8, bool),
    user: u8,
    sender: u8,
    at: Timestamp,
    template: Option<u8>,
    reason: Reason,
}

/// What an inbound id said the first time.
type Said = (u8, Option<u8>, u8, MessageKind, &'static str);

#[derive(Default)]
struct Model {
    now: i64,
    seq: u64,
    inbound: BTreeMap<String, Said>,
    /// Consent events by the address they came under.
    consent: BTreeMap<u8, Vec<ConsentFact>>,
    /// Windows by (address, sender).
    windows: BTreeMap<(u8, u8), WindowFacts>,
    links: BTreeSet<(u8, u8)>,
    templates: BTreeMap<u8, ModelTemplate>,
    sends: BTreeMap<String, ModelSend>,
    feedback: BTreeSet<(String, u32)>,
    /// Callbacks for messages sent elsewhere: (id, code) -> (user, sender).
    elsewhere: BTreeMap<(u8, u32), (u8, u8)>,
    /// Confirmation send times by address.
    confirmations: BTreeMap<u8, Timestamp>,
}

fn body_of(marketing: bool) -> &'static str {
    if marketing {
        "Sale {{1}} today"
    } else {
        "Order {{1}} shipped"
    }
}

fn content(c: u8) -> Content {
    match c {
        0 => Content::text("hello"),
        n => Content::template(format!("t{}", n - 1), "en", Variables::positional(["A-1"])),
    }
}

fn request(user_i: u8, sender_i: u8, c: u8, confirm: bool) -> SendRequest {
    let r = SendRequest::between(sender(sender_i), address(user_i), content(c));
    if confirm {
        r.with_purpose(Purpose::OptOutConfirmation)
    } else {
        r
    }
}

fn max_ts(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    a.max(b)
}

impl Model {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn eff(&self, lag: i64) -> i64 {
        // effective = min(at, received_at), received_at = now
        (self.now - lag * MINUTE).min(self.now)
    }

    fn add_consent(&mut self, u: u8, action: Action, scope: Scope, eff: i64, conditional: bool) {
        self.consent.entry(u).or_default().push(ConsentFact {
            action,
            scope,
            effective: t(eff),
            conditional,
        });
    }

    fn set_status(&mut self, name: u8, eff: i64, status: &str) {
        let seq = self.next_seq();
        let tpl = self.templates.entry(name).or_default();
        if tpl
            .status
            .as_ref()
            .is_none_or(|(e, s, _)| (eff, seq) >= (*e, *s))
        {
            tpl.status = Some((eff, seq, status.to_ascii_lowercase()));
        }
    }

    /// Every address linked to `a`, directly or through others.
    fn person(&self, a: u8) -> BTreeSet<u8> {
        let mut seen = BTreeSet::from([a]);
        loop {
            let before = seen.len();
            for (x, y) in &self.links {
                if seen.contains(x) || seen.contains(y) {
                    seen.insert(*x);
                    seen.insert(*y);
                }
            }
            if seen.len() == before {
                return seen;
            }
        }
    }

    fn facts(&self, u: u8, s: u8, c: u8) -> Facts {
        let template = if c == 0 {
            None
        } else {
            self.templates.get(&(c - 1)).and_then(|tpl| {
                let (_, _, category) = tpl.definition?;
                let (_, _, status) = tpl.status.as_ref()?;
                Some(TemplateFacts {
                    category,
                    status: TemplateStatus::parse(status).unwrap(),
                    body: TemplateBody::parse(body_of(category == Category::Marketing)).unwrap(),
                })
            })
        };
        let mut facts = Facts {
            template,
            ..Facts::default()
        };
        for a in self.person(u) {
            facts
                .consent
                .extend(self.consent.get(&a).cloned().unwrap_or_default());
            let w = self.windows.get(&(a, s)).copied().unwrap_or_default();
            facts.window.last_inbound = max_ts(facts.window.last_inbound, w.last_inbound);
            facts.window.closed_through = max_ts(facts.window.closed_through, w.closed_through);
            facts.last_confirmation_at = max_ts(
                facts.last_confirmation_at,
                self.confirmations.get(&a).copied(),
            );
        }
        if !facts
            .consent
            .iter()
            .any(|f| f.action == Action::OptOut && f.scope == Scope::All)
        {
            facts.last_confirmation_at = None;
        }
        facts
    }

    fn decide(&self, req: &SendRequest, u: u8, s: u8, c: u8) -> wagate::Decision {
        decide(req, &self.facts(u, s, c), t(self.now), &Default::default())
    }

    /// Applies a provider error code about something sent from `s` to `u`
    /// at `at` (ms since T0): the user-level effects of R7.
    fn feedback(&mut self, u: u8, s: u8, at: i64, code: u32, template: Option<u8>) {
        match code {
            63016 | 131047 => {
                let w = self.windows.entry((u, s)).or_default();
                w.closed_through = w.closed_through.max(Some(t(at)));
            }
            21610 => self.add_consent(u, Action::OptOut, Scope::All, at, false),
            131050 => self.add_consent(u, Action::OptOut, Scope::Marketing, at, false),
            132015 | 132016 => {
                if let Some(name) = template {
                    self.set_status(name, at, if code == 132015 { "paused" } else { "disabled" });
                }
            }
            _ => {}
        }
    }
}

fn keyword(body: &str) -> Option<Action> {
    match body {
        "STOP" | " Stop! " => Some(Action::OptOut),
        "start" | "YES" => Some(Action::OptIn),
        _ => None,
    }
}

/// The gate on store `on` against the model, over the operations `ops`.
fn gate_matches_model(on: On, ops: &[Op]) -> Result<(), TestCaseError> {
    let (gate, clock, _store) = open(on);
    let b = gate.business("m").unwrap();
    let transport = RecordingTransport::new();
    let mut m = Model::default();
    for (step, op) in ops.iter().enumerate() {
        clock.set(t(m.now));
        match *op {
            Op::Advance { minutes } => m.now += minutes * MINUTE,
            Op::Inbound {
                user: u,
                also,
                sender: s,
                kind,
                body,
                lag,
                id,
            } => {
                let r = b.ingest(&Event::Inbound(InboundMessage {
                    id: Some(format!("SM{id}")),
                    from: address(u),
                    user_id: also.map(address),
                    to: sender(s),
                    kind,
                    body: Some(body.to_owned()),
                    at: t(m.now - lag * MINUTE),
                    received_at: None,
                    referral: None,
                }));
                let said: Said = (u, also, s, kind, body);
                match m.inbound.get(&format!("SM{id}")) {
                    Some(first) if *first == said => {
                        prop_assert!(r.unwrap().duplicate, "step {}", step);
                    }
                    Some(_) => {
                        prop_assert!(
                            matches!(r, Err(Error::MessageIdReused(_))),
                            "step {}: {:?}",
                            step,
                            r
                        );
                    }
                    None => {
                        let out = r.unwrap();
                        prop_assert!(!out.duplicate);
                        m.inbound.insert(format!("SM{id}"), said);
                        let eff = m.eff(lag);
                        if let Some(x) = also {
                            m.links.insert((u, x));
                        }
                        if kind.opens_window() {
                            let w = m.windows.entry((u, s)).or_default();
                            w.last_inbound = w.last_inbound.max(Some(t(eff)));
                        }
                        if kind == MessageKind::Text {
                            match keyword(body) {
                                Some(Action::OptOut) => {
                                    m.add_consent(u, Action::OptOut, Scope::All, eff, false)
                                }
                                Some(Action::OptIn) => {
                                    m.add_consent(u, Action::OptIn, Scope::All, eff, true)
                                }
                                None => {}
                            }
                        }
                    }
                }
            }
            Op::Consent {
                user: u,
                opt_in,
                all,
                lag,
            } => {
                let action = if opt_in {
                    Action::OptIn
                } else {
                    Action::OptOut
                };
                let scope = if all { Scope::All } else { Scope::Marketing };
                b.ingest(&Event::Consent(wagate::ConsentEvent {
                    user: address(u),
                    action,
                    scope,
                    at: t(m.now - lag * MINUTE),
                    received_at: None,
                    source: "model".into(),
                    evidence: None,
                    conditional: false,
                }))
                .unwrap();
                let eff = m.eff(lag);
                m.add_consent(u, action, scope, eff, false);
            }
            Op::Template {
                name,
                marketing,
                status,
                lag,
            } => {
                let category = if marketing {
                    Category::Marketing
                } else {
                    Category::Utility
                };
                b.ingest(&Event::Template(TemplateRecord {
                    name: format!("t{name}"),
                    language: "en".into(),
                    category,
                    status: TemplateStatus::parse(status).unwrap(),
                    body: TemplateBody::parse(body_of(marketing)).unwrap(),
                    at: t(m.now - lag * MINUTE),
                    received_at: None,
                    twilio_content_sid: None,
                    meta_template_id: None,
                }))
                .unwrap();
                let eff = m.eff(lag);
                let seq = m.next_seq();
                let tpl = m.templates.entry(name).or_default();
                if tpl.definition.is_none_or(|(e, s, _)| (eff, seq) >= (e, s)) {
                    tpl.definition = Some((eff, seq, category));
                }
                if tpl
                    .status
                    .as_ref()
                    .is_none_or(|(e, s, _)| (eff, seq) >= (*e, *s))
                {
                    tpl.status = Some((eff, seq, status.to_ascii_lowercase()));
                }
            }
            Op::TemplateStatus { name, status, lag } => {
                // Kept even for a template not registered yet (R5).
                b.ingest(&Event::TemplateStatus(TemplateStatusUpdate {
                    name: format!("t{name}"),
                    language: "en".into(),
                    status: TemplateStatus::parse(status).unwrap(),
                    at: t(m.now - lag * MINUTE),
                    received_at: None,
                    twilio_content_sid: None,
                    meta_template_id: None,
                }))
                .unwrap();
                let eff = m.eff(lag);
                m.set_status(name, eff, status);
            }
            Op::Send {
                user: u,
                sender: s,
                content: c,
                confirm,
                key,
            } => {
                let req = request(u, s, c, confirm);
                let r = b.send(&req, &format!("k{key}"), &transport);
                let want = m.decide(&req, u, s, c);
                match m.sends.get(&format!("k{key}")) {
                    Some(first) if first.request == (u, s, c, confirm) => {
                        let out = r.unwrap();
                        prop_assert!(out.duplicate(), "step {}", step);
                        prop_assert_eq!(out.decision.reason, first.reason);
                    }
                    Some(_) => {
                        prop_assert!(
                            matches!(r, Err(Error::KeyReused(_))),
                            "step {}: {:?}",
                            step,
                            r
                        );
                    }
                    None => {
                        let out = r.unwrap();
                        prop_assert!(!out.duplicate());
                        prop_assert_eq!(&out.decision, &want, "step {}", step);
                        prop_assert_eq!(out.sent(), want.is_allowed());
                        if want.is_allowed() {
                            if want.reason == Reason::OptOutConfirmation {
                                m.confirmations.insert(u, t(m.now));
                            }
                            m.sends.insert(
                                format!("k{key}"),
                                ModelSend {
                                    request: (u, s, c, confirm),
                                    user: u,
                                    sender: s,
                                    at: t(m.now),
                                    template: c.checked_sub(1),
                                    reason: want.reason,
                                },
                            );
                        }
                    }
                }
            }
            Op::Status { key, status, code } => {
                let r = b.ingest(&Event::Status(StatusCallback {
                    id: format!("k{key}"),
                    status,
                    error_code: code,
                    at: t(m.now),
                    received_at: None,
                    from: None,
                    to: None,
                    pricing: None,
                }));
                let Some(send) = m.sends.get(&format!("k{key}")).cloned() else {
                    prop_assert!(
                        matches!(r, Err(Error::UnknownMessage(_))),
                        "step {}: status for a message never sent",
                        step
                    );
                    continue;
                };
                prop_assert!(r.is_ok());
                let Some(code) = code else { continue };
                if m.feedback.insert((format!("k{key}"), code)) {
                    let s_at = send.at.as_millis() - T0;
                    m.feedback(send.user, send.sender, s_at, code, send.template);
                }
            }
            Op::Elsewhere {
                id,
                user: u,
                sender: s,
                code,
            } => {
                let r = b.ingest(&Event::Status(
                    StatusCallback::new(format!("X{id}"), DeliveryStatus::Failed, t(m.now))
                        .with_error(code)
                        .between(sender(s), address(u)),
                ));
                // Template codes need the template: nothing for these.
                let effect = matches!(code, 63016 | 131047 | 21610 | 131050);
                match m.elsewhere.get(&(id, code)) {
                    Some(first) if effect && *first != (u, s) => {
                        prop_assert!(
                            matches!(r, Err(Error::MessageIdReused(_))),
                            "step {}: {:?}",
                            step,
                            r
                        );
                    }
                    _ => prop_assert!(r.is_ok(), "step {}: {:?}", step, r),
                }
                if effect && !m.elsewhere.contains_key(&(id, code)) {
                    m.elsewhere.insert((id, code), (u, s));
                    let now = m.now;
                    m.feedback(u, s, now, code, None);
                }
            }
        }
        // Compare every question the model can answer, for every address.
        clock.set(t(m.now));
        for u in 0..ADDRESSES {
            for s in 0..2 {
                for c in 0..3 {
                    for confirm in [false, true] {
                        let req = request(u, s, c, confirm);
                        let got = b.check(&req).unwrap();
                        let want = m.decide(&req, u, s, c);
                        prop_assert_eq!(
                            &got,
                            &want,
                            "step {} after {:?}: user {} sender {} content {}",
                            step,
                            op,
                            u,
                            s,
                            c
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn gate_matches_model_on_sqlite(ops in proptest::collection::vec(arb_op(), 1..40)) {
        gate_matches_model(On::Sqlite, &ops)?;
    }
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn gate_matches_model_on_postgres(ops in proptest::collection::vec(arb_op(), 1..40)) {
        gate_matches_model(On::Postgres, &ops)?;
    }
}
