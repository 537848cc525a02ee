//! Reason codes and verdicts as users read them (RULES R6): each code
//! prints and parses as written in RULES, comes with its verdict, and has
//! its own sentence; purposes round-trip as text.

use wagate::{Purpose, Reason, Verdict};

const REASONS: [(&str, Verdict); 12] = [
    ("invalid_address", Verdict::Deny),
    ("opt_out_confirmation", Verdict::Allow),
    ("opted_out", Verdict::Deny),
    ("window_open", Verdict::Allow),
    ("window_closed", Verdict::TemplateRequired),
    ("no_window", Verdict::TemplateRequired),
    ("no_opt_in", Verdict::Deny),
    ("template_unknown", Verdict::Deny),
    ("template_not_approved", Verdict::Deny),
    ("template_variables", Verdict::Deny),
    ("marketing_opted_out", Verdict::Deny),
    ("opted_in", Verdict::Allow),
];

#[test]
fn every_reason_code_parses_prints_and_has_its_verdict() {
    let mut sentences = std::collections::BTreeSet::new();
    for (code, verdict) in REASONS {
        let r = Reason::parse(code).unwrap();
        assert_eq!(r.as_str(), code);
        assert_eq!(r.to_string(), code);
        assert_eq!(r.verdict(), verdict, "{code}");
        let sentence = r.describe();
        assert!(sentence.len() > 20, "{code}: {sentence:?}");
        assert!(sentences.insert(sentence), "{code} shares its sentence");
    }
    assert_eq!(Reason::parse("Window_Open"), None);
    assert_eq!(Reason::parse(""), None);
}

#[test]
fn verdicts_print_as_rules_writes_them() {
    for (v, s) in [
        (Verdict::Allow, "allow"),
        (Verdict::TemplateRequired, "template_required"),
        (Verdict::Deny, "deny"),
    ] {
        assert_eq!(v.as_str(), s);
        assert_eq!(v.to_string(), s);
    }
}

#[test]
fn purposes_round_trip_as_text() {
    assert_eq!(
        Purpose::parse("opt_out_confirmation"),
        Purpose::OptOutConfirmation
    );
    assert_eq!(Purpose::OptOutConfirmation.as_str(), "opt_out_confirmation");
    let other = Purpose::parse("order_update");
    assert_eq!(other, Purpose::Other("order_update".into()));
    assert_eq!(other.as_str(), "order_update");
}
