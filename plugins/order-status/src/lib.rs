//! `order-status`: an example smsflow connector that looks an order up over HTTP.
//!
//! `lookup("order", id, context)` sends `GET {base_url}/orders/{id}` through the host's HTTP
//! import (the host checks the URL against the operator's allow-list and adds any credentials)
//! and returns the order's status and ETA as conversation fields:
//!
//! | field                | when                                          |
//! |----------------------|-----------------------------------------------|
//! | `order_found`        | always: `true`, or `false` on a 404           |
//! | `order_id`           | found                                         |
//! | `order_status`       | found                                         |
//! | `order_status_text`  | found: a short phrase such as `has shipped`   |
//! | `order_eta`          | found, when the API gave one                  |
//! | `order_carrier`      | found, when the API gave one                  |
//! | `order_tracking_url` | found, when the API gave one                  |
//!
//! Configuration: `base_url` (required), such as `https://shop.example.com/api`.
//!
//! The request building and response parsing are plain functions ([`order_url`],
//! [`parse_order`]) so they are tested natively; only [`OrderStatus`]'s trait methods call the
//! host.

use serde::Deserialize;
use smsflow_plugin_sdk::connector::Connector;
use smsflow_plugin_sdk::http::{self, Response};
use smsflow_plugin_sdk::{Context, Field, PluginError, config, log};

/// The only entity this connector looks up.
pub const ENTITY: &str = "order";

/// The conversation field used when `lookup` is given an empty key.
pub const ORDER_ID_FIELD: &str = "order_id";

/// The longest order id accepted.
pub const MAX_ID_LEN: usize = 64;

/// The connector. It keeps no state: the host builds it for each call.
#[derive(Debug, Default)]
pub struct OrderStatus;

impl Connector for OrderStatus {
    fn lookup(
        &self,
        entity: &str,
        key: &str,
        context: &Context,
    ) -> Result<Vec<Field>, PluginError> {
        if entity != ENTITY {
            return Err(unsupported_lookup(entity));
        }
        let id = order_id(key, context.field(ORDER_ID_FIELD))?;
        let base_url = config::require("base_url")?;
        let url = order_url(&base_url, id)?;
        log::info(&format!("looking up order {id}"));
        let response = http::get_json(&url)?;
        parse_order(response)
    }

    fn write(
        &self,
        entity: &str,
        _fields: &[Field],
        _context: &Context,
    ) -> Result<Vec<Field>, PluginError> {
        Err(unsupported_write(entity))
    }
}

smsflow_plugin_sdk::register_connector!(OrderStatus);

/// The error for a lookup of an entity other than `order`.
pub fn unsupported_lookup(entity: &str) -> PluginError {
    PluginError::InvalidInput(format!(
        "order-status does not support lookup of {entity:?}: it looks up \"{ENTITY}\" only"
    ))
}

/// The error for any write: this connector only reads.
pub fn unsupported_write(entity: &str) -> PluginError {
    PluginError::InvalidInput(format!(
        "order-status does not support write (of {entity:?}): it only looks up \"{ENTITY}\""
    ))
}

/// The order id to look up: `key`, or the conversation's `order_id` field when `key` is empty,
/// validated with [`validate_order_id`].
///
/// # Errors
///
/// [`PluginError::InvalidInput`] when neither is given or the id is not valid.
pub fn order_id<'a>(key: &'a str, field: Option<&'a str>) -> Result<&'a str, PluginError> {
    let key = key.trim();
    let id = if key.is_empty() {
        field.map(str::trim).filter(|id| !id.is_empty()).ok_or_else(|| {
            PluginError::InvalidInput(format!(
                "no order id: the lookup key is empty and the conversation has no `{ORDER_ID_FIELD}` field"
            ))
        })?
    } else {
        key
    };
    validate_order_id(id)?;
    Ok(id)
}

/// Checks that `id` is 1 to [`MAX_ID_LEN`] characters of `A-Z a-z 0-9 _ -`, so it can go into a
/// URL path as it is (no `/`, `..`, `?`, `#` or `%` can reach the upstream).
///
/// # Errors
///
/// [`PluginError::InvalidInput`] saying what is wrong.
pub fn validate_order_id(id: &str) -> Result<(), PluginError> {
    if id.is_empty() {
        return Err(PluginError::InvalidInput("the order id is empty".into()));
    }
    if id.len() > MAX_ID_LEN {
        return Err(PluginError::InvalidInput(format!(
            "the order id is longer than {MAX_ID_LEN} characters"
        )));
    }
    if !id
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    {
        return Err(PluginError::InvalidInput(format!(
            "the order id {id:?} may only contain letters, digits, `_` and `-`"
        )));
    }
    Ok(())
}

/// `{base_url}/orders/{id}`, with any trailing `/` of `base_url` dropped.
///
/// # Errors
///
/// [`PluginError::InvalidInput`] when `base_url` is not an `http(s)://` URL or `id` is not valid.
pub fn order_url(base_url: &str, id: &str) -> Result<String, PluginError> {
    let base = base_url.trim().trim_end_matches('/');
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        base.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
            && base.len() > scheme.len()
    });
    if !scheme_ok {
        return Err(PluginError::InvalidInput(format!(
            "plugin config `base_url` must be an http:// or https:// URL, not {base_url:?}"
        )));
    }
    if base.contains(['?', '#']) {
        return Err(PluginError::InvalidInput(format!(
            "plugin config `base_url` must not have a query or fragment: {base_url:?}"
        )));
    }
    validate_order_id(id)?;
    Ok(format!("{base}/orders/{id}"))
}

/// The order as the API answers it; extra keys are ignored.
#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    status: String,
    #[serde(default)]
    eta: Option<String>,
    #[serde(default)]
    carrier: Option<String>,
    #[serde(default)]
    tracking_url: Option<String>,
}

/// The fields for the API's answer: a found order on 200, `order_found=false` on 404.
///
/// # Errors
///
/// For a status other than 2xx or 404, what [`Response::error_for_status`] maps it to
/// (rate-limited, denied, upstream failure); [`PluginError::UpstreamFailure`] when a 2xx body is
/// not the expected JSON.
pub fn parse_order(response: Response) -> Result<Vec<Field>, PluginError> {
    if response.status == 404 {
        return Ok(vec![Field::new("order_found", "false")]);
    }
    let response = response.error_for_status()?;
    let order: Order = json_object(&response.body).map_err(|error| {
        PluginError::UpstreamFailure(format!("the order API answered unusable JSON: {error}"))
    })?;
    let status = order.status.trim();
    if status.is_empty() {
        return Err(PluginError::UpstreamFailure(
            "the order API answered an empty `status`".into(),
        ));
    }
    let mut fields = vec![
        Field::new("order_found", "true"),
        Field::new("order_id", order.id),
        Field::new("order_status", status),
        Field::new("order_status_text", status_text(status)),
    ];
    let optional = [
        ("order_eta", order.eta),
        ("order_carrier", order.carrier),
        ("order_tracking_url", order.tracking_url),
    ];
    for (name, value) in optional {
        if let Some(value) = value
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
        {
            fields.push(Field::new(name, value));
        }
    }
    Ok(fields)
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

/// A short phrase for an order status, to follow "Your order": `shipped` → `has shipped`,
/// `on_hold` → `is on hold`.
pub fn status_text(status: &str) -> String {
    let status = status.trim();
    let known = match status.to_ascii_lowercase().as_str() {
        "shipped" => Some("has shipped"),
        "delivered" => Some("was delivered"),
        "processing" | "pending" => Some("is being prepared"),
        "cancelled" | "canceled" => Some("was cancelled"),
        "returned" => Some("was returned"),
        "refunded" => Some("was refunded"),
        "out_for_delivery" | "out-for-delivery" => Some("is out for delivery"),
        _ => None,
    };
    match known {
        Some(text) => text.to_owned(),
        None => format!("is {}", status.replace(['_', '-'], " ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use smsflow_plugin_sdk::testing::{self, invalid_input, pairs, response};

    #[test]
    fn url_joins_base_and_id() {
        assert_eq!(
            order_url("http://127.0.0.1:9400/api", "A100").unwrap(),
            "http://127.0.0.1:9400/api/orders/A100"
        );
    }

    #[test]
    fn url_tolerates_trailing_slashes() {
        assert_eq!(
            order_url("https://shop.example.com/api/", "a-1_B").unwrap(),
            "https://shop.example.com/api/orders/a-1_B"
        );
        assert_eq!(
            order_url(" https://shop.example.com// ", "7").unwrap(),
            "https://shop.example.com/orders/7"
        );
    }

    #[test]
    fn url_rejects_bad_base() {
        for base in [
            "",
            "/api",
            "ftp://x/api",
            "https://",
            "shop.example.com",
            "https://x/api?k=1",
        ] {
            let message = invalid_input(order_url(base, "A100"));
            assert!(message.contains("base_url"), "{base}: {message}");
        }
    }

    #[test]
    fn ids_that_could_inject_a_path_are_rejected() {
        for id in [
            "", "../admin", "A/B", "A100?x=1", "A100#f", "A%2F", "A 100", "A.100", "ä100",
            "A100\n", "A\\B",
        ] {
            invalid_input(validate_order_id(id));
            invalid_input(order_url("http://x/api", id));
        }
        invalid_input(validate_order_id(&"A".repeat(MAX_ID_LEN + 1)));
    }

    #[test]
    fn valid_ids_are_accepted() {
        for id in ["A100", "a", "0", "order_12-x", &"Z".repeat(MAX_ID_LEN)] {
            validate_order_id(id).unwrap();
        }
    }

    #[test]
    fn id_comes_from_key_then_field() {
        assert_eq!(order_id("A100", Some("B200")).unwrap(), "A100");
        assert_eq!(order_id("", Some("B200")).unwrap(), "B200");
        assert_eq!(order_id("  ", Some(" B200 ")).unwrap(), "B200");
        assert!(invalid_input(order_id("", None)).contains("order_id"));
        assert!(invalid_input(order_id("", Some(""))).contains("order_id"));
        invalid_input(order_id("", Some("../x")));
        invalid_input(order_id("a/b", Some("B200")));
    }

    #[test]
    fn found_order_with_every_field() {
        let body = r#"{"id": "A100", "status": "shipped", "eta": "2026-12-01", "carrier": "UPS",
            "tracking_url": "https://ups.example/t/1Z", "total": 12.5, "items": [1, 2]}"#;
        let fields = parse_order(response(200, body)).unwrap();
        assert_eq!(
            pairs(&fields),
            [
                ("order_found", "true"),
                ("order_id", "A100"),
                ("order_status", "shipped"),
                ("order_status_text", "has shipped"),
                ("order_eta", "2026-12-01"),
                ("order_carrier", "UPS"),
                ("order_tracking_url", "https://ups.example/t/1Z"),
            ]
        );
    }

    #[test]
    fn found_order_with_only_required_fields() {
        let fields = parse_order(response(200, r#"{"id":"B2","status":"processing"}"#)).unwrap();
        assert_eq!(
            pairs(&fields),
            [
                ("order_found", "true"),
                ("order_id", "B2"),
                ("order_status", "processing"),
                ("order_status_text", "is being prepared"),
            ]
        );
    }

    #[test]
    fn null_and_empty_optionals_are_left_out() {
        let body =
            r#"{"id":"B2","status":"delivered","eta":null,"carrier":"","tracking_url":null}"#;
        let fields = parse_order(response(200, body)).unwrap();
        assert_eq!(fields.len(), 4);
        assert_eq!(pairs(&fields)[3], ("order_status_text", "was delivered"));
    }

    #[test]
    fn not_found_is_a_normal_outcome() {
        let fields = parse_order(response(404, "not found")).unwrap();
        assert_eq!(pairs(&fields), [("order_found", "false")]);
    }

    #[test]
    fn other_statuses_map_to_errors() {
        let limited = response(429, "").with_header("retry-after", "30");
        assert!(matches!(
            parse_order(limited),
            Err(PluginError::RateLimited(30))
        ));
        assert!(matches!(
            parse_order(response(401, "")),
            Err(PluginError::Denied(_))
        ));
        assert!(matches!(
            parse_order(response(403, "")),
            Err(PluginError::Denied(_))
        ));
        assert!(matches!(
            parse_order(response(500, "")),
            Err(PluginError::UpstreamFailure(message)) if message.contains("500")
        ));
        assert!(matches!(
            parse_order(response(302, "")),
            Err(PluginError::UpstreamFailure(_))
        ));
    }

    #[test]
    fn malformed_json_is_an_upstream_failure_saying_why() {
        for (body, why) in [
            ("<html>", "expected value"),
            (r#"{"id":"A100"}"#, "missing field `status`"),
            (r#"{"status":"shipped"}"#, "missing field `id`"),
            (r#"{"id":1,"status":"shipped"}"#, "invalid type"),
            (
                r#"["A100","shipped"]"#,
                "expected a JSON object, got an array",
            ),
            ("null", "got null"),
            ("", "EOF"),
        ] {
            match parse_order(response(200, body)) {
                Err(PluginError::UpstreamFailure(message)) => {
                    assert!(message.contains(why), "{body}: {message}");
                }
                other => panic!("{body}: expected upstream-failure, got {other:?}"),
            }
        }
        assert!(matches!(
            parse_order(response(200, r#"{"id":"A1","status":" "}"#)),
            Err(PluginError::UpstreamFailure(message)) if message.contains("empty")
        ));
    }

    #[test]
    fn status_phrases() {
        assert_eq!(status_text("shipped"), "has shipped");
        assert_eq!(status_text("Delivered"), "was delivered");
        assert_eq!(status_text("processing"), "is being prepared");
        assert_eq!(status_text("cancelled"), "was cancelled");
        assert_eq!(status_text("canceled"), "was cancelled");
        assert_eq!(status_text("on_hold"), "is on hold");
        assert_eq!(status_text("backordered"), "is backordered");
    }

    #[test]
    fn unsupported_entities_and_writes_are_invalid_input() {
        let message = invalid_input(Err::<(), _>(unsupported_lookup("contact")));
        assert!(message.contains("order-status does not support lookup of \"contact\""));
        let message = invalid_input(Err::<(), _>(unsupported_write("note")));
        assert!(message.contains("order-status does not support write"));
    }

    #[test]
    fn connector_rejects_other_entities_without_calling_the_host() {
        let context = testing::context();
        invalid_input(OrderStatus.lookup("contact", "x", &context));
        invalid_input(OrderStatus.lookup("order", "../x", &context));
        invalid_input(OrderStatus.lookup("order", "", &context));
        invalid_input(OrderStatus.write("order", &[], &context));
    }
}
