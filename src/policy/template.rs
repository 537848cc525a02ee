//! Templates: category, status, placeholders and variables (RULES R5).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// A template category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Promotions and offers: needs marketing consent.
    Marketing,
    /// Updates about an existing transaction.
    Utility,
    /// One-time passcodes.
    Authentication,
}

impl Category {
    /// Parses a category, ignoring case (Meta sends `MARKETING`).
    ///
    /// # Errors
    /// [`TemplateError::Category`] for anything but the three categories.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        match s.to_ascii_lowercase().as_str() {
            "marketing" => Ok(Category::Marketing),
            "utility" => Ok(Category::Utility),
            "authentication" => Ok(Category::Authentication),
            _ => Err(TemplateError::Category(s.to_owned())),
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "marketing",
            Category::Utility => "utility",
            Category::Authentication => "authentication",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A template status, lower case. Providers add statuses over time, so any
/// non-empty word is kept; only `approved` may be sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TemplateStatus(String);

impl TemplateStatus {
    /// The one status that may be sent.
    pub fn approved() -> Self {
        TemplateStatus("approved".to_owned())
    }

    /// Parses a status, ignoring case (`APPROVED` = `approved`).
    ///
    /// # Errors
    /// [`TemplateError::Status`] for an empty or non-word status.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let t = s.trim().to_ascii_lowercase();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(TemplateError::Status(s.to_owned()));
        }
        Ok(TemplateStatus(t))
    }

    /// Whether a template in this status may be sent.
    pub fn is_approved(&self) -> bool {
        self.0 == "approved"
    }

    /// The lower-case word.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a template record or body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Not marketing, utility or authentication.
    #[error("unknown template category {0:?}: expected marketing, utility or authentication")]
    Category(String),
    /// An empty or malformed status word.
    #[error("bad template status {0:?}: expected a word such as approved or paused")]
    Status(String),
    /// Something between `{{` and `}}` is not a placeholder.
    #[error(
        "malformed template body: {{{{{0}}}}} is not a placeholder (use {{{{1}}}} or {{{{name}}}})"
    )]
    BadPlaceholder(String),
    /// Positional and named placeholders in one body.
    #[error("malformed template body: positional and named placeholders are mixed")]
    MixedPlaceholders,
    /// A positional placeholder with a leading zero.
    #[error("malformed template body: {{{{{0}}}}} has a leading zero")]
    LeadingZero(String),
    /// Positional placeholders are not exactly 1..n.
    #[error(
        "malformed template body: positional placeholders must be 1..{max} without gaps; {missing} is missing"
    )]
    Gap {
        /// The largest number present.
        max: u64,
        /// The first number missing.
        missing: u64,
    },
    /// `{{0}}`: positional placeholders count from 1.
    #[error(
        "malformed template body: {{{{0}}}} is not a placeholder; positional placeholders count from 1"
    )]
    Zero,
    /// A positional number too large to be 1..n of any body.
    #[error("malformed template body: {{{{{0}}}}} is too large for a positional placeholder")]
    TooLarge(String),
    /// An empty template name or language.
    #[error("template {0} must not be empty")]
    Empty(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    None,
    Positional(u64),
    Named(BTreeSet<String>),
}

/// A template body with its placeholders parsed. Only a well-formed body
/// can be built.
///
/// ```
/// use wagate::policy::{TemplateBody, Variables};
/// let b = TemplateBody::parse("Order {{1}} ships {{2}}.")?;
/// assert_eq!(b.render(&Variables::positional(["A-1", "today"])).unwrap(), "Order A-1 ships today.");
/// assert!(TemplateBody::parse("Hi {{ 1 }}").is_err());
/// assert!(TemplateBody::parse("{{1}} and {{3}}").is_err());
/// # Ok::<(), wagate::policy::TemplateError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateBody {
    text: String,
    spans: Vec<(Range<usize>, String)>,
    kind: Kind,
}

impl TemplateBody {
    /// Parses a body as R5 says: each `{{` and the nearest `}}` after it
    /// enclose one placeholder; a `{{` with no `}}` after it is plain text.
    ///
    /// # Errors
    /// A [`TemplateError`] naming the malformed placeholder.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut spans = Vec::new();
        let mut pos = 0;
        let mut numbers = BTreeSet::new();
        let mut names = BTreeSet::new();
        while let Some(open) = text[pos..].find("{{").map(|i| pos + i) {
            let Some(close) = text[open + 2..].find("}}").map(|i| open + 2 + i) else {
                break;
            };
            let inner = &text[open + 2..close];
            if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                if inner.len() > 1 && inner.starts_with('0') {
                    return Err(TemplateError::LeadingZero(inner.to_owned()));
                }
                let n = inner
                    .parse::<u64>()
                    .map_err(|_| TemplateError::TooLarge(inner.to_owned()))?;
                numbers.insert(n);
            } else if is_name(inner) {
                names.insert(inner.to_owned());
            } else {
                return Err(TemplateError::BadPlaceholder(inner.to_owned()));
            }
            spans.push((open..close + 2, inner.to_owned()));
            pos = close + 2;
        }
        let kind = match (numbers.is_empty(), names.is_empty()) {
            (true, true) => Kind::None,
            (false, false) => return Err(TemplateError::MixedPlaceholders),
            (false, true) => {
                if numbers.contains(&0) {
                    return Err(TemplateError::Zero);
                }
                let max = numbers.last().copied().unwrap_or(0);
                let missing = (1..=max).find(|i| !numbers.contains(i));
                if missing.is_some() {
                    return Err(TemplateError::Gap {
                        max,
                        missing: missing.unwrap_or(1),
                    });
                }
                Kind::Positional(max)
            }
            (true, false) => Kind::Named(names),
        };
        Ok(TemplateBody {
            text: text.to_owned(),
            spans,
            kind,
        })
    }

    /// The body as registered.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The placeholder keys, in order: `"1".."n"` or the names.
    pub fn keys(&self) -> Vec<String> {
        match &self.kind {
            Kind::None => Vec::new(),
            Kind::Positional(n) => (1..=*n).map(|i| i.to_string()).collect(),
            Kind::Named(names) => names.iter().cloned().collect(),
        }
    }

    /// Checks `vars` against the placeholders (R5) and renders the body.
    ///
    /// # Errors
    /// A [`VariableProblem`] saying what is wrong.
    pub fn render(&self, vars: &Variables) -> Result<String, VariableProblem> {
        let given = vars.keyed()?;
        let wanted = self.keys();
        for k in &wanted {
            if !given.contains_key(k.as_str()) {
                return Err(VariableProblem::Missing(k.clone()));
            }
        }
        if given.len() != wanted.len() {
            let extra = given
                .keys()
                .find(|k| !wanted.iter().any(|w| w == *k))
                .map(|k| (*k).to_owned())
                .unwrap_or_default();
            return Err(VariableProblem::Extra(extra));
        }
        for (k, v) in &given {
            check_value(k, v)?;
        }
        let mut out = String::with_capacity(self.text.len());
        let mut last = 0;
        for (range, key) in &self.spans {
            out.push_str(&self.text[last..range.start]);
            out.push_str(given.get(key.as_str()).copied().unwrap_or_default());
            last = range.end;
        }
        out.push_str(&self.text[last..]);
        let chars = out.chars().count();
        if chars > MAX_RENDERED_CHARS {
            return Err(VariableProblem::TooLong(chars));
        }
        Ok(out)
    }
}

/// The longest rendered body WhatsApp accepts, in Unicode code points.
pub const MAX_RENDERED_CHARS: usize = 1024;

fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn check_value(key: &str, v: &str) -> Result<(), VariableProblem> {
    if v.trim().is_empty() {
        return Err(VariableProblem::Empty(key.to_owned()));
    }
    if v.chars().any(|c| {
        matches!(
            c,
            '\n' | '\r' | '\t' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    }) {
        return Err(VariableProblem::LineBreak(key.to_owned()));
    }
    if v.contains("     ") {
        return Err(VariableProblem::Spaces(key.to_owned()));
    }
    Ok(())
}

/// Why variables do not fit a template (reason `template_variables`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "problem", content = "variable")]
#[non_exhaustive]
pub enum VariableProblem {
    /// The variables were neither a list nor an object of strings.
    #[error("variables must be a list of strings or an object of strings: {0}")]
    Shape(String),
    /// A placeholder has no value.
    #[error("variable {0:?} is missing")]
    Missing(String),
    /// A value has no placeholder.
    #[error("variable {0:?} is not in the template")]
    Extra(String),
    /// A value that is empty or only whitespace.
    #[error("variable {0:?} is empty")]
    Empty(String),
    /// A value with a line break or tab.
    #[error("variable {0:?} contains a line break or tab")]
    LineBreak(String),
    /// A value with more than four spaces in a row.
    #[error("variable {0:?} contains more than 4 spaces in a row")]
    Spaces(String),
    /// The rendered body is longer than 1024 characters.
    #[error("rendered body has {0} characters, more than 1024")]
    TooLong(usize),
}

/// Values for a template's placeholders.
///
/// ```
/// use wagate::policy::Variables;
/// let v = Variables::from_json(&serde_json::json!({"1": "A-17"}));
/// assert_eq!(v, Variables::positional(["A-17"]));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Variables(Repr, Shape);

/// How variables were given: equal values given as a list and as an
/// object are equal [`Variables`], but not the same request (RULES R7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Shape {
    #[default]
    Absent,
    List,
    Object,
}

impl PartialEq for Variables {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Variables {}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
enum Repr {
    #[default]
    None,
    Map(BTreeMap<String, String>),
    Malformed(String),
}

impl Variables {
    /// No variables.
    pub fn none() -> Self {
        Variables(Repr::None, Shape::Absent)
    }

    /// How the values were given, `absent`, `list`, `object` or
    /// `malformed`, and what
    /// they are: the form a request is compared in when an idempotency key
    /// comes back (`["x"]` and `{"1": "x"}` are different requests).
    pub fn as_given(&self) -> (&'static str, Vec<(&str, &str)>) {
        let shape = match (&self.0, self.1) {
            (Repr::Malformed(_), _) => "malformed",
            (_, Shape::Absent) => "absent",
            (_, Shape::List) => "list",
            (_, Shape::Object) => "object",
        };
        let values = match &self.0 {
            Repr::None => Vec::new(),
            Repr::Map(m) => m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            Repr::Malformed(what) => vec![("malformed", what.as_str())],
        };
        (shape, values)
    }

    /// Positional values: the i-th fills `{{i}}` (counting from 1).
    pub fn positional<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Variables(
            Repr::Map(
                values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| ((i + 1).to_string(), v.into()))
                    .collect(),
            ),
            Shape::List,
        )
    }

    /// Values by key: names for `{{name}}`, or `"1"`, `"2"`, ... for
    /// positional placeholders (Twilio's ContentVariables).
    pub fn named<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Variables(
            Repr::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            Shape::Object,
        )
    }

    /// From JSON as the scenario format and Twilio's ContentVariables carry
    /// them: `null` (none), an array of strings, or an object of strings.
    /// Any other shape is kept as malformed and never fits a template.
    pub fn from_json(v: &serde_json::Value) -> Self {
        use serde_json::Value;
        let bad = |what: &str| Variables(Repr::Malformed(what.to_owned()), Shape::Object);
        match v {
            Value::Null => Variables::none(),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => out.push(s.to_owned()),
                        None => return bad(&format!("item {} is not a string", i + 1)),
                    }
                }
                Variables::positional(out)
            }
            Value::Object(map) => {
                let mut out = BTreeMap::new();
                for (k, item) in map {
                    match item.as_str() {
                        Some(s) => out.insert(k.clone(), s.to_owned()),
                        None => return bad(&format!("{k:?} is not a string")),
                    };
                }
                Variables(Repr::Map(out), Shape::Object)
            }
            _ => bad("neither a list nor an object"),
        }
    }

    /// The values as a JSON object keyed by placeholder (Twilio's
    /// ContentVariables), or `None` for malformed variables.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        match &self.0 {
            Repr::None => Some(serde_json::Value::Object(Default::default())),
            Repr::Map(m) => serde_json::to_value(m).ok(),
            Repr::Malformed(_) => None,
        }
    }

    fn keyed(&self) -> Result<BTreeMap<&str, &str>, VariableProblem> {
        match &self.0 {
            Repr::None => Ok(BTreeMap::new()),
            Repr::Map(m) => Ok(m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
            Repr::Malformed(why) => Err(VariableProblem::Shape(why.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_grammar() {
        assert!(TemplateBody::parse("no placeholders, {{ unclosed").is_ok());
        assert!(TemplateBody::parse("{{2}} {{1}} {{2}}").is_ok());
        assert!(TemplateBody::parse("{{_x1}} {{first_name}}").is_ok());
        assert!(TemplateBody::parse("{{1}}}").is_ok());
        for bad in [
            "{{ 1 }}",
            "{{{1}}}",
            "{{}}",
            "{{First}}",
            "{{1x}}",
            "{{01}}",
            "{{0}}",
            "{{2}}",
            "{{1}} {{name}}",
            "{{a b}}",
            "{{99999999999999999999999}}",
        ] {
            assert!(TemplateBody::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variable_rules() {
        let b = TemplateBody::parse("Hi {{name}}").unwrap();
        assert_eq!(
            b.render(&Variables::named([("name", "Ana")])).unwrap(),
            "Hi Ana"
        );
        let bad = |v: &str| b.render(&Variables::named([("name", v)])).unwrap_err();
        assert_eq!(bad(" \u{3000}"), VariableProblem::Empty("name".into()));
        assert_eq!(bad("a\u{2028}b"), VariableProblem::LineBreak("name".into()));
        assert_eq!(bad("a     b"), VariableProblem::Spaces("name".into()));
        assert!(b.render(&Variables::named([("name", "a    b")])).is_ok());
        assert_eq!(
            b.render(&Variables::none()).unwrap_err(),
            VariableProblem::Missing("name".into())
        );
        assert_eq!(
            b.render(&Variables::named([("name", "x"), ("y", "z")]))
                .unwrap_err(),
            VariableProblem::Extra("y".into())
        );
        let long = "x".repeat(1021);
        assert!(
            b.render(&Variables::named([("name", long.as_str())]))
                .is_ok()
        );
        let long = "é".repeat(1022);
        assert_eq!(
            b.render(&Variables::named([("name", long.as_str())]))
                .unwrap_err(),
            VariableProblem::TooLong(1025)
        );
        let none = TemplateBody::parse("plain").unwrap();
        assert!(none.render(&Variables::none()).is_ok());
        assert!(
            none.render(&Variables::positional(Vec::<String>::new()))
                .is_ok()
        );
        assert!(
            none.render(&Variables::from_json(&serde_json::json!(5)))
                .is_err()
        );
    }

    #[test]
    fn positional_errors_say_which_rule_is_broken() {
        assert_eq!(TemplateBody::parse("Code {{0}}"), Err(TemplateError::Zero));
        assert_eq!(
            TemplateBody::parse("Code {{01}}"),
            Err(TemplateError::LeadingZero("01".into()))
        );
        // Ten placeholders: {{10}} has two digits and is no leading zero.
        let ten: String = (1..=10).map(|i| format!("{{{{{i}}}}} ")).collect();
        let b = TemplateBody::parse(&ten).unwrap();
        assert_eq!(b.keys().last().map(String::as_str), Some("10"));
    }

    #[test]
    fn statuses_are_words_of_letters_and_underscores() {
        assert_eq!(
            TemplateStatus::parse(" PENDING_DELETION ")
                .unwrap()
                .as_str(),
            "pending_deletion"
        );
        for bad in ["", "  ", "in review", "paused!", "v2"] {
            assert_eq!(
                TemplateStatus::parse(bad),
                Err(TemplateError::Status(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn categories_and_statuses_print_as_they_parse() {
        for c in [
            Category::Marketing,
            Category::Utility,
            Category::Authentication,
        ] {
            assert_eq!(c.to_string(), c.as_str());
            assert_eq!(Category::parse(&c.to_string()), Ok(c));
        }
        let paused = TemplateStatus::parse("PAUSED").unwrap();
        assert_eq!(paused.to_string(), "paused");
        assert_eq!(TemplateStatus::approved().to_string(), "approved");
    }

    #[test]
    fn variables_compare_by_their_values() {
        let list = Variables::positional(["A-17"]);
        assert_eq!(list, Variables::named([("1", "A-17")]));
        assert_eq!(
            list,
            Variables::from_json(&serde_json::json!({"1": "A-17"}))
        );
        assert_ne!(list, Variables::positional(["A-18"]));
        assert_ne!(list, Variables::none());
    }

    #[test]
    fn json_null_is_no_variables() {
        let v = Variables::from_json(&serde_json::Value::Null);
        assert_eq!(v, Variables::none());
        assert_eq!(v.as_given(), ("absent", vec![]));
        let plain = TemplateBody::parse("plain").unwrap();
        assert_eq!(plain.render(&v), Ok("plain".to_owned()));
    }
}
