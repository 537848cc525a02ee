//! [`MetaTransport`]: the Graph API's messages endpoint over any HTTP
//! client.

use super::api::{self, MetaConfig, MetaError, MetaReceipt};
use crate::providers::http::SyncHttpClient;
use crate::transport::{OutboundMessage, Transport};

/// Sends allowed messages through Meta's Cloud API: a [`Transport`] over a
/// [`SyncHttpClient`] (such as `ureq::Agent`, feature `ureq`) and, with
/// feature `tokio`, an `AsyncTransport` over an
/// [`AsyncHttpClient`](crate::providers::http::AsyncHttpClient) (such as
/// `reqwest::Client`, feature `reqwest`).
///
/// Errors carry Meta's code, which the gate feeds back (131047 closes the
/// window, 131050 opts out of marketing, 132015 pauses the template: RULES
/// R7); [`MetaError::is_configuration`] tells a token or permission
/// problem (190, 10) that needs a person.
#[derive(Clone, Debug)]
pub struct MetaTransport<C> {
    config: MetaConfig,
    client: C,
}

impl<C> MetaTransport<C> {
    /// A transport with `config` over `client`.
    pub fn new(config: MetaConfig, client: C) -> Self {
        MetaTransport { config, client }
    }

    /// Its configuration.
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }
}

impl<C: SyncHttpClient> Transport for MetaTransport<C> {
    type Ok = MetaReceipt;
    type Error = MetaError;
    fn send(&self, message: &OutboundMessage) -> Result<MetaReceipt, MetaError> {
        let request = api::message_request(&self.config, message)?;
        let response = self
            .client
            .call(request)
            .map_err(|e| MetaError::Http(e.to_string()))?;
        api::message_response(response)
    }
}

#[cfg(feature = "tokio")]
impl<C: crate::providers::http::AsyncHttpClient + Send + Sync> crate::transport::AsyncTransport
    for MetaTransport<C>
{
    type Ok = MetaReceipt;
    type Error = MetaError;
    async fn send(&self, message: &OutboundMessage) -> Result<MetaReceipt, MetaError> {
        let request = api::message_request(&self.config, message)?;
        // The request carries its `Timeout`; the client enforces it.
        let response = self
            .client
            .call(request)
            .await
            .map_err(|e| MetaError::Http(e.to_string()))?;
        api::message_response(response)
    }
}
