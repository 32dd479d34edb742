//! The wasm glue: reads the operator's config and exports [`crate::Faq::answer`] as the
//! `reply-generator` world.

use smsflow_plugin_sdk::reply_generator::{Draft, ReplyGenerator};
use smsflow_plugin_sdk::{Context, PluginError, config, log};

use crate::{DEFAULT_MIN_CONFIDENCE, Faq, parse_min_confidence};

/// The reply generator the host instantiates.
#[derive(Default)]
pub struct FaqReplies;

impl ReplyGenerator for FaqReplies {
    fn draft_reply(&self, text: &str, context: &Context) -> Result<Draft, PluginError> {
        let json = config::get("faq").ok_or_else(|| {
            PluginError::InvalidInput(
                "plugin config `faq` is not set: it must be an array of {question, keywords, \
                 answer, locale} entries"
                    .to_owned(),
            )
        })?;
        let mut faq = Faq::from_json(&json)
            .map_err(|error| PluginError::InvalidInput(format!("plugin config `faq`: {error}")))?;
        if let Some(fallback) = config::get("fallback") {
            if fallback.trim().is_empty() {
                return Err(PluginError::InvalidInput(
                    "plugin config `fallback` is empty".to_owned(),
                ));
            }
            faq = faq.with_fallback(fallback);
        }
        let min_confidence = match config::get("min_confidence") {
            Some(value) => parse_min_confidence(&value).map_err(PluginError::InvalidInput)?,
            None => DEFAULT_MIN_CONFIDENCE,
        };

        let answer = faq.answer(text, &context.language(), min_confidence);
        match answer.entry {
            Some(entry) => log::debug(&format!(
                "faq entry {entry} answered with confidence {:.2}",
                answer.confidence
            )),
            None => log::debug("no faq entry matched; drafted the fallback"),
        }
        let draft = Draft::new(answer.text, answer.confidence);
        Ok(match answer.next_step {
            Some(step) => draft.with_next_step(step),
            None => draft,
        })
    }
}

smsflow_plugin_sdk::register_reply_generator!(FaqReplies);
