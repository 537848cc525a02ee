//! `X-Twilio-Signature`: HMAC-SHA1 with the account's auth token over the
//! full URL followed by the POST parameters, base64.
//!
//! What Twilio signs: the URL it requested, exactly (scheme, host, port if
//! it had one, path, query), then for each parameter name in byte order its
//! values, sorted and without repeats, each as name + value. A JSON body is
//! not signed as parameters: the URL carries `bodySHA256`, the hex SHA-256
//! of the body, and the body must match it. Twilio signs some URLs with the
//! default port and some without, so both are tried; so do its SDKs.
//!
//! Behind a proxy or a load balancer, the URL your server sees is not the
//! one Twilio requested: build it from the public base URL you configured
//! in Twilio ([`public_url`]).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Why a webhook's signature does not hold. Nothing of a request that fails
/// here may be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The auth token given to check with is empty: anyone could sign with
    /// it, so nothing is accepted.
    #[error("no auth token to check the signature with (is TWILIO_AUTH_TOKEN set and not empty?)")]
    NoToken,
    /// The request carries no `X-Twilio-Signature` header.
    #[error(
        "no X-Twilio-Signature header: the request did not come from Twilio, or a proxy dropped the header"
    )]
    Missing,
    /// The header is not the base64 of a 20-byte HMAC-SHA1.
    #[error("X-Twilio-Signature {0:?} is not a base64 HMAC-SHA1 (28 characters ending in '=')")]
    Malformed(String),
    /// The URL is not an absolute `http` or `https` URL.
    #[error("{0:?} is not the full URL Twilio requested (https://host/path?query)")]
    Url(String),
    /// The URL carries `bodySHA256` and the body does not hash to it.
    #[error(
        "the body does not match the URL's bodySHA256: the body was changed, or is not the exact bytes received"
    )]
    BodyHash,
    /// The signature is well formed but does not match.
    #[error("signature mismatch: {hint}")]
    Mismatch {
        /// What to look at first.
        hint: String,
    },
}

/// The signature Twilio computes for `url` and form `params` (name, value
/// pairs in any order, repeats allowed), with `auth_token`.
///
/// ```
/// use wagate::providers::twilio::signature::sign;
/// // Twilio's documented example.
/// let params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"),
///     ("Digits", "1234"), ("From", "+14158675309"), ("To", "+18005551212")];
/// assert_eq!(
///     sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
///     "RSOYDt4T1cUTdK1PDd93/VVr8B8="
/// );
/// ```
pub fn sign<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(keyed(auth_token, url, params).finalize().into_bytes())
}

/// The HMAC over what Twilio signs: the URL, then each parameter name with
/// each of its values, names and values sorted, repeats once.
fn keyed<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> Hmac<Sha1> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha1> as KeyInit>::new(&Default::default()));
    m.update(url.as_bytes());
    for (k, v) in sorted {
        m.update(k.as_bytes());
        m.update(v.as_bytes());
    }
    m
}

/// The hex SHA-256 of a body, as Twilio puts it in `bodySHA256`.
pub fn body_sha256(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The URL Twilio requested, from the public base URL you gave Twilio
/// (`https://hooks.example.com`, with or without a path prefix) and the
/// path and query your server saw (`/twilio/inbound?x=1`).
///
/// ```
/// use wagate::providers::twilio::signature::public_url;
/// assert_eq!(public_url("https://hooks.example.com/", "/twilio?x=1"),
///     "https://hooks.example.com/twilio?x=1");
/// ```
pub fn public_url(base: &str, path_and_query: &str) -> String {
    let base = base.trim_end_matches('/');
    if path_and_query.starts_with('/') {
        format!("{base}{path_and_query}")
    } else {
        format!("{base}/{path_and_query}")
    }
}

/// Checks a form-encoded webhook: `url` as Twilio requested it, the
/// decoded form `params`, and the `X-Twilio-Signature` header (`None` if
/// absent). Compared in constant time.
///
/// # Errors
/// A [`SignatureError`] saying why the request must be refused.
///
/// ```
/// use wagate::providers::twilio::signature::{sign, validate};
/// let url = "https://example.com/twilio";
/// let params = [("Body", "hi"), ("From", "whatsapp:+15550001111")];
/// let sig = sign("token", url, &params);
/// assert!(validate("token", url, &params, Some(&sig)).is_ok());
/// assert!(validate("token", url, &[("Body", "HI"), ("From", "whatsapp:+15550001111")], Some(&sig)).is_err());
/// assert!(validate("other", url, &params, Some(&sig)).is_err());
/// ```
pub fn validate<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    // An HMAC with an empty key is one anybody can compute.
    if auth_token.trim().is_empty() {
        return Err(SignatureError::NoToken);
    }
    let expected = decode(signature)?;
    let candidates = url_forms(url)?;
    if candidates
        .iter()
        .any(|u| verify(auth_token, u, params, &expected))
    {
        return Ok(());
    }
    Err(SignatureError::Mismatch {
        hint: diagnose(auth_token, url, params, &expected),
    })
}

/// Checks a webhook with a JSON (or other non-form) body: the URL carries
/// `bodySHA256`, which must be the body's hex SHA-256, and the signature
/// covers the URL alone.
///
/// # Errors
/// A [`SignatureError`]; [`SignatureError::BodyHash`] when the body was
/// changed or the URL has no `bodySHA256`.
pub fn validate_body(
    auth_token: &str,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let none: [(&str, &str); 0] = [];
    validate(auth_token, url, &none, signature)?;
    let claimed = query_param(url, "bodySHA256").ok_or(SignatureError::BodyHash)?;
    let actual = body_sha256(body);
    if subtle_eq(claimed.to_ascii_lowercase().as_bytes(), actual.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::BodyHash)
    }
}

fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    // Lengths are public (a hex SHA-256 is 64 characters).
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode(signature: Option<&str>) -> Result<[u8; 20], SignatureError> {
    let s = signature.ok_or(SignatureError::Missing)?.trim();
    if s.is_empty() {
        return Err(SignatureError::Missing);
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|b| <[u8; 20]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| SignatureError::Malformed(s.chars().take(64).collect()))
}

fn verify<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
    expected: &[u8; 20],
) -> bool {
    // The hmac crate's verify compares in constant time.
    keyed(auth_token, url, params)
        .verify_slice(expected)
        .is_ok()
}

/// The parts of an absolute URL that matter here.
struct Parts<'a> {
    scheme: &'a str,
    /// `user:pass@`, if any, with the `@`.
    userinfo: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

fn split(url: &str) -> Option<Parts<'_>> {
    let (scheme, after) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    // An IPv6 literal keeps its colons inside brackets.
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (hostport, None),
    };
    if host.is_empty()
        || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(Parts {
        scheme,
        userinfo,
        host,
        port,
        rest,
    })
}

/// The forms of `url` Twilio may have signed: as given, without its port,
/// with the scheme's default port; each also with a `'` in the query
/// written as `%27` and back (Twilio's SDKs accept both).
fn url_forms(url: &str) -> Result<Vec<String>, SignatureError> {
    let p = split(url).ok_or_else(|| SignatureError::Url(url.chars().take(200).collect()))?;
    let default = if p.scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let base = |port: Option<&str>| {
        format!(
            "{}://{}{}{}{}",
            p.scheme,
            p.userinfo,
            p.host,
            port.map(|x| format!(":{x}")).unwrap_or_default(),
            p.rest
        )
    };
    let mut forms = vec![url.to_owned(), base(None)];
    if p.port.is_none() {
        forms.push(base(Some(default)));
    }
    let quoted: Vec<String> = forms
        .iter()
        .flat_map(|f| {
            let (head, query) = f.split_once('?').unwrap_or((f, ""));
            [
                (
                    query.contains('\''),
                    format!("{head}?{}", query.replace('\'', "%27")),
                ),
                (
                    query.contains("%27"),
                    format!("{head}?{}", query.replace("%27", "'")),
                ),
            ]
        })
        .filter_map(|(applies, f)| applies.then_some(f))
        .collect();
    forms.extend(quoted);
    forms.dedup();
    Ok(forms)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A variation of a request that a common mistake would explain.
struct Attempt {
    url: String,
    params: Vec<(String, String)>,
    why: &'static str,
}

/// Why a well-formed signature did not match: tries the usual mistakes and
/// names the first that would have matched.
fn diagnose<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
    expected: &[u8; 20],
) -> String {
    let tries: Vec<Attempt> = {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        let mut t = Vec::new();
        if let Some(rest) = url.strip_prefix("http://") {
            t.push(Attempt {
                url: format!("https://{rest}"),
                params: owned.clone(),
                why: "Twilio requested https:// (a proxy terminated TLS): give the public URL",
            });
        }
        if let Some(rest) = url.strip_prefix("https://") {
            t.push(Attempt {
                url: format!("http://{rest}"),
                params: owned.clone(),
                why: "Twilio requested http://, not https://",
            });
        }
        let (head, query) = url
            .split_once('?')
            .map_or((url, None), |(h, q)| (h, Some(q)));
        if head.ends_with('/') {
            let h = head.trim_end_matches('/');
            t.push(Attempt {
                url: query.map_or(h.to_owned(), |q| format!("{h}?{q}")),
                params: owned.clone(),
                why: "the URL Twilio requested has no trailing slash",
            });
        } else {
            t.push(Attempt {
                url: query.map_or(format!("{head}/"), |q| format!("{head}/?{q}")),
                params: owned.clone(),
                why: "the URL Twilio requested ends with a slash",
            });
        }
        if query.is_some() {
            t.push(Attempt {
                url: head.to_owned(),
                params: owned.clone(),
                why: "Twilio requested the URL without its query string",
            });
        }
        if !owned.is_empty() {
            t.push(Attempt { url: url.to_owned(), params: Vec::new(), why: "the signature covers the URL alone: a JSON body signed through bodySHA256, not form parameters" });
            let plus: Vec<(String, String)> = owned
                .iter()
                .map(|(k, v)| (k.clone(), v.replace(' ', "+")))
                .collect();
            if plus != owned {
                t.push(Attempt { url: url.to_owned(), params: plus, why: "the parameters were decoded differently: '+' must become a space, then %XX sequences decoded" });
            }
        }
        t
    };
    for t in &tries {
        let forms = url_forms(&t.url).unwrap_or_default();
        if forms
            .iter()
            .any(|f| verify(auth_token, f, &t.params, expected))
        {
            return t.why.to_owned();
        }
    }
    "not the URL, port or parameter encoding: check the auth token (the account's primary token, or the subaccount's if the number lives there) and that the body was not changed".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_add_and_remove_ports() {
        let f = url_forms("https://a.example:1234/p?q=1").unwrap_or_default();
        assert_eq!(
            f,
            vec!["https://a.example:1234/p?q=1", "https://a.example/p?q=1"]
        );
        let f = url_forms("http://u:p@a.example/p").unwrap_or_default();
        assert_eq!(
            f,
            vec!["http://u:p@a.example/p", "http://u:p@a.example:80/p"]
        );
        let f = url_forms("https://[::1]:8443/p").unwrap_or_default();
        assert_eq!(f, vec!["https://[::1]:8443/p", "https://[::1]/p"]);
        assert!(url_forms("ftp://a/p").is_err());
        assert!(url_forms("https://a:x/p").is_err());
        assert!(url_forms("/just/a/path").is_err());
    }
}
