//! The tamper-evident consent trail: a SHA-256 hash chain per address.
//!
//! Every consent event carries `hash = SHA-256(prev || enc(fields))`, where
//! `prev` is the hash of the previous event of the same (business, user
//! address), or 32 zero bytes for the first, and `enc` concatenates, for
//! each field in order, its length as 4 bytes big-endian and its bytes:
//! `"wagate.consent.v2"`, business name, seq (decimal, from 1), action,
//! scope, at and received_at (unix milliseconds, decimal), conditional
//! (`0`/`1`), source, `subject` and `evidence`:
//!
//! - `subject` (32 bytes) stands for the address: HMAC-SHA256 under the
//!   database's secret of `enc("wagate.subject.v1", business id, address)`
//!   ([`subject`]). An erased address's row keeps it as its key
//!   (`erased:` and its hex, [`tombstone`]), so the chain binds the row's
//!   key before and after erasure: a key changed behind the gate's back
//!   breaks it.
//! - `evidence` (32 bytes) is `SHA-256(enc("wagate.evidence.v1", salt,
//!   text))` with a random 16-byte `salt` per event and the text (`0` when
//!   absent, else `1` followed by it). Erasure keeps this digest and drops
//!   the salt and the text: the chain still verifies, and without the salt
//!   the digest cannot be matched against guessed text.
//!
//! `docs/rules.md` has the same recipe and a Python verifier. (Version 1
//! hashed the address and evidence themselves; migration 4 re-hashes
//! version 1 chains once, after checking them.)
//!
//! The chain hash itself is plain, not keyed: anyone can re-verify an
//! export without a secret (the subject comes with each line; that it is
//! the address's is for the database to check, which holds the secret).
//! It catches corruption and edits by anyone who does not also rewrite
//! every later hash; a rewrite of the whole chain is caught by comparing
//! its head with one recorded elsewhere (`wagate verify` prints the
//! heads). Pure: no IO.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::policy::{Action, Scope};
use crate::time::Timestamp;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev` of the first event of an address: 32 zero bytes.
    pub const ZERO: Hash = Hash([0; 32]);

    /// Lower-case hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hexadecimal digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        Hash::from_slice(&from_hex(s)?)
    }

    /// The digest from stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(b).ok().map(Hash)
    }
}

/// Bytes as lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 15));
    }
    s
}

/// Parses hexadecimal digits (either case) into bytes; `None` for an odd
/// length or a character that is not a digit.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|pair| match *pair {
            [hi, lo] => Some((nibble(hi)? << 4) | nibble(lo)?),
            _ => None,
        })
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The fields of one consent event that its hash covers.
#[derive(Clone, Copy, Debug)]
pub struct Link<'a> {
    /// The business's name.
    pub business: &'a str,
    /// Position in the address's trail, from 1.
    pub seq: i64,
    /// Opt in or out.
    pub action: Action,
    /// All or marketing.
    pub scope: Scope,
    /// Source time.
    pub at: Timestamp,
    /// Arrival time.
    pub received_at: Timestamp,
    /// A keyword opt-in (RULES R4).
    pub conditional: bool,
    /// Where it came from.
    pub source: &'a str,
    /// The address's subject ([`subject`]).
    pub subject: Hash,
    /// The evidence, or what erasure kept of it.
    pub evidence: Evidence<'a>,
}

/// The length of each event's salt, in bytes.
pub const SALT_LEN: usize = 16;

/// The evidence of a consent event: in clear with the event's salt, or,
/// once the person was forgotten, only its digest.
#[derive(Clone, Copy, Debug)]
pub enum Evidence<'a> {
    /// As recorded.
    Open {
        /// The event's random salt ([`SALT_LEN`] bytes).
        salt: &'a [u8],
        /// The text, if any.
        text: Option<&'a str>,
    },
    /// What erasure keeps: the digest of the above.
    Sealed(Hash),
}

impl Evidence<'_> {
    /// `SHA-256(enc("wagate.evidence.v1", salt, text))`, or the kept digest.
    pub fn digest(&self) -> Hash {
        match *self {
            Evidence::Sealed(h) => h,
            Evidence::Open { salt, text } => {
                let mut h = Digest::new();
                h.field(EVIDENCE_TAG.as_bytes());
                h.field(salt);
                match text {
                    None => h.field(b"0"),
                    Some(e) => h.parts(&[b"1", e.as_bytes()]),
                }
                h.finish()
            }
        }
    }
}

/// The subject of `address` in the business with row id `business`:
/// HMAC-SHA256 under the database's `secret` of
/// `enc("wagate.subject.v1", business id in decimal, address)`. What a
/// consent chain binds the address by, and what its tombstone keeps.
pub fn subject(secret: &[u8], business: i64, address: &str) -> Hash {
    use hmac::{KeyInit as _, Mac as _};
    let mut d = Digest::new();
    d.field(SUBJECT_TAG.as_bytes());
    let mut buf = [0u8; 20];
    d.field(decimal(business, &mut buf));
    d.field(address.as_bytes());
    // HMAC takes a key of any length: new_from_slice cannot fail.
    match hmac::Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(&d.0);
            Hash::from_slice(&mac.finalize().into_bytes()).unwrap_or(Hash::ZERO)
        }
        Err(_) => Hash::ZERO,
    }
}

/// The prefix of a tombstone key.
pub const TOMBSTONE: &str = "erased:";

/// The key an erased address's row keeps: `erased:` and its subject in hex.
pub fn tombstone(subject: &Hash) -> String {
    format!("{TOMBSTONE}{}", subject.to_hex())
}

/// The subject a stored key stands for: a tombstone's own, or the HMAC of
/// an address; `None` for a tombstone that is not 64 hex digits.
pub fn subject_of_key(secret: &[u8], business: i64, key: &str) -> Option<Hash> {
    match key.strip_prefix(TOMBSTONE) {
        Some(hex) => Hash::from_hex(hex),
        None => Some(subject(secret, business, key)),
    }
}

/// Domain tag of version 2 of the encoding.
const TAG: &str = "wagate.consent.v2";

/// Domain tag of the evidence digest.
const EVIDENCE_TAG: &str = "wagate.evidence.v1";

/// Domain tag of the subject.
const SUBJECT_TAG: &str = "wagate.subject.v1";

/// SHA-256 over length-prefixed fields (4 bytes big-endian, then the
/// bytes): the encoding of the chain, also used for digests of heads. The
/// message is gathered first and hashed once: one pass of SHA-256 over a
/// few hundred bytes, instead of two small updates per field.
#[derive(Default)]
pub struct Digest(Vec<u8>);

impl Digest {
    /// An empty digest.
    pub fn new() -> Self {
        Digest(Vec::with_capacity(256))
    }

    /// Adds raw bytes with no length prefix (the chain's `prev`).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Adds one length-prefixed field.
    pub fn field(&mut self, bytes: &[u8]) {
        self.parts(&[bytes]);
    }

    /// Adds one length-prefixed field made of several parts.
    pub fn parts(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        for p in parts {
            self.0.extend_from_slice(p);
        }
    }

    /// The encoded message, unhashed (for a keyed hash of it).
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The digest.
    pub fn finish(self) -> Hash {
        Hash(Sha256::digest(&self.0).into())
    }
}

impl Link<'_> {
    /// `SHA-256(prev || enc(self))`.
    pub fn hash(&self, prev: &Hash) -> Hash {
        let evidence = self.evidence.digest();
        let mut h = Digest::new();
        h.raw(&prev.0);
        h.field(TAG.as_bytes());
        h.field(self.business.as_bytes());
        let mut buf = [0u8; 20];
        h.field(decimal(self.seq, &mut buf));
        h.field(self.action.as_str().as_bytes());
        h.field(self.scope.as_str().as_bytes());
        h.field(decimal(self.at.as_millis(), &mut buf));
        h.field(decimal(self.received_at.as_millis(), &mut buf));
        h.field(if self.conditional { b"1" } else { b"0" });
        h.field(self.source.as_bytes());
        h.field(&self.subject.0);
        h.field(&evidence.0);
        h.finish()
    }
}

/// Version 1 of the encoding (the address and evidence hashed in clear),
/// which migration 4 checks before re-hashing a chain as version 2.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkV1<'a> {
    pub business: &'a str,
    pub user: &'a str,
    pub seq: i64,
    pub action: Action,
    pub scope: Scope,
    pub at: Timestamp,
    pub received_at: Timestamp,
    pub conditional: bool,
    pub source: &'a str,
    pub evidence: Option<&'a str>,
}

impl LinkV1<'_> {
    /// `SHA-256(prev || enc_v1(self))`.
    pub(crate) fn hash(&self, prev: &Hash) -> Hash {
        let mut h = Digest::new();
        h.raw(&prev.0);
        h.field(b"wagate.consent.v1");
        h.field(self.business.as_bytes());
        h.field(self.user.as_bytes());
        let mut buf = [0u8; 20];
        h.field(decimal(self.seq, &mut buf));
        h.field(self.action.as_str().as_bytes());
        h.field(self.scope.as_str().as_bytes());
        h.field(decimal(self.at.as_millis(), &mut buf));
        h.field(decimal(self.received_at.as_millis(), &mut buf));
        h.field(if self.conditional { b"1" } else { b"0" });
        h.field(self.source.as_bytes());
        match self.evidence {
            None => h.field(b"0"),
            Some(e) => h.parts(&[b"1", e.as_bytes()]),
        }
        h.finish()
    }
}

/// `n` in decimal, written into `buf` without allocating (the hot path of
/// every decision hashes three numbers per event).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (m % 10) as u8;
        }
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'-';
        }
    }
    buf.get(i..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_matches_to_string() {
        let mut buf = [0u8; 20];
        for n in [0, 7, -7, 10, 1_772_323_200_000, i64::MAX, i64::MIN, -1] {
            assert_eq!(super::decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    use super::*;

    const SALT: [u8; SALT_LEN] = [7; SALT_LEN];
    const SECRET: [u8; 32] = [9; 32];

    fn link(evidence: Option<&str>) -> Link<'_> {
        Link {
            business: "acme",
            seq: 1,
            action: Action::OptIn,
            scope: Scope::All,
            at: Timestamp::from_millis(1),
            received_at: Timestamp::from_millis(2),
            conditional: false,
            source: "web_form",
            subject: subject(&SECRET, 1, "whatsapp:+15550001111"),
            evidence: Evidence::Open {
                salt: &SALT,
                text: evidence,
            },
        }
    }

    #[test]
    fn hex_round_trip() {
        let h = link(None).hash(&Hash::ZERO);
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(Hash::from_hex("00"), None);
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
        assert_eq!(Hash::from_slice(&[0; 31]), None);
    }

    fn evidence(salt: &[u8], text: Option<&str>) -> Hash {
        Evidence::Open { salt, text }.digest()
    }

    #[test]
    fn every_field_and_the_prev_count() {
        let base = link(None).hash(&Hash::ZERO);
        let other = |l: Link<'_>| l.hash(&Hash::ZERO);
        assert_ne!(base, link(None).hash(&base));
        assert_ne!(base, other(link(Some(""))));
        assert_ne!(other(link(Some(""))), other(link(Some("0"))));
        let changed = [
            Link {
                business: "acm",
                ..link(None)
            },
            Link {
                seq: 2,
                ..link(None)
            },
            Link {
                action: Action::OptOut,
                ..link(None)
            },
            Link {
                scope: Scope::Marketing,
                ..link(None)
            },
            Link {
                at: Timestamp::from_millis(2),
                ..link(None)
            },
            Link {
                received_at: Timestamp::from_millis(1),
                ..link(None)
            },
            Link {
                conditional: true,
                ..link(None)
            },
            Link {
                source: "web_forms",
                ..link(None)
            },
            Link {
                subject: subject(&SECRET, 1, "whatsapp:+15550001112"),
                ..link(None)
            },
        ];
        for l in changed {
            assert_ne!(base, other(l), "{l:?}");
        }
        // The evidence digest covers the salt and the text.
        assert_ne!(evidence(&SALT, None), evidence(&[8; SALT_LEN], None));
        assert_ne!(evidence(&SALT, None), evidence(&SALT, Some("")));
        // The subject depends on the secret, the business and the address.
        let s = subject(&SECRET, 1, "whatsapp:+15550001111");
        assert_ne!(s, subject(&[8; 32], 1, "whatsapp:+15550001111"));
        assert_ne!(s, subject(&SECRET, 2, "whatsapp:+15550001111"));
        assert_ne!(s, subject(&SECRET, 1, "whatsapp:+15550001112"));
        // A tombstone stands for the subject it was made of.
        assert_eq!(subject_of_key(&SECRET, 1, &tombstone(&s)), Some(s));
        assert_eq!(subject_of_key(&SECRET, 1, "whatsapp:+15550001111"), Some(s));
        assert_eq!(subject_of_key(&SECRET, 1, "erased:00"), None);
    }

    #[test]
    fn a_sealed_event_hashes_as_it_did_open() {
        let open = link(Some("form v3"));
        let sealed = Link {
            evidence: Evidence::Sealed(open.evidence.digest()),
            ..open
        };
        assert_eq!(open.hash(&Hash::ZERO), sealed.hash(&Hash::ZERO));
        let wrong = Link {
            evidence: Evidence::Sealed(Hash::ZERO),
            ..open
        };
        assert_ne!(open.hash(&Hash::ZERO), wrong.hash(&Hash::ZERO));
    }

    #[test]
    fn known_answers() {
        // Both computed independently with Python's hashlib (the
        // docs/rules.md recipe; version 1 as it was documented).
        let h = link(Some("form v3")).hash(&Hash::ZERO);
        assert_eq!(
            h.to_hex(),
            "dadf326129f70d1f846c811c500933cbe1e48b0c9dd729b82877f361dc89f30f"
        );
        let v1 = LinkV1 {
            business: "acme",
            user: "whatsapp:+15550001111",
            seq: 1,
            action: Action::OptIn,
            scope: Scope::All,
            at: Timestamp::from_millis(1),
            received_at: Timestamp::from_millis(2),
            conditional: false,
            source: "web_form",
            evidence: Some("form v3"),
        };
        assert_eq!(
            v1.hash(&Hash::ZERO).to_hex(),
            "c141929f79294495b33cd4f6be210a9812bc72e956658ec7be3f2abf9531b7ec"
        );
    }
}
