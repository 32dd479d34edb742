//! The example plugins, built from this repository's sources (`just plugins`), running in the
//! real sandbox; the connectors talk over real HTTP to local servers that speak the order API
//! and HubSpot's CRM v3 API.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use smsflow::clock::SystemClock;
use smsflow::plugin::{
    CallError, ConnectorCall, Context, PluginFailure, PluginHost, PluginsConfig,
};
use smsflow::store::Store;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A host with every example plugin loaded from `target/plugins`, granted by `grants_toml`.
async fn host_with(grants_toml: &str) -> (PluginHost, Store) {
    let dir = repository().join("target/plugins");
    assert!(
        dir.join("keyword-intents.wasm").exists(),
        "{} has no plugins: run `just plugins` first",
        dir.display()
    );
    let mut config: PluginsConfig = toml::from_str(grants_toml).unwrap();
    config.dir = dir;
    config.cache_dir = Some(repository().join("target/plugin-cache"));
    let store = Store::temporary().unwrap();
    let mut host =
        PluginHost::new(&config, store.tables().plugin_kv, Arc::new(SystemClock)).unwrap();
    host.load_dir(&config).await.unwrap();
    (host, store)
}

const FAQ_GRANT: &str = r#"
[grants.faq-replies]
capabilities = ["config"]
[grants.faq-replies.config]
faq = [
  { question = "What are your opening hours?", keywords = ["hours", "open"], answer = "We are open 9am-5pm, Monday to Friday." },
  { question = "¿Cuál es su horario?", keywords = ["horario", "abren"], answer = "Abrimos de 9 a 17, de lunes a viernes.", locale = "es" },
]
"#;

/// Grants for every example plugin, with extra TOML lines for each connector's grant.
fn grants(order_status: &str, crm_notes: &str) -> String {
    format!(
        "{FAQ_GRANT}\n[grants.order-status]\ncapabilities = [\"config\", \"http\"]\n{order_status}\n\
         [grants.crm-notes]\ncapabilities = [\"config\", \"http\"]\n{crm_notes}\n"
    )
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

#[tokio::test]
async fn keyword_intents_classifies_common_replies() {
    let (host, _store) = host_with(&grants("", "")).await;
    let plugin = host.get("keyword-intents").unwrap();
    for intent in ["confirm", "cancel", "reschedule", "complaint"] {
        assert!(
            plugin.intents.iter().any(|name| name == intent),
            "{:?}",
            plugin.intents
        );
    }
    let cases = [
        ("Yes please!", "confirm"),
        ("ＹＥＳ", "confirm"),
        ("👍", "confirm"),
        ("Sí, confirmo", "confirm"),
        ("I can't make it, cancel", "cancel"),
        ("can we do thursday at 3pm instead", "reschedule"),
        ("I want a refund, this is a scam", "complaint"),
        ("how much does it cost?", "pricing_question"),
        ("the weather is nice", "unknown"),
    ];
    let context = Context::default();
    for (text, expected) in cases {
        let intent = host
            .classify("keyword-intents", text, &context)
            .await
            .unwrap();
        assert_eq!(intent.name, expected, "{text}");
    }
    let intent = host
        .classify(
            "keyword-intents",
            "can we do thursday at 3pm instead",
            &context,
        )
        .await
        .unwrap();
    assert_eq!(
        intent.entities.get("day").map(String::as_str),
        Some("thursday")
    );
}

#[tokio::test]
async fn keyword_intents_classifies_a_text_near_the_input_limit_in_the_sandbox() {
    // About 60 KB: far more than the 128 KiB memory the component starts with can hold in
    // tokens, spans and matches, so its allocator must grow the memory.
    let (host, _store) = host_with(&grants("", "")).await;
    let text = "blah ".repeat(12_000) + "refund thursday";
    let intent = host
        .classify("keyword-intents", &text, &Context::default())
        .await
        .unwrap();
    assert_eq!(intent.name, "complaint");
    assert_eq!(
        intent.entities.get("day").map(String::as_str),
        Some("thursday")
    );
}

#[tokio::test]
async fn faq_replies_answers_from_its_config_and_hands_off_when_unsure() {
    let (host, _store) = host_with(&grants("", "")).await;
    let english = Context::default();
    let draft = host
        .draft_reply("faq-replies", "what are your hours on friday?", &english)
        .await
        .unwrap();
    assert_eq!(draft.text, "We are open 9am-5pm, Monday to Friday.");
    assert!(draft.confidence >= 0.5, "{draft:?}");
    assert_eq!(draft.next_step, None);

    let spanish = Context {
        locale: "es-MX".into(),
        ..Context::default()
    };
    let draft = host
        .draft_reply("faq-replies", "¿a qué hora abren?", &spanish)
        .await
        .unwrap();
    assert_eq!(draft.text, "Abrimos de 9 a 17, de lunes a viernes.");

    let draft = host
        .draft_reply("faq-replies", "my package arrived broken", &english)
        .await
        .unwrap();
    assert_eq!(draft.next_step.as_deref(), Some("handoff"), "{draft:?}");
    assert!(draft.confidence < 0.5);
}

#[tokio::test]
async fn faq_replies_without_its_config_is_an_invalid_input_error() {
    let (host, _store) = host_with(&grants("", "").replace(
        FAQ_GRANT,
        "[grants.faq-replies]\ncapabilities = [\"config\"]\n",
    ))
    .await;
    let error = host
        .draft_reply("faq-replies", "hours?", &Context::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { failure: PluginFailure::InvalidInput(message), .. } if message.contains("faq")),
        "{error}"
    );
}

fn order_api() -> axum::Router {
    axum::Router::new().route(
        "/api/orders/{id}",
        get(|Path(id): Path<String>| async move {
            match id.as_str() {
                "A100" => (
                    StatusCode::OK,
                    Json(json!({"id": "A100", "status": "shipped", "eta": "2026-12-01", "carrier": "UPS"})),
                ),
                "SLOW1" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    (StatusCode::OK, Json(json!({"id": "SLOW1", "status": "shipped"})))
                }
                _ => (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))),
            }
        }),
    )
}

fn lookup(entity: &str, key: &str) -> ConnectorCall {
    ConnectorCall::Lookup {
        entity: entity.into(),
        key: key.into(),
        context: Context::default(),
    }
}

#[tokio::test]
async fn order_status_looks_orders_up_over_http() {
    let address = serve(order_api()).await;
    let (host, _store) = host_with(&grants(
        &format!(
            "http = [\"http://{address}\"]\nconfig = {{ base_url = \"http://{address}/api\" }}\nlimits = {{ timeout_ms = 500 }}"
        ),
        "",
    ))
    .await;

    let fields = host
        .connect("order-status", &lookup("order", "A100"))
        .await
        .unwrap();
    assert_eq!(fields["order_found"], "true");
    assert_eq!(fields["order_status"], "shipped");
    assert_eq!(fields["order_eta"], "2026-12-01");

    let fields = host
        .connect("order-status", &lookup("order", "NOPE9"))
        .await
        .unwrap();
    assert_eq!(
        fields,
        BTreeMap::from([("order_found".into(), "false".into())])
    );

    // The wall-clock timeout covers the plugin's wait on the host's HTTP call.
    let started = std::time::Instant::now();
    let error = host
        .connect("order-status", &lookup("order", "SLOW1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Timeout {
                timeout_ms: 500,
                ..
            }
        ),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn order_status_cannot_reach_an_origin_the_operator_did_not_grant() {
    let granted = serve(order_api()).await;
    let other = serve(order_api()).await;
    let (host, _store) = host_with(&grants(
        &format!("http = [\"http://{granted}\"]\nconfig = {{ base_url = \"http://{other}/api\" }}"),
        "",
    ))
    .await;
    let error = host
        .connect("order-status", &lookup("order", "A100"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { failure: PluginFailure::Denied(message), .. } if message.contains("allow-list")),
        "{error}"
    );
}

#[derive(Default)]
struct CrmLog {
    authorizations: Vec<String>,
    notes: Vec<Value>,
}

fn hubspot(log: Arc<Mutex<CrmLog>>) -> axum::Router {
    axum::Router::new()
        .route(
            "/crm/v3/objects/contacts/search",
            post(
                |State(log): State<Arc<Mutex<CrmLog>>>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    log.lock().unwrap().authorizations.push(
                        headers
                            .get("authorization")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                    );
                    let phone = body["filterGroups"][0]["filters"][0]["value"].as_str().unwrap_or_default();
                    if phone == "+12121230001" {
                        Json(json!({"total": 1, "results": [{"id": "501", "properties": {"firstname": "Ana", "lastname": "Diaz", "email": null, "phone": phone}}]}))
                    } else {
                        Json(json!({"total": 0, "results": []}))
                    }
                },
            ),
        )
        .route(
            "/crm/v3/objects/notes",
            post(
                |State(log): State<Arc<Mutex<CrmLog>>>, Json(body): Json<Value>| async move {
                    log.lock().unwrap().notes.push(body);
                    (StatusCode::CREATED, Json(json!({"id": "9001"})))
                },
            ),
        )
        .with_state(log)
}

#[tokio::test]
async fn crm_notes_finds_a_contact_and_writes_a_note_with_host_added_credentials() {
    let log = Arc::new(Mutex::new(CrmLog::default()));
    let address = serve(hubspot(Arc::clone(&log))).await;
    // SAFETY of the test: no other test reads this variable.
    unsafe { std::env::set_var("SMSFLOW_TEST_HUBSPOT_TOKEN", "pat-test-123") };
    let (host, _store) = host_with(&grants(
        "",
        &format!(
            "http = [\"http://{address}\"]\nconfig = {{ base_url = \"http://{address}\" }}\n\
             credentials = [{{ origin = \"http://{address}\", env = \"SMSFLOW_TEST_HUBSPOT_TOKEN\", scheme = \"Bearer\" }}]"
        ),
    ))
    .await;

    let fields = host
        .connect("crm-notes", &lookup("contact", "+12121230001"))
        .await
        .unwrap();
    assert_eq!(fields["contact_found"], "true");
    assert_eq!(fields["contact_id"], "501");
    assert_eq!(fields["first_name"], "Ana");
    assert!(!fields.contains_key("email"));

    let write = ConnectorCall::Write {
        entity: "note".into(),
        fields: BTreeMap::from([("body".into(), "Customer said \"call me\"\nafter 5pm".into())]),
        context: Context {
            contact: "+12121230001".into(),
            ..Context::default()
        },
    };
    let fields = host.connect("crm-notes", &write).await.unwrap();
    assert_eq!(fields["note_id"], "9001");
    assert_eq!(fields["contact_id"], "501");

    let log = log.lock().unwrap();
    assert!(!log.authorizations.is_empty());
    assert!(
        log.authorizations
            .iter()
            .all(|value| value == "Bearer pat-test-123")
    );
    let note = &log.notes[0];
    assert_eq!(
        note["properties"]["hs_note_body"],
        "Customer said \"call me\"\nafter 5pm"
    );
    assert_eq!(note["associations"][0]["to"]["id"], "501");
    assert_eq!(
        note["associations"][0]["types"][0]["associationTypeId"],
        202
    );
}
