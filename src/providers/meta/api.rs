//! The Graph API's messages endpoint with no IO: the request for an
//! allowed message, and the reading of Meta's answer.
//!
//! ```
//! use wagate::providers::meta::{api, MetaConfig};
//! use wagate::transport::OutboundMessage;
//! use wagate::{Address, Content};
//! let config = MetaConfig::new("PHONE_NUMBER_ID", "ACCESS_TOKEN");
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
//! assert_eq!(request.uri(), "https://graph.facebook.com/v23.0/PHONE_NUMBER_ID/messages");
//! let body: serde_json::Value = serde_json::from_slice(request.body())?;
//! assert_eq!(body["to"], "15550001111");
//! assert_eq!(body["text"]["body"], "It ships today.");
//! let answer = http::Response::builder().status(200)
//!     .body(br#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.1"}]}"#.to_vec())?;
//! assert_eq!(api::message_response(answer)?.id, "wamid.1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::policy::{Content, Variables};
use crate::providers::http::{HttpRequest, HttpResponse, Timeout};
use crate::transport::{Accepted, Failure, OutboundMessage};

/// The Graph API's address.
pub const GRAPH_BASE: &str = "https://graph.facebook.com";
/// The Graph API version used unless configured.
pub const DEFAULT_VERSION: &str = "v23.0";

/// Where and how messages go.
#[derive(Clone)]
pub struct MetaConfig {
    /// The business phone number's id (not the number itself).
    pub phone_number_id: String,
    /// A system user's access token (sent as a bearer token).
    pub access_token: String,
    /// The Graph API version (`v23.0`).
    pub version: String,
    /// The Graph API's address ([`GRAPH_BASE`]; a fake server's in tests).
    pub base_url: String,
    /// How long one request may take in all.
    pub timeout: Duration,
}

impl std::fmt::Debug for MetaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaConfig")
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"***")
            .field("version", &self.version)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl MetaConfig {
    /// Sends from `phone_number_id` with `access_token`, Graph API
    /// [`DEFAULT_VERSION`], a 10-second timeout.
    pub fn new(phone_number_id: impl Into<String>, access_token: impl Into<String>) -> Self {
        MetaConfig {
            phone_number_id: phone_number_id.into(),
            access_token: access_token.into(),
            version: DEFAULT_VERSION.to_owned(),
            base_url: GRAPH_BASE.to_owned(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Another Graph API version (`v24.0`).
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Another base URL (a fake Graph API in tests).
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
}

/// A message Meta accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaReceipt {
    /// The wamid: statuses name the message by it.
    pub id: String,
    /// `message_status`, when given (`accepted`, `held_for_quality_assessment`).
    pub status: Option<String>,
}

impl Accepted for MetaReceipt {
    fn provider_id(&self) -> &str {
        &self.id
    }
}

/// What kind of failure a Graph API error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// A retry may succeed: throughput (130429, 4), pair rate (131056),
    /// rate limits (80007), 429 and 5xx answers, no answer.
    Transient,
    /// Our setup is wrong: the token expired or was revoked (190), a
    /// permission is missing (10). Permanent, and worth an alert.
    Configuration,
    /// This message will fail the same way again.
    Permanent,
}

/// Graph error codes a retry may get past.
const TRANSIENT_CODES: [u32; 4] = [130_429, 131_056, 4, 80_007];
/// Graph error codes that say the setup is wrong.
const CONFIGURATION_CODES: [u32; 2] = [190, 10];

/// Why Meta did not take a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// No answer: connect, TLS, timeout. Whether Meta took the message is
    /// unknown.
    #[error("no answer from the Graph API: {0}")]
    Http(String),
    /// Meta answered with an error envelope.
    #[error("Meta refused the message (HTTP {status}{}): {message}{}", code.map(|c| format!(", error {c}")).unwrap_or_default(), details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: u16,
        /// `error.code` (131047, 190, ...).
        code: Option<u32>,
        /// `error.error_subcode`.
        subcode: Option<u32>,
        /// `error.message`.
        message: String,
        /// `error.error_data.details`.
        details: Option<String>,
        /// `error.fbtrace_id`, for Meta support.
        fbtrace_id: Option<String>,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The message cannot be sent as given: nothing was sent.
    #[error("cannot send through Meta: {0}")]
    Request(String),
    /// Meta answered 2xx with a body that names no message.
    #[error("unreadable answer from the Graph API (HTTP {status}): {why}")]
    Answer {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        why: String,
    },
}

impl MetaError {
    /// Transient, configuration or permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            MetaError::Http(_) => ErrorClass::Transient,
            MetaError::Api { status, code, .. } => match code {
                Some(c) if CONFIGURATION_CODES.contains(c) => ErrorClass::Configuration,
                Some(c) if TRANSIENT_CODES.contains(c) => ErrorClass::Transient,
                _ if *status == 429 || *status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            // Meta answered 2xx: the message may be on its way.
            MetaError::Request(_) | MetaError::Answer { .. } => ErrorClass::Permanent,
        }
    }

    /// The token or the app's permissions are wrong (190, 10): every send
    /// will fail until someone fixes the setup.
    pub fn is_configuration(&self) -> bool {
        self.class() == ErrorClass::Configuration
    }
}

impl Failure for MetaError {
    fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    fn provider_code(&self) -> Option<u32> {
        match self {
            MetaError::Api { code, .. } => *code,
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            MetaError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Meta's media types by file extension; anything else goes as a document.
fn media_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" | "png" => "image",
        "mp4" | "3gp" => "video",
        "aac" | "amr" | "mp3" | "m4a" | "ogg" | "opus" => "audio",
        "webp" => "sticker",
        _ => "document",
    }
}

/// A template's body parameters: positional values in placeholder order
/// (`{{1}}`, `{{2}}`, ... `{{10}}`), named ones with their names.
fn template_parameters(variables: &Variables) -> Result<Vec<Value>, MetaError> {
    let (shape, values) = variables.as_given();
    if shape == "malformed" {
        return Err(MetaError::Request("malformed template variables".into()));
    }
    let mut numbered: Vec<(u64, &str)> = Vec::new();
    let mut named: Vec<(&str, &str)> = Vec::new();
    for (k, v) in values {
        match k.parse::<u64>() {
            Ok(n) => numbered.push((n, v)),
            Err(_) => named.push((k, v)),
        }
    }
    if !numbered.is_empty() && !named.is_empty() {
        return Err(MetaError::Request(
            "template variables mix positions and names".into(),
        ));
    }
    numbered.sort_unstable();
    Ok(if named.is_empty() {
        numbered
            .into_iter()
            .map(|(_, v)| json!({"type": "text", "text": v}))
            .collect()
    } else {
        named
            .into_iter()
            .map(|(k, v)| json!({"type": "text", "parameter_name": k, "text": v}))
            .collect()
    })
}

/// The `POST /{version}/{phone-number-id}/messages` for an allowed message.
///
/// The recipient: a phone goes in `to` (digits); a business-scoped id in
/// `recipient`, unless the person has a linked phone
/// ([`OutboundMessage::phone`]), which Meta recommends (phone fields then
/// keep coming in webhooks). Text as `text`, media as `image`, `video`,
/// `audio`, `document` or `sticker` by link (an `http(s)` URL) or by
/// uploaded media id, templates by name and language with their body
/// parameters.
///
/// # Errors
/// [`MetaError::Request`] when the message cannot be sent as given (more
/// than one attachment, malformed variables, a bad base URL).
pub fn message_request(
    config: &MetaConfig,
    message: &OutboundMessage,
) -> Result<HttpRequest, MetaError> {
    let mut body = serde_json::Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    let phone = message
        .phone
        .as_ref()
        .or(Some(&message.to).filter(|a| a.is_phone()));
    match (phone.and_then(|p| p.e164()), message.to.bsuid()) {
        (Some(e164), _) => {
            body.insert("to".into(), json!(e164.trim_start_matches('+')));
        }
        (None, Some(id)) => {
            body.insert("recipient".into(), json!(id));
        }
        (None, None) => {
            return Err(MetaError::Request(format!(
                "no recipient in {}",
                message.to
            )));
        }
    }
    match &message.content {
        Content::Freeform { text, media } => match media.as_slice() {
            [] => {
                body.insert("type".into(), json!("text"));
                body.insert("text".into(), json!({"body": text, "preview_url": false}));
            }
            [one] => {
                let kind = media_type(one);
                let mut m = serde_json::Map::new();
                if one.starts_with("https://") || one.starts_with("http://") {
                    m.insert("link".into(), json!(one));
                } else {
                    m.insert("id".into(), json!(one));
                }
                if !text.is_empty() && matches!(kind, "image" | "video" | "document") {
                    m.insert("caption".into(), json!(text));
                }
                body.insert("type".into(), json!(kind));
                body.insert(kind.into(), Value::Object(m));
            }
            _ => {
                return Err(MetaError::Request(
                    "Meta takes one attachment per message".into(),
                ));
            }
        },
        Content::Template {
            name,
            language,
            variables,
        } => {
            let parameters = template_parameters(variables)?;
            let mut template = json!({"name": name, "language": {"code": language}});
            if !parameters.is_empty()
                && let Some(t) = template.as_object_mut()
            {
                t.insert(
                    "components".into(),
                    json!([{"type": "body", "parameters": parameters}]),
                );
            }
            body.insert("type".into(), json!("template"));
            body.insert("template".into(), template);
        }
    }
    let base = config.base_url.to_ascii_lowercase();
    if !base.starts_with("https://") && !base.starts_with("http://") {
        return Err(MetaError::Request(format!(
            "base URL {:?} is not http(s)://",
            config.base_url
        )));
    }
    let url = format!(
        "{}/{}/{}/messages",
        config.base_url.trim_end_matches('/'),
        config.version,
        config.phone_number_id
    );
    let bytes = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| MetaError::Request(format!("cannot encode the message: {e}")))?;
    let mut request = ::http::Request::post(url)
        .header(
            ::http::header::AUTHORIZATION,
            format!("Bearer {}", config.access_token),
        )
        .header(::http::header::CONTENT_TYPE, "application/json")
        .header(::http::header::ACCEPT, "application/json")
        .header(
            ::http::header::USER_AGENT,
            concat!("wagate/", env!("CARGO_PKG_VERSION")),
        )
        .body(bytes)
        .map_err(|e| MetaError::Request(format!("invalid request: {e}")))?;
    request.extensions_mut().insert(Timeout(config.timeout));
    Ok(request)
}

#[derive(Deserialize)]
struct Sent {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
    message_status: Option<String>,
}

#[derive(Deserialize, Default)]
struct Envelope {
    error: Option<GraphError>,
}

#[derive(Deserialize, Default)]
struct GraphError {
    message: Option<String>,
    code: Option<Value>,
    error_subcode: Option<Value>,
    error_data: Option<ErrorData>,
    fbtrace_id: Option<String>,
    error_user_msg: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorData {
    details: Option<String>,
}

/// Reads Meta's answer to [`message_request`].
///
/// # Errors
/// [`MetaError::Api`] for an error answer, [`MetaError::Answer`] for a 2xx
/// that names no message.
pub fn message_response(response: HttpResponse) -> Result<MetaReceipt, MetaError> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        let sent: Sent =
            serde_json::from_slice(response.body()).map_err(|e| MetaError::Answer {
                status,
                why: e.to_string(),
            })?;
        return match sent.messages.into_iter().next() {
            Some(m) if !m.id.is_empty() => Ok(MetaReceipt {
                id: m.id,
                status: m.message_status,
            }),
            _ => Err(MetaError::Answer {
                status,
                why: "no message id".into(),
            }),
        };
    }
    let retry_after = crate::providers::http::retry_after(&response);
    let envelope: Envelope = serde_json::from_slice(response.body()).unwrap_or_default();
    let e = envelope.error.unwrap_or_default();
    let message = e
        .message
        .or(e.error_user_msg)
        .unwrap_or_else(|| crate::providers::http::answer_text(&response));
    Err(MetaError::Api {
        status,
        code: e.code.as_ref().and_then(crate::providers::http::error_code),
        subcode: e
            .error_subcode
            .as_ref()
            .and_then(crate::providers::http::error_code),
        message,
        details: e.error_data.and_then(|d| d.details),
        fbtrace_id: e.fbtrace_id,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_follow_the_extension() {
        assert_eq!(media_type("https://x/a.JPG?sig=1"), "image");
        assert_eq!(media_type("https://x/v.mp4"), "video");
        assert_eq!(media_type("https://x/a.ogg"), "audio");
        assert_eq!(media_type("https://x/s.webp"), "sticker");
        assert_eq!(media_type("https://x/invoice.pdf"), "document");
        assert_eq!(media_type("1234567890"), "document");
        assert_eq!(media_type("https://x.example/"), "document");
    }

    #[test]
    fn positional_parameters_go_in_placeholder_order() {
        let v = Variables::positional((1..=11).map(|i| format!("v{i}")));
        let p = template_parameters(&v).unwrap_or_default();
        let texts: Vec<&str> = p.iter().filter_map(|x| x["text"].as_str()).collect();
        assert_eq!(texts.first(), Some(&"v1"));
        assert_eq!(texts.get(9), Some(&"v10"));
        assert_eq!(texts.get(10), Some(&"v11"));
    }
}
