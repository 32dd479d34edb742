//! The read-only record commands, `smsflow inbox`, `smsflow dlq list` and
//! `smsflow consent verify|export`, with the server stopped or running.
//!
//! sled locks its folder for one process and has no read-only opening, so while `smsflow serve`
//! holds the store these commands read it through the server's operator API (`/v1/inbox`,
//! `/v1/dlq`, `/v1/consent/...`, with `[server] api_token`), as `smsflow agents` does. They print
//! the same lines either way.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;

use crate::clock::SystemClock;
use crate::compliance::ledger::Ledger;
use crate::config::Config;
use crate::inbox::{Inbox, InboxSettings};
use crate::store::Store;

/// What to read.
#[derive(Debug, Clone)]
pub enum Record {
    /// The inbound texts not yet processed: a JSON line each.
    Inbox,
    /// The dead letters: a JSON line each.
    DeadLetters,
    /// The consent ledger's chain check; fails when it is broken.
    ConsentVerify,
    /// A number's consent records, `csv` or JSON.
    ConsentExport {
        /// The number, E.164.
        number: String,
        /// CSV rather than JSON.
        csv: bool,
    },
}

/// Where the records come from.
enum Source {
    /// The store itself: the server is stopped.
    Store(Store),
    /// The running server's operator API.
    Server(Api),
}

/// Prints `record` from the store `config_path` names or, while the server holds it, from the
/// server.
///
/// # Errors
///
/// When neither the store nor the server can be read; a number that is not E.164.
pub async fn run(record: Record, config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    let source = match Store::open(&config.store.path) {
        Ok(store) => Source::Store(store),
        Err(offline_error) => Source::Server(Api::new(&config).with_context(|| {
            format!("cannot open the store ({offline_error}), nor ask the running server")
        })?),
    };
    let (text, intact) = match source {
        Source::Store(store) => from_store(&record, &store)?,
        Source::Server(api) => api.read(&record).await?,
    };
    print!("{text}");
    if !text.is_empty() && !text.ends_with('\n') {
        println!();
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `record` read from the store; and whether the command succeeds.
fn from_store(record: &Record, store: &Store) -> anyhow::Result<(String, bool)> {
    let inbox = || Inbox::new(store, Arc::new(SystemClock), InboxSettings::default());
    let ledger = || Ledger::new(store.tables().consent);
    Ok(match record {
        Record::Inbox => (json_lines(&inbox().pending()?)?, true),
        Record::DeadLetters => (json_lines(&inbox().dead_letters()?)?, true),
        Record::ConsentVerify => match ledger().verify() {
            Ok(count) => (intact_line(count), true),
            Err(error) => (broken_line(&error.to_string()), false),
        },
        Record::ConsentExport { number, csv } => {
            let number = crate::phone::parse_e164(number)?;
            let text = if *csv {
                ledger().export_csv(&number)?
            } else {
                ledger().export_json(&number)?
            };
            (text, true)
        }
    })
}

/// Each item as a line of JSON, keys in one order whichever side read them.
fn json_lines<T: serde::Serialize>(items: &[T]) -> anyhow::Result<String> {
    let values = items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    lines_of(&values)
}

fn lines_of(values: &[Value]) -> anyhow::Result<String> {
    let mut text = String::new();
    for value in values {
        text.push_str(&serde_json::to_string(value)?);
        text.push('\n');
    }
    Ok(text)
}

fn intact_line(count: usize) -> String {
    format!("the consent ledger is intact: {count} records\n")
}

fn broken_line(error: &str) -> String {
    format!("the consent ledger is BROKEN: {error}\n")
}

/// The running server's operator API.
#[derive(Clone)]
pub(super) struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    /// The API of the server `config` describes, with its token.
    ///
    /// # Errors
    ///
    /// When the config has no `[server] api_token`.
    pub(super) fn new(config: &Config) -> anyhow::Result<Self> {
        let token =
            config.server.api_token.clone().context(
                "reading through the running server needs [server] api_token in the config",
            )?;
        Ok(Self {
            base: format!("http://{}", config.server.listen),
            token,
            client: reqwest::Client::new(),
        })
    }

    /// `record` as the server answers it; and whether the command succeeds.
    async fn read(&self, record: &Record) -> anyhow::Result<(String, bool)> {
        Ok(match record {
            Record::Inbox => (lines_of(&self.list("/v1/inbox", "pending").await?)?, true),
            Record::DeadLetters => (
                lines_of(&self.list("/v1/dlq", "dead_letters").await?)?,
                true,
            ),
            Record::ConsentVerify => {
                let body: Value = serde_json::from_str(&self.get("/v1/consent/verify").await?)?;
                match body["records"].as_u64() {
                    Some(count) if body["intact"] == true => (
                        intact_line(usize::try_from(count).unwrap_or(usize::MAX)),
                        true,
                    ),
                    _ => (
                        broken_line(body["error"].as_str().unwrap_or("no detail")),
                        false,
                    ),
                }
            }
            Record::ConsentExport { number, csv } => {
                let number = crate::phone::parse_e164(number)?;
                let format = if *csv { "csv" } else { "json" };
                let path = format!("/v1/consent/{number}?format={format}");
                (self.get(&path).await?, true)
            }
        })
    }

    /// The array at `key` of the JSON that `path` answers.
    async fn list(&self, path: &str, key: &str) -> anyhow::Result<Vec<Value>> {
        let mut body: Value = serde_json::from_str(&self.get(path).await?)?;
        match body[key].take() {
            Value::Array(items) => Ok(items),
            _ => anyhow::bail!(
                "the server's answer to {path} has no `{key}` list: is it an older smsflow?"
            ),
        }
    }

    /// The body `path` answers, or the server's error.
    pub(super) async fn get(&self, path: &str) -> anyhow::Result<String> {
        self.answer(path, self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// What `path` answers to a POST of `body` (of `content_type`), or the server's error.
    pub(super) async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<String> {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.answer(path, request).await
    }

    async fn answer(&self, path: &str, request: reqwest::RequestBuilder) -> anyhow::Result<String> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("is smsflow serving on {}?", self.base))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            let error = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|body| body["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            anyhow::bail!("the server refused {path} ({status}): {error}");
        }
        Ok(text)
    }
}
