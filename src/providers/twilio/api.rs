//! The Messages API with no IO: the request for an allowed message, and
//! the reading of Twilio's answer.
//!
//! ```
//! use wagate::providers::twilio::{api, Credentials, TwilioConfig};
//! use wagate::transport::OutboundMessage;
//! use wagate::{Address, Content};
//! let config = TwilioConfig::new("AC123", Credentials::auth_token("secret"));
//! let message = OutboundMessage {
//!     key: "reply-1".into(),
//!     from: Address::parse("whatsapp:+14155238886")?,
//!     to: Address::parse("whatsapp:+15550001111")?,
//!     phone: None,
//!     content: Content::text("It ships today."),
//!     rendered: None,
//!     twilio_content_sid: None,
//!     meta_template_id: None,
//!     purpose: None,
//! };
//! let request = api::message_request(&config, &message)?;
//! assert_eq!(request.uri(), "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json");
//! let answer = http::Response::builder().status(201)
//!     .body(br#"{"sid":"SM123","status":"queued"}"#.to_vec())?;
//! assert_eq!(api::message_response(answer)?.sid, "SM123");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::policy::Content;
use crate::providers::http::{HttpRequest, HttpResponse, Timeout};
use crate::transport::{Accepted, Failure, OutboundMessage};

/// The Twilio REST API's address.
pub const API_BASE: &str = "https://api.twilio.com";

/// How the transport authenticates (HTTP basic auth).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The account SID and its auth token.
    AuthToken(String),
    /// An API key (`SK...`) and its secret: revocable, the one to use in
    /// production.
    ApiKey {
        /// The key's SID.
        sid: String,
        /// Its secret.
        secret: String,
    },
}

impl Credentials {
    /// The account's auth token.
    pub fn auth_token(token: impl Into<String>) -> Self {
        Credentials::AuthToken(token.into())
    }

    /// An API key and its secret.
    pub fn api_key(sid: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials::ApiKey {
            sid: sid.into(),
            secret: secret.into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::AuthToken(_) => f.write_str("AuthToken(***)"),
            Credentials::ApiKey { sid, .. } => write!(f, "ApiKey({sid}, ***)"),
        }
    }
}

/// Where and how messages go.
#[derive(Clone, Debug)]
pub struct TwilioConfig {
    /// The account (`AC...`) the messages are sent from.
    pub account_sid: String,
    /// Basic-auth credentials.
    pub credentials: Credentials,
    /// Send through a Messaging Service (`MG...`) instead of naming the
    /// sender: Twilio then picks the number and the message's `From` is
    /// not sent.
    pub messaging_service_sid: Option<String>,
    /// Where Twilio posts this message's status callbacks.
    pub status_callback: Option<String>,
    /// The API's address ([`API_BASE`]; a fake server's in tests).
    pub base_url: String,
    /// How long one request may take in all.
    pub timeout: Duration,
}

impl TwilioConfig {
    /// Sends from `account_sid` with `credentials`, naming the sender,
    /// with a 10-second timeout.
    pub fn new(account_sid: impl Into<String>, credentials: Credentials) -> Self {
        TwilioConfig {
            account_sid: account_sid.into(),
            credentials,
            messaging_service_sid: None,
            status_callback: None,
            base_url: API_BASE.to_owned(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Sends through a Messaging Service.
    #[must_use]
    pub fn with_messaging_service(mut self, sid: impl Into<String>) -> Self {
        self.messaging_service_sid = Some(sid.into());
        self
    }

    /// Asks Twilio to post status callbacks to `url`.
    #[must_use]
    pub fn with_status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// Talks to another base URL (a fake Twilio in tests).
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Bounds each request.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn authorization(&self) -> String {
        let (user, password) = match &self.credentials {
            Credentials::AuthToken(token) => (self.account_sid.as_str(), token.as_str()),
            Credentials::ApiKey { sid, secret } => (sid.as_str(), secret.as_str()),
        };
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }
}

/// A message Twilio accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioReceipt {
    /// The MessageSid: status callbacks name the message by it.
    pub sid: String,
    /// The status Twilio gave (`queued`, `accepted`, ...).
    pub status: Option<String>,
}

impl Accepted for TwilioReceipt {
    fn provider_id(&self) -> &str {
        &self.sid
    }
}

/// Why Twilio did not take a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TwilioError {
    /// No answer: connect, TLS, timeout. Whether Twilio took the message
    /// is unknown; retrying with the same key asks the gate again.
    #[error("no answer from Twilio: {0}")]
    Http(String),
    /// Twilio answered with an error.
    #[error("Twilio refused the message (HTTP {status}{}): {message}", code.map(|c| format!(", error {c}")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code (21610, 63016, ...), if it gave one.
        code: Option<u32>,
        /// Twilio's message.
        message: String,
        /// Where Twilio documents the code.
        more_info: Option<String>,
        /// How long Twilio asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The message cannot be sent as given: nothing was sent.
    #[error("cannot send through Twilio: {0}")]
    Request(String),
    /// Twilio answered 2xx with a body that is not a message.
    #[error("unreadable answer from Twilio (HTTP {status}): {why}")]
    Answer {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        why: String,
    },
}

impl Failure for TwilioError {
    /// 429 and 5xx answers and calls that got no answer may succeed later;
    /// other 4xx answers and requests that cannot be built will not.
    fn is_transient(&self) -> bool {
        match self {
            TwilioError::Http(_) => true,
            TwilioError::Api { status, .. } => *status == 429 || *status >= 500,
            TwilioError::Request(_) => false,
            // Twilio answered 2xx: the message may well be queued; a retry
            // could send it twice.
            TwilioError::Answer { .. } => false,
        }
    }

    fn provider_code(&self) -> Option<u32> {
        match self {
            TwilioError::Api { code, .. } => *code,
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            TwilioError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` for an
/// allowed message: `To` (the person's phone when the message names a
/// business-scoped id linked to one), `From` (or `MessagingServiceSid`), then `Body`
/// for freeform text, or `ContentSid` + `ContentVariables` for a template
/// (never `Body`: since April 2025 a template sent as `Body` fails with
/// 63016), and `StatusCallback` when configured.
///
/// # Errors
/// [`TwilioError::Request`] when the message cannot be sent as given (a
/// template without its Twilio ContentSid, malformed variables).
pub fn message_request(
    config: &TwilioConfig,
    message: &OutboundMessage,
) -> Result<HttpRequest, TwilioError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    // A business-scoped id linked to a phone goes to the phone.
    let to = message.phone.as_ref().unwrap_or(&message.to);
    form.append_pair("To", &twilio_address(to.as_str()));
    match &config.messaging_service_sid {
        Some(sid) => form.append_pair("MessagingServiceSid", sid),
        None => form.append_pair("From", message.from.as_str()),
    };
    match &message.content {
        Content::Freeform { text, media } => {
            if !text.is_empty() || media.is_empty() {
                form.append_pair("Body", text);
            }
            for url in media {
                form.append_pair("MediaUrl", url);
            }
        }
        Content::Template {
            name,
            language,
            variables,
        } => {
            let sid = message.twilio_content_sid.as_deref().ok_or_else(|| {
                TwilioError::Request(format!(
                    "template {name}/{language} has no Twilio ContentSid (register it with twilio_content_sid)"
                ))
            })?;
            let vars = variables.to_json().ok_or_else(|| {
                TwilioError::Request(format!(
                    "malformed variables for template {name}/{language}"
                ))
            })?;
            form.append_pair("ContentSid", sid);
            form.append_pair("ContentVariables", &vars.to_string());
        }
    }
    if let Some(url) = &config.status_callback {
        form.append_pair("StatusCallback", url);
    }
    let base = config.base_url.to_ascii_lowercase();
    if !base.starts_with("https://") && !base.starts_with("http://") {
        return Err(TwilioError::Request(format!(
            "base URL {:?} is not http(s)://",
            config.base_url
        )));
    }
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        config.base_url.trim_end_matches('/'),
        config.account_sid
    );
    let mut request = ::http::Request::post(url)
        .header(::http::header::AUTHORIZATION, config.authorization())
        .header(
            ::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(::http::header::ACCEPT, "application/json")
        .header(
            ::http::header::USER_AGENT,
            concat!("wagate/", env!("CARGO_PKG_VERSION")),
        )
        .body(form.finish().into_bytes())
        .map_err(|e| TwilioError::Request(format!("invalid request: {e}")))?;
    request.extensions_mut().insert(Timeout(config.timeout));
    Ok(request)
}

/// Twilio names WhatsApp users `whatsapp:+E164`; a business-scoped id
/// goes as `whatsapp:<id>`.
fn twilio_address(address: &str) -> String {
    match address.strip_prefix("bsuid:") {
        Some(id) => format!("whatsapp:{id}"),
        None => address.to_owned(),
    }
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    status: Option<String>,
}

/// Both error shapes Twilio answers with: the classic `{code, message,
/// more_info, status}`, and an RFC 9457 problem document (`type`, `title`,
/// `detail`, `status`, and the code either as `code` or at the end of the
/// `type` URL).
#[derive(Deserialize, Default)]
struct ErrorBody {
    code: Option<serde_json::Value>,
    message: Option<String>,
    more_info: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

/// Reads Twilio's answer to [`message_request`].
///
/// # Errors
/// [`TwilioError::Api`] for an error answer (with `Retry-After` when
/// given), [`TwilioError::Answer`] for a 2xx that is not a message.
pub fn message_response(response: HttpResponse) -> Result<TwilioReceipt, TwilioError> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        let m: MessageResource =
            serde_json::from_slice(response.body()).map_err(|e| TwilioError::Answer {
                status,
                why: e.to_string(),
            })?;
        if m.sid.is_empty() {
            return Err(TwilioError::Answer {
                status,
                why: "empty sid".into(),
            });
        }
        return Ok(TwilioReceipt {
            sid: m.sid,
            status: m.status,
        });
    }
    let retry_after = crate::providers::http::retry_after(&response);
    let body: ErrorBody = serde_json::from_slice(response.body()).unwrap_or_default();
    // The code: `code` (a whole number, also written as 21610.0 or
    // "21610"), else the last segment of the problem's `type` or of
    // `more_info` (https://www.twilio.com/docs/errors/21610).
    let from_url = |u: &Option<String>| {
        u.as_deref()
            .and_then(|t| t.trim_end_matches('/').rsplit('/').next())
            .and_then(|last| last.parse::<u32>().ok())
    };
    let code = body
        .code
        .as_ref()
        .and_then(crate::providers::http::error_code)
        .or_else(|| from_url(&body.kind))
        .or_else(|| from_url(&body.more_info));
    let message = body
        .message
        .or(body.detail)
        .or(body.title)
        .unwrap_or_else(|| crate::providers::http::answer_text(&response));
    Err(TwilioError::Api {
        status,
        code,
        message,
        more_info: body.more_info.or(body.kind),
        retry_after,
    })
}
