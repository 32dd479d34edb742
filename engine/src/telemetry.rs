//! Tracing across a text's whole path, exported over OTLP when configured (off by default).
//!
//! A text's spans: `sms.inbound` (the webhook's accept), `sms.turn` (the flow's turn), and
//! `sms.send` (each reply's provider call), each carrying the message id. The inbox and the
//! outbox are durable queues, so the span context rides along in their rows as a W3C
//! `traceparent` ([`traceparent`], [`follow`]): the three make one trace even across a
//! restart.
//!
//! Set `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL, `http://127.0.0.1:4318`) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full `/v1/traces` URL) to export over OTLP/HTTP
//! (protobuf). Unset, spans only feed the logs, and nothing is sent anywhere.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Where spans go, from the environment; `None` when export is off.
pub fn otlp_endpoint() -> Option<String> {
    if let Ok(traces) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        && !traces.is_empty()
    {
        return Some(traces);
    }
    let base = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    (!base.is_empty()).then(|| format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// A tracer exporting to `endpoint` in batches (on the SDK's own thread), and the provider
/// to shut down (flushing what is buffered) on exit.
///
/// # Errors
///
/// When the exporter cannot be built (a malformed endpoint).
pub fn otlp_tracer(
    endpoint: &str,
) -> anyhow::Result<(opentelemetry_sdk::trace::Tracer, SdkTracerProvider)> {
    // A blocking client owns a runtime of its own, which may not be made (or dropped) on the
    // async runtime's threads: made on a thread of its own, it lives on the exporter's.
    let client = std::thread::spawn(reqwest::blocking::Client::new)
        .join()
        .map_err(|_| anyhow::anyhow!("the OTLP exporter's HTTP client could not be made"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Blocking(client))
        .with_endpoint(endpoint)
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("smsflow")
                .build(),
        )
        .build();
    Ok((provider.tracer("smsflow"), provider))
}

/// The current span's context as a W3C `traceparent`, to store with a queued row; `None`
/// when nothing is traced.
pub fn traceparent() -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span a stored `traceparent` names.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    // A span already closed or not traced cannot take a parent: nothing to link.
    let _ = span.set_parent(parent);
}

/// The exporter's HTTP client: the engine's reqwest, blocking, since the SDK exports from a
/// thread of its own outside the async runtime (and a second HTTP stack would double the
/// build).
#[derive(Debug)]
struct Blocking(reqwest::blocking::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Blocking {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut builder = self
            .0
            .request(parts.method, parts.uri.to_string())
            .body(body.to_vec());
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send()?;
        let status = response.status();
        let bytes = response.bytes()?;
        Ok(http::Response::builder().status(status).body(bytes)?)
    }
}
