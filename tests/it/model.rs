//! Model-based test: random operation sequences applied both to the SQLite
//! gate and to a small in-memory model (BTreeMaps), compared after every
//! step. The model keeps the facts its own simple way and asks the pure
//! `decide`; a difference means the store or the gate gathered, kept or
//! updated a fact wrongly.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use wagate::policy::{ConsentFact, Facts, TemplateFacts, WindowFacts, decide};
use wagate::transport::RecordingTransport;
use wagate::{
    Action, Category, Content, DeliveryStatus, Event, InboundMessage, MessageKind, Purpose, Reason,
    Scope, SendRequest, StatusCallback, TemplateBody, TemplateRecord, TemplateStatus,
    TemplateStatusUpdate, Timestamp, Variables,
};

use crate::common::*;

#[derive(Clone, Debug)]
enum Op {
    Inbound {
        user: u8,
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
    Advance {
        minutes: i64,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    // Lags in minutes: positive = the event happened earlier (late
    // webhook), negative = stamped in the future (clock skew).
    let lag = -30i64..(30 * 60);
    prop_oneof![
        4 => (0u8..2, 0u8..2,
              prop_oneof![Just(MessageKind::Text), Just(MessageKind::Media), Just(MessageKind::Reaction),
                          Just(MessageKind::Button), Just(MessageKind::Unsupported)],
              prop_oneof![Just("hi"), Just("STOP"), Just(" Stop! "), Just("start"), Just("YES"),
                          Just("help"), Just("stop please")],
              lag.clone(), 0u8..10)
            .prop_map(|(user, sender, kind, body, lag, id)| Op::Inbound { user, sender, kind, body, lag, id }),
        2 => (0u8..2, any::<bool>(), any::<bool>(), lag.clone())
            .prop_map(|(user, opt_in, all, lag)| Op::Consent { user, opt_in, all, lag }),
        1 => (0u8..2, any::<bool>(), prop_oneof![Just("approved"), Just("PAUSED"), Just("pending")], lag.clone())
            .prop_map(|(name, marketing, status, lag)| Op::Template { name, marketing, status, lag }),
        1 => (0u8..2, prop_oneof![Just("approved"), Just("disabled")], lag)
            .prop_map(|(name, status, lag)| Op::TemplateStatus { name, status, lag }),
        3 => (0u8..2, 0u8..2, 0u8..3, any::<bool>(), 0u8..6)
            .prop_map(|(user, sender, content, confirm, key)| Op::Send { user, sender, content, confirm, key }),
        2 => (0u8..6,
              prop_oneof![Just(DeliveryStatus::Sent), Just(DeliveryStatus::Delivered), Just(DeliveryStatus::Failed)],
              prop_oneof![Just(None), Just(Some(63016)), Just(Some(131047)), Just(Some(21610)),
                          Just(Some(131050)), Just(Some(132015)), Just(Some(132016)), Just(Some(30008))])
            .prop_map(|(key, status, code)| Op::Status { key, status, code }),
        2 => (1i64..(20 * 60)).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

#[derive(Clone, Debug, Default)]
struct ModelTemplate {
    /// (effective, seq, category)
    definition: (i64, u64, Option<Category>),
    /// (effective, seq, status)
    status: (i64, u64, String),
}

#[derive(Clone, Debug)]
struct ModelSend {
    user: u8,
    sender: u8,
    at: Timestamp,
    template: Option<u8>,
    reason: Reason,
}

#[derive(Default)]
struct Model {
    now: i64,
    seq: u64,
    inbound_ids: BTreeSet<String>,
    consent: BTreeMap<u8, Vec<ConsentFact>>,
    windows: BTreeMap<(u8, u8), WindowFacts>,
    templates: BTreeMap<u8, ModelTemplate>,
    sends: BTreeMap<String, ModelSend>,
    feedback: BTreeSet<(String, u32)>,
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
    let r = SendRequest::between(sender(sender_i), user(user_i), content(c));
    if confirm {
        r.with_purpose(Purpose::OptOutConfirmation)
    } else {
        r
    }
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

    fn set_status(&mut self, name: u8, eff: i64, status: &str) -> bool {
        let seq = self.next_seq();
        let Some(tpl) = self.templates.get_mut(&name) else {
            return false;
        };
        if (eff, seq) >= (tpl.status.0, tpl.status.1) {
            tpl.status = (eff, seq, status.to_ascii_lowercase());
        }
        true
    }

    fn facts(&self, u: u8, s: u8, c: u8) -> Facts {
        let template = if c == 0 {
            None
        } else {
            self.templates.get(&(c - 1)).and_then(|tpl| {
                let category = tpl.definition.2?;
                Some(TemplateFacts {
                    category,
                    status: TemplateStatus::parse(&tpl.status.2).unwrap(),
                    body: TemplateBody::parse(body_of(category == Category::Marketing)).unwrap(),
                })
            })
        };
        Facts {
            consent: self.consent.get(&u).cloned().unwrap_or_default(),
            window: self.windows.get(&(u, s)).copied().unwrap_or_default(),
            template,
            last_confirmation_at: self.confirmations.get(&u).copied(),
        }
    }

    fn decide(&self, req: &SendRequest, u: u8, s: u8, c: u8) -> wagate::Decision {
        decide(req, &self.facts(u, s, c), t(self.now), &Default::default())
    }
}

fn keyword(body: &str) -> Option<Action> {
    match body {
        "STOP" | " Stop! " => Some(Action::OptOut),
        "start" | "YES" => Some(Action::OptIn),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn gate_matches_model(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let (gate, clock) = gate();
        let b = gate.business("m").unwrap();
        let transport = RecordingTransport::new();
        let mut m = Model::default();
        for (step, op) in ops.iter().enumerate() {
            clock.set(t(m.now));
            match *op {
                Op::Advance { minutes } => m.now += minutes * MINUTE,
                Op::Inbound { user: u, sender: s, kind, body, lag, id } => {
                    let out = b.ingest(&Event::Inbound(InboundMessage {
                        id: Some(format!("SM{id}")),
                        from: user(u),
                        to: sender(s),
                        kind,
                        body: Some(body.to_owned()),
                        at: t(m.now - lag * MINUTE),
                        received_at: None,
                        referral: None,
                    })).unwrap();
                    let fresh = m.inbound_ids.insert(format!("SM{id}"));
                    prop_assert_eq!(out.duplicate, !fresh, "step {}", step);
                    if fresh {
                        let eff = m.eff(lag);
                        if kind.opens_window() {
                            let w = m.windows.entry((u, s)).or_default();
                            w.last_inbound = w.last_inbound.max(Some(t(eff)));
                        }
                        if kind == MessageKind::Text {
                            match keyword(body) {
                                Some(Action::OptOut) => m.add_consent(u, Action::OptOut, Scope::All, eff, false),
                                Some(Action::OptIn) => m.add_consent(u, Action::OptIn, Scope::All, eff, true),
                                None => {}
                            }
                        }
                    }
                }
                Op::Consent { user: u, opt_in, all, lag } => {
                    let action = if opt_in { Action::OptIn } else { Action::OptOut };
                    let scope = if all { Scope::All } else { Scope::Marketing };
                    b.ingest(&Event::Consent(wagate::ConsentEvent {
                        user: user(u), action, scope, at: t(m.now - lag * MINUTE),
                        received_at: None, source: "model".into(), evidence: None, conditional: false,
                    })).unwrap();
                    let eff = m.eff(lag);
                    m.add_consent(u, action, scope, eff, false);
                }
                Op::Template { name, marketing, status, lag } => {
                    let category = if marketing { Category::Marketing } else { Category::Utility };
                    b.ingest(&Event::Template(TemplateRecord {
                        name: format!("t{name}"), language: "en".into(), category,
                        status: TemplateStatus::parse(status).unwrap(),
                        body: TemplateBody::parse(body_of(marketing)).unwrap(),
                        at: t(m.now - lag * MINUTE), received_at: None,
                        twilio_content_sid: None, meta_template_id: None,
                    })).unwrap();
                    let eff = m.eff(lag);
                    let seq = m.next_seq();
                    let tpl = m.templates.entry(name).or_insert_with(|| ModelTemplate {
                        definition: (i64::MIN, 0, None),
                        status: (i64::MIN, 0, String::new()),
                    });
                    if (eff, seq) >= (tpl.definition.0, tpl.definition.1) {
                        tpl.definition = (eff, seq, Some(category));
                    }
                    if (eff, seq) >= (tpl.status.0, tpl.status.1) {
                        tpl.status = (eff, seq, status.to_ascii_lowercase());
                    }
                }
                Op::TemplateStatus { name, status, lag } => {
                    let r = b.ingest(&Event::TemplateStatus(TemplateStatusUpdate {
                        name: format!("t{name}"), language: "en".into(),
                        status: TemplateStatus::parse(status).unwrap(),
                        at: t(m.now - lag * MINUTE), received_at: None,
                    }));
                    let eff = m.eff(lag);
                    let known = m.set_status(name, eff, status);
                    prop_assert_eq!(r.is_ok(), known, "step {}: {:?}", step, r);
                }
                Op::Send { user: u, sender: s, content: c, confirm, key } => {
                    let req = request(u, s, c, confirm);
                    let out = b.send(&req, &format!("k{key}"), &transport).unwrap();
                    let want = m.decide(&req, u, s, c);
                    match m.sends.get(&format!("k{key}")) {
                        Some(first) => {
                            prop_assert!(out.duplicate(), "step {}", step);
                            prop_assert_eq!(out.decision.reason, first.reason);
                        }
                        None => {
                            prop_assert!(!out.duplicate());
                            prop_assert_eq!(&out.decision, &want, "step {}", step);
                            prop_assert_eq!(out.sent(), want.is_allowed());
                            if want.is_allowed() {
                                if want.reason == Reason::OptOutConfirmation {
                                    m.confirmations.insert(u, t(m.now));
                                }
                                m.sends.insert(format!("k{key}"), ModelSend {
                                    user: u, sender: s, at: t(m.now),
                                    template: c.checked_sub(1), reason: want.reason,
                                });
                            }
                        }
                    }
                }
                Op::Status { key, status, code } => {
                    let r = b.ingest(&Event::Status(StatusCallback {
                        id: format!("k{key}"), status, error_code: code, at: t(m.now), received_at: None,
                    }));
                    let Some(send) = m.sends.get(&format!("k{key}")).cloned() else {
                        prop_assert!(r.is_err(), "step {}: status for a message never sent", step);
                        continue;
                    };
                    prop_assert!(r.is_ok());
                    let Some(code) = code else { continue };
                    if !m.feedback.insert((format!("k{key}"), code)) {
                        continue;
                    }
                    let s_at = send.at.as_millis() - T0;
                    match code {
                        63016 | 131047 => {
                            let w = m.windows.entry((send.user, send.sender)).or_default();
                            w.closed_through = w.closed_through.max(Some(send.at));
                        }
                        21610 => m.add_consent(send.user, Action::OptOut, Scope::All, s_at, false),
                        131050 => m.add_consent(send.user, Action::OptOut, Scope::Marketing, s_at, false),
                        132015 | 132016 => {
                            if let Some(name) = send.template {
                                m.set_status(name, s_at, if code == 132015 { "paused" } else { "disabled" });
                            }
                        }
                        _ => {}
                    }
                }
            }
            // Compare every question the model can answer.
            clock.set(t(m.now));
            for u in 0..2 {
                for s in 0..2 {
                    for c in 0..3 {
                        for confirm in [false, true] {
                            let req = request(u, s, c, confirm);
                            let got = b.check(&req).unwrap();
                            let want = m.decide(&req, u, s, c);
                            prop_assert_eq!(&got, &want, "step {} after {:?}: user {} sender {} content {}", step, op, u, s, c);
                        }
                    }
                }
            }
        }
    }
}
