//! The ceiling: a bare hyper server that answers a Twilio inbound webhook the way smsflow does
//! (the whole body read, 200 with empty TwiML) and does nothing else. What the load generator
//! reaches against it is what HTTP alone allows on this machine.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use smsflow::ingress::twilio::EMPTY_TWIML;

use crate::contacts::Contacts;
use crate::engine::{ACCOUNT_SID, AUTH_TOKEN, OURS, PUBLIC_URL, Paths};
use crate::latency::{Summary, summary};
use crate::loadgen::{self, Pace};
use crate::process::Server;
use crate::twilio::{InboundTexts, Webhook};

/// What the ceiling prints before its address.
pub const ANNOUNCE: &str = "ceiling listening on ";

/// Serves `listener` until the task is dropped.
///
/// # Errors
///
/// When accepting a connection fails.
pub async fn serve(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A client closing its connection is not the ceiling's concern.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    request.into_body().collect().await?;
    let mut response = Response::new(Full::new(Bytes::from_static(EMPTY_TWIML.as_bytes())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    Ok(response)
}

/// What the load generator reached against the ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// Acknowledged requests per second.
    pub requests_per_second: f64,
    /// Acknowledged requests.
    pub requests: u64,
    /// Non-2xx answers.
    pub refused: u64,
    /// Requests without an answer.
    pub failed: u64,
    /// How long the loop ran.
    pub seconds: f64,
    /// Acknowledgement latency.
    pub ack: Summary,
}

/// How long, and with how many requests at most, the ceiling is driven.
#[derive(Debug, Clone, Copy)]
pub struct Drive {
    /// Connections.
    pub connections: usize,
    /// Time bound.
    pub time: Duration,
    /// Request bound.
    pub requests: u64,
}

/// Starts the `ceiling` binary and drives it closed loop with signed webhooks.
///
/// # Errors
///
/// When it does not start or the load generator cannot connect.
pub async fn measure(paths: &Paths, contacts: &Contacts, drive: Drive) -> anyhow::Result<Ceiling> {
    let logs = tempfile::tempdir()?;
    let mut command = Command::new(paths.ceiling());
    command.args(["--listen", "127.0.0.1:0"]);
    let server = Server::spawn(
        command,
        "ceiling",
        &logs.path().join("ceiling.log"),
        ANNOUNCE,
    )?;
    let texts = InboundTexts {
        webhook: Webhook {
            signed_url: format!("{PUBLIC_URL}{}", smsflow::server::TWILIO_INBOUND_PATH),
            path: smsflow::server::TWILIO_INBOUND_PATH.to_owned(),
            host: server.addr.to_string(),
            auth_token: AUTH_TOKEN.to_owned(),
            account_sid: ACCOUNT_SID.to_owned(),
            to: OURS.to_owned(),
        },
        contacts: contacts.block(drive.requests)?,
        body: "HELP".to_owned(),
        tag: "ceiling".to_owned(),
    };
    let pace = Pace::Closed {
        max_time: drive.time,
        backlog: None,
    };
    let report = loadgen::run(
        server.addr,
        drive.connections,
        Arc::new(texts),
        pace,
        Arc::default(),
    )
    .await?;
    server.stop()?;
    Ok(Ceiling {
        requests_per_second: report.ack_rate(),
        requests: report.acked(),
        refused: report.refused(),
        failed: report.failed(),
        seconds: report.last_ack.duration_since(report.started).as_secs_f64(),
        ack: summary(&report.ack),
    })
}
