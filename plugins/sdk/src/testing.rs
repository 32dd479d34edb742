//! Helpers for a plugin's native unit tests: a [`Context`] builder, HTTP responses to feed a
//! connector's parsing, and checks on the error a call returned.
//!
//! Only built for native targets (where `cargo test` runs): nothing here ends up in a
//! component.
//!
//! ```
//! use smsflow_plugin_sdk::testing::{self, ContextBuilder};
//!
//! let context = ContextBuilder::new()
//!     .locale("es-MX")
//!     .field("order_id", "A100")
//!     .last_intent("order_status")
//!     .build();
//! assert_eq!(context.language(), "es");
//! assert_eq!(context.field("order_id"), Some("A100"));
//!
//! let response = testing::response(429, "").with_header("retry-after", "30");
//! assert!(matches!(
//!     response.error_for_status(),
//!     Err(smsflow_plugin_sdk::PluginError::RateLimited(30))
//! ));
//! ```

use crate::http::Response;
use crate::{Context, Field, PluginError};

/// The number a [`ContextBuilder`] starts with: a US test number, never a real person's.
pub const TEST_CONTACT: &str = "+15555550100";

/// Builds the [`Context`] the host would pass, for a unit test.
///
/// It starts as a conversation with [`TEST_CONTACT`] in `en`, with no fields and no intents.
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    context: Context,
}

impl Default for ContextBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextBuilder {
    /// A conversation with [`TEST_CONTACT`] in `en`.
    pub fn new() -> Self {
        Self {
            context: Context {
                contact: TEST_CONTACT.to_owned(),
                locale: "en".to_owned(),
                fields: Vec::new(),
                last_intents: Vec::new(),
            },
        }
    }

    /// The contact's number (E.164).
    #[must_use]
    pub fn contact(mut self, number: impl Into<String>) -> Self {
        self.context.contact = number.into();
        self
    }

    /// The conversation's locale (a BCP 47 tag such as `es-MX`).
    #[must_use]
    pub fn locale(mut self, locale: impl Into<String>) -> Self {
        self.context.locale = locale.into();
        self
    }

    /// Adds a conversation field.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.context.fields.push(Field::new(name, value));
        self
    }

    /// Adds an intent classified on an earlier text; call it most recent first, as the host
    /// orders them.
    #[must_use]
    pub fn last_intent(mut self, intent: impl Into<String>) -> Self {
        self.context.last_intents.push(intent.into());
        self
    }

    /// The context.
    pub fn build(self) -> Context {
        self.context
    }
}

/// A context with the defaults of [`ContextBuilder::new`].
pub fn context() -> Context {
    ContextBuilder::new().build()
}

/// A response with `status`, no headers and `body`, as the host's HTTP import would return it.
pub fn response(status: u16, body: &str) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

impl Response {
    /// Adds a header; the host lower-cases names, so this does too.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }
}

/// The fields as `(name, value)` pairs, to compare with a literal list.
pub fn pairs(fields: &[Field]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|field| (field.name.as_str(), field.value.as_str()))
        .collect()
}

/// The message of an `invalid-input` error.
///
/// # Panics
///
/// When `result` is anything else: that is the test failing.
#[track_caller]
pub fn invalid_input<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match result {
        Err(PluginError::InvalidInput(message)) => message,
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

/// The message of an `upstream-failure` error.
///
/// # Panics
///
/// When `result` is anything else: that is the test failing.
#[track_caller]
pub fn upstream_failure<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match result {
        Err(PluginError::UpstreamFailure(message)) => message,
        other => panic!("expected upstream-failure, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_context_has_what_each_call_set_in_host_order() {
        let context = ContextBuilder::new()
            .contact("+34600000000")
            .locale("es-ES")
            .field("first_name", "Ana")
            .field("order_id", "A100")
            .last_intent("greeting")
            .last_intent("confirm")
            .build();
        assert_eq!(context.contact, "+34600000000");
        assert_eq!(context.language(), "es");
        assert_eq!(
            pairs(&context.fields),
            [("first_name", "Ana"), ("order_id", "A100")]
        );
        assert_eq!(context.last_intents, ["greeting", "confirm"]);
    }

    #[test]
    fn the_default_context_is_the_test_number_in_english() {
        let context = context();
        assert_eq!(context.contact, TEST_CONTACT);
        assert_eq!(context.locale, "en");
        assert!(context.fields.is_empty() && context.last_intents.is_empty());
    }

    #[test]
    fn a_test_response_maps_its_status_like_a_real_one() {
        let limited = response(429, "").with_header("Retry-After", "7");
        assert_eq!(
            limited.headers,
            [("retry-after".to_owned(), "7".to_owned())]
        );
        assert!(matches!(
            limited.error_for_status(),
            Err(PluginError::RateLimited(7))
        ));
        let ok = response(200, "{}");
        assert!(ok.is_success());
        assert_eq!(ok.text().ok(), Some("{}"));
        assert!(upstream_failure(response(502, "").error_for_status()).contains("502"));
    }

    #[test]
    #[should_panic(expected = "expected invalid-input, got Ok(1)")]
    fn invalid_input_fails_the_test_on_anything_else() {
        invalid_input(Ok::<_, PluginError>(1));
    }
}
