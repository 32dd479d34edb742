//! What every value that reaches smsflow from outside must be: a type, a length and a character
//! class, checked the same way on every path (webhooks, the operator and agent APIs, imports).
//!
//! Two layers. [`check_json`] runs on every JSON body the API reads, before any handler sees
//! it: no string anywhere may hold a NUL or another control character (an SMS cannot carry
//! them, and logs and pages must not), nor be longer than [`MAX_STRING_CHARS`]. Then each field
//! with a meaning gets its own check here ([`locale`], [`ip`], [`web_url`], [`fields`], ...), so
//! a rule is written once however many routes take the field.

use std::collections::BTreeMap;

use serde_json::Value;

/// The longest string any API body may hold, in characters (a message is 1,600; a note or a
/// disclosure a few hundred).
pub const MAX_STRING_CHARS: usize = 4_096;

/// The longest object key in an API body, in characters.
pub const MAX_KEY_CHARS: usize = 128;

/// The most fields one start or contact change may set.
pub const MAX_FIELDS: usize = 100;

/// The longest field value, in characters.
pub const MAX_FIELD_CHARS: usize = 1_000;

/// The longest field name, in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 64;

/// The longest URL kept as evidence, in bytes (what browsers reliably send).
pub const MAX_URL_BYTES: usize = 2_048;

/// The longest user agent kept as evidence, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// A value that is not what its field takes. The message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    /// Where the value was: `locale`, `fields.name`, `contacts[3]`.
    pub field: String,
    /// What is wrong, and what to write.
    pub message: String,
}

impl InputError {
    /// The error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every string in `value` (keys included) is free of control characters other than tab and
/// line breaks, and within [`MAX_STRING_CHARS`] (keys [`MAX_KEY_CHARS`]).
///
/// # Errors
///
/// [`InputError`] naming the first offending string's path (`fields.name`, `contacts[3]`).
pub fn check_json(value: &Value) -> Result<(), InputError> {
    walk(value, &mut String::new())
}

fn walk(value: &Value, path: &mut String) -> Result<(), InputError> {
    match value {
        Value::String(string) => text_at(path, string, MAX_STRING_CHARS),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(index, item)| {
            let len = path.len();
            path.push_str(&format!("[{index}]"));
            let checked = walk(item, path);
            path.truncate(len);
            checked
        }),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let checked = text_at(path, key, MAX_KEY_CHARS).and_then(|()| walk(item, path));
            path.truncate(len);
            checked
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn text_at(path: &str, value: &str, max_chars: usize) -> Result<(), InputError> {
    let field = if path.is_empty() { "the body" } else { path };
    text(field, value, max_chars)
}

/// `value` is at most `max_chars` characters, with no control character but tab and line
/// breaks.
///
/// # Errors
///
/// [`InputError`] saying which rule it broke.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<(), InputError> {
    if let Some(bad) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(InputError::new(
            field,
            format!(
                "holds the control character U+{:04X}: send plain text (tabs and line breaks are allowed)",
                u32::from(bad)
            ),
        ));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(InputError::new(
            field,
            format!("is {chars} characters long: at most {max_chars} are allowed"),
        ));
    }
    Ok(())
}

/// A BCP 47 language tag in the shape texts are localised by: `es`, `en-US`, `pt-BR`,
/// `zh-Hant-TW`, at most 35 bytes.
///
/// # Errors
///
/// [`InputError`] with an example of the shape.
pub fn locale(field: &str, value: &str) -> Result<(), InputError> {
    let mut parts = value.split('-');
    let language_ok = parts.next().is_some_and(|part| {
        (2..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphabetic())
    });
    let rest_ok = parts.all(|part| {
        (2..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if language_ok && rest_ok && value.len() <= 35 {
        return Ok(());
    }
    Err(InputError::new(
        field,
        format!(
            "`{}` is not a locale: write es, en-US or pt-BR",
            shorten(value)
        ),
    ))
}

/// An IPv4 or IPv6 address.
///
/// # Errors
///
/// [`InputError`] when it does not parse as one.
pub fn ip(field: &str, value: &str) -> Result<(), InputError> {
    value.parse::<std::net::IpAddr>().map(drop).map_err(|_| {
        InputError::new(
            field,
            format!(
                "`{}` is not an IP address: write the visitor's address, 203.0.113.7 or 2001:db8::7",
                shorten(value)
            ),
        )
    })
}

/// An absolute `http` or `https` URL of at most [`MAX_URL_BYTES`]: a page a person opened
/// (never `javascript:`, `data:` or a relative path).
///
/// # Errors
///
/// [`InputError`] naming what is wrong.
pub fn web_url(field: &str, value: &str) -> Result<(), InputError> {
    if value.len() > MAX_URL_BYTES {
        return Err(InputError::new(
            field,
            format!(
                "is {} bytes long: at most {MAX_URL_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(url) => Err(InputError::new(
            field,
            format!(
                "a `{}:` URL is not a web page: write the https:// address of the form",
                url.scheme()
            ),
        )),
        Err(error) => Err(InputError::new(
            field,
            format!(
                "`{}` is not a URL ({error}): write the https:// address of the form",
                shorten(value)
            ),
        )),
    }
}

/// A field name: a letter or `_`, then letters, digits and `_`, at most
/// [`MAX_FIELD_NAME_BYTES`] (what templates can name as `{{name}}`).
///
/// # Errors
///
/// [`InputError`] with the rule.
pub fn field_name(field: &str, name: &str) -> Result<(), InputError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= MAX_FIELD_NAME_BYTES
    {
        return Ok(());
    }
    Err(InputError::new(
        field,
        format!(
            "`{}` is not a field name: use a letter, then letters, digits or `_` (at most {MAX_FIELD_NAME_BYTES})",
            shorten(name)
        ),
    ))
}

/// The fields of a start: at most [`MAX_FIELDS`], each name a [`field_name`], each value
/// [`text`] of at most [`MAX_FIELD_CHARS`].
///
/// # Errors
///
/// [`InputError`] for the first field that breaks a rule.
pub fn fields(fields: &BTreeMap<String, String>) -> Result<(), InputError> {
    if fields.len() > MAX_FIELDS {
        return Err(InputError::new(
            "fields",
            format!(
                "{} fields: at most {MAX_FIELDS} may be set at once",
                fields.len()
            ),
        ));
    }
    fields.iter().try_for_each(|(name, value)| {
        let path = format!("fields.{name}");
        field_name(&path, name)?;
        text(&path, value, MAX_FIELD_CHARS)
    })
}

/// The first 40 characters of `text`, for messages that quote it.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(40).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_and_long_strings_are_refused_by_path() {
        assert!(check_json(&json!({"to": "+12125550100", "fields": {"a": "b\nc"}})).is_ok());
        let nul = check_json(&json!({"fields": {"name": "a\u{0}b"}})).unwrap_err();
        assert_eq!(nul.field, "fields.name");
        assert!(nul.message.contains("U+0000"), "{nul}");
        let deep = check_json(&json!({"contacts": ["+1", "x\u{7}"]})).unwrap_err();
        assert_eq!(deep.field, "contacts[1]");
        let long = check_json(&json!({"locale": "a".repeat(MAX_STRING_CHARS + 1)})).unwrap_err();
        assert_eq!(long.field, "locale");
        let key = check_json(&json!({"k\u{1b}": 1})).unwrap_err();
        assert!(key.message.contains("U+001B"), "{key}");
    }

    #[test]
    fn evidence_fields_have_their_shapes() {
        assert!(ip("ip", "203.0.113.7").is_ok());
        assert!(ip("ip", "2001:db8::7").is_ok());
        assert!(ip("ip", "not-an-ip").is_err());
        assert!(web_url("url", "https://shop.example/signup").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "/signup",
            "file:///etc/passwd",
        ] {
            assert!(web_url("url", bad).is_err(), "{bad}");
        }
        assert!(locale("locale", "pt-BR").is_ok());
        assert!(locale("locale", &"a".repeat(60)).is_err());
    }

    #[test]
    fn a_start_sets_a_bounded_number_of_named_fields() {
        let many: BTreeMap<String, String> = (0..=MAX_FIELDS)
            .map(|n| (format!("f{n}"), "x".into()))
            .collect();
        assert!(fields(&many).is_err());
        let named = BTreeMap::from([("first name".to_owned(), "Ana".to_owned())]);
        assert_eq!(fields(&named).unwrap_err().field, "fields.first name");
        let ok = BTreeMap::from([("first_name".to_owned(), "Ana".to_owned())]);
        assert!(fields(&ok).is_ok());
    }
}
