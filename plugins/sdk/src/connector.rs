//! Connectors: lookups and writes against a CRM or an API, over the host's HTTP import.

#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs, clippy::too_many_arguments)]
    wit_bindgen::generate!({
        world: "connector",
        path: "wit/v0.1.0",
        runtime_path: "::smsflow_plugin_sdk::__wit_bindgen::rt",
        with: {
            "smsflow:plugin/types@0.1.0": crate::host_bindings::smsflow::plugin::types,
            "smsflow:plugin/log@0.1.0": crate::host_bindings::smsflow::plugin::log,
            "smsflow:plugin/clock@0.1.0": crate::host_bindings::smsflow::plugin::clock,
            "smsflow:plugin/config@0.1.0": crate::host_bindings::smsflow::plugin::config,
            "smsflow:plugin/kv@0.1.0": crate::host_bindings::smsflow::plugin::kv,
            "smsflow:plugin/http@0.1.0": crate::host_bindings::smsflow::plugin::http,
        },
        pub_export_macro: true,
        default_bindings_module: "::smsflow_plugin_sdk::connector::bindings",
    });
}

use crate::{Context, Field, PluginError};

/// A connector. The host builds it with `Default` for each call.
pub trait Connector: Default {
    /// Finds one record of `entity` (such as `order` or `contact`) by `key`.
    ///
    /// # Errors
    ///
    /// [`PluginError::InvalidInput`] for an entity the connector does not know; otherwise what the
    /// upstream service or the host's HTTP import reported.
    fn lookup(&self, entity: &str, key: &str, context: &Context)
    -> Result<Vec<Field>, PluginError>;

    /// Records something (such as a `note` or an `event`) with `fields`.
    ///
    /// # Errors
    ///
    /// As [`Connector::lookup`].
    fn write(
        &self,
        entity: &str,
        fields: &[Field],
        context: &Context,
    ) -> Result<Vec<Field>, PluginError>;
}

/// The value of the field `name` in `fields`.
pub fn field<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|field| field.name == name)
        .map(|field| field.value.as_str())
}

/// Exports a [`Connector`] as the component's `connector` world.
#[macro_export]
macro_rules! register_connector {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __SmsflowConnectorExport;

        impl $crate::connector::bindings::Guest for __SmsflowConnectorExport {
            fn lookup(
                entity: ::std::string::String,
                key: ::std::string::String,
                context: $crate::Context,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::Field>, $crate::PluginError> {
                $crate::connector::Connector::lookup(
                    &<$plugin as ::core::default::Default>::default(),
                    &entity,
                    &key,
                    &context,
                )
            }

            fn write(
                entity: ::std::string::String,
                fields: ::std::vec::Vec<$crate::Field>,
                context: $crate::Context,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::Field>, $crate::PluginError> {
                $crate::connector::Connector::write(
                    &<$plugin as ::core::default::Default>::default(),
                    &entity,
                    &fields,
                    &context,
                )
            }
        }

        // Natively the exports would be plain C symbols (`write` would shadow libc's), so
        // they exist only in the wasm build; the trait impl above still compiles and tests.
        #[cfg(target_arch = "wasm32")]
        $crate::connector::bindings::export!(__SmsflowConnectorExport);
    };
}
