//! What 2,000 connections holding unfinished request heads pin in memory, as the probe that
//! found the defect measured it: `axum::serve` against smsflow's listener, at its default cap
//! and with the cap raised. Prints one line per server; `cargo bench -p smsflow --bench
//! unfinished_heads` (part of `just bench-micro`). `HEAD_BYTES` sets the head size (390,000 by
//! default, the probe's).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use smsflow::listener::{ConnectionLimits, serve};
use tokio::net::TcpListener;

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn main() {
    let head_bytes: usize = std::env::var("HEAD_BYTES").map_or(390_000, |v| v.parse().unwrap());
    for server in ["axum", "listener", "listener-uncapped"] {
        // Each in a process of its own would be cleaner; a fresh runtime per server and the
        // memory delta around it are close enough for a figure in BENCHMARKS.md.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(measure(server, head_bytes));
    }
}

/// The resident memory of this process, in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What 2,000 connections with unfinished heads pin under `server`.
async fn measure(server: &str, head_bytes: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    match server {
        "axum" => drop(tokio::spawn(
            async move { axum::serve(listener, app()).await },
        )),
        "listener" | "listener-uncapped" => {
            let limits = ConnectionLimits {
                max_connections: if server == "listener" { 512 } else { 4096 },
                // Long enough that every head is still unfinished when measured.
                header_read_timeout: Duration::from_secs(120),
                ..ConnectionLimits::default()
            };
            drop(tokio::spawn(serve(
                listener,
                app(),
                limits,
                std::future::pending(),
            )));
        }
        other => panic!("LISTENER_MEASURE={other}: write axum, listener or listener-uncapped"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = resident_kib();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}",
        "a".repeat(head_bytes)
    );
    let clients = tokio::task::spawn_blocking(move || {
        (0..2000)
            .map(|_| {
                // Past the cap and a full backlog, a connection is not even made.
                let mut stream =
                    std::net::TcpStream::connect_timeout(&address, Duration::from_millis(250))
                        .ok()?;
                stream
                    .set_write_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                // The whole head as far as the server reads it, but never its end.
                let _ = stream.write_all(head.as_bytes());
                stream.set_nonblocking(true).unwrap();
                Some(stream)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let connected = clients.iter().flatten().count();
    let open = clients
        .iter()
        .flatten()
        .filter(|client| {
            let mut byte = [0; 1];
            matches!(
                (&**client).read(&mut byte),
                Err(ref problem) if problem.kind() == std::io::ErrorKind::WouldBlock
            )
        })
        .count();
    let after = resident_kib();
    println!(
        "{server}, {head_bytes}-byte heads: {connected} of 2000 connected, {open} still open and unanswered after 5 s, resident {} MiB -> {} MiB (+{} MiB)",
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024
    );
}
