//! `crm-notes`: an example smsflow connector that finds a contact and writes notes to a CRM,
//! using HubSpot's CRM v3 contacts and notes API shape over the host's HTTP import.
//!
//! - `lookup("contact", phone, context)` searches the contacts by `phone` (the key, or the
//!   conversation's contact when the key is empty) and returns `contact_found` (`true`/`false`)
//!   and, when found, `contact_id`, `first_name`, `last_name`, `email`, `lifecycle_stage` (those
//!   the CRM has a value for).
//! - `write("note", fields, context)` creates a note with the field `body`, associated with the
//!   contact `contact_id` (a field) or, without it, the contact found by the conversation's
//!   number, and returns `note_id` and `contact_id`.
//!
//! Configuration: `base_url` (optional, default [`DEFAULT_BASE_URL`]). The plugin never sees the
//! CRM's token: the host adds `Authorization` for the destinations the operator configured.
//!
//! The request building and response parsing are plain functions, tested natively; only
//! [`CrmNotes`]'s trait methods call the host.

use serde::{Deserialize, Serialize};
use smsflow_plugin_sdk::connector::{self, Connector};
use smsflow_plugin_sdk::http::{self, Method, Response};
use smsflow_plugin_sdk::{Context, Field, PluginError, clock, config, log};

/// The CRM's API root when the operator configures no `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// The longest note body sent, in bytes; longer bodies are cut at a character boundary.
pub const MAX_NOTE_BYTES: usize = 65536;

/// HubSpot's association type id for a note associated with a contact.
pub const NOTE_TO_CONTACT_ASSOCIATION: u32 = 202;

/// The contact properties a search asks for.
pub const CONTACT_PROPERTIES: [&str; 5] =
    ["firstname", "lastname", "email", "phone", "lifecyclestage"];

/// The connector. It keeps no state: the host builds it for each call.
#[derive(Debug, Default)]
pub struct CrmNotes;

impl Connector for CrmNotes {
    fn lookup(
        &self,
        entity: &str,
        key: &str,
        context: &Context,
    ) -> Result<Vec<Field>, PluginError> {
        if entity != "contact" {
            return Err(unsupported("lookup", entity));
        }
        let phone = contact_phone(key, &context.contact)?;
        let base = base_url(config::get("base_url").as_deref())?;
        log::info("searching the CRM for a contact by phone");
        let contact = search_contact(&base, phone)?;
        Ok(contact_fields(contact.as_ref()))
    }

    fn write(
        &self,
        entity: &str,
        fields: &[Field],
        context: &Context,
    ) -> Result<Vec<Field>, PluginError> {
        if entity != "note" {
            return Err(unsupported("write", entity));
        }
        let body = note_body(connector::field(fields, "body"))?;
        let base = base_url(config::get("base_url").as_deref())?;
        let contact_id = match connector::field(fields, "contact_id").map(str::trim) {
            Some(id) if !id.is_empty() => {
                validate_contact_id(id)?;
                id.to_owned()
            }
            _ => {
                let phone = contact_phone("", &context.contact)?;
                search_contact(&base, phone)?
                    .ok_or_else(|| {
                        PluginError::InvalidInput(format!("no CRM contact for {phone}"))
                    })?
                    .id
            }
        };
        let request = note_request(body, &contact_id, &rfc3339_utc(clock::now_ms()));
        log::info(&format!(
            "writing a note of {} bytes to CRM contact {contact_id}",
            body.len()
        ));
        let response = http::send_json(Method::Post, &notes_url(&base), &request)?;
        let note_id = parse_note_created(response)?;
        Ok(vec![
            Field::new("note_id", note_id),
            Field::new("contact_id", contact_id),
        ])
    }
}

smsflow_plugin_sdk::register_connector!(CrmNotes);

/// Searches the contacts for `phone` over the host's HTTP import.
fn search_contact(base: &str, phone: &str) -> Result<Option<Contact>, PluginError> {
    let response = http::send_json(
        Method::Post,
        &contact_search_url(base),
        &contact_search_request(phone),
    )?;
    parse_contact_search(response)
}

/// The error for an entity this connector does not know; `operation` is `lookup` or `write`.
pub fn unsupported(operation: &str, entity: &str) -> PluginError {
    PluginError::InvalidInput(format!(
        "crm-notes does not support {operation} of {entity:?}: it supports lookup of \"contact\" and write of \"note\""
    ))
}

/// The API root: `configured` (the `base_url` config) or [`DEFAULT_BASE_URL`], without trailing
/// `/`.
///
/// # Errors
///
/// [`PluginError::InvalidInput`] when it is not an `http(s)://` URL without query or fragment.
pub fn base_url(configured: Option<&str>) -> Result<String, PluginError> {
    let configured = configured.map(str::trim).filter(|url| !url.is_empty());
    let base = configured.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        base.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
            && base.len() > scheme.len()
    });
    if !scheme_ok || base.contains(['?', '#']) {
        return Err(PluginError::InvalidInput(format!(
            "plugin config `base_url` must be an http:// or https:// URL without query or fragment, not {:?}",
            configured.unwrap_or_default()
        )));
    }
    Ok(base.to_owned())
}

/// `{base}/crm/v3/objects/contacts/search`.
pub fn contact_search_url(base: &str) -> String {
    format!("{base}/crm/v3/objects/contacts/search")
}

/// `{base}/crm/v3/objects/notes`.
pub fn notes_url(base: &str) -> String {
    format!("{base}/crm/v3/objects/notes")
}

/// The phone number to search for: `key`, or `contact` (the conversation's number) when `key`
/// is empty, validated with [`validate_phone`].
///
/// # Errors
///
/// [`PluginError::InvalidInput`] when neither is given or the number is not valid.
pub fn contact_phone<'a>(key: &'a str, contact: &'a str) -> Result<&'a str, PluginError> {
    let key = key.trim();
    let phone = if key.is_empty() { contact.trim() } else { key };
    if phone.is_empty() {
        return Err(PluginError::InvalidInput(
            "no phone number: the lookup key and the conversation's contact are empty".into(),
        ));
    }
    validate_phone(phone)?;
    Ok(phone)
}

/// Checks that `phone` is an optional `+` then 3 to 15 digits (E.164 has at most 15).
///
/// # Errors
///
/// [`PluginError::InvalidInput`] saying what is wrong.
pub fn validate_phone(phone: &str) -> Result<(), PluginError> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if (3..=15).contains(&digits.len()) && digits.bytes().all(|byte| byte.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PluginError::InvalidInput(format!(
            "{phone:?} is not a phone number: expected an optional `+` and 3 to 15 digits"
        )))
    }
}

/// Checks that a CRM contact id is 1 to 64 characters of `A-Z a-z 0-9 _ -`.
///
/// # Errors
///
/// [`PluginError::InvalidInput`] saying what is wrong.
pub fn validate_contact_id(id: &str) -> Result<(), PluginError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    {
        Ok(())
    } else {
        Err(PluginError::InvalidInput(format!(
            "{id:?} is not a CRM contact id: expected 1 to 64 letters, digits, `_` or `-`"
        )))
    }
}

#[derive(Serialize)]
struct SearchRequest<'a> {
    #[serde(rename = "filterGroups")]
    filter_groups: [FilterGroup<'a>; 1],
    properties: &'a [&'a str],
    limit: u32,
}

#[derive(Serialize)]
struct FilterGroup<'a> {
    filters: [Filter<'a>; 1],
}

#[derive(Serialize)]
struct Filter<'a> {
    #[serde(rename = "propertyName")]
    property_name: &'a str,
    operator: &'a str,
    value: &'a str,
}

/// The JSON body of a contact search for `phone` (one result, the properties the connector
/// returns).
pub fn contact_search_request(phone: &str) -> String {
    to_json(&SearchRequest {
        filter_groups: [FilterGroup {
            filters: [Filter {
                property_name: "phone",
                operator: "EQ",
                value: phone,
            }],
        }],
        properties: &CONTACT_PROPERTIES,
        limit: 1,
    })
}

/// A contact as a search found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The CRM's id for the contact.
    pub id: String,
    /// `firstname`, when set.
    pub first_name: Option<String>,
    /// `lastname`, when set.
    pub last_name: Option<String>,
    /// `email`, when set.
    pub email: Option<String>,
    /// `lifecyclestage`, when set.
    pub lifecycle_stage: Option<String>,
}

#[derive(Deserialize)]
struct SearchResponse {
    results: Vec<SearchResult>,
}

#[derive(Deserialize)]
struct SearchResult {
    id: Id,
    #[serde(default)]
    properties: Option<Properties>,
}

#[derive(Deserialize, Default)]
struct Properties {
    #[serde(default)]
    firstname: Option<String>,
    #[serde(default)]
    lastname: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    lifecyclestage: Option<String>,
}

/// HubSpot's ids are strings; a number is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Number(number) => number.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Created {
    id: Id,
}

/// The contact a search answered, or `None` when it found none.
///
/// # Errors
///
/// For a non-2xx status, what [`Response::error_for_status`] maps it to;
/// [`PluginError::UpstreamFailure`] when the body is not the expected JSON.
pub fn parse_contact_search(response: Response) -> Result<Option<Contact>, PluginError> {
    let response = response.error_for_status()?;
    let search: SearchResponse = json_object(&response.body).map_err(|error| {
        PluginError::UpstreamFailure(format!(
            "the CRM's contact search answered unusable JSON: {error}"
        ))
    })?;
    let Some(result) = search.results.into_iter().next() else {
        return Ok(None);
    };
    let id = result.id.into_string();
    if id.trim().is_empty() {
        return Err(PluginError::UpstreamFailure(
            "the CRM's contact search answered a contact with an empty id".into(),
        ));
    }
    let properties = result.properties.unwrap_or_default();
    let present = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
    Ok(Some(Contact {
        id,
        first_name: present(properties.firstname),
        last_name: present(properties.lastname),
        email: present(properties.email),
        lifecycle_stage: present(properties.lifecyclestage),
    }))
}

/// The conversation fields for a contact search's outcome.
pub fn contact_fields(contact: Option<&Contact>) -> Vec<Field> {
    let Some(contact) = contact else {
        return vec![Field::new("contact_found", "false")];
    };
    let mut fields = vec![
        Field::new("contact_found", "true"),
        Field::new("contact_id", contact.id.as_str()),
    ];
    let optional = [
        ("first_name", &contact.first_name),
        ("last_name", &contact.last_name),
        ("email", &contact.email),
        ("lifecycle_stage", &contact.lifecycle_stage),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            fields.push(Field::new(name, value.as_str()));
        }
    }
    fields
}

/// The note's text: the field `body`, cut to at most [`MAX_NOTE_BYTES`] bytes at a character
/// boundary.
///
/// # Errors
///
/// [`PluginError::InvalidInput`] when `body` is missing or blank.
pub fn note_body(body: Option<&str>) -> Result<&str, PluginError> {
    let body = body.unwrap_or_default();
    if body.trim().is_empty() {
        return Err(PluginError::InvalidInput(
            "a note needs a non-empty `body` field".into(),
        ));
    }
    if body.len() <= MAX_NOTE_BYTES {
        return Ok(body);
    }
    let mut end = MAX_NOTE_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    Ok(&body[..end])
}

#[derive(Serialize)]
struct NoteRequest<'a> {
    properties: NoteProperties<'a>,
    associations: [Association<'a>; 1],
}

#[derive(Serialize)]
struct NoteProperties<'a> {
    hs_timestamp: &'a str,
    hs_note_body: &'a str,
}

#[derive(Serialize)]
struct Association<'a> {
    to: AssociationTarget<'a>,
    types: [AssociationType; 1],
}

#[derive(Serialize)]
struct AssociationTarget<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct AssociationType {
    #[serde(rename = "associationCategory")]
    category: &'static str,
    #[serde(rename = "associationTypeId")]
    type_id: u32,
}

/// The JSON body creating a note with `body` at `timestamp` (RFC 3339), associated with the
/// contact `contact_id`.
pub fn note_request(body: &str, contact_id: &str, timestamp: &str) -> String {
    to_json(&NoteRequest {
        properties: NoteProperties {
            hs_timestamp: timestamp,
            hs_note_body: body,
        },
        associations: [Association {
            to: AssociationTarget { id: contact_id },
            types: [AssociationType {
                category: "HUBSPOT_DEFINED",
                type_id: NOTE_TO_CONTACT_ASSOCIATION,
            }],
        }],
    })
}

/// The new note's id from the CRM's answer to [`note_request`].
///
/// # Errors
///
/// For a non-2xx status, what [`Response::error_for_status`] maps it to;
/// [`PluginError::UpstreamFailure`] when the body is not the expected JSON.
pub fn parse_note_created(response: Response) -> Result<String, PluginError> {
    let response = response.error_for_status()?;
    let created: Created = json_object(&response.body).map_err(|error| {
        PluginError::UpstreamFailure(format!(
            "the CRM answered unusable JSON for the new note: {error}"
        ))
    })?;
    let id = created.id.into_string();
    if id.trim().is_empty() {
        return Err(PluginError::UpstreamFailure(
            "the CRM answered an empty id for the new note".into(),
        ));
    }
    Ok(id)
}

/// Parses `body` as a JSON object into `T` (a JSON array is refused, though serde would accept
/// one for a struct), or says what is wrong with it.
fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| error.to_string())?;
    let kind = match &value {
        serde_json::Value::Object(_) => {
            return serde_json::from_value(value).map_err(|error| error.to_string());
        }
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Null => "null",
    };
    Err(format!("expected a JSON object, got {kind}"))
}

/// Serialises a request body. The request types are plain structs of strings and numbers, which
/// always serialise; the fallback is never reached.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `ms` milliseconds since the Unix epoch as an RFC 3339 UTC timestamp with milliseconds, such as
/// `2024-02-29T23:59:59.999Z`.
pub fn rfc3339_utc(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian (year, month, day) of `days` days after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
pub fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097; // 400-year eras
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + u64::from(month <= 2);
    // day and month are at most 31 and 12.
    (year, month as u32, day as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use smsflow_plugin_sdk::testing::{self, invalid_input, pairs, response, upstream_failure};

    #[test]
    fn search_request_is_exact() {
        assert_eq!(
            contact_search_request("+15551234567"),
            r#"{"filterGroups":[{"filters":[{"propertyName":"phone","operator":"EQ","value":"+15551234567"}]}],"properties":["firstname","lastname","email","phone","lifecyclestage"],"limit":1}"#
        );
    }

    #[test]
    fn note_request_is_exact() {
        assert_eq!(
            note_request(
                "Called back, wants a refund.",
                "123",
                "2026-03-01T09:30:00.000Z"
            ),
            r#"{"properties":{"hs_timestamp":"2026-03-01T09:30:00.000Z","hs_note_body":"Called back, wants a refund."},"associations":[{"to":{"id":"123"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":202}]}]}"#
        );
    }

    #[test]
    fn note_body_with_quotes_and_newlines_is_escaped() {
        let body = "She said \"cancel it\"\nthen: \\o/\t</script>\u{1}";
        let request = note_request(body, "9", "1970-01-01T00:00:00.000Z");
        assert!(
            request.contains(
                r#""hs_note_body":"She said \"cancel it\"\nthen: \\o/\t</script>\u0001""#
            ),
            "{request}"
        );
        // It parses back to the same text, and nothing leaked out of the string.
        let value: serde_json::Value = serde_json::from_str(&request).unwrap();
        assert_eq!(value["properties"]["hs_note_body"], body);
        assert_eq!(value["associations"][0]["to"]["id"], "9");
        assert_eq!(value.as_object().unwrap().len(), 2);
    }

    #[test]
    fn urls() {
        assert_eq!(base_url(None).unwrap(), "https://api.hubapi.com");
        assert_eq!(base_url(Some("  ")).unwrap(), "https://api.hubapi.com");
        assert_eq!(
            base_url(Some("http://127.0.0.1:9401/")).unwrap(),
            "http://127.0.0.1:9401"
        );
        assert_eq!(
            contact_search_url(&base_url(Some("http://127.0.0.1:9401/hub//")).unwrap()),
            "http://127.0.0.1:9401/hub/crm/v3/objects/contacts/search"
        );
        assert_eq!(
            notes_url(DEFAULT_BASE_URL),
            "https://api.hubapi.com/crm/v3/objects/notes"
        );
        for bad in [
            "api.hubapi.com",
            "ftp://x",
            "https://",
            "https://x/?a=b",
            "https://x#y",
        ] {
            assert!(
                invalid_input(base_url(Some(bad))).contains("base_url"),
                "{bad}"
            );
        }
    }

    #[test]
    fn phone_validation() {
        for good in [
            "+15551234567",
            "15551234567",
            "+447700900123",
            "911",
            "+123456789012345",
        ] {
            validate_phone(good).unwrap();
        }
        for bad in [
            "",
            "+",
            "12",
            "+1234567890123456",
            "555-123-4567",
            "+1 555 123",
            "abc",
            "+1555\"}",
            "1555\n",
            "++1555",
            "+1555+",
        ] {
            invalid_input(validate_phone(bad));
        }
    }

    #[test]
    fn phone_comes_from_key_then_contact() {
        assert_eq!(
            contact_phone("+15550001111", "+15552223333").unwrap(),
            "+15550001111"
        );
        assert_eq!(contact_phone("", "+15552223333").unwrap(), "+15552223333");
        assert_eq!(
            contact_phone(" ", " +15552223333 ").unwrap(),
            "+15552223333"
        );
        assert!(invalid_input(contact_phone("", "")).contains("no phone number"));
        invalid_input(contact_phone("x", "+15552223333"));
    }

    #[test]
    fn contact_id_validation() {
        validate_contact_id("123").unwrap();
        validate_contact_id("abc-DEF_9").unwrap();
        for bad in ["", "1 2", "1\"}", "../1", &"1".repeat(65)] {
            invalid_input(validate_contact_id(bad));
        }
    }

    #[test]
    fn found_contact() {
        let body = r#"{"total": 1, "results": [{"id": "123", "properties": {
            "firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com",
            "phone": "+15551234567", "lifecyclestage": "customer", "createdate": "2024-01-01",
            "hs_object_id": "123"}, "archived": false}], "paging": null}"#;
        let contact = parse_contact_search(response(200, body)).unwrap();
        assert_eq!(
            pairs(&contact_fields(contact.as_ref())),
            [
                ("contact_found", "true"),
                ("contact_id", "123"),
                ("first_name", "Ada"),
                ("last_name", "Lovelace"),
                ("email", "ada@example.com"),
                ("lifecycle_stage", "customer"),
            ]
        );
    }

    #[test]
    fn found_contact_with_null_properties() {
        let body = r#"{"total":1,"results":[{"id":"55","properties":{"firstname":"Bo","lastname":null,"email":null,"lifecyclestage":""}}]}"#;
        let contact = parse_contact_search(response(200, body)).unwrap();
        assert_eq!(
            pairs(&contact_fields(contact.as_ref())),
            [
                ("contact_found", "true"),
                ("contact_id", "55"),
                ("first_name", "Bo")
            ]
        );
        for body in [
            r#"{"total":1,"results":[{"id":"56","properties":null}]}"#,
            r#"{"total":1,"results":[{"id":"56"}]}"#,
            r#"{"total":1,"results":[{"id":56,"properties":{}}]}"#,
        ] {
            let contact = parse_contact_search(response(200, body)).unwrap();
            assert_eq!(
                pairs(&contact_fields(contact.as_ref())),
                [("contact_found", "true"), ("contact_id", "56")],
                "{body}"
            );
        }
    }

    #[test]
    fn contact_not_found() {
        let contact = parse_contact_search(response(200, r#"{"total":0,"results":[]}"#)).unwrap();
        assert_eq!(contact, None);
        assert_eq!(pairs(&contact_fields(None)), [("contact_found", "false")]);
    }

    #[test]
    fn malformed_search_responses() {
        for (body, why) in [
            ("<html>", "expected value"),
            ("", "EOF"),
            (r#"{"total":0}"#, "missing field `results`"),
            (r#"{"results":{}}"#, "invalid type"),
            (r#"[[{"id":"1"}]]"#, "expected a JSON object, got an array"),
            (r#"{"results":[{"properties":{}}]}"#, "missing field `id`"),
            (
                r#"{"results":[{"id":"1","properties":{"firstname":7}}]}"#,
                "invalid type",
            ),
        ] {
            let message = upstream_failure(parse_contact_search(response(200, body)));
            assert!(message.contains(why), "{body}: {message}");
        }
        assert!(
            upstream_failure(parse_contact_search(response(
                200,
                r#"{"results":[{"id":""}]}"#
            )))
            .contains("empty id")
        );
    }

    #[test]
    fn error_statuses() {
        let limited = response(429, "{}").with_header("retry-after", "10");
        assert!(matches!(
            parse_contact_search(limited),
            Err(PluginError::RateLimited(10))
        ));
        assert!(matches!(
            parse_contact_search(response(401, "")),
            Err(PluginError::Denied(_))
        ));
        assert!(matches!(
            parse_note_created(response(403, "")),
            Err(PluginError::Denied(_))
        ));
        assert!(
            upstream_failure(parse_note_created(response(400, r#"{"message":"bad"}"#)))
                .contains("400")
        );
        assert!(upstream_failure(parse_contact_search(response(502, ""))).contains("502"));
    }

    #[test]
    fn note_created() {
        let body = r#"{"id":"987","properties":{"hs_note_body":"x"},"createdAt":"2026-03-01T09:30:00Z","archived":false}"#;
        assert_eq!(parse_note_created(response(201, body)).unwrap(), "987");
        assert_eq!(
            parse_note_created(response(200, r#"{"id":988}"#)).unwrap(),
            "988"
        );
        assert!(
            upstream_failure(parse_note_created(response(201, "{}")))
                .contains("missing field `id`")
        );
        assert!(
            upstream_failure(parse_note_created(response(201, r#"{"id":""}"#)))
                .contains("empty id")
        );
        assert!(
            upstream_failure(parse_note_created(response(201, "nope"))).contains("unusable JSON")
        );
    }

    #[test]
    fn note_body_rules() {
        assert_eq!(note_body(Some("hi")).unwrap(), "hi");
        assert_eq!(note_body(Some("  keep\n  ")).unwrap(), "  keep\n  ");
        for blank in [None, Some(""), Some(" \n\t")] {
            assert!(invalid_input(note_body(blank)).contains("body"));
        }
        let exact = "a".repeat(MAX_NOTE_BYTES);
        assert_eq!(note_body(Some(&exact)).unwrap().len(), MAX_NOTE_BYTES);
        let long = "b".repeat(MAX_NOTE_BYTES + 10);
        assert_eq!(note_body(Some(&long)).unwrap().len(), MAX_NOTE_BYTES);
        // A 3-byte character straddling the cap is dropped whole, not split.
        let straddling = format!("{}€tail", "c".repeat(MAX_NOTE_BYTES - 1));
        let cut = note_body(Some(&straddling)).unwrap();
        assert_eq!(cut.len(), MAX_NOTE_BYTES - 1);
        assert!(cut.bytes().all(|byte| byte == b'c'));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(999), "1970-01-01T00:00:00.999Z");
        assert_eq!(rfc3339_utc(86_399_999), "1970-01-01T23:59:59.999Z");
        // Leap days: 2024-02-29, and 2000 (divisible by 400) has one.
        assert_eq!(rfc3339_utc(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_utc(1_709_251_200_000), "2024-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(978_307_199_000), "2000-12-31T23:59:59.000Z");
        assert_eq!(rfc3339_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_utc(253_402_300_799_000), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(58), (1970, 2, 28));
        assert_eq!(civil_from_days(59), (1970, 3, 1)); // 1970 is not a leap year
        assert_eq!(civil_from_days(365), (1971, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        // Every day from 1970 to 2400 follows the previous one.
        let mut previous = civil_from_days(0);
        for days in 1..157_000 {
            let (year, month, day) = civil_from_days(days);
            let (p_year, p_month, p_day) = previous;
            let next_day = year == p_year && month == p_month && day == p_day + 1;
            let next_month = year == p_year && month == p_month + 1 && day == 1;
            let next_year =
                year == p_year + 1 && month == 1 && day == 1 && p_month == 12 && p_day == 31;
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {:?}",
                (year, month, day)
            );
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if month == 2 && day == 29 {
                assert!(leap, "{year}-02-29");
            }
            previous = (year, month, day);
        }
    }

    #[test]
    fn unsupported_entities_are_invalid_input_naming_the_supported_ones() {
        let context = testing::context();
        let message = invalid_input(CrmNotes.lookup("order", "A1", &context));
        assert!(
            message.contains("\"order\"")
                && message.contains("\"contact\"")
                && message.contains("\"note\""),
            "{message}"
        );
        invalid_input(CrmNotes.write("contact", &[], &context));
        invalid_input(CrmNotes.lookup("contact", "not-a-phone", &context));
        assert!(
            invalid_input(CrmNotes.write("note", &[Field::new("body", " ")], &context))
                .contains("body")
        );
    }
}
