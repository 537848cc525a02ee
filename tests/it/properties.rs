//! Property tests: each is one invariant of RULES.md.

use proptest::prelude::*;
use wagate::policy::{ConsentFact, Facts, TemplateFacts, WINDOW_MS, WindowFacts, decide, fold};
use wagate::{
    Action, Address, Category, ConsentState, Content, Event, MessageKind, PolicyConfig, Purpose,
    Reason, Scope, SendRequest, TemplateBody, TemplateStatus, Timestamp, Variables, Verdict,
};

use crate::common::*;

fn arb_fact() -> impl Strategy<Value = ConsentFact> {
    (any::<bool>(), any::<bool>(), 0i64..20, any::<bool>()).prop_map(|(opt_in, all, t, cond)| {
        let action = if opt_in {
            Action::OptIn
        } else {
            Action::OptOut
        };
        let scope = if all { Scope::All } else { Scope::Marketing };
        ConsentFact {
            action,
            scope,
            effective: Timestamp::from_millis(t * 1000),
            // Only opt-in keywords are conditional.
            conditional: cond && opt_in && all,
        }
    })
}

fn arb_ts() -> impl Strategy<Value = Timestamp> {
    (0i64..100 * HOUR).prop_map(Timestamp::from_millis)
}

fn arb_window() -> impl Strategy<Value = WindowFacts> {
    (
        proptest::option::of(arb_ts()),
        proptest::option::of(arb_ts()),
        proptest::option::of(arb_ts()),
        proptest::option::of(arb_ts()),
    )
        .prop_map(
            |(last_inbound, closed_through, referral_at, reply)| WindowFacts {
                last_inbound,
                closed_through,
                referral_at,
                first_reply_after_referral: reply,
            },
        )
}

fn arb_status() -> impl Strategy<Value = TemplateStatus> {
    prop_oneof![
        Just("approved"),
        Just("APPROVED"),
        Just("pending"),
        Just("paused"),
        Just("disabled"),
        Just("rejected"),
        Just("in_appeal"),
        Just("limit_exceeded"),
    ]
    .prop_map(|s| TemplateStatus::parse(s).unwrap())
}

fn arb_template() -> impl Strategy<Value = TemplateFacts> {
    (
        prop_oneof![
            Just(Category::Marketing),
            Just(Category::Utility),
            Just(Category::Authentication)
        ],
        arb_status(),
        prop_oneof![
            Just("Hello"),
            Just("Order {{1}} ships {{2}}"),
            Just("Hi {{name}}")
        ],
    )
        .prop_map(|(category, status, body)| TemplateFacts {
            category,
            status,
            body: TemplateBody::parse(body).unwrap(),
        })
}

fn arb_facts() -> impl Strategy<Value = Facts> {
    (
        proptest::collection::vec(arb_fact(), 0..8),
        arb_window(),
        proptest::option::of(arb_template()),
        proptest::option::of(arb_ts()),
    )
        .prop_map(|(consent, window, template, last_confirmation_at)| Facts {
            consent: consent
                .into_iter()
                .map(|mut c| {
                    // Spread consent over the same range as windows.
                    c.effective = Timestamp::from_millis(c.effective.as_millis() * 18_000);
                    c
                })
                .collect(),
            window,
            template,
            last_confirmation_at,
        })
}

fn arb_content() -> impl Strategy<Value = Content> {
    prop_oneof![
        Just(Content::text("hi")),
        Just(Content::template("t", "en", Variables::none())),
        Just(Content::template(
            "t",
            "en",
            Variables::positional(["a", "b"])
        )),
        Just(Content::template(
            "t",
            "en",
            Variables::named([("name", "Ana")])
        )),
        Just(Content::template(
            "t",
            "en",
            Variables::positional(["a", ""])
        )),
    ]
}

fn arb_request() -> impl Strategy<Value = SendRequest> {
    (arb_content(), any::<bool>()).prop_map(|(content, confirm)| {
        let r = SendRequest::between(sender(0), user(0), content);
        if confirm {
            r.with_purpose(Purpose::OptOutConfirmation)
        } else {
            r
        }
    })
}

fn arb_config() -> impl Strategy<Value = PolicyConfig> {
    prop_oneof![Just(0i64), 0i64..2 * HOUR].prop_map(|margin_ms| PolicyConfig { margin_ms })
}

/// The window is open per R2 and R7, computed directly from the facts.
fn window_open(w: &WindowFacts, now: Timestamp, c: &PolicyConfig) -> bool {
    match w.last_inbound {
        None => false,
        Some(last) => {
            now.as_millis() < last.as_millis() + WINDOW_MS - c.margin_ms
                && w.closed_through.is_none_or(|s| last > s)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// R3: the consent state does not depend on the order events arrive in.
    #[test]
    fn consent_fold_ignores_arrival_order(
        events in proptest::collection::vec(arb_fact(), 0..12).prop_shuffle(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = events.clone();
        // A second, different permutation: rotate by a seed.
        if !shuffled.is_empty() {
            let k = (seed as usize) % shuffled.len();
            shuffled.rotate_left(k);
            shuffled.reverse();
        }
        prop_assert_eq!(fold(&events), fold(&shuffled));
    }

    /// R3: a duplicate event changes nothing.
    #[test]
    fn duplicate_consent_changes_nothing(
        events in proptest::collection::vec(arb_fact(), 1..12),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut with_dup = events.clone();
        with_dup.push(events[pick.index(events.len())]);
        prop_assert_eq!(fold(&events), fold(&with_dup));
    }

    /// R3: opt-out wins a tie at the same effective time.
    #[test]
    fn opt_out_wins_ties(events in proptest::collection::vec(arb_fact(), 0..8), t in 20i64..40) {
        let at = Timestamp::from_millis(t * 1000);
        let mut e = events.clone();
        e.push(ConsentFact { action: Action::OptOut, scope: Scope::All, effective: at, conditional: false });
        e.push(ConsentFact { action: Action::OptIn, scope: Scope::All, effective: at, conditional: false });
        let f = fold(&e);
        prop_assert_eq!(f.general, ConsentState::OptedOut);
        prop_assert_eq!(f.marketing, ConsentState::OptedOut);
    }

    /// R2: freeform is never allowed unless a window-opening inbound lies
    /// within 24h minus the margin (and no provider error closed it).
    #[test]
    fn freeform_needs_an_open_window(
        facts in arb_facts(), now in arb_ts(), config in arb_config(), confirm in any::<bool>(),
    ) {
        let mut req = SendRequest::between(sender(0), user(0), Content::text("hi"));
        if confirm {
            req = req.with_purpose(Purpose::OptOutConfirmation);
        }
        let d = decide(&req, &facts, now, &config);
        if d.is_allowed() {
            let last = facts.window.last_inbound.expect("allowed without any inbound");
            prop_assert!(now.as_millis() < last.as_millis() + WINDOW_MS - config.margin_ms);
            prop_assert!(window_open(&facts.window, now, &config));
        }
        prop_assert_eq!(d.facts.window_open, window_open(&facts.window, now, &config));
    }

    /// R6: an opted-out user never gets an allow, except the single
    /// confirmation within 5 minutes, freeform, in an open window.
    #[test]
    fn opted_out_only_gets_the_confirmation(
        facts in arb_facts(), req in arb_request(), now in arb_ts(), config in arb_config(),
    ) {
        let f = fold(&facts.consent);
        prop_assume!(f.general == ConsentState::OptedOut);
        let d = decide(&req, &facts, now, &config);
        match d.reason {
            Reason::OptedOut => prop_assert_eq!(d.verdict, Verdict::Deny),
            Reason::OptOutConfirmation => {
                let t = f.general_at.unwrap();
                prop_assert_eq!(req.purpose(), Some(&Purpose::OptOutConfirmation));
                let freeform = matches!(req.content(), Content::Freeform { .. });
                prop_assert!(freeform);
                prop_assert!(window_open(&facts.window, now, &config));
                prop_assert!(now.as_millis() < t.as_millis() + 5 * MINUTE);
                prop_assert!(facts.last_confirmation_at.is_none_or(|c| c < t));
            }
            other => prop_assert!(false, "opted-out user got {other}"),
        }
    }

    /// R5/R6: a template that is not approved is never allowed.
    #[test]
    fn unapproved_template_is_never_allowed(
        facts in arb_facts(), req in arb_request(), now in arb_ts(), config in arb_config(),
    ) {
        prop_assume!(matches!(req.content(), Content::Template { .. }));
        let d = decide(&req, &facts, now, &config);
        if d.is_allowed() {
            let t = facts.template.as_ref().expect("allowed an unknown template");
            prop_assert!(t.status.is_approved());
            prop_assert!(d.facts.rendered.is_some());
        }
    }

    /// R6: exactly one reason, and the verdict always matches it; marketing
    /// templates are never allowed without a general opt-in.
    #[test]
    fn marketing_needs_opt_in(
        facts in arb_facts(), req in arb_request(), now in arb_ts(), config in arb_config(),
    ) {
        let d = decide(&req, &facts, now, &config);
        prop_assert_eq!(d.verdict, d.reason.verdict());
        let f = fold(&facts.consent);
        let is_template = matches!(req.content(), Content::Template { .. });
        if d.is_allowed() && is_template
            && facts.template.as_ref().is_some_and(|t| t.category == Category::Marketing)
        {
            prop_assert_eq!(f.general, ConsentState::OptedIn);
            prop_assert!(f.marketing != ConsentState::OptedOut);
        }
    }

    /// Decisions never panic, whatever the addresses, body and variables.
    #[test]
    fn decide_never_panics(
        from in ".{0,24}", to in ".{0,24}", body in ".{0,64}",
        vars in proptest::collection::vec(".{0,8}", 0..4), named in any::<bool>(),
        facts in arb_facts(), now in any::<i64>(), margin in any::<i64>(),
    ) {
        let variables = if named {
            Variables::named(vars.iter().map(|v| (v.clone(), v.clone())))
        } else {
            Variables::positional(vars)
        };
        let mut facts = facts;
        if let Ok(body) = TemplateBody::parse(&body) {
            facts.template = Some(TemplateFacts { category: Category::Utility, status: TemplateStatus::approved(), body });
        }
        let req = SendRequest::new(&from, &to, Content::template("t", "en", variables));
        let d = decide(&req, &facts, Timestamp::from_millis(now), &PolicyConfig { margin_ms: margin });
        prop_assert_eq!(d.verdict, d.reason.verdict());
        if Address::parse(&from).is_err() || Address::parse(&to).is_err() {
            prop_assert_eq!(d.reason, Reason::InvalidAddress);
        }
    }

    /// R1: a parsed address is normalised: parsing it again gives itself.
    #[test]
    fn address_normalisation_is_stable(s in "(whatsapp:)?\\+[0-9 ().-]{0,20}|.{0,20}") {
        if let Ok(a) = Address::parse(&s) {
            prop_assert_eq!(Address::parse(a.as_str()).unwrap(), a.clone());
            let digits = &a.as_str()["whatsapp:+".len()..];
            prop_assert!((7..=15).contains(&digits.len()));
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'));
        }
    }

    /// R5: parsing any body never panics, and a parsed body renders with
    /// values for exactly its keys.
    #[test]
    fn template_bodies_parse_or_name_the_problem(body in "([a-z ]|\\{\\{|\\}\\}|[0-9]|_){0,40}") {
        match TemplateBody::parse(&body) {
            Ok(b) => {
                let vars = Variables::named(b.keys().into_iter().map(|k| (k, "v".to_owned())));
                prop_assert!(b.render(&vars).is_ok());
            }
            Err(e) => prop_assert!(e.to_string().contains("template")),
        }
    }
}

// Gate-level properties: the same invariants through SQLite.

#[derive(Clone, Debug)]
struct In {
    user: u8,
    sender: u8,
    kind: MessageKind,
    body: &'static str,
    at_min: i64,
    late_min: i64,
    id: u8,
}

fn arb_inbound() -> impl Strategy<Value = In> {
    (
        0u8..2,
        0u8..2,
        prop_oneof![
            Just(MessageKind::Text),
            Just(MessageKind::Media),
            Just(MessageKind::Reaction),
            Just(MessageKind::System),
            Just(MessageKind::Call),
        ],
        prop_oneof![
            Just("hi"),
            Just("STOP"),
            Just("start"),
            Just("yes"),
            Just("help")
        ],
        0i64..(72 * 60),
        0i64..120,
        0u8..12,
    )
        .prop_map(|(user, sender, kind, body, at_min, late_min, id)| In {
            user,
            sender,
            kind,
            body,
            at_min,
            late_min,
            id,
        })
}

fn to_event(i: &In) -> Event {
    Event::Inbound(wagate::InboundMessage {
        id: Some(format!("SM{}", i.id)),
        from: user(i.user),
        user_id: None,
        to: sender(i.sender),
        kind: i.kind,
        body: Some(i.body.to_owned()),
        at: t(i.at_min * MINUTE),
        received_at: Some(t((i.at_min + i.late_min) * MINUTE)),
        referral: None,
    })
}

fn all_checks(gate: &wagate::Gate, now_min: i64) -> Vec<(Verdict, Reason, Option<Timestamp>)> {
    let _ = now_min;
    let b = gate.business("b").unwrap();
    let mut out = Vec::new();
    for u in 0..2 {
        for s in 0..2 {
            let d = b
                .check(&SendRequest::between(
                    sender(s),
                    user(u),
                    Content::text("x"),
                ))
                .unwrap();
            out.push((d.verdict, d.reason, d.facts.window_closes_at));
        }
    }
    out
}

/// Invariants through the store (R2, R3, R6), on the store `$on` with `$cases` cases.
macro_rules! store_properties {
    ($on:expr, $cases:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: $cases, ..ProptestConfig::default() })]

    /// R2/R3 through the store: the order webhooks arrive in does not change
    /// any decision, and duplicates (same id) change nothing.
    #[test]
    fn gate_state_ignores_arrival_order_and_duplicates(
        events in proptest::collection::vec(arb_inbound(), 0..16).prop_shuffle(),
        consents in proptest::collection::vec((0u8..2, any::<bool>(), any::<bool>(), 0i64..72 * 60), 0..6),
        now_min in 0i64..(100 * 60),
    ) {
        // Ids are unique per event here; the duplicate test re-sends the same event.
        let events: Vec<In> = events.into_iter().enumerate().map(|(n, mut e)| { e.id = n as u8; e }).collect();
        let mut evs: Vec<Event> = events.iter().map(to_event).collect();
        evs.extend(consents.iter().map(|&(u, opt_in, all, at)| consent(
            &user(u),
            if opt_in { Action::OptIn } else { Action::OptOut },
            if all { Scope::All } else { Scope::Marketing },
            at * MINUTE,
        )));
        let (g1, c1, _keep_g1) = open($on);
        let (g2, c2, _keep_g2) = open($on);
        c1.set(t(now_min * MINUTE));
        c2.set(t(now_min * MINUTE));
        let b1 = g1.business("b").unwrap();
        let b2 = g2.business("b").unwrap();
        for e in &evs {
            b1.ingest(e).unwrap();
        }
        for e in evs.iter().rev() {
            b2.ingest(e).unwrap();
            // A duplicate delivery of an inbound is ignored.
            if matches!(e, Event::Inbound(_)) {
                prop_assert!(b2.ingest(e).unwrap().duplicate);
            }
        }
        prop_assert_eq!(all_checks(&g1, now_min), all_checks(&g2, now_min));
    }

    /// R2: the window never moves backwards, whatever arrives late.
    #[test]
    fn window_never_moves_back(
        events in proptest::collection::vec(arb_inbound(), 1..16),
    ) {
        let (g, c, _keep_g) = open($on);
        c.set(t(200 * HOUR));
        let b = g.business("b").unwrap();
        let mut before = all_checks(&g, 0);
        for (n, mut e) in events.into_iter().enumerate() {
            e.id = n as u8;
            b.ingest(&to_event(&e)).unwrap();
            let after = all_checks(&g, 0);
            for (x, y) in before.iter().zip(&after) {
                prop_assert!(y.2 >= x.2, "window moved back: {:?} -> {:?}", x.2, y.2);
            }
            before = after;
        }
    }

    /// R2 through the store: an allowed freeform always has a window-opening
    /// inbound within 24h of now.
    #[test]
    fn gate_freeform_needs_a_recent_opening_inbound(
        events in proptest::collection::vec(arb_inbound(), 0..12),
        now_min in 0i64..(100 * 60),
    ) {
        let (g, c, _keep_g) = open($on);
        c.set(t(now_min * MINUTE));
        let b = g.business("b").unwrap();
        let events: Vec<In> = events.into_iter().enumerate().map(|(n, mut e)| { e.id = n as u8; e }).collect();
        for e in &events {
            b.ingest(&to_event(e)).unwrap();
        }
        for u in 0..2 {
            for s in 0..2 {
                let d = b.check(&SendRequest::between(sender(s), user(u), Content::text("x"))).unwrap();
                if d.is_allowed() {
                    let ok = events.iter().any(|e| {
                        e.user == u && e.sender == s && e.kind.opens_window()
                            && now_min * MINUTE < e.at_min * MINUTE + WINDOW_MS
                    });
                    prop_assert!(ok, "freeform allowed without a recent inbound");
                }
            }
        }
    }

    /// R6 through the store: after one opt-out, at most one confirmation
    /// ever reaches the transport, however many are tried.
    #[test]
    fn one_confirmation_per_opt_out(tries in proptest::collection::vec(0i64..10 * MINUTE, 1..8)) {
        let (g, c, _keep_g) = open($on);
        let b = g.business("b").unwrap();
        b.ingest(&inbound(&user(0), &sender(0), MessageKind::Text, "STOP", 0, "SM1")).unwrap();
        let transport = wagate::transport::RecordingTransport::new();
        let mut tries = tries;
        tries.sort_unstable();
        for (n, at) in tries.iter().enumerate() {
            c.set(t(*at));
            let req = SendRequest::between(sender(n as u8 % 2), user(0), Content::text("unsubscribed"))
                .with_purpose(Purpose::OptOutConfirmation);
            let out = b.send(&req, &format!("k{n}"), &transport).unwrap();
            if out.sent() {
                prop_assert!(*at < 5 * MINUTE);
            }
        }
        prop_assert!(transport.sent().len() <= 1);
        prop_assert_eq!(transport.sent().len(), usize::from(tries[0] < 5 * MINUTE));
    }
        }
    };
}

mod store_properties_on_sqlite {
    use super::*;
    store_properties!(On::Sqlite, 64);
}

#[cfg(feature = "postgres")]
mod store_properties_on_postgres {
    use super::*;
    store_properties!(On::Postgres, 12);
}

// RULES R8: people. Addresses 0 and 1 are phones, 2 and 3 business-scoped
// ids; a link is an inbound message (a reaction: it opens no window and
// says no keyword) carrying a phone and a BSUID.

fn person_address(a: u8) -> Address {
    if a < 2 {
        user(a)
    } else {
        Address::from_bsuid(&format!("US.{a}")).unwrap()
    }
}

fn link_event(phone: u8, bsuid: u8, at_min: i64, id: &str) -> Event {
    Event::Inbound(wagate::InboundMessage {
        id: Some(id.to_owned()),
        from: user(phone),
        user_id: Some(person_address(bsuid)),
        to: sender(0),
        kind: MessageKind::Reaction,
        body: None,
        at: t(at_min * MINUTE),
        received_at: Some(t(at_min * MINUTE)),
        referral: None,
    })
}

/// An inbound or a consent event under address `a`.
fn event_under(a: u8, e: &In, consent_of: Option<(bool, bool)>) -> Event {
    match consent_of {
        Some((opt_in, all)) => Event::Consent(wagate::ConsentEvent {
            user: person_address(a),
            action: if opt_in {
                Action::OptIn
            } else {
                Action::OptOut
            },
            scope: if all { Scope::All } else { Scope::Marketing },
            at: t(e.at_min * MINUTE),
            received_at: Some(t((e.at_min + e.late_min) * MINUTE)),
            source: "prop".into(),
            evidence: None,
            conditional: false,
        }),
        None => match to_event(e) {
            Event::Inbound(m) => Event::Inbound(wagate::InboundMessage {
                from: person_address(a),
                ..m
            }),
            other => other,
        },
    }
}

/// Every decision about every address (freeform and a marketing and a
/// utility template, both senders, with and without the confirmation
/// purpose).
fn person_checks(gate: &wagate::Gate) -> Vec<(u8, Verdict, Reason)> {
    let b = gate.business("b").unwrap();
    let mut out = Vec::new();
    for a in 0..4 {
        for s in 0..2 {
            for content in [
                Content::text("x"),
                Content::template("promo", "en", Variables::none()),
                Content::template("info", "en", Variables::none()),
            ] {
                for confirm in [false, true] {
                    let mut req =
                        SendRequest::between(sender(s), person_address(a), content.clone());
                    if confirm {
                        req = req.with_purpose(Purpose::OptOutConfirmation);
                    }
                    let d = b.check(&req).unwrap();
                    out.push((a, d.verdict, d.reason));
                }
            }
        }
    }
    out
}

fn templates_for_people(b: &wagate::Business) {
    for (name, category) in [("promo", Category::Marketing), ("info", Category::Utility)] {
        b.ingest(&Event::Template(wagate::TemplateRecord {
            name: name.into(),
            language: "en".into(),
            category,
            status: TemplateStatus::approved(),
            body: TemplateBody::parse("Hello").unwrap(),
            at: t(0),
            received_at: Some(t(0)),
            twilio_content_sid: None,
            meta_template_id: None,
        }))
        .unwrap();
    }
}

fn arb_person_event() -> impl Strategy<Value = (u8, In, Option<(bool, bool)>)> {
    (
        0u8..4,
        arb_inbound(),
        proptest::option::of((any::<bool>(), any::<bool>())),
    )
}

/// People (R8) through the store, on the store `$on` with `$cases` cases.
macro_rules! people_properties {
    ($on:expr, $cases:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: $cases, ..ProptestConfig::default() })]

    /// R8: events and links arriving in any order give the same decisions
    /// for every address, once everything has arrived.
    #[test]
    fn linking_in_any_order_gives_the_same_decisions(
        events in proptest::collection::vec(arb_person_event(), 0..14),
        links in proptest::collection::vec((0u8..2, 2u8..4, 0i64..72 * 60), 0..4),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        now_min in 0i64..(100 * 60),
    ) {
        let mut evs: Vec<Event> = events
            .iter()
            .enumerate()
            .map(|(n, (a, e, c))| {
                let mut e = e.clone();
                e.id = n as u8;
                event_under(*a, &e, *c)
            })
            .collect();
        evs.extend(links.iter().enumerate().map(|(n, &(p, b, at))| link_event(p, b, at, &format!("L{n}"))));
        // A shuffled copy: a simple deterministic permutation from `order`.
        let mut shuffled = evs.clone();
        let mut x = order | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let run = |list: &[Event]| {
            let (g, c, _keep_g) = open($on);
            c.set(t(now_min * MINUTE));
            let b = g.business("b").unwrap();
            templates_for_people(&b);
            for e in list {
                b.ingest(e).unwrap();
            }
            person_checks(&g)
        };
        prop_assert_eq!(run(&evs), run(&shuffled));
    }

    /// R8: splitting one person's events over linked addresses never
    /// changes a decision: the same events all under one phone, or spread
    /// over that phone and a BSUID linked to it, decide alike for both.
    #[test]
    fn splitting_a_persons_events_over_linked_addresses_changes_nothing(
        events in proptest::collection::vec((any::<bool>(), arb_inbound(), proptest::option::of((any::<bool>(), any::<bool>()))), 0..14),
        link_at in 0i64..72 * 60,
        now_min in 0i64..(100 * 60),
    ) {
        let run = |split: bool| {
            let (g, c, _keep_g) = open($on);
            c.set(t(now_min * MINUTE));
            let b = g.business("b").unwrap();
            templates_for_people(&b);
            b.ingest(&link_event(0, 2, link_at, "L")).unwrap();
            for (n, (to_bsuid, e, c)) in events.iter().enumerate() {
                let mut e = e.clone();
                e.id = n as u8;
                let a = if split && *to_bsuid { 2 } else { 0 };
                b.ingest(&event_under(a, &e, *c)).unwrap();
            }
            let b = g.business("b").unwrap();
            let mut out = Vec::new();
            for a in [0u8, 2] {
                for s in 0..2 {
                    for content in [Content::text("x"), Content::template("promo", "en", Variables::none()), Content::template("info", "en", Variables::none())] {
                        let d = b.check(&SendRequest::between(sender(s), person_address(a), content)).unwrap();
                        out.push((d.verdict, d.reason, d.facts.window_closes_at));
                    }
                }
            }
            out
        };
        let together = run(false);
        // Both addresses of the person answer alike.
        prop_assert_eq!(&together[..6], &together[6..]);
        prop_assert_eq!(together, run(true));
    }
        }
    };
}

mod people_properties_on_sqlite {
    use super::*;
    people_properties!(On::Sqlite, 48);
}

#[cfg(feature = "postgres")]
mod people_properties_on_postgres {
    use super::*;
    people_properties!(On::Postgres, 10);
}
