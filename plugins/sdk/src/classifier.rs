//! Intent classifiers: given an inbound text and its conversation, return an intent.

#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs, clippy::too_many_arguments)]
    wit_bindgen::generate!({
        world: "classifier",
        path: "wit/v0.1.0",
        runtime_path: "::smsflow_plugin_sdk::__wit_bindgen::rt",
        with: {
            "smsflow:plugin/types@0.1.0": crate::host_bindings::smsflow::plugin::types,
            "smsflow:plugin/log@0.1.0": crate::host_bindings::smsflow::plugin::log,
            "smsflow:plugin/clock@0.1.0": crate::host_bindings::smsflow::plugin::clock,
            "smsflow:plugin/config@0.1.0": crate::host_bindings::smsflow::plugin::config,
            "smsflow:plugin/kv@0.1.0": crate::host_bindings::smsflow::plugin::kv,
        },
        pub_export_macro: true,
        default_bindings_module: "::smsflow_plugin_sdk::classifier::bindings",
    });
}

use crate::{Context, Field, PluginError};

pub use bindings::Intent;

impl Intent {
    /// An intent with no entities.
    pub fn new(name: impl Into<String>, confidence: f32) -> Self {
        Self {
            name: name.into(),
            confidence,
            entities: Vec::new(),
        }
    }

    /// Adds an extracted entity.
    #[must_use]
    pub fn with_entity(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.entities.push(Field::new(name, value));
        self
    }
}

/// An intent classifier. The host builds it with `Default` for each call.
pub trait Classifier: Default {
    /// The intents [`Classifier::classify`] can return, besides `unknown`.
    fn intents(&self) -> Vec<String>;

    /// Classifies `text`, an inbound text of the conversation described by `context`.
    ///
    /// # Errors
    ///
    /// A [`PluginError`] saying why the text could not be classified.
    fn classify(&self, text: &str, context: &Context) -> Result<Intent, PluginError>;
}

/// Exports a [`Classifier`] as the component's `classifier` world.
#[macro_export]
macro_rules! register_classifier {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __SmsflowClassifierExport;

        impl $crate::classifier::bindings::Guest for __SmsflowClassifierExport {
            fn intents() -> ::std::vec::Vec<::std::string::String> {
                $crate::classifier::Classifier::intents(
                    &<$plugin as ::core::default::Default>::default(),
                )
            }

            fn classify(
                text: ::std::string::String,
                context: $crate::Context,
            ) -> ::core::result::Result<$crate::classifier::Intent, $crate::PluginError> {
                $crate::classifier::Classifier::classify(
                    &<$plugin as ::core::default::Default>::default(),
                    &text,
                    &context,
                )
            }
        }

        // Natively the exports would be plain C symbols (`write` would shadow libc's), so
        // they exist only in the wasm build; the trait impl above still compiles and tests.
        #[cfg(target_arch = "wasm32")]
        $crate::classifier::bindings::export!(__SmsflowClassifierExport);
    };
}
