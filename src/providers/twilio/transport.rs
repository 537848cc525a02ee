//! [`TwilioTransport`]: the Messages API over any HTTP client.

use super::api::{self, TwilioConfig, TwilioError, TwilioReceipt};
use crate::providers::http::SyncHttpClient;
use crate::transport::{OutboundMessage, Transport};

/// Sends allowed messages through Twilio's Messages API: a [`Transport`]
/// over a [`SyncHttpClient`] (such as `ureq::Agent`, feature `ureq`) and,
/// with feature `tokio`, an `AsyncTransport` over an
/// [`AsyncHttpClient`](crate::providers::http::AsyncHttpClient) (such as
/// `reqwest::Client`, feature `reqwest`).
///
/// Only what the gate allowed reaches it; a template goes as `ContentSid`
/// and `ContentVariables`, so register templates with their
/// `twilio_content_sid`. Errors carry Twilio's code, which the gate feeds
/// back (21610 opts the user out, 63016 closes the window: RULES R7).
#[derive(Clone, Debug)]
pub struct TwilioTransport<C> {
    config: TwilioConfig,
    client: C,
}

impl<C> TwilioTransport<C> {
    /// A transport with `config` over `client`.
    pub fn new(config: TwilioConfig, client: C) -> Self {
        TwilioTransport { config, client }
    }

    /// Its configuration.
    pub fn config(&self) -> &TwilioConfig {
        &self.config
    }
}

impl<C: SyncHttpClient> Transport for TwilioTransport<C> {
    type Ok = TwilioReceipt;
    type Error = TwilioError;
    fn send(&self, message: &OutboundMessage) -> Result<TwilioReceipt, TwilioError> {
        let request = api::message_request(&self.config, message)?;
        let response = self
            .client
            .call(request)
            .map_err(|e| TwilioError::Http(e.to_string()))?;
        api::message_response(response)
    }
}

#[cfg(feature = "tokio")]
impl<C: crate::providers::http::AsyncHttpClient + Send + Sync> crate::transport::AsyncTransport
    for TwilioTransport<C>
{
    type Ok = TwilioReceipt;
    type Error = TwilioError;
    async fn send(&self, message: &OutboundMessage) -> Result<TwilioReceipt, TwilioError> {
        let request = api::message_request(&self.config, message)?;
        // The request carries its `Timeout`; the client enforces it (a
        // timer here would panic on a runtime built without time).
        let response = self
            .client
            .call(request)
            .await
            .map_err(|e| TwilioError::Http(e.to_string()))?;
        api::message_response(response)
    }
}
