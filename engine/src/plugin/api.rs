//! The engine's side of the plugin contract: plain Rust values for what plugins take and
//! return, independent of wasmtime, and their conversions to and from the generated bindings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bindings::host::smsflow::plugin::types as wit;
use super::bindings::{classifier, reply_generator};
use super::manifest::World;

/// What the host tells a plugin about the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Context {
    /// The contact's number, E.164.
    pub contact: String,
    /// BCP 47 language tag.
    pub locale: String,
    /// Conversation fields.
    pub fields: BTreeMap<String, String>,
    /// Intents of earlier inbound texts, most recent first.
    pub last_intents: Vec<String>,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            contact: String::new(),
            locale: "en".to_owned(),
            fields: BTreeMap::new(),
            last_intents: Vec::new(),
        }
    }
}

impl Context {
    /// Bytes of text the context carries, for the input limit.
    pub fn size(&self) -> usize {
        self.contact.len()
            + self.locale.len()
            + fields_size(&self.fields)
            + self.last_intents.iter().map(String::len).sum::<usize>()
    }

    pub(super) fn to_wit(&self) -> wit::Context {
        wit::Context {
            contact: self.contact.clone(),
            locale: self.locale.clone(),
            fields: fields_to_wit(&self.fields),
            last_intents: self.last_intents.clone(),
        }
    }
}

/// Bytes of text in a set of fields.
pub fn fields_size(fields: &BTreeMap<String, String>) -> usize {
    fields
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum()
}

pub(super) fn fields_to_wit(fields: &BTreeMap<String, String>) -> Vec<wit::Field> {
    fields
        .iter()
        .map(|(name, value)| wit::Field {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(super) fn fields_from_wit(fields: Vec<wit::Field>) -> BTreeMap<String, String> {
    fields
        .into_iter()
        .map(|field| (field.name, field.value))
        .collect()
}

/// A classifier's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The intent's name, or `unknown`.
    pub name: String,
    /// From 0.0 to 1.0.
    pub confidence: f32,
    /// Values pulled out of the text.
    pub entities: BTreeMap<String, String>,
}

impl Intent {
    /// Bytes of text the intent carries, for the output limit.
    pub fn size(&self) -> usize {
        self.name.len() + fields_size(&self.entities)
    }
}

impl From<classifier::Intent> for Intent {
    fn from(intent: classifier::Intent) -> Self {
        Self {
            name: intent.name,
            confidence: intent.confidence,
            entities: fields_from_wit(intent.entities),
        }
    }
}

/// A reply generator's draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// The reply's text.
    pub text: String,
    /// From 0.0 to 1.0.
    pub confidence: f32,
    /// The step the plugin suggests next.
    pub next_step: Option<String>,
}

impl Draft {
    /// Bytes of text the draft carries, for the output limit.
    pub fn size(&self) -> usize {
        self.text.len() + self.next_step.as_ref().map_or(0, String::len)
    }
}

impl From<reply_generator::Draft> for Draft {
    fn from(draft: reply_generator::Draft) -> Self {
        Self {
            text: draft.text,
            confidence: draft.confidence,
            next_step: draft.next_step,
        }
    }
}

/// An error a plugin reported about its own work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum PluginFailure {
    /// The input cannot be handled.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The host or the upstream service refused.
    #[error("denied: {0}")]
    Denied(String),
    /// The upstream service failed.
    #[error("upstream failure: {0}")]
    UpstreamFailure(String),
    /// The upstream service asks to retry after this many seconds.
    #[error("rate limited: retry after {0} s")]
    RateLimited(u32),
    /// A bug or unexpected state in the plugin.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<wit::PluginError> for PluginFailure {
    fn from(error: wit::PluginError) -> Self {
        match error {
            wit::PluginError::InvalidInput(message) => Self::InvalidInput(message),
            wit::PluginError::Denied(message) => Self::Denied(message),
            wit::PluginError::UpstreamFailure(message) => Self::UpstreamFailure(message),
            wit::PluginError::RateLimited(seconds) => Self::RateLimited(seconds),
            wit::PluginError::Internal(message) => Self::Internal(message),
        }
    }
}

impl PluginFailure {
    /// Bytes of text the failure carries, for the output limit.
    pub fn size(&self) -> usize {
        match self {
            Self::InvalidInput(message)
            | Self::Denied(message)
            | Self::UpstreamFailure(message)
            | Self::Internal(message) => message.len(),
            Self::RateLimited(_) => 0,
        }
    }
}

/// An input `smsflow plugin call --input` takes for a plugin of `world`, as JSON.
pub fn call_input_example(world: World) -> &'static str {
    match world {
        World::Classifier => r#"{"text": "where is my order"}"#,
        World::ReplyGenerator => r#"{"text": "what are your hours?"}"#,
        World::Connector => r#"{"operation": "lookup", "entity": "order", "key": "A100"}"#,
    }
}

/// What `smsflow plugin call --input` takes for a plugin of `world`, with an example, in the words
/// its error messages use.
pub fn call_input_help(world: World) -> String {
    let shape = match world {
        World::Classifier | World::ReplyGenerator => {
            r#"{"text": "...", "context": {...}} (context is optional)"#
        }
        World::Connector => {
            r#"{"operation": "lookup", "entity": "...", "key": "..."} or {"operation": "write", "entity": "...", "fields": {...}} (each with an optional "context")"#
        }
    };
    format!(
        "a {world} takes {shape}, for example --input '{}'",
        call_input_example(world)
    )
}

/// The input of a classifier or a reply generator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    /// The inbound text.
    pub text: String,
    /// The conversation.
    #[serde(default)]
    pub context: Context,
}

/// The input of a connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "operation", rename_all = "lowercase", deny_unknown_fields)]
pub enum ConnectorCall {
    /// Find one record of `entity` by `key`.
    Lookup {
        /// Such as `order` or `contact`.
        entity: String,
        /// The record's key; empty lets the connector take it from the context.
        #[serde(default)]
        key: String,
        /// The conversation.
        #[serde(default)]
        context: Context,
    },
    /// Record something.
    Write {
        /// Such as `note`.
        entity: String,
        /// What to record.
        #[serde(default)]
        fields: BTreeMap<String, String>,
        /// The conversation.
        #[serde(default)]
        context: Context,
    },
}
