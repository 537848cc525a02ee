//! WhatsApp addresses (RULES R1): phones and business-scoped user ids.
//!
//! An [`Address`] is always valid and normalised. It is either a phone,
//! `whatsapp:+` followed by 7 to 15 ASCII digits (the first not `0`), or a
//! business-scoped user id (BSUID), `bsuid:` followed by 1 to 128 ASCII
//! letters, digits, `.`, `_` or `-`, exactly as the provider gave it. A
//! user may be either; a sender is always a phone. Parsing is the only way
//! to get one.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

const PREFIX: &str = "whatsapp:+";
const BSUID_PREFIX: &str = "bsuid:";
/// The longest business-scoped user id accepted.
pub const BSUID_MAX_LEN: usize = 128;

/// A validated, normalised WhatsApp address: a phone `whatsapp:+<E.164>`
/// or a business-scoped user id `bsuid:<id>`.
///
/// ```
/// use wagate::Address;
/// let a = Address::parse("whatsapp:+1 (555) 000-1111")?;
/// assert_eq!(a.as_str(), "whatsapp:+15550001111");
/// assert_eq!(Address::parse("+15550001111")?, a);
/// assert!(a.is_phone());
/// assert!(Address::parse("sms:+15550001111").is_err());
///
/// // A user who adopted a username may come with a BSUID only.
/// let u = Address::parse("bsuid:US.13491208655302741918")?;
/// assert_eq!(u.bsuid(), Some("US.13491208655302741918"));
/// assert_eq!(Address::from_bsuid("US.13491208655302741918")?, u);
/// // Case matters, and a BSUID is never a sender.
/// assert_ne!(Address::parse("bsuid:us.13491208655302741918")?, u);
/// assert!(Address::parse_phone("bsuid:US.13491208655302741918").is_err());
/// # Ok::<(), wagate::AddressError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(String);

/// Why a text is not a WhatsApp address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Neither `whatsapp:+`, a bare `+` nor `bsuid:` starts the text.
    #[error("invalid address {0:?}: must start with \"whatsapp:+\", \"+\" or \"bsuid:\"")]
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
    /// A business-scoped user id that is empty, too long, or holds a
    /// character other than an ASCII letter, digit, `.`, `_` or `-`.
    #[error(
        "invalid business-scoped user id {0:?}: 1 to 128 ASCII letters, digits, '.', '_' or '-'"
    )]
    Bsuid(String),
    /// A business-scoped user id where only a phone may stand (a sender).
    #[error(
        "invalid address {0:?}: a sender must be a phone number, not a business-scoped user id"
    )]
    NotPhone(String),
}

impl AddressError {
    /// The text that was given.
    pub fn input(&self) -> &str {
        match self {
            AddressError::Prefix(s)
            | AddressError::NotDigits(s)
            | AddressError::Length(s)
            | AddressError::LeadingZero(s)
            | AddressError::Bsuid(s)
            | AddressError::NotPhone(s) => s,
        }
    }
}

impl Address {
    /// Parses and normalises an address (RULES R1): a phone or a
    /// `bsuid:<id>`.
    ///
    /// # Errors
    /// An [`AddressError`] naming what is wrong.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        match input.strip_prefix(BSUID_PREFIX) {
            Some(id) => Self::bsuid_of(id, input),
            None => Self::parse_phone(input),
        }
    }

    /// Parses a phone address only, as a sender must be.
    ///
    /// # Errors
    /// [`AddressError::NotPhone`] for a BSUID, or why the phone is invalid.
    pub fn parse_phone(input: &str) -> Result<Self, AddressError> {
        if input.starts_with(BSUID_PREFIX) {
            return Err(AddressError::NotPhone(input.to_owned()));
        }
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

    /// The address of a business-scoped user id given without its prefix,
    /// as webhooks carry it (`US.13491208655302741918`).
    ///
    /// # Errors
    /// [`AddressError::Bsuid`] when the id is not 1 to 128 ASCII letters,
    /// digits, `.`, `_` or `-`.
    pub fn from_bsuid(id: &str) -> Result<Self, AddressError> {
        Self::bsuid_of(id, id)
    }

    fn bsuid_of(id: &str, input: &str) -> Result<Self, AddressError> {
        let ok = (1..=BSUID_MAX_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(AddressError::Bsuid(input.to_owned()));
        }
        Ok(Address(format!("{BSUID_PREFIX}{id}")))
    }

    /// The normalised form, `whatsapp:+<digits>` or `bsuid:<id>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a phone address.
    pub fn is_phone(&self) -> bool {
        self.0.starts_with(PREFIX)
    }

    /// Whether this is a business-scoped user id.
    pub fn is_bsuid(&self) -> bool {
        !self.is_phone()
    }

    /// The E.164 number, `+<digits>`, as Meta's Cloud API wants it; `None`
    /// for a BSUID.
    pub fn e164(&self) -> Option<&str> {
        self.0.strip_prefix("whatsapp:")
    }

    /// The business-scoped user id without its prefix; `None` for a phone.
    pub fn bsuid(&self) -> Option<&str> {
        self.0.strip_prefix(BSUID_PREFIX)
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
        assert_eq!(
            Address::parse("+15550001111").unwrap().e164(),
            Some("+15550001111")
        );
    }

    #[test]
    fn bsuids() {
        let max = "a".repeat(BSUID_MAX_LEN);
        for ok in ["US.13491208655302741918", "user.9373", "a", "A_b-c.9", &max] {
            let a = Address::from_bsuid(ok).unwrap();
            assert_eq!(a.bsuid(), Some(ok));
            assert_eq!(Address::parse(&format!("bsuid:{ok}")).unwrap(), a);
            assert!(a.is_bsuid() && !a.is_phone() && a.e164().is_none());
        }
        let long = "a".repeat(BSUID_MAX_LEN + 1);
        for bad in ["", "US 1349", "US/1349", "bsuid:US.1", "é", &long, "US.1\n"] {
            assert!(
                matches!(Address::from_bsuid(bad), Err(AddressError::Bsuid(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Address::parse_phone("bsuid:US.1"),
            Err(AddressError::NotPhone(_))
        ));
        assert!(Address::parse("BSUID:US.1").is_err());
    }

    #[test]
    fn rejects_with_a_named_reason() {
        use AddressError::*;
        type Check = fn(&AddressError) -> bool;
        let cases: [(&str, Check); 9] = [
            ("whatsapp:+0123", |e| matches!(e, Length(_))),
            ("whatsapp:+0123456789", |e| matches!(e, LeadingZero(_))),
            ("sms:+15550001111", |e| matches!(e, Prefix(_))),
            ("WhatsApp:+15550001111", |e| matches!(e, Prefix(_))),
            ("15550001111", |e| matches!(e, Prefix(_))),
            ("whatsapp:+1234567890123456", |e| matches!(e, Length(_))),
            ("whatsapp:+123456", |e| matches!(e, Length(_))),
            ("whatsapp:+1555abc1111", |e| matches!(e, NotDigits(_))),
            ("bsuid:US 1", |e| matches!(e, Bsuid(_))),
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
