//! Conveniences on the WIT types shared by every world.

use crate::{Context, Field};

impl Field {
    /// A field from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl Context {
    /// The value of the conversation field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|field| field.name == name)
            .map(|field| field.value.as_str())
    }

    /// The language part of the locale, lower-cased (`es` for `es-MX`).
    pub fn language(&self) -> String {
        self.locale
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}
