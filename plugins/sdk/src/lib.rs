//! The smsflow plugin SDK.
//!
//! A plugin is a struct and an `impl` of one of the traits here ([`classifier::Classifier`],
//! [`connector::Connector`], [`reply_generator::ReplyGenerator`]), registered with the matching
//! macro. Enable the cargo feature of the one kind the plugin is:
//!
//! ```
//! # #[cfg(feature = "classifier")]
//! # mod example {
//! use smsflow_plugin_sdk::classifier::{Classifier, Intent};
//! use smsflow_plugin_sdk::{Context, PluginError};
//!
//! #[derive(Default)]
//! struct Yes;
//!
//! impl Classifier for Yes {
//!     fn intents(&self) -> Vec<String> {
//!         vec!["confirm".into()]
//!     }
//!     fn classify(&self, text: &str, _context: &Context) -> Result<Intent, PluginError> {
//!         Ok(Intent::new(if text == "yes" { "confirm" } else { "unknown" }, 1.0))
//!     }
//! }
//!
//! smsflow_plugin_sdk::register_classifier!(Yes);
//! # }
//! ```
//!
//! The host's imports (log, clock, config, kv, http) are plain functions in the modules below.
//! The host grants them per plugin; a plugin that calls one it was not granted is refused at load.
//!
//! [`testing`] builds contexts and HTTP responses for a plugin's native unit tests.
//!
//! The crate carries the plugin contract it binds to (`wit/v0.1.0`), so a plugin that depends on
//! it by path or version builds anywhere, not only inside the smsflow repository.

extern crate self as smsflow_plugin_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Bindings for everything the host provides, shared by every plugin world.
#[doc(hidden)]
pub mod host_bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        world: "host",
        path: "wit/v0.1.0",
        runtime_path: "::smsflow_plugin_sdk::__wit_bindgen::rt",
        generate_all,
    });
}

use host_bindings::smsflow::plugin as host;

pub use host::types::{Context, Field, PluginError};

#[cfg(target_arch = "wasm32")]
pub mod alloc;
mod context;
pub mod http;
// Native only rather than behind a cargo feature: plugins use it from `#[cfg(test)]` code, which
// only ever builds natively, so they need no extra dev-dependency line, and a component can never
// carry it.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(feature = "classifier")]
pub mod classifier;
#[cfg(feature = "connector")]
pub mod connector;
#[cfg(feature = "reply-generator")]
pub mod reply_generator;

/// Structured logging into the engine's log, tagged with the plugin's name.
pub mod log {
    use super::host::log::{Level, log};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// The engine's clock.
pub mod clock {
    /// Milliseconds since the Unix epoch, as the engine's clock sees it.
    pub fn now_ms() -> u64 {
        super::host::clock::now_ms()
    }
}

/// The operator's configuration for this plugin (`[plugins.<name>.config]`).
pub mod config {
    /// The value of `key`, if the operator set it.
    pub fn get(key: &str) -> Option<String> {
        super::host::config::get(key)
    }

    /// The value of `key`, or an `invalid-input` error naming the missing key.
    ///
    /// # Errors
    ///
    /// [`crate::PluginError::InvalidInput`] when the operator did not set `key`.
    pub fn require(key: &str) -> Result<String, crate::PluginError> {
        get(key).ok_or_else(|| {
            crate::PluginError::InvalidInput(format!("plugin config `{key}` is not set"))
        })
    }
}

/// A key-value store private to this plugin, kept durably by the host.
pub mod kv {
    /// The value stored under `key`.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        super::host::kv::get(key)
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    ///
    /// [`crate::PluginError::InvalidInput`] when the key or value is over the host's limits.
    pub fn set(key: &str, value: &[u8]) -> Result<(), crate::PluginError> {
        super::host::kv::set(key, value)
    }

    /// Removes `key`.
    pub fn delete(key: &str) {
        super::host::kv::delete(key);
    }
}
