//! Twilio's Messages API: `POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json`.

use serde::Deserialize;

use super::{BoxFuture, Cleared, Provider, Receipt, SendError, exchange, provider_client, refusal};

/// Twilio's error code for a recipient who replied STOP to the carrier.
pub const OPTED_OUT_CODE: &str = "21610";

/// The default API base.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// Sends texts through Twilio.
#[derive(Debug)]
pub struct TwilioProvider {
    client: reqwest::Client,
    api_base: String,
    account_sid: String,
    auth_token: String,
    status_callback: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Created {
    sid: String,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioProvider {
    /// A provider for the account `account_sid`, calling `api_base`, asking Twilio to report
    /// delivery to `status_callback`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn new(
        api_base: &str,
        account_sid: &str,
        auth_token: &str,
        status_callback: Option<String>,
    ) -> anyhow::Result<Self> {
        let client = provider_client()?;
        Ok(Self {
            client,
            api_base: api_base.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            status_callback,
        })
    }
}

impl Provider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, message: &'a Cleared<'a>) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.api_base, self.account_sid
            );
            let mut form = vec![
                ("To", message.to.as_str()),
                ("From", message.from.as_str()),
                ("Body", message.body.as_str()),
            ];
            if let Some(callback) = &self.status_callback {
                form.push(("StatusCallback", callback.as_str()));
            }
            let request = self
                .client
                .post(&url)
                .basic_auth(&self.account_sid, Some(&self.auth_token))
                .form(&form);
            let (status, body) = exchange(request).await?;
            if status.is_success() {
                let created: Created = serde_json::from_slice(&body).map_err(|error| {
                    SendError::Retryable(format!("Twilio answered {status} without a sid: {error}"))
                })?;
                return Ok(Receipt {
                    provider_id: created.sid,
                });
            }
            let detail = serde_json::from_slice::<ApiError>(&body).ok();
            let code = detail
                .as_ref()
                .and_then(|detail| detail.code)
                .map(|code| code.to_string());
            let message = detail.and_then(|detail| detail.message);
            Err(refusal(
                status,
                code.as_deref(),
                message.as_deref(),
                OPTED_OUT_CODE,
            ))
        })
    }
}
