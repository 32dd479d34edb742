//! Reply generators: given the conversation, draft a reply. The host sends it, through its
//! compliance gates, or not at all.

#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs, clippy::too_many_arguments)]
    wit_bindgen::generate!({
        world: "reply-generator",
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
        default_bindings_module: "::smsflow_plugin_sdk::reply_generator::bindings",
    });
}

use crate::{Context, PluginError};

pub use bindings::Draft;

impl Draft {
    /// A draft with no suggested next step.
    pub fn new(text: impl Into<String>, confidence: f32) -> Self {
        Self {
            text: text.into(),
            confidence,
            next_step: None,
        }
    }

    /// Suggests the step the flow should take next (such as `handoff`).
    #[must_use]
    pub fn with_next_step(mut self, step: impl Into<String>) -> Self {
        self.next_step = Some(step.into());
        self
    }
}

/// A reply generator. The host builds it with `Default` for each call.
pub trait ReplyGenerator: Default {
    /// Drafts a reply to `text`, the latest inbound text of the conversation.
    ///
    /// # Errors
    ///
    /// A [`PluginError`] saying why no draft could be made.
    fn draft_reply(&self, text: &str, context: &Context) -> Result<Draft, PluginError>;
}

/// Exports a [`ReplyGenerator`] as the component's `reply-generator` world.
#[macro_export]
macro_rules! register_reply_generator {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __SmsflowReplyGeneratorExport;

        impl $crate::reply_generator::bindings::Guest for __SmsflowReplyGeneratorExport {
            fn draft_reply(
                text: ::std::string::String,
                context: $crate::Context,
            ) -> ::core::result::Result<$crate::reply_generator::Draft, $crate::PluginError> {
                $crate::reply_generator::ReplyGenerator::draft_reply(
                    &<$plugin as ::core::default::Default>::default(),
                    &text,
                    &context,
                )
            }
        }

        // Natively the exports would be plain C symbols (`write` would shadow libc's), so
        // they exist only in the wasm build; the trait impl above still compiles and tests.
        #[cfg(target_arch = "wasm32")]
        $crate::reply_generator::bindings::export!(__SmsflowReplyGeneratorExport);
    };
}
