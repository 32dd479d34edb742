//! Canned replies: `[canned]` templates an agent picks by `/shortcode`, filled from the
//! contact's fields. A field the contact lacks is named before anything is sent, never sent as
//! a blank.

use std::collections::BTreeMap;

use super::config::DeskConfig;
use crate::template::RenderError;

/// Why a canned reply could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CannedError {
    /// No canned reply has the shortcode.
    #[error("there is no canned reply `/{0}`: the [canned] section of smsflow.toml lists them")]
    Unknown(String),
    /// The contact lacks fields the reply needs.
    #[error("`/{shortcode}` needs {} and this contact has no value for {}: write the reply yourself, or add the field", .needs.join(", "), .missing.join(", "))]
    MissingFields {
        /// The shortcode.
        shortcode: String,
        /// Every field it uses.
        needs: Vec<String>,
        /// The ones the contact lacks.
        missing: Vec<String>,
    },
}

/// The shortcode of a reply written as `/shortcode` (and nothing else), if it is one.
pub fn shortcode(text: &str) -> Option<&str> {
    let code = text.trim().strip_prefix('/')?;
    crate::agents::valid_name(code).then_some(code)
}

/// The canned reply `shortcode`, filled from `fields`.
///
/// # Errors
///
/// [`CannedError::Unknown`], or [`CannedError::MissingFields`] naming what the contact lacks.
pub fn render(
    config: &DeskConfig,
    shortcode: &str,
    fields: &BTreeMap<String, String>,
) -> Result<String, CannedError> {
    let template = config
        .canned
        .get(shortcode)
        .ok_or_else(|| CannedError::Unknown(shortcode.to_owned()))?;
    template
        .render(fields)
        .map_err(
            |RenderError::MissingFields { fields: missing }| CannedError::MissingFields {
                shortcode: shortcode.to_owned(),
                needs: template.fields().map(str::to_owned).collect(),
                missing,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::config::HandoffConfig;

    fn config() -> DeskConfig {
        let canned = BTreeMap::from([(
            "refund".to_owned(),
            "Hi {{first_name}}, your refund of {{amount}} is on its way.".to_owned(),
        )]);
        DeskConfig::new(&[], &HandoffConfig::default(), &canned).unwrap()
    }

    #[test]
    fn a_canned_reply_is_filled_from_the_contacts_fields() {
        let fields = BTreeMap::from([
            ("first_name".to_owned(), "Maria".to_owned()),
            ("amount".to_owned(), "$20".to_owned()),
        ]);
        assert_eq!(
            render(&config(), "refund", &fields).unwrap(),
            "Hi Maria, your refund of $20 is on its way."
        );
    }

    #[test]
    fn a_missing_field_is_named_and_nothing_is_filled() {
        let fields = BTreeMap::from([("first_name".to_owned(), "Maria".to_owned())]);
        let error = render(&config(), "refund", &fields).unwrap_err();
        assert_eq!(
            error,
            CannedError::MissingFields {
                shortcode: "refund".into(),
                needs: vec!["amount".into(), "first_name".into()],
                missing: vec!["amount".into()],
            }
        );
        assert!(error.to_string().contains("no value for amount"), "{error}");
        assert_eq!(
            render(&config(), "nope", &fields),
            Err(CannedError::Unknown("nope".into()))
        );
    }

    #[test]
    fn only_a_lone_slash_word_is_a_shortcode() {
        assert_eq!(shortcode(" /refund "), Some("refund"));
        assert_eq!(shortcode("/refund now"), None);
        assert_eq!(shortcode("refund"), None);
    }
}
