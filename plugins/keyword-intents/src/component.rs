//! The wasm glue: exports [`crate::classify`] as the `classifier` world.

use smsflow_plugin_sdk::classifier::{Classifier, Intent};
use smsflow_plugin_sdk::{Context, PluginError};

// Every call is a fresh instance and allocates a few hundred bytes: the standard allocator's
// first allocation grew the memory by a page on every call, which the host paid for in two
// `mprotect`s (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: smsflow_plugin_sdk::alloc::PerCall = smsflow_plugin_sdk::alloc::PerCall::new();

/// The classifier the host instantiates.
#[derive(Default)]
pub struct KeywordIntents;

impl Classifier for KeywordIntents {
    fn intents(&self) -> Vec<String> {
        crate::INTENTS.iter().map(|&name| name.to_owned()).collect()
    }

    fn classify(&self, text: &str, _context: &Context) -> Result<Intent, PluginError> {
        let classification = crate::classify(text);
        let mut intent = Intent::new(classification.intent, classification.confidence);
        for (name, value) in classification.entities {
            intent = intent.with_entity(name, value);
        }
        Ok(intent)
    }
}

smsflow_plugin_sdk::register_classifier!(KeywordIntents);
