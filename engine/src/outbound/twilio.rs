//! Twilio's Messages API: `POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json`.

use serde::Deserialize;

use futures_util::future::BoxFuture;

use super::{
    Cleared, Lookup, OutboundMessage, Provider, Receipt, SendError, exchange, provider_client,
    refusal,
};

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

/// A page of Twilio's message list.
#[derive(Debug, Deserialize)]
struct MessageList {
    messages: Vec<Listed>,
}

/// A text in Twilio's message list.
#[derive(Debug, Deserialize)]
struct Listed {
    sid: String,
    body: Option<String>,
    /// RFC 2822, as Twilio writes it: `Wed, 18 Aug 2010 20:01:40 +0000`.
    date_created: Option<String>,
}

/// Clocks differ: a text Twilio dated up to this long before our call began is still ours.
const CLOCK_SKEW_MS: i64 = 60_000;

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

    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>> {
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
            let answer = exchange(request).await?;
            let status = answer.status;
            if status.is_success() {
                let created: Created = serde_json::from_slice(&answer.body).map_err(|error| {
                    SendError::Retryable(format!("Twilio answered {status} without a sid: {error}"))
                })?;
                return Ok(Receipt {
                    provider_id: created.sid,
                });
            }
            let detail = serde_json::from_slice::<ApiError>(&answer.body).ok();
            let code = detail
                .as_ref()
                .and_then(|detail| detail.code)
                .map(|code| code.to_string());
            let message = detail.and_then(|detail| detail.message);
            Err(refusal(
                &answer,
                code.as_deref(),
                message.as_deref(),
                OPTED_OUT_CODE,
            ))
        })
    }

    /// Twilio's message list, filtered by recipient, sender and the day the call began: a
    /// text with the same body, created since the call began, is the one we sent.
    fn find_sent<'a>(
        &'a self,
        message: &'a OutboundMessage,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Lookup, SendError>> {
        Box::pin(async move {
            let since = jiff::Timestamp::from_millisecond(since_ms - CLOCK_SKEW_MS)
                .map_err(|error| SendError::Rejected(error.to_string()))?;
            let day = since.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.api_base, self.account_sid
            );
            let request = self
                .client
                .get(&url)
                .basic_auth(&self.account_sid, Some(&self.auth_token))
                .query(&[
                    ("To", message.to.as_str()),
                    ("From", message.from.as_str()),
                    ("DateSent>", day.as_str()),
                    ("PageSize", "100"),
                ]);
            let answer = exchange(request).await?;
            if !answer.status.is_success() {
                return Err(refusal(&answer, None, None, OPTED_OUT_CODE));
            }
            let list: MessageList = serde_json::from_slice(&answer.body).map_err(|error| {
                SendError::Retryable(format!("Twilio's message list does not parse: {error}"))
            })?;
            let ours = list.messages.into_iter().find(|listed| {
                listed.body.as_deref() == Some(message.body.as_str())
                    && listed
                        .date_created
                        .as_deref()
                        .and_then(created_ms)
                        .is_none_or(|created| created >= since.as_millisecond())
            });
            Ok(match ours {
                Some(listed) => Lookup::Sent(Receipt {
                    provider_id: listed.sid,
                }),
                None => Lookup::NotSent,
            })
        })
    }
}

/// Milliseconds of Twilio's RFC 2822 `date_created`.
fn created_ms(text: &str) -> Option<i64> {
    let zoned = jiff::fmt::rfc2822::parse(text).ok()?;
    Some(zoned.timestamp().as_millisecond())
}
