//! Telnyx's Messaging API: `POST {api_base}/v2/messages`.

use serde::Deserialize;

use futures_util::future::BoxFuture;

use super::{Cleared, Provider, Receipt, SendError, exchange, provider_client, refusal};

/// The default API base.
pub const DEFAULT_API_BASE: &str = "https://api.telnyx.com";

/// Telnyx's error code for a recipient who replied STOP.
pub const OPTED_OUT_CODE: &str = "40300";

/// Sends texts through Telnyx.
#[derive(Debug)]
pub struct TelnyxProvider {
    client: reqwest::Client,
    api_base: String,
    api_key: String,
    webhook_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Created {
    data: CreatedData,
}

#[derive(Debug, Deserialize)]
struct CreatedData {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ApiErrors {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    code: Option<serde_json::Value>,
    title: Option<String>,
}

impl TelnyxProvider {
    /// A provider calling `api_base` with `api_key`, asking Telnyx to report delivery to
    /// `webhook_url`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn new(api_base: &str, api_key: &str, webhook_url: Option<String>) -> anyhow::Result<Self> {
        let client = provider_client()?;
        Ok(Self {
            client,
            api_base: api_base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            webhook_url,
        })
    }
}

impl Provider for TelnyxProvider {
    fn name(&self) -> &'static str {
        "telnyx"
    }

    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            let mut request = serde_json::json!({
                "from": message.from,
                "to": message.to,
                "text": message.body,
            });
            if let Some(url) = &self.webhook_url {
                request["webhook_url"] = serde_json::Value::String(url.clone());
            }
            let request = self
                .client
                .post(format!("{}/v2/messages", self.api_base))
                .bearer_auth(&self.api_key)
                .header("content-type", "application/json")
                .body(request.to_string());
            let answer = exchange(request).await?;
            let status = answer.status;
            if status.is_success() {
                let created: Created = serde_json::from_slice(&answer.body).map_err(|error| {
                    SendError::Retryable(format!("Telnyx answered {status} without an id: {error}"))
                })?;
                return Ok(Receipt {
                    provider_id: created.data.id,
                });
            }
            let first = serde_json::from_slice::<ApiErrors>(&answer.body)
                .ok()
                .and_then(|errors| errors.errors.into_iter().next());
            let code = first.as_ref().and_then(|error| match &error.code {
                Some(serde_json::Value::String(code)) => Some(code.clone()),
                Some(serde_json::Value::Number(code)) => Some(code.to_string()),
                _ => None,
            });
            let title = first.and_then(|error| error.title);
            Err(refusal(
                &answer,
                code.as_deref(),
                title.as_deref(),
                OPTED_OUT_CODE,
            ))
        })
    }
}
