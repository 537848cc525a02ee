//! Keyword detection in inbound text (RULES R4).

use serde::Serialize;

/// What a keyword asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keyword {
    /// An opt-out keyword (STOP, ...): `opt_out(all)`.
    OptOut,
    /// An opt-in keyword (START, ...): `opt_in(all)`, but only if the user
    /// was opted out just before it.
    OptIn,
    /// A help keyword (HELP, INFO): no state change.
    Help,
}

/// The keyword lists. [`Keywords::default`] holds Twilio's English lists;
/// add words for other languages with [`Keywords::add`].
///
/// ```
/// use wagate::{Keyword, Keywords};
/// let mut k = Keywords::default();
/// k.add(Keyword::OptOut, ["PARAR", "Cancelar"]);
/// assert_eq!(k.classify("  Stop! "), Some(Keyword::OptOut));
/// assert_eq!(k.classify("parar."), Some(Keyword::OptOut));
/// assert_eq!(k.classify("STOP PLEASE"), None);
/// assert_eq!(k.classify("info"), Some(Keyword::Help));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keywords {
    opt_out: Vec<String>,
    opt_in: Vec<String>,
    help: Vec<String>,
}

/// Twilio's default opt-out keywords.
pub const DEFAULT_OPT_OUT: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
/// Twilio's default opt-in keywords.
pub const DEFAULT_OPT_IN: [&str; 3] = ["START", "UNSTOP", "YES"];
/// Twilio's default help keywords.
pub const DEFAULT_HELP: [&str; 2] = ["HELP", "INFO"];

impl Default for Keywords {
    fn default() -> Self {
        let mut k = Keywords::empty();
        k.add(Keyword::OptOut, DEFAULT_OPT_OUT);
        k.add(Keyword::OptIn, DEFAULT_OPT_IN);
        k.add(Keyword::Help, DEFAULT_HELP);
        k
    }
}

impl Keywords {
    /// No keywords at all: every message is an ordinary message.
    pub fn empty() -> Self {
        Keywords {
            opt_out: Vec::new(),
            opt_in: Vec::new(),
            help: Vec::new(),
        }
    }

    /// Adds words to one list. Words are normalised like message bodies, so
    /// `"Stop!"` and `"stop"` are the same keyword; empty words are ignored.
    pub fn add<I, S>(&mut self, kind: Keyword, words: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list = match kind {
            Keyword::OptOut => &mut self.opt_out,
            Keyword::OptIn => &mut self.opt_in,
            Keyword::Help => &mut self.help,
        };
        for w in words {
            let w = normalize(w.as_ref());
            if !w.is_empty() && !list.contains(&w) {
                list.push(w);
            }
        }
    }

    /// The keyword a message body is, if it is one. A word in several lists
    /// counts as opt-out first, then opt-in, then help.
    pub fn classify(&self, body: &str) -> Option<Keyword> {
        let n = normalize(body);
        if self.opt_out.contains(&n) {
            Some(Keyword::OptOut)
        } else if self.opt_in.contains(&n) {
            Some(Keyword::OptIn)
        } else if self.help.contains(&n) {
            Some(Keyword::Help)
        } else {
            None
        }
    }
}

/// Normalises a body as R4 says: trim Unicode whitespace, strip all trailing
/// `.` and `!`, trim again, Unicode lowercase.
///
/// ```
/// assert_eq!(wagate::policy::normalize_keyword("  Stop !.! "), "stop");
/// ```
pub fn normalize(body: &str) -> String {
    body.trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let k = Keywords::default();
        for w in DEFAULT_OPT_OUT {
            assert_eq!(k.classify(w), Some(Keyword::OptOut));
        }
        assert_eq!(k.classify("\u{3000}Unstop!!\n"), Some(Keyword::OptIn));
        assert_eq!(k.classify("stop?"), None);
        assert_eq!(k.classify("st op"), None);
        assert_eq!(k.classify(""), None);
        assert_eq!(Keywords::empty().classify("stop"), None);
    }

    #[test]
    fn empty_and_repeated_words_are_ignored() {
        let mut k = Keywords::empty();
        k.add(Keyword::OptOut, ["", "  ", "!!", "."]);
        assert_eq!(k, Keywords::empty());
        assert_eq!(k.classify(""), None);
        assert_eq!(k.classify(" ! "), None);
        let mut once = Keywords::empty();
        once.add(Keyword::Help, ["AYUDA"]);
        let mut twice = Keywords::empty();
        twice.add(Keyword::Help, ["AYUDA", "ayuda!", " Ayuda "]);
        assert_eq!(twice, once);
    }
}
