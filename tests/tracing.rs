//! A text's trace over OTLP, against the real binary: a signed inbound text that gets a reply,
//! with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a local collector (an HTTP server speaking
//! OTLP/HTTP protobuf, as an OpenTelemetry collector does). Its spans (the webhook's accept,
//! the turn, the reply's send) make one tree and carry the message id, across the durable
//! inbox and outbox.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};

use common::Server;
use common::fake_provider::{Setup, TRACK_FLOW, post_inbound, twilio_provider, wait_until};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// A collector on loopback: every span it was sent.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let mut kept = kept.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans);
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(text) => {
                Some(text.clone())
            }
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_texts_spans_make_one_tree_from_the_webhook_to_the_providers_answer() {
    let (url, spans) = collector().await;
    let setup = Setup::with_fake(&[], &[("track.toml", TRACK_FLOW)]).await;
    let rest = format!(
        "[programs.orders]\nquiet_hours_exempt = true\n{}",
        common::plugins_section(&setup.fake_url)
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
        // Export within a fraction of a second rather than the SDK's 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let _server = Server::start_with_env(&setup.config(), setup.port, &env);
    let contact = "+12125550170";
    let (status, body) = post_inbound(&setup, "SMtrace0001", contact, "TRACK").await;
    assert_eq!(status, 200, "{body}");
    wait_until("the reply", || !setup.fake.sent_to(contact).is_empty()).await;
    wait_until("the spans at the collector", || {
        let spans = spans.lock().unwrap();
        ["sms.inbound", "sms.turn", "sms.send"]
            .iter()
            .all(|name| spans.iter().any(|span| span.name == *name))
    })
    .await;

    let spans = spans.lock().unwrap();
    let named = |name: &str| spans.iter().find(|span| span.name == name).unwrap().clone();
    let (inbound, turn, send) = (named("sms.inbound"), named("sms.turn"), named("sms.send"));
    assert_eq!(
        attribute(&inbound, "message_id").as_deref(),
        Some("SMtrace0001")
    );
    assert_eq!(
        attribute(&turn, "message_id").as_deref(),
        Some("SMtrace0001")
    );
    assert!(attribute(&send, "message_id").unwrap().starts_with("out-"));
    assert_eq!(turn.trace_id, inbound.trace_id, "one trace");
    assert_eq!(send.trace_id, inbound.trace_id, "one trace");
    assert_eq!(
        turn.parent_span_id, inbound.span_id,
        "the turn follows the webhook"
    );
    assert_eq!(
        send.parent_span_id, turn.span_id,
        "the send follows the turn"
    );
}
