//! Checking what callers write into a contact: field names and typed values, tags, locales and
//! time zones. Every refusal names the field and says what to write instead.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ContactError;
use crate::compliance::gate::rfc3339;
use crate::input::shorten;
use crate::store::contacts::{FieldType, FieldValue};

/// The most fields one contact holds.
pub const MAX_FIELDS: usize = 100;
/// The most tags one contact holds.
pub const MAX_TAGS: usize = 50;
/// The longest text value.
pub const MAX_TEXT: usize = 1024;
/// The longest field name or tag.
pub const MAX_NAME: usize = 64;

/// `name` if it is a field name: a letter or `_`, then letters, digits and `_`.
///
/// # Errors
///
/// [`ContactError::Invalid`] otherwise.
pub fn field_name(name: &str) -> Result<&str, ContactError> {
    crate::input::field_name("fields", name)?;
    Ok(name)
}

/// `value` as a field of `kind`.
///
/// # Errors
///
/// [`ContactError::Invalid`] when it is not one, naming the field.
pub fn typed(name: &str, kind: FieldType, value: &Value) -> Result<FieldValue, ContactError> {
    let field = format!("fields.{name}");
    match (kind, value) {
        (FieldType::Number, Value::Number(number)) => number
            .as_f64()
            .map(FieldValue::Number)
            .ok_or_else(|| invalid(&field, "is not a number".to_owned())),
        (FieldType::Number, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .map(FieldValue::Number)
            .ok_or_else(|| {
                invalid(
                    &field,
                    format!("`{}` is not a number (this field is a number)", shorten(text)),
                )
            }),
        (FieldType::Datetime, Value::String(text)) => parse_datetime(text)
            .map(|datetime_ms| FieldValue::Datetime { datetime_ms })
            .ok_or_else(|| {
                invalid(
                    &field,
                    format!(
                        "`{}` is not a datetime: write 2026-03-03T15:00:00Z (or with an offset, -05:00)",
                        shorten(text)
                    ),
                )
            }),
        (FieldType::State, Value::String(text)) => state(text)
            .map(|state| FieldValue::State { state })
            .ok_or_else(|| {
                invalid(
                    &field,
                    format!("`{}` is not a region code such as FL", shorten(text)),
                )
            }),
        (FieldType::Text, Value::String(text)) => Ok(FieldValue::Text(text_value(&field, text)?)),
        (FieldType::Text, Value::Number(number)) => Ok(FieldValue::Text(number.to_string())),
        (FieldType::Text, Value::Bool(flag)) => Ok(FieldValue::Text(flag.to_string())),
        (kind, other) => Err(invalid(
            &field,
            format!(
                "{} cannot be a {} field: write a string{}",
                kind_of(other),
                kind.name(),
                if kind == FieldType::Number { " or a number" } else { "" }
            ),
        )),
    }
}

/// The type a field gets from its first value when the operator declared none: a JSON number
/// makes a number field, anything else text (a CSV's cells are all text: declare the others in
/// `[contacts.fields]`).
pub fn inferred(value: &Value) -> FieldType {
    match value {
        Value::Number(_) => FieldType::Number,
        _ => FieldType::Text,
    }
}

/// A field's value as the API shows it: numbers as numbers, datetimes as RFC 3339.
pub fn shown(value: &FieldValue) -> Value {
    match value {
        FieldValue::Number(number) => serde_json::json!(number),
        FieldValue::Text(text) => Value::String(text.clone()),
        FieldValue::Datetime { datetime_ms } => Value::String(rfc3339(*datetime_ms)),
        FieldValue::State { state } => Value::String(state.clone()),
    }
}

/// A field's value as flows see it (their fields are text).
pub fn as_text(value: &FieldValue) -> String {
    match shown(value) {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time, or of a date alone (midnight UTC).
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Some(timestamp.as_millisecond());
    }
    let date = text.parse::<jiff::civil::Date>().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|zoned| zoned.timestamp().as_millisecond())
}

/// A region code: a US state's name or code becomes its code; another code of 1 to 3 letters
/// and digits is kept, upper case (segments compare codes of that shape).
fn state(text: &str) -> Option<String> {
    let text = text.trim();
    if let Some(code) = crate::compliance::quiet_hours::normalize_us_state(text) {
        return Some(code.to_owned());
    }
    (!text.is_empty() && text.len() <= 3 && text.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| text.to_ascii_uppercase())
}

/// `text` if it is a short text without control characters.
///
/// # Errors
///
/// [`ContactError::Invalid`] naming `field`.
pub fn text_value(field: &str, text: &str) -> Result<String, ContactError> {
    if text.chars().count() > MAX_TEXT {
        return Err(invalid(
            field,
            format!("is longer than {MAX_TEXT} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(
            field,
            "holds a control character (such as NUL): remove it".to_owned(),
        ));
    }
    Ok(text.trim().to_owned())
}

/// `tag`, lower case, if it is a tag: letters, digits, `_`, `-`, `:`.
///
/// # Errors
///
/// [`ContactError::Invalid`] otherwise.
pub fn tag(tag: &str) -> Result<String, ContactError> {
    let tag = tag.trim().to_lowercase();
    if !tag.is_empty()
        && tag.len() <= MAX_NAME
        && tag
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':'))
    {
        Ok(tag)
    } else {
        Err(invalid(
            "tags",
            format!(
                "`{}` is not a tag: use letters, digits, _, - and :, at most {MAX_NAME}",
                shorten(&tag)
            ),
        ))
    }
}

/// `locale` if it looks like a BCP 47 tag (`es`, `en-US`, `zh-Hant-TW`).
///
/// # Errors
///
/// [`ContactError::Invalid`] otherwise.
pub fn locale(locale: &str) -> Result<String, ContactError> {
    crate::input::locale("locale", locale)?;
    Ok(locale.to_owned())
}

/// `zone` if it is an IANA time zone this build knows.
///
/// # Errors
///
/// [`ContactError::Invalid`] otherwise.
pub fn time_zone(zone: &str) -> Result<String, ContactError> {
    match jiff::tz::TimeZone::get(zone) {
        Ok(_) if zone.len() <= 64 => Ok(zone.to_owned()),
        _ => Err(invalid(
            "time_zone",
            format!(
                "`{}` is not an IANA time zone: write America/New_York or Europe/Madrid",
                shorten(zone)
            ),
        )),
    }
}

/// Fields to write (`None` removes one), and the types of fields seen for the first time.
pub type TypedFields = (
    BTreeMap<String, Option<FieldValue>>,
    Vec<(String, FieldType)>,
);

/// The fields of `input` checked and typed against `types` (declared or first seen); new
/// fields get a type, returned so the caller records it.
///
/// # Errors
///
/// The first field refused.
pub fn typed_fields(
    input: &BTreeMap<String, Value>,
    types: &BTreeMap<String, FieldType>,
) -> Result<TypedFields, ContactError> {
    let mut typed_values = BTreeMap::new();
    let mut new_types = Vec::new();
    for (name, value) in input {
        let name = field_name(name)?;
        if value.is_null() {
            typed_values.insert(name.to_owned(), None);
            continue;
        }
        let kind = match types.get(name) {
            Some(kind) => *kind,
            None => {
                let kind = inferred(value);
                new_types.push((name.to_owned(), kind));
                kind
            }
        };
        typed_values.insert(name.to_owned(), Some(typed(name, kind, value)?));
    }
    Ok((typed_values, new_types))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn invalid(field: &str, message: String) -> ContactError {
    ContactError::Invalid {
        field: field.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_take_their_fields_type() {
        assert_eq!(
            typed("age", FieldType::Number, &json!("41")).unwrap(),
            FieldValue::Number(41.0)
        );
        assert_eq!(
            typed(
                "at",
                FieldType::Datetime,
                &json!("2026-03-03T09:00:00-05:00")
            )
            .unwrap(),
            FieldValue::Datetime {
                datetime_ms: 1_772_546_400_000
            }
        );
        assert_eq!(
            typed("at", FieldType::Datetime, &json!("2026-03-03")).unwrap(),
            FieldValue::Datetime {
                datetime_ms: 1_772_496_000_000
            }
        );
        assert_eq!(
            typed("state", FieldType::State, &json!("Florida")).unwrap(),
            FieldValue::State {
                state: "FL".to_owned()
            }
        );
        assert_eq!(
            typed("n", FieldType::Text, &json!(12)).unwrap(),
            FieldValue::Text("12".to_owned())
        );
    }

    #[test]
    fn bad_values_say_what_to_write() {
        let message = |result: Result<FieldValue, ContactError>| result.unwrap_err().to_string();
        assert_eq!(
            message(typed("age", FieldType::Number, &json!("x"))),
            "fields.age: `x` is not a number (this field is a number)"
        );
        assert!(
            message(typed("at", FieldType::Datetime, &json!("next tuesday")))
                .contains("write 2026-03-03T15:00:00Z")
        );
        assert!(message(typed("a", FieldType::Text, &json!([1]))).contains("a list cannot be"));
        assert!(
            text_value("f", "a\0b")
                .unwrap_err()
                .to_string()
                .contains("NUL")
        );
        assert!(field_name("first name").is_err());
        assert!(field_name("9lives").is_err());
        assert!(tag("v i p").is_err());
        assert_eq!(tag(" VIP ").unwrap(), "vip");
        assert!(locale("es-MX").is_ok() && locale("spanish!").is_err());
        assert!(time_zone("America/Los_Angeles").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
    }
}
