//! WhatsApp addresses (RULES R1).
//!
//! An [`Address`] is always valid and normalised: `whatsapp:+` followed by
//! 7 to 15 ASCII digits, the first not `0`. Parsing is the only way to get
//! one.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

const PREFIX: &str = "whatsapp:+";

/// A validated, normalised WhatsApp address, `whatsapp:+<E.164>`.
///
/// ```
/// use wagate::Address;
/// let a = Address::parse("whatsapp:+1 (555) 000-1111")?;
/// assert_eq!(a.as_str(), "whatsapp:+15550001111");
/// assert_eq!(Address::parse("+15550001111")?, a);
/// assert!(Address::parse("sms:+15550001111").is_err());
/// # Ok::<(), wagate::AddressError>(())
/// ```
///
/// The store keeps addresses as text keys. Meta's business-scoped user ids
/// (an opaque id that may replace the phone number in webhooks) can later be
/// stored in the same column under their own prefix without a migration of
/// existing rows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(String);

/// Why a text is not a WhatsApp address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Neither `whatsapp:+` nor a bare `+` starts the text.
    #[error("invalid address {0:?}: must start with \"whatsapp:+\" or \"+\"")]
    Prefix(String),
    /// Something other than a digit (after removing spaces, `-`, `(`, `)`, `.`).
    #[error("invalid address {0:?}: only digits may follow the \"+\"")]
    NotDigits(String),
    /// Fewer than 7 or more than 15 digits.
    #[error("invalid address {0:?}: E.164 numbers have 7 to 15 digits")]
    Length(String),
    /// The number starts with `0`.
    #[error("invalid address {0:?}: E.164 numbers do not start with 0")]
    LeadingZero(String),
}

impl AddressError {
    /// The text that was given.
    pub fn input(&self) -> &str {
        match self {
            AddressError::Prefix(s)
            | AddressError::NotDigits(s)
            | AddressError::Length(s)
            | AddressError::LeadingZero(s) => s,
        }
    }
}

impl Address {
    /// Parses and normalises an address (RULES R1).
    ///
    /// # Errors
    /// An [`AddressError`] naming what is wrong.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let rest = input
            .strip_prefix(PREFIX)
            .or_else(|| input.strip_prefix('+'))
            .ok_or_else(|| AddressError::Prefix(input.to_owned()))?;
        let mut digits = String::with_capacity(PREFIX.len() + 15);
        digits.push_str(PREFIX);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | '(' | ')' | '.' => {}
                c if c.is_whitespace() => {}
                _ => return Err(AddressError::NotDigits(input.to_owned())),
            }
        }
        let n = digits.len() - PREFIX.len();
        if !(7..=15).contains(&n) {
            return Err(AddressError::Length(input.to_owned()));
        }
        if digits.as_bytes().get(PREFIX.len()) == Some(&b'0') {
            return Err(AddressError::LeadingZero(input.to_owned()));
        }
        Ok(Address(digits))
    }

    /// The normalised form, `whatsapp:+<digits>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The E.164 number, `+<digits>`, as Meta's Cloud API wants it.
    pub fn e164(&self) -> &str {
        &self.0["whatsapp:".len()..]
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        for ok in [
            "whatsapp:+15550001111",
            "+15550001111",
            "whatsapp:+1 (555) 000-1111",
            "whatsapp:+1.555.000.1111",
        ] {
            assert_eq!(
                Address::parse(ok).unwrap().as_str(),
                "whatsapp:+15550001111",
                "{ok}"
            );
        }
        assert!(Address::parse("whatsapp:+1234567").is_ok());
        assert!(Address::parse("whatsapp:+123456789012345").is_ok());
    }

    #[test]
    fn rejects_with_a_named_reason() {
        use AddressError::*;
        type Check = fn(&AddressError) -> bool;
        let cases: [(&str, Check); 8] = [
            ("whatsapp:+0123", |e| matches!(e, Length(_))),
            ("whatsapp:+0123456789", |e| matches!(e, LeadingZero(_))),
            ("sms:+15550001111", |e| matches!(e, Prefix(_))),
            ("WhatsApp:+15550001111", |e| matches!(e, Prefix(_))),
            ("15550001111", |e| matches!(e, Prefix(_))),
            ("whatsapp:+1234567890123456", |e| matches!(e, Length(_))),
            ("whatsapp:+123456", |e| matches!(e, Length(_))),
            ("whatsapp:+1555abc1111", |e| matches!(e, NotDigits(_))),
        ];
        for (input, check) in cases {
            let err = Address::parse(input).unwrap_err();
            assert!(check(&err), "{input}: {err}");
            assert!(err.to_string().contains(input));
        }
        // Non-ASCII digits are not E.164 digits.
        assert!(Address::parse("+١٥٥٥٠٠٠١١١١").is_err());
    }
}
