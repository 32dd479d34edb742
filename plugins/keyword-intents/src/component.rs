//! The wasm glue: exports [`crate::classify`] as the `classifier` world.

use smsflow_plugin_sdk::classifier::{Classifier, Intent};
use smsflow_plugin_sdk::{Context, PluginError};

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
