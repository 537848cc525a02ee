//! Consent state folded from the event history (RULES R3, R4).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::time::Timestamp;

/// Opt in or opt out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The user agreed to receive messages.
    OptIn,
    /// The user withdrew consent.
    OptOut,
}

/// What a consent event covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// All messages.
    All,
    /// Marketing messages only.
    Marketing,
}

/// A consent state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// No event decides it.
    Unknown,
    /// Opted in.
    OptedIn,
    /// Opted out.
    OptedOut,
}

/// A word that is not an action or scope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected {expected}")]
pub struct ParseEnumError {
    /// What was being parsed ("action", "scope", ...).
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// The accepted words.
    pub expected: &'static str,
}

impl Action {
    /// `opt_in` or `opt_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::OptIn => "opt_in",
            Action::OptOut => "opt_out",
        }
    }
}

impl Scope {
    /// `all` or `marketing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Marketing => "marketing",
        }
    }
}

impl FromStr for Action {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "opt_in" => Ok(Action::OptIn),
            "opt_out" => Ok(Action::OptOut),
            _ => Err(ParseEnumError {
                what: "action",
                value: s.to_owned(),
                expected: "opt_in or opt_out",
            }),
        }
    }
}

impl FromStr for Scope {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Scope::All),
            "marketing" => Ok(Scope::Marketing),
            _ => Err(ParseEnumError {
                what: "scope",
                value: s.to_owned(),
                expected: "all or marketing",
            }),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One consent event as the fold sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConsentFact {
    /// Opt in or out.
    pub action: Action,
    /// All messages or marketing only.
    pub scope: Scope,
    /// `min(at, received_at)`.
    pub effective: Timestamp,
    /// An opt-in keyword (START, YES, ...): it counts only if the general
    /// state just before it is opted out (RULES R4).
    pub conditional: bool,
}

/// The consent state of one user, folded from their events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentFold {
    /// The general state (scope `all` events).
    pub general: ConsentState,
    /// Effective time of the events that decide `general`.
    pub general_at: Option<Timestamp>,
    /// The marketing state (all events).
    pub marketing: ConsentState,
    /// Effective time of the events that decide `marketing`.
    pub marketing_at: Option<Timestamp>,
}

/// Folds consent events into the effective state (RULES R3).
///
/// The result does not depend on the order of `events`: "latest" is by
/// effective time, and among events with the same effective time an
/// opt-out wins. A conditional opt-in counts only when the general state
/// folded from events with a strictly earlier effective time is opted out.
///
/// ```
/// use wagate::policy::{fold, Action, ConsentFact, ConsentState, Scope};
/// use wagate::Timestamp;
/// let ev = |action, t, conditional| ConsentFact {
///     action, scope: Scope::All, effective: Timestamp::from_millis(t), conditional,
/// };
/// // "YES" from someone who never opted out changes nothing.
/// assert_eq!(fold(&[ev(Action::OptIn, 5, true)]).general, ConsentState::Unknown);
/// // STOP then START: opted in again.
/// let f = fold(&[ev(Action::OptIn, 9, true), ev(Action::OptOut, 3, false)]);
/// assert_eq!(f.general, ConsentState::OptedIn);
/// ```
pub fn fold(events: &[ConsentFact]) -> ConsentFold {
    fold_with(events, |_, _| {})
}

/// Like [`fold`], and also tells for each event (by its index in `events`)
/// whether it took part in the state: a conditional opt-in that found the
/// user not opted out did not.
pub fn fold_applied(events: &[ConsentFact]) -> (ConsentFold, Vec<bool>) {
    let mut applied = vec![true; events.len()];
    let f = fold_with(events, |i, ok| {
        if let Some(a) = applied.get_mut(i) {
            *a = ok;
        }
    });
    (f, applied)
}

fn fold_with(events: &[ConsentFact], mut note: impl FnMut(usize, bool)) -> ConsentFold {
    let mut sorted: Vec<(usize, ConsentFact)> = events.iter().copied().enumerate().collect();
    sorted.sort_unstable_by_key(|(_, e)| e.effective);
    let mut out = ConsentFold {
        general: ConsentState::Unknown,
        general_at: None,
        marketing: ConsentState::Unknown,
        marketing_at: None,
    };
    for group in sorted.chunk_by(|(_, a), (_, b)| a.effective == b.effective) {
        let before = out.general;
        let (mut all_out, mut all_in, mut mkt_out, mut mkt_in) = (false, false, false, false);
        let mut t = None;
        for (i, e) in group {
            t = Some(e.effective);
            match (e.action, e.scope) {
                (Action::OptOut, Scope::All) => all_out = true,
                (Action::OptIn, Scope::All) => {
                    let ok = !e.conditional || before == ConsentState::OptedOut;
                    note(*i, ok);
                    all_in |= ok;
                }
                (Action::OptOut, Scope::Marketing) => mkt_out = true,
                (Action::OptIn, Scope::Marketing) => mkt_in = true,
            }
        }
        if all_out || all_in {
            out.general = if all_out {
                ConsentState::OptedOut
            } else {
                ConsentState::OptedIn
            };
            out.general_at = t;
        }
        if all_out || mkt_out || all_in || mkt_in {
            out.marketing = if all_out || mkt_out {
                ConsentState::OptedOut
            } else {
                ConsentState::OptedIn
            };
            out.marketing_at = t;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: Action, scope: Scope, t: i64, conditional: bool) -> ConsentFact {
        ConsentFact {
            action,
            scope,
            effective: Timestamp::from_millis(t),
            conditional,
        }
    }

    #[test]
    fn opt_out_wins_ties() {
        let f = fold(&[
            ev(Action::OptIn, Scope::All, 5, false),
            ev(Action::OptOut, Scope::All, 5, false),
        ]);
        assert_eq!(f.general, ConsentState::OptedOut);
        assert_eq!(f.general_at, Some(Timestamp::from_millis(5)));
    }

    #[test]
    fn marketing_is_separate_but_follows_all() {
        let f = fold(&[
            ev(Action::OptIn, Scope::All, 1, false),
            ev(Action::OptOut, Scope::Marketing, 2, false),
        ]);
        assert_eq!(
            (f.general, f.marketing),
            (ConsentState::OptedIn, ConsentState::OptedOut)
        );
        let f = fold(&[
            ev(Action::OptOut, Scope::Marketing, 2, false),
            ev(Action::OptIn, Scope::All, 3, false),
        ]);
        assert_eq!(f.marketing, ConsentState::OptedIn);
        let f = fold(&[ev(Action::OptIn, Scope::Marketing, 2, false)]);
        assert_eq!(
            (f.general, f.marketing),
            (ConsentState::Unknown, ConsentState::OptedIn)
        );
    }

    #[test]
    fn conditional_opt_in_reads_strictly_earlier_state() {
        // START at the same instant as STOP does not see the STOP.
        let (f, applied) = fold_applied(&[
            ev(Action::OptOut, Scope::All, 5, false),
            ev(Action::OptIn, Scope::All, 5, true),
        ]);
        assert_eq!(f.general, ConsentState::OptedOut);
        assert_eq!(applied, vec![true, false]);
        // A late STOP that lands before a YES makes the YES count.
        let f = fold(&[
            ev(Action::OptIn, Scope::All, 1, false),
            ev(Action::OptIn, Scope::All, 9, true),
            ev(Action::OptOut, Scope::All, 4, false),
        ]);
        assert_eq!(f.general, ConsentState::OptedIn);
        assert_eq!(f.general_at, Some(Timestamp::from_millis(9)));
        // A second YES after a counted START is ordinary.
        let (_, applied) = fold_applied(&[
            ev(Action::OptOut, Scope::All, 1, false),
            ev(Action::OptIn, Scope::All, 2, true),
            ev(Action::OptIn, Scope::All, 3, true),
        ]);
        assert_eq!(applied, vec![true, true, false]);
    }

    #[test]
    fn actions_and_scopes_print_as_the_words_they_parse_from() {
        for a in [Action::OptIn, Action::OptOut] {
            assert_eq!(a.to_string(), a.as_str());
            assert_eq!(a.to_string().parse::<Action>(), Ok(a));
        }
        for s in [Scope::All, Scope::Marketing] {
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(s.to_string().parse::<Scope>(), Ok(s));
        }
        assert_eq!(
            format!("{} {}", Action::OptOut, Scope::Marketing),
            "opt_out marketing"
        );
    }
}
