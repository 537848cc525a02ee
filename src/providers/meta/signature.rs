//! `X-Hub-Signature-256`: HMAC-SHA256 with the app secret over the raw
//! request body, as `sha256=<lowercase hex>`; and the GET handshake that
//! subscribes a webhook (`hub.mode`, `hub.verify_token`, `hub.challenge`).
//!
//! What Meta signs: the body bytes it sends, exactly. Its serialisation
//! escapes non-ASCII characters (`é` is `\u00e9`, an emoji a pair of
//! `\ud83d\ude00`, lowercase hex), so a body that was parsed and written
//! again, or decoded to UTF-8 text, is not what Meta signed, even when it
//! holds the same JSON. Verify the bytes as received, before any JSON
//! extractor or middleware touches them, then parse those same bytes.
//!
//! The key is the app secret (App settings > Basic > App secret of the app
//! the webhook belongs to): not an access token, not the verify token. The
//! verify token is only for the handshake ([`handshake`]).

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a webhook's signature does not hold. Nothing of a request that fails
/// here may be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The request carries no `X-Hub-Signature-256` header, or an empty one.
    #[error(
        "no X-Hub-Signature-256 header: the request did not come from Meta, or a proxy dropped the header"
    )]
    Missing,
    /// The header is `sha1=...`: the legacy `X-Hub-Signature` value.
    #[error(
        "this is a sha1= value, the legacy X-Hub-Signature header: read X-Hub-Signature-256 (sha256=...) instead"
    )]
    Legacy,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error(
        "X-Hub-Signature-256 {0:?} is not sha256= followed by 64 hex digits: pass the header's whole value"
    )]
    Malformed(String),
    /// The app secret is empty: anyone could sign with an empty key.
    #[error(
        "the app secret is empty: configure the app's secret (App settings > Basic > App secret)"
    )]
    NoSecret,
    /// The signature is well formed but does not match.
    #[error("X-Hub-Signature-256 does not match the body: {hint}")]
    Mismatch {
        /// What to look at first.
        hint: String,
    },
}

/// Why a subscription handshake is refused; answer it with 403. No message
/// shows the verify token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The query has no `hub.mode`, or an empty one.
    #[error(
        "no hub.mode in the query: this GET is not Meta's subscription check (pass the raw query string after '?', not the whole URL)"
    )]
    MissingMode,
    /// `hub.mode` is something other than `subscribe`.
    #[error("hub.mode is {0:?}, not \"subscribe\": only the subscription check is answered")]
    NotSubscribe(String),
    /// No verify token is configured on our side.
    #[error(
        "no verify token is configured: set the one typed in the app dashboard (WhatsApp > Configuration > Verify token)"
    )]
    NoVerifyToken,
    /// The query has no `hub.verify_token`, or an empty one.
    #[error(
        "no hub.verify_token in the query: the request is not Meta's subscription check, or the dashboard's Verify token field is empty"
    )]
    MissingToken,
    /// `hub.verify_token` is not the configured verify token.
    #[error(
        "hub.verify_token does not match the configured verify token: use the exact string typed in the dashboard's Verify token field (not the app secret or an access token)"
    )]
    WrongToken,
    /// The query has no `hub.challenge`, or an empty one.
    #[error(
        "no hub.challenge in the query: there is nothing to answer with; the request is not Meta's subscription check"
    )]
    MissingChallenge,
}

/// The `X-Hub-Signature-256` value Meta sends for `body` with `app_secret`:
/// `sha256=` and the lowercase hex HMAC-SHA256.
///
/// ```
/// use wagate::providers::meta::signature::sign;
/// // The vector in Meta's WhatsApp Node.js SDK tests.
/// assert_eq!(
///     sign("TEST_APP_SECRET", b"test"),
///     "sha256=0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221"
/// );
/// ```
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mac = keyed(app_secret.as_bytes(), body).finalize().into_bytes();
    let mut out = String::with_capacity(7 + 2 * mac.len());
    out.push_str("sha256=");
    for b in mac {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Checks a webhook's `X-Hub-Signature-256` header (`None` if absent)
/// against `body`, the raw bytes exactly as received. Compared in constant
/// time.
///
/// Meta signs its own serialisation, in which non-ASCII text is escaped
/// (`\u00e9`): a body that was parsed and re-serialised, decoded to UTF-8,
/// trimmed or otherwise changed fails, even when it holds the same JSON.
/// Read the body as bytes, verify, then parse those bytes.
///
/// The header prefix is accepted in any case (`sha256=`, `SHA256=`), and
/// the hex in upper or lower case.
///
/// # Errors
/// A [`SignatureError`] saying why the request must be refused (answer
/// 401 or 403, and apply nothing).
///
/// ```
/// use wagate::providers::meta::signature::{sign, verify};
/// let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
/// let header = sign("app-secret", body);
/// assert!(verify("app-secret", body, Some(&header)).is_ok());
/// assert!(verify("other-secret", body, Some(&header)).is_err());
/// assert!(verify("app-secret", b"{}", Some(&header)).is_err());
/// assert!(verify("app-secret", body, None).is_err());
/// ```
pub fn verify(app_secret: &str, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    if app_secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let expected = parse_header(header)?;
    if signed_by(app_secret.as_bytes(), body, &expected) {
        return Ok(());
    }
    Err(SignatureError::Mismatch {
        hint: diagnose(app_secret, body, &expected),
    })
}

/// Answers Meta's GET subscription check. `query` is the request's raw
/// query string (`hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`,
/// percent-encoded, with or without the leading `?`); `verify_token` is the
/// string typed in the app dashboard's Verify token field.
///
/// Returns the challenge, to send back as the body of a `200`
/// (`text/plain`), when the mode is `subscribe` and the token matches
/// (compared in constant time).
///
/// # Errors
/// A [`HandshakeError`]; answer `403`. No message shows the verify token.
///
/// ```
/// use wagate::providers::meta::signature::handshake;
/// let q = "hub.mode=subscribe&hub.verify_token=s3cr%C3%A9t+token&hub.challenge=1158201444";
/// assert_eq!(handshake(q, "s3crét token").ok().as_deref(), Some("1158201444"));
/// assert!(handshake(q, "another token").is_err());
/// ```
pub fn handshake(query: &str, verify_token: &str) -> Result<String, HandshakeError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "hub.mode" => &mut mode,
            "hub.verify_token" => &mut token,
            "hub.challenge" => &mut challenge,
            _ => continue,
        };
        // Meta sends each once; a repeat does not override the first.
        if slot.is_none() {
            *slot = Some(v);
        }
    }
    let mode = mode
        .filter(|m| !m.is_empty())
        .ok_or(HandshakeError::MissingMode)?;
    if mode != "subscribe" {
        return Err(HandshakeError::NotSubscribe(
            mode.chars().take(40).collect(),
        ));
    }
    if verify_token.is_empty() {
        return Err(HandshakeError::NoVerifyToken);
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or(HandshakeError::MissingToken)?;
    if !same_token(&token, verify_token) {
        return Err(HandshakeError::WrongToken);
    }
    challenge
        .filter(|c| !c.is_empty())
        .map(std::borrow::Cow::into_owned)
        .ok_or(HandshakeError::MissingChallenge)
}

/// The HMAC-SHA256 of `body` under `key`.
fn keyed(key: &[u8], body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    m.update(body);
    m
}

fn signed_by(key: &[u8], body: &[u8], expected: &[u8; 32]) -> bool {
    // The hmac crate's verify compares in constant time.
    keyed(key, body).verify_slice(expected).is_ok()
}

/// Compares two tokens in constant time, lengths included: both are keyed
/// into an HMAC, and the tags compared by the hmac crate.
fn same_token(given: &str, expected: &str) -> bool {
    const KEY: &[u8] = b"wagate hub.verify_token";
    let want = keyed(KEY, expected.as_bytes()).finalize().into_bytes();
    keyed(KEY, given.as_bytes()).verify_slice(&want).is_ok()
}

/// The 32 bytes a header `sha256=<64 hex>` carries.
fn parse_header(header: Option<&str>) -> Result<[u8; 32], SignatureError> {
    let h = header.map(str::trim).unwrap_or_default();
    if h.is_empty() {
        return Err(SignatureError::Missing);
    }
    match h.split_once('=') {
        Some((algo, hex)) if algo.eq_ignore_ascii_case("sha256") => {
            hex32(hex).ok_or_else(|| SignatureError::Malformed(h.chars().take(80).collect()))
        }
        Some((algo, _)) if algo.eq_ignore_ascii_case("sha1") => Err(SignatureError::Legacy),
        _ => Err(SignatureError::Malformed(h.chars().take(80).collect())),
    }
}

/// Exactly 64 hex digits, either case, as 32 bytes.
fn hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let [hi, lo] = pair else {
            return None;
        };
        *o = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `body` as Meta serialises text: each non-ASCII character as `\uXXXX`
/// (UTF-16 units, lowercase hex) and, with `slashes`, `/` as `\/` (as some
/// of its payloads write URLs). `None` when that changes nothing, or the
/// body is not UTF-8.
fn meta_escaped(body: &[u8], slashes: bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(body.len().saturating_add(64));
    for c in text.chars() {
        if c == '/' && slashes {
            out.push_str("\\/");
        } else if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        }
    }
    (out.as_bytes() != body).then(|| out.into_bytes())
}

/// Why a well-formed signature did not match: tries the usual mistakes and
/// names the first that would have matched.
fn diagnose(app_secret: &str, body: &[u8], expected: &[u8; 32]) -> String {
    let trimmed = app_secret.trim();
    if trimmed != app_secret && !trimmed.is_empty() && signed_by(trimmed.as_bytes(), body, expected)
    {
        return "the app secret has leading or trailing whitespace (a newline from a file or an environment variable?): trim it".to_owned();
    }
    let decoded = [false, true]
        .into_iter()
        .filter_map(|slashes| meta_escaped(body, slashes))
        .any(|escaped| signed_by(app_secret.as_bytes(), &escaped, expected));
    if decoded {
        return "the body was decoded before hashing: Meta signs its own serialisation, with non-ASCII text escaped (\\u00e9); pass the raw bytes as received, before any JSON parsing".to_owned();
    }
    let mut hint = String::from(
        "check the app secret (App settings > Basic > App secret of the app the webhook belongs to; not an access token, not the verify token), and that the body is the raw bytes as received, not parsed and re-serialised, decoded, trimmed or otherwise changed before hashing",
    );
    if !body.is_ascii() {
        hint.push_str(
            "; this body holds raw non-ASCII bytes, which Meta sends escaped (\\u00e9): it was most likely decoded or re-serialised",
        );
    }
    hint
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hex32_takes_64_hex_digits_in_either_case() {
        let lower = "00ff10a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2";
        let bytes = hex32(lower).unwrap();
        assert_eq!(bytes.first(), Some(&0x00));
        assert_eq!(bytes.get(1), Some(&0xff));
        assert_eq!(bytes.last(), Some(&0xa2));
        assert_eq!(hex32(&lower.to_ascii_uppercase()), Some(bytes));
        assert_eq!(hex32(""), None);
        assert_eq!(hex32(&lower[..62]), None);
        assert_eq!(hex32(&format!("{lower}00")), None);
        assert_eq!(hex32(&format!("{}g", &lower[..63])), None);
        assert_eq!(hex32(&format!("{} ", &lower[..63])), None);
        // 64 bytes, but not 64 ASCII characters.
        assert_eq!(hex32(&format!("é{}", &lower[..62])), None);
    }

    #[test]
    fn parse_header_forms() {
        let hex = "0c61947b610d4f45e65f3d680e26027121ec2413e77598bcb6cfc6e0d9888221";
        let want = hex32(hex).unwrap();
        assert_eq!(parse_header(Some(&format!("sha256={hex}"))), Ok(want));
        assert_eq!(parse_header(Some(&format!("SHA256={hex}"))), Ok(want));
        assert_eq!(parse_header(Some(&format!(" Sha256={hex}\r\n"))), Ok(want));
        assert_eq!(parse_header(None), Err(SignatureError::Missing));
        assert_eq!(parse_header(Some("  ")), Err(SignatureError::Missing));
        assert_eq!(
            parse_header(Some("sha1=ab12cd34ab12cd34ab12cd34ab12cd34ab12cd34")),
            Err(SignatureError::Legacy)
        );
        assert!(matches!(
            parse_header(Some(hex)),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            parse_header(Some(&format!("sha512={hex}"))),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            parse_header(Some(&format!("sha256= {hex}"))),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_shows_at_most_80_characters() {
        let long = format!("sha256={}", "z".repeat(500));
        let Err(SignatureError::Malformed(shown)) = parse_header(Some(&long)) else {
            unreachable!("a long non-hex header is malformed")
        };
        assert_eq!(shown.chars().count(), 80);
    }

    #[test]
    fn meta_escaping_matches_what_meta_sends() {
        let decoded = "{\"t\":\"Café 😀 https://x.example/a\"}";
        assert_eq!(
            meta_escaped(decoded.as_bytes(), false).unwrap(),
            br#"{"t":"Caf\u00e9 \ud83d\ude00 https://x.example/a"}"#
        );
        assert_eq!(
            meta_escaped(decoded.as_bytes(), true).unwrap(),
            br#"{"t":"Caf\u00e9 \ud83d\ude00 https:\/\/x.example\/a"}"#
        );
        assert_eq!(meta_escaped(b"{\"a\":1}", false), None);
        assert_eq!(meta_escaped(b"\xff\xfe", false), None);
    }

    #[test]
    fn diagnose_names_a_decoded_body_and_a_padded_secret() {
        let raw = br#"{"text":{"body":"Caf\u00e9 https:\/\/x.example"}}"#;
        let header = sign("s3cret", raw);
        let decoded = "{\"text\":{\"body\":\"Café https://x.example\"}}";
        let Err(SignatureError::Mismatch { hint }) =
            verify("s3cret", decoded.as_bytes(), Some(&header))
        else {
            unreachable!("a decoded body does not verify")
        };
        assert!(hint.contains("decoded before hashing"), "{hint}");

        let Err(SignatureError::Mismatch { hint }) = verify("s3cret\n", raw, Some(&header)) else {
            unreachable!("a padded secret does not verify")
        };
        assert!(hint.contains("whitespace"), "{hint}");

        let Err(SignatureError::Mismatch { hint }) = verify("other", raw, Some(&header)) else {
            unreachable!("another secret does not verify")
        };
        assert!(hint.contains("app secret"), "{hint}");
        assert!(hint.contains("verify token"), "{hint}");
        assert!(!hint.contains("non-ASCII bytes"), "{hint}");
    }

    #[test]
    fn an_empty_secret_is_refused_not_used() {
        let header = sign("", b"{}");
        assert_eq!(
            verify("", b"{}", Some(&header)),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn same_token_is_exact() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "abc"));
        assert!(!same_token("ABC", "abc"));
    }

    #[test]
    fn handshake_takes_the_first_of_repeated_parameters() {
        let q = "hub.mode=subscribe&hub.verify_token=t&hub.verify_token=u&hub.challenge=1&hub.challenge=2";
        assert_eq!(handshake(q, "t").unwrap(), "1");
        assert_eq!(handshake(q, "u"), Err(HandshakeError::WrongToken));
    }
}
