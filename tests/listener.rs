//! `smsflow::listener::serve` against real sockets on loopback: silent, trickling, idle,
//! oversized, over the cap, half-sent, not reading, starved of file descriptors, and shut down
//! mid-request; then the real `smsflow serve` under hundreds of silent sockets.
//!
//! The limits are short (a few hundred milliseconds) and closures are asserted within ten times
//! them: the machine is shared and noisy.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::convert::Infallible;
use std::io::{BufRead as _, Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use smsflow::listener::{ConnectionLimits, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Short limits, so a test takes a second or two.
fn limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(200),
        max_connections: 64,
        max_header_bytes: 4096,
        shutdown_grace: Duration::from_secs(5),
    }
}

/// How long the slow handler takes.
const SLOW: Duration = Duration::from_secs(1);

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(SLOW).await;
                "slow"
            }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/endless",
            get(|| async {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                Body::from_stream(futures_util::stream::repeat_with(move || {
                    Ok::<_, Infallible>(chunk.clone())
                }))
            }),
        )
}

/// A server on 127.0.0.1, serving until `stop` is sent.
struct Running {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    served: JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ConnectionLimits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, app(), limits, async {
        let _ = stopped.await;
    }));
    Running {
        address,
        stop,
        served,
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

async fn connect(server: &Running) -> TcpStream {
    TcpStream::connect(server.address).await.unwrap()
}

/// Reads one response (its head and a `Content-Length` body) off `stream`.
async fn response(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |length| length.trim().parse::<usize>().unwrap());
            if bytes.len() >= end + 4 + length {
                return String::from_utf8_lossy(&bytes[..end + 4 + length]).into_owned();
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a response within 10 s")
            .expect("a response, not an error");
        assert!(
            read > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..read]);
    }
}

/// Sends a GET for `/` on `stream` and returns the response.
async fn get_root(stream: &mut TcpStream) -> String {
    stream.write_all(GET).await.unwrap();
    response(stream).await
}

/// Waits for the server to close `stream` (end of file or a reset), reading and dropping what
/// comes; how long it took. Panics when it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let mut sink = vec![0; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Err(_) => panic!("the connection is still open after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether `stream` gets neither bytes nor a close for `wait`.
async fn quiet_for(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0; 1];
    tokio::time::timeout(wait, stream.read(&mut byte))
        .await
        .is_err()
}

fn ten_times(limit: Duration) -> Duration {
    limit * 10
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let server = start(limits()).await;
    let mut silent = connect(&server).await;
    let took = closed_within(&mut silent, ten_times(limits().header_read_timeout)).await;
    assert!(
        took >= limits().header_read_timeout / 2,
        "closed after {took:?}"
    );
    // Everyone else is still served.
    assert!(get_root(&mut connect(&server).await).await.ends_with("ok"));
}

#[tokio::test]
async fn a_head_trickled_a_byte_every_50_ms_is_closed_at_its_deadline() {
    let server = start(limits()).await;
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let trickle = tokio::spawn(async move {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: test\r\nX-Slow: {}",
            "a".repeat(500)
        );
        let mut sent = 0;
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    });
    let mut sink = [0; 1024];
    let closed = tokio::time::timeout(ten_times(limits().header_read_timeout), async {
        while reader.read(&mut sink).await.is_ok_and(|read| read > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "a trickling head held its connection open");
    let sent = trickle.await.unwrap();
    assert!(sent < 100, "{sent} bytes trickled in before the close");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_one() {
    let limits = ConnectionLimits {
        idle_timeout: Duration::from_secs(1),
        ..limits()
    };
    let server = start(limits.clone()).await;
    let mut kept = connect(&server).await;
    assert!(get_root(&mut kept).await.ends_with("ok"));
    // Well past the 200 ms header read timeout, the connection is still there for a request.
    assert!(quiet_for(&mut kept, limits.header_read_timeout * 3).await);
    assert!(get_root(&mut kept).await.ends_with("ok"));
    let took = closed_within(&mut kept, ten_times(limits.idle_timeout)).await;
    assert!(took >= limits.idle_timeout / 2, "closed after {took:?}");
}

#[tokio::test]
async fn a_busy_connection_is_not_closed_by_the_idle_timeout() {
    let server = start(limits()).await;
    assert!(SLOW > limits().idle_timeout * 3);
    let mut busy = connect(&server).await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let answer = response(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    closed_within(&mut busy, ten_times(limits().idle_timeout)).await;
}

#[tokio::test]
async fn a_head_over_the_cap_is_answered_431_and_the_server_answers_others() {
    let server = start(limits()).await;
    // Just under the 4 KiB cap: served.
    let mut under = connect(&server).await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3000)
    );
    under.write_all(head.as_bytes()).await.unwrap();
    assert!(response(&mut under).await.ends_with("ok"));

    // Over it (and unfinished): hyper answers 431 without a body and closes.
    let mut over = connect(&server).await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}",
        "a".repeat(6000)
    );
    over.write_all(head.as_bytes()).await.unwrap();
    let answer = response(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    closed_within(&mut over, Duration::from_secs(2)).await;

    // The probe's 390 KB head: the connection is closed long before it is all sent (with a
    // reset, as the server closes with the rest unread, so the 431 may not be readable).
    let (mut reader, mut writer) = connect(&server).await.into_split();
    let probe = tokio::spawn(async move {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}",
            "a".repeat(390_000)
        );
        writer.write_all(head.as_bytes()).await.is_ok()
    });
    let mut sink = vec![0; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while reader.read(&mut sink).await.is_ok_and(|read| read > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "a 390 KB head held its connection open");
    drop(reader);
    let _ = probe.await;

    assert!(get_root(&mut connect(&server).await).await.ends_with("ok"));
}

#[tokio::test]
async fn at_the_connection_cap_the_next_connection_waits_until_one_closes() {
    let limits = ConnectionLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..limits()
    };
    let server = start(limits).await;
    let mut first = connect(&server).await;
    let mut second = connect(&server).await;
    assert!(get_root(&mut first).await.ends_with("ok"));
    assert!(get_root(&mut second).await.ends_with("ok"));

    // The third connects (the kernel's backlog takes it) but is not served...
    let mut third = connect(&server).await;
    third.write_all(GET).await.unwrap();
    assert!(quiet_for(&mut third, Duration::from_millis(500)).await);
    // ...until one of the two closes.
    drop(first);
    assert!(response(&mut third).await.ends_with("ok"));

    drop(third);
    assert!(get_root(&mut connect(&server).await).await.ends_with("ok"));
    assert!(get_root(&mut second).await.ends_with("ok"));
}

#[tokio::test]
async fn a_half_sent_body_is_answered_408_in_json_and_its_connection_closed() {
    let server = start(limits()).await;
    let mut whole = connect(&server).await;
    whole
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert!(response(&mut whole).await.ends_with("hello"));

    let mut half = connect(&server).await;
    half.write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nhello")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = response(&mut half).await;
    assert!(
        started.elapsed() >= limits().body_read_timeout / 2,
        "{answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let error: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        error["error"],
        "the request body did not arrive within 200ms; send it again"
    );
    closed_within(&mut half, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_response_is_closed_after_the_idle_timeout() {
    let server = start(limits()).await;
    let mut lazy = connect(&server).await;
    lazy.write_all(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // Not reading: the socket buffers fill and the server's writes stall.
    tokio::time::sleep(ten_times(limits().idle_timeout)).await;
    // What was buffered drains, then the end: an endless body that still flowed would not end.
    closed_within(&mut lazy, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn shutdown_finishes_a_slow_request_in_flight_closes_idle_connections_and_refuses_new_ones() {
    let limits = ConnectionLimits {
        idle_timeout: Duration::from_secs(30),
        ..limits()
    };
    let server = start(limits).await;
    let mut idle = connect(&server).await;
    assert!(get_root(&mut idle).await.ends_with("ok"));
    let mut busy = connect(&server).await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(SLOW / 4).await;

    server.stop.send(()).unwrap();
    closed_within(&mut idle, Duration::from_secs(2)).await;
    let answer = response(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let served = tokio::time::timeout(Duration::from_secs(5), server.served).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
    assert!(TcpStream::connect(server.address).await.is_err());
}

#[tokio::test]
async fn limits_that_cannot_serve_are_an_error_not_a_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limits = ConnectionLimits {
        max_connections: 0,
        ..limits()
    };
    let problem = serve(listener, app(), limits, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(problem.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(problem.to_string(), "max_connections must be at least 1");
}

/// Set for the child process of [`accept_errors_back_off_instead_of_spinning`].
const FD_STARVED: &str = "SMSFLOW_TEST_FD_STARVED_SERVER";

/// The server half of [`accept_errors_back_off_instead_of_spinning`]: the test re-runs itself
/// as a child process whose open-files limit is 64, so that accepting fails with EMFILE, and in
/// that child it serves here instead.
fn fd_starved_server() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT={}", listener.local_addr().unwrap().port());
        // Descriptors, not the cap or the timeouts, are what runs out.
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            ..limits()
        };
        serve(listener, app(), limits, std::future::pending())
            .await
            .unwrap();
    });
}

/// CPU time (user and system) a process has used, in clock ticks (100 a second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // After the name: state is field 3 of stat(5), utime 14 and stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn blocking_get(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A child process, killed when dropped: a failed assertion leaves no server running.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn accept_errors_back_off_instead_of_spinning() {
    if std::env::var_os(FD_STARVED).is_some() {
        fd_starved_server();
        return;
    }
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" "$@""#)
        .arg(std::env::current_exe().unwrap())
        .args([
            "accept_errors_back_off_instead_of_spinning",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FD_STARVED, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let pid = child.0.id();
    let stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
    // Keeps reading the child's stdout, so that it never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            // libtest's "test accept_errors_back_off_instead_of_spinning ... " comes first.
            if let Some((_, port)) = line.split_once("PORT=") {
                let _ = port_tx.send(port.parse().unwrap());
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the child's port");
    // Read its log as it comes, so a flood of lines cannot block the child on a full pipe.
    let mut stderr = child.0.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });

    // More connections than the child has descriptors for: they stay, silent, in its backlog.
    let held: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // A loop retrying accept at once burns the 200 ticks of a core in 2 s.
    assert!(
        used < 40,
        "the child used {used} ticks in 2 s out of descriptors"
    );

    // Descriptors come back when the clients leave, and the server serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Some(answer) = blocking_get(port).filter(|answer| answer.ends_with("ok")) {
            break answer;
        }
        assert!(Instant::now() < deadline, "not serving again after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(child);
    let log = log.join().unwrap();
    let reports = log
        .lines()
        .filter(|line| line.contains("accept failed"))
        .count();
    assert_eq!(reports, 1, "one report for the burst:\n{log}");
    assert!(log.contains("Too many open files"), "{log}");
}

/// The real binary: a config whose connections are few and whose heads must come quickly.
fn serve_binary(dir: &std::path::Path) -> (common::Server, u16) {
    std::fs::create_dir(dir.join("flows")).unwrap();
    std::fs::create_dir(dir.join("plugins")).unwrap();
    let port = common::free_port();
    let config = dir.join("smsflow.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
header_read_timeout = "500ms"
max_connections = 64

[store]
path = "data/smsflow.db"

[flows]
dir = "flows"

[plugins]
dir = "plugins"
"#
        ),
    )
    .unwrap();
    (common::Server::start(&config, port), port)
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn smsflow_serve_closes_silent_sockets_and_answers_healthz_through_hundreds_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = serve_binary(dir.path());
    let baseline = open_descriptors(server.pid());
    let mut silent: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();

    // 300 silent sockets against a cap of 64: they leave 64 at a time as their heads time out,
    // and /healthz, queued behind them, is answered.
    let started = Instant::now();
    let mut peak = baseline;
    while !common::healthy(port) {
        peak = peak.max(open_descriptors(server.pid()));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/healthz unanswered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        peak <= baseline + 64 + 8,
        "{peak} descriptors open, {baseline} before the sockets"
    );

    // Every silent socket was closed by the server.
    for socket in &mut silent {
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut byte = [0; 1];
        match socket.read(&mut byte) {
            Ok(0) => {}
            Err(problem) if problem.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent socket was not closed: {other:?}"),
        }
    }
    assert!(common::healthy(port));
}
