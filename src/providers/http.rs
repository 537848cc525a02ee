//! HTTP without a client: requests and responses as the `http` crate's
//! types, and the two traits that run them.
//!
//! Implement [`SyncHttpClient`] or [`AsyncHttpClient`] for the client you
//! already use (a dozen lines), or turn on feature `ureq` (blocking,
//! [`ureq::Agent`]) or `reqwest` (async, [`reqwest::Client`]).

use std::future::Future;
use std::time::Duration;

/// A request a provider built: method, URL, headers, body bytes.
pub type HttpRequest = ::http::Request<Vec<u8>>;
/// A provider's answer: status, headers, body bytes.
pub type HttpResponse = ::http::Response<Vec<u8>>;

/// The most a ready client reads of a response body (providers answer in
/// kilobytes; a larger body is an error, not a memory spike).
pub const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// How long a request may take in all (connect, send, answer), put by the
/// providers in each request's extensions. The ready clients honour it; a
/// client of your own should (`request.extensions().get::<Timeout>()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Duration);

/// Runs a request to completion, blocking.
///
/// ```
/// use wagate::providers::http::{HttpRequest, HttpResponse, SyncHttpClient};
/// /// A client that answers every request itself (for a test).
/// struct Canned;
/// impl SyncHttpClient for Canned {
///     type Error = std::io::Error;
///     fn call(&self, _request: HttpRequest) -> Result<HttpResponse, Self::Error> {
///         Ok(http::Response::builder().status(201).body(br#"{"sid":"SM1"}"#.to_vec())
///             .map_err(std::io::Error::other)?)
///     }
/// }
/// let answer = Canned.call(http::Request::new(Vec::new()))?;
/// assert_eq!(answer.status(), 201);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait SyncHttpClient {
    /// Why the request got no answer (connect, timeout, TLS, ...).
    type Error: std::error::Error + Send + Sync + 'static;
    /// Sends `request` and returns the answer, whatever its status.
    ///
    /// # Errors
    /// Only when no answer came; a 4xx or 5xx is an `Ok` response.
    fn call(&self, request: HttpRequest) -> Result<HttpResponse, Self::Error>;
}

/// Runs a request to completion, asynchronously.
pub trait AsyncHttpClient: Sync {
    /// Why the request got no answer (connect, timeout, TLS, ...).
    type Error: std::error::Error + Send + Sync + 'static;
    /// Sends `request` and returns the answer, whatever its status.
    fn call(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, Self::Error>> + Send;
}

impl<C: SyncHttpClient + ?Sized> SyncHttpClient for &C {
    type Error = C::Error;
    fn call(&self, request: HttpRequest) -> Result<HttpResponse, Self::Error> {
        (**self).call(request)
    }
}

impl<C: AsyncHttpClient + ?Sized> AsyncHttpClient for &C {
    type Error = C::Error;
    fn call(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, Self::Error>> + Send {
        (**self).call(request)
    }
}

/// A provider's error code as JSON gives it: a whole number (also written
/// `21610.0`) or a string of digits.
#[cfg(any(feature = "twilio", feature = "meta"))]
pub(crate) fn error_code(v: &serde_json::Value) -> Option<u32> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
                .map(|f| f as u64)
        }),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    u32::try_from(n).ok()
}

/// What an error answer says when its body is not the provider's JSON: the
/// first 200 characters of the body, or the status's reason.
#[cfg(any(feature = "twilio", feature = "meta"))]
pub(crate) fn answer_text(response: &HttpResponse) -> String {
    let text: String = String::from_utf8_lossy(response.body())
        .chars()
        .take(200)
        .collect();
    if text.trim().is_empty() {
        response
            .status()
            .canonical_reason()
            .unwrap_or("no message")
            .to_owned()
    } else {
        text
    }
}

/// An answer's `Retry-After`: seconds or an HTTP date (counted from now),
/// at most an hour.
#[cfg(any(feature = "twilio", feature = "meta"))]
pub(crate) fn retry_after(response: &HttpResponse) -> Option<Duration> {
    let value = response
        .headers()
        .get(::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs = match value.parse::<u64>() {
        Ok(s) => s,
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            u64::try_from((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds())
                .unwrap_or(0)
        }
    };
    Some(Duration::from_secs(secs.min(3600)))
}

#[cfg(any(feature = "ureq", feature = "reqwest"))]
fn timeout_of(request: &HttpRequest) -> Option<Duration> {
    request.extensions().get::<Timeout>().map(|t| t.0)
}

/// Blocking, with ureq's connection pool. Statuses are answers, not errors;
/// the request's [`Timeout`] bounds the whole call. A body that fails to
/// arrive after the status is read as empty.
#[cfg(feature = "ureq")]
impl SyncHttpClient for ureq::Agent {
    type Error = ureq::Error;
    fn call(&self, request: HttpRequest) -> Result<HttpResponse, Self::Error> {
        let timeout = timeout_of(&request);
        let mut config = self.configure_request(request).http_status_as_error(false);
        if timeout.is_some() {
            config = config.timeout_global(timeout);
        }
        let answer = self.run(config.build())?;
        let (parts, mut body) = answer.into_parts();
        // Once a status came, the provider answered: a body that then
        // fails to arrive (a timeout, a cut connection, too large) is an
        // answer without a readable body, not "no answer" (a 2xx may mean
        // the message went; retrying could send it twice).
        let bytes = body
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        Ok(::http::Response::from_parts(parts, bytes))
    }
}

/// Async, on tokio (rustls). The request's [`Timeout`] bounds the whole
/// call; the body is read up to [`MAX_RESPONSE_BYTES`] and cut there, or
/// where it stopped arriving.
#[cfg(feature = "reqwest")]
impl AsyncHttpClient for reqwest::Client {
    type Error = reqwest::Error;
    fn call(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, Self::Error>> + Send {
        let timeout = timeout_of(&request);
        let client = self.clone();
        async move {
            let mut request = reqwest::Request::try_from(request)?;
            if timeout.is_some() {
                *request.timeout_mut() = timeout;
            }
            let mut answer = client.execute(request).await?;
            let mut response = ::http::Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = std::mem::take(answer.headers_mut());
            }
            // Once a status came, the provider answered: a body that then
            // fails to arrive or is too large is cut, not "no answer" (a
            // 2xx may mean the message went; retrying could send it twice).
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = answer.chunk().await {
                if body.len() as u64 + chunk.len() as u64 > MAX_RESPONSE_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            // Status and headers came from a valid response: building
            // cannot fail; should it, report an empty 502 rather than panic.
            Ok(response.body(body).unwrap_or_else(|_| {
                let mut r = ::http::Response::new(Vec::new());
                *r.status_mut() = ::http::StatusCode::BAD_GATEWAY;
                r
            }))
        }
    }
}
