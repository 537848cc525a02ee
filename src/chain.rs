//! The tamper-evident consent trail: a SHA-256 hash chain per address.
//!
//! Every consent event carries `hash = SHA-256(prev || enc(fields))`, where
//! `prev` is the hash of the previous event of the same (business, user
//! address), or 32 zero bytes for the first, and `enc` concatenates, for
//! each field in order, its length as 4 bytes big-endian and its UTF-8
//! bytes: `"wagate.consent.v1"`, business name, user address, seq (decimal,
//! from 1), action, scope, at and received_at (unix milliseconds, decimal),
//! conditional (`0`/`1`), source, and evidence (`0` when absent, else `1`
//! followed by the text). `docs/rules.md` has the same recipe and a Python
//! verifier.
//!
//! The hash is plain, not keyed: anyone can re-verify an export without a
//! secret. It catches corruption and edits by anyone who does not also
//! rewrite every later hash; a rewrite of the whole chain is caught by
//! comparing its head with one recorded elsewhere (`wagate verify` prints
//! the heads). Pure: no IO.

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
        let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(digit(b >> 4));
            s.push(digit(b & 15));
        }
        s
    }

    /// Parses 64 hexadecimal digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            let [hi, lo] = pair else { return None };
            *o = (nibble(*hi)? << 4) | nibble(*lo)?;
        }
        Some(Hash(out))
    }

    /// The digest from stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(b).ok().map(Hash)
    }
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
    /// The user address the event was recorded under.
    pub user: &'a str,
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
    /// Proof, if any.
    pub evidence: Option<&'a str>,
}

/// Domain tag of version 1 of the encoding.
const TAG: &str = "wagate.consent.v1";

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

    /// The digest.
    pub fn finish(self) -> Hash {
        Hash(Sha256::digest(&self.0).into())
    }
}

impl Link<'_> {
    /// `SHA-256(prev || enc(self))`.
    pub fn hash(&self, prev: &Hash) -> Hash {
        let mut h = Digest::new();
        h.raw(&prev.0);
        h.field(TAG.as_bytes());
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

    fn link(evidence: Option<&str>) -> Link<'_> {
        Link {
            business: "acme",
            user: "whatsapp:+15550001111",
            seq: 1,
            action: Action::OptIn,
            scope: Scope::All,
            at: Timestamp::from_millis(1),
            received_at: Timestamp::from_millis(2),
            conditional: false,
            source: "web_form",
            evidence,
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

    #[test]
    fn every_field_and_the_prev_count() {
        let base = link(None).hash(&Hash::ZERO);
        let other = |l: Link<'_>| l.hash(&Hash::ZERO);
        assert_ne!(base, link(None).hash(&base));
        assert_ne!(base, other(link(Some(""))));
        assert_ne!(other(link(Some(""))), other(link(Some("0"))));
        assert_ne!(
            base,
            other(Link {
                business: "acm",
                ..link(None)
            })
        );
        assert_ne!(
            base,
            other(Link {
                seq: 2,
                ..link(None)
            })
        );
        assert_ne!(
            base,
            other(Link {
                action: Action::OptOut,
                ..link(None)
            })
        );
        assert_ne!(
            base,
            other(Link {
                scope: Scope::Marketing,
                ..link(None)
            })
        );
        assert_ne!(
            base,
            other(Link {
                at: Timestamp::from_millis(2),
                ..link(None)
            })
        );
        assert_ne!(
            base,
            other(Link {
                received_at: Timestamp::from_millis(1),
                ..link(None)
            })
        );
        assert_ne!(
            base,
            other(Link {
                conditional: true,
                ..link(None)
            })
        );
        assert_ne!(
            base,
            other(Link {
                source: "web_forms",
                ..link(None)
            })
        );
        // Lengths keep fields apart: moving a byte between two fields changes the hash.
        assert_ne!(
            other(Link {
                business: "ab",
                user: "c",
                ..link(None)
            }),
            other(Link {
                business: "a",
                user: "bc",
                ..link(None)
            })
        );
    }

    #[test]
    fn known_answer() {
        // Computed independently with Python's hashlib (docs/rules.md recipe).
        let h = link(Some("form v3")).hash(&Hash::ZERO);
        assert_eq!(
            h.to_hex(),
            "c141929f79294495b33cd4f6be210a9812bc72e956658ec7be3f2abf9531b7ec"
        );
    }
}
