//! Serving HTTP/1.1 on a TCP listener under limits that hostile and broken clients cannot
//! outlast.
//!
//! `axum::serve` closes no connection on its own. A probe held 20,000 silent sockets until
//! `accept` failed with "Too many open files" and the server stopped answering, and 2,000
//! connections sending unfinished 390 KB headers pinned 740 MiB that stayed resident. [`serve`]
//! bounds every stage of a connection's life:
//!
//! | stage | bound | then |
//! | --- | --- | --- |
//! | from accept until the first request's head is complete | `header_read_timeout` | closed |
//! | after a response, until the next request's first byte | `idle_timeout` | closed |
//! | from that first byte until the head is complete | `header_read_timeout` | closed |
//! | the head's size | `max_header_bytes` | 431 (hyper's, without a body), closed |
//! | from the head until the body has arrived | `body_read_timeout` | 408 JSON to a handler that was reading it, closed |
//! | a response the client does not read | `idle_timeout` without progress | closed |
//! | connections at once | `max_connections` | the next waits in the kernel's backlog |
//!
//! Hyper's own `header_read_timeout` is switched off: it restarts whenever hyper waits for a head,
//! so on a keep-alive connection it is the idle timeout too, and one value cannot be both 10 s
//! for a client that is sending and 75 s for a load balancer's pooled connection (hyperium/hyper
//! pull request 3828). Go's `net/http` and Envoy keep the two apart, and so does this module: a
//! `Watch` per connection knows which stage it is in and closes it at its deadline.
//!
//! Only HTTP/1.1 is served, as `axum::serve` did with axum's default features: SMS providers
//! call webhooks over HTTP/1.1, and a proxy in front speaks it too. Upgrades (WebSocket) are not
//! served.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse as _;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// Limits on every connection the server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a request's head: counted from accept for a connection's
    /// first request (so a silent socket is closed), and from the first byte for later ones. The
    /// deadline does not move while bytes trickle in.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight, and how long a response
    /// may wait for a client that does not read it.
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive, from the end of its head.
    pub body_read_timeout: Duration,
    /// Connections served at once. At the cap no more are accepted until one closes: the
    /// kernel's backlog holds the rest.
    pub max_connections: usize,
    /// The largest request head (request line and headers), in bytes: a larger one is
    /// answered 431 and its connection closed.
    pub max_header_bytes: usize,
    /// After shutdown, how long requests in flight may take to finish before their connections
    /// are dropped.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            // Providers send a webhook's head in one packet from a data centre; 10 s is ample
            // for a slow operator link, and frees a silent socket's slot 10 s after accept.
            header_read_timeout: Duration::from_secs(10),
            // Longer than the 60 s idle timeout of common load balancers (AWS ALB's default),
            // so the balancer closes a pooled connection first: a server that closes first
            // races the balancer's next request on it, which the balancer answers 502. nginx's
            // keepalive_timeout default is the same 75 s.
            idle_timeout: Duration::from_secs(75),
            // Bodies are capped at 64 KiB and a webhook's arrives with its head. Twilio gives
            // up on a webhook after 15 s and retries it, so a body still trickling in after
            // 10 s serves nobody.
            body_read_timeout: Duration::from_secs(10),
            // Webhook concurrency is the provider's rate times our latency: even a short code's
            // 100 texts/s at 0.5 s is 50 connections. 512 is ten times that, stays under the
            // 1,024 open files many systems (and systemd services) get by default with room for
            // the store, the plugins and outbound HTTP, and bounds what held connections can
            // pin: 512 unfinished 16 KB heads added 13 MiB of resident memory (measured with
            // `engine/benches/unfinished_heads.rs`).
            max_connections: 512,
            // A provider's webhook head is well under 4 KiB (a signature, a user agent, a
            // content type); 16 KiB is Node's default and leaves room for a proxy's forwarding
            // headers or an SSO token. It also bounds hyper's read buffer, which holds an
            // unfinished head: a connection pins at most that plus hyper's 8 KiB write buffer,
            // about 22 KiB measured, so 2,000 of them 43 MiB. Under axum::serve's 400 KB buffer
            // 2,000 unfinished 390 KB heads pinned 740 MiB in the probe, 416 MiB in our run.
            max_header_bytes: 16 * 1024,
            // The same grace the engine gives its workers at shutdown.
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The smallest head cap: a request line and a `Host` header need about a hundred bytes, and a
/// value below a kilobyte is more likely a unit mistake ("16" for 16 KiB) than a choice.
pub const MIN_HEADER_BYTES: usize = 1024;

/// Hyper refuses a read buffer smaller than this (`http1::Builder::max_buf_size` panics).
const MIN_HYPER_BUFFER: usize = 8192;

/// A [`ConnectionLimits`] that cannot be served with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A timeout of zero would close every connection at once.
    #[error("{0} must be longer than zero")]
    ZeroTimeout(&'static str),
    /// With no connection allowed nothing is served.
    #[error("max_connections must be at least 1")]
    NoConnections,
    /// A head cap too small for any real request.
    #[error(
        "max_header_bytes is {0}: it must be at least {min} (write 16384 for 16 KiB)",
        min = MIN_HEADER_BYTES
    )]
    HeaderCapTooSmall(usize),
}

impl ConnectionLimits {
    /// Checks that the limits can be served with.
    ///
    /// # Errors
    ///
    /// The first limit that cannot: a zero timeout, no connections, or a head cap under
    /// [`MIN_HEADER_BYTES`].
    pub fn check(&self) -> Result<(), LimitsError> {
        let timeouts = [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ];
        if let Some(&(name, _)) = timeouts.iter().find(|(_, limit)| limit.is_zero()) {
            return Err(LimitsError::ZeroTimeout(name));
        }
        if self.max_connections == 0 {
            return Err(LimitsError::NoConnections);
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(LimitsError::HeaderCapTooSmall(self.max_header_bytes));
        }
        Ok(())
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then stops accepting,
/// finishes requests in flight (up to [`ConnectionLimits::shutdown_grace`]) and closes idle
/// connections.
///
/// # Errors
///
/// When `limits` cannot be served with ([`ConnectionLimits::check`]), as
/// [`io::ErrorKind::InvalidInput`]. Accept errors are not returned: they are logged once per
/// burst and retried with a backoff.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    limits
        .check()
        .map_err(|problem| io::Error::new(io::ErrorKind::InvalidInput, problem))?;
    let shared = Arc::new(Shared::new(app, limits));
    let mut acceptor = Acceptor::new(listener, shared.limits.max_connections);
    // Dropping `stop` tells every connection to finish its request and close.
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, slot) = tokio::select! {
            () = &mut shutdown => break,
            accepted = acceptor.next() => accepted,
        };
        connections.spawn(serve_connection(
            stream,
            slot,
            Arc::clone(&shared),
            stopping.clone(),
        ));
        reap(&mut connections);
    }
    // Closing the listening socket refuses new connections, as `axum::serve` does.
    drop(acceptor);
    drop(stop);
    finish(&mut connections, shared.limits.shutdown_grace).await;
    Ok(())
}

/// What every connection shares: the app, the limits, and hyper's settings built from them.
struct Shared {
    app: Router,
    limits: ConnectionLimits,
    http: http1::Builder,
}

impl Shared {
    fn new(app: Router, limits: ConnectionLimits) -> Self {
        let mut http = http1::Builder::new();
        http
            // The Watch times heads: hyper's timer would also be the idle timeout.
            .header_read_timeout(None)
            // Hyper answers a longer head 431 and closes the connection.
            .max_header_size(limits.max_header_bytes)
            // The read buffer holds an unfinished head: it must not grow past the cap (hyper's
            // default is about 400 KB, the probe's 390 KB per connection).
            .max_buf_size(limits.max_header_bytes.max(MIN_HYPER_BUFFER));
        Self { app, limits, http }
    }
}

/// Forgets the connections that have closed, so the set holds at most the open ones and those
/// closed since the last accept.
fn reap(connections: &mut JoinSet<()>) {
    while let Some(finished) = connections.try_join_next() {
        if let Err(problem) = finished {
            tracing::error!("a connection's task failed: {problem}");
        }
    }
}

/// Waits up to `grace` for the connections to finish, then drops the rest.
async fn finish(connections: &mut JoinSet<()>, grace: Duration) {
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_closed).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "dropping connections whose requests did not finish within the shutdown grace"
        );
        connections.shutdown().await;
    }
}

/// Accepts connections while there is a free slot, and backs off on accept errors.
struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
    backoff: AcceptBackoff,
    /// When reaching the cap was last logged: at most once a minute, however often a busy
    /// server touches it.
    cap_reported: Option<Instant>,
}

/// How often reaching the connection cap is logged at most.
const CAP_REPORT_INTERVAL: Duration = Duration::from_secs(60);

impl Acceptor {
    fn new(listener: TcpListener, max_connections: usize) -> Self {
        let max_connections = max_connections.min(Semaphore::MAX_PERMITS);
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            backoff: AcceptBackoff::default(),
            cap_reported: None,
        }
    }

    /// The next connection, with the slot it holds until it closes.
    async fn next(&mut self) -> (TcpStream, OwnedSemaphorePermit) {
        let slot = self.slot().await;
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => return (stream, slot),
                // That client gave up while it waited in the backlog: not our trouble.
                Err(problem) if is_connection_error(&problem) => {}
                Err(problem) => {
                    let pause = self.backoff.failed(Instant::now());
                    if pause.report {
                        tracing::error!(
                            "accept failed: {problem}; retrying with backoff (up to {}), new connections wait in the backlog",
                            humantime::format_duration(MAX_ACCEPT_BACKOFF)
                        );
                    }
                    tokio::time::sleep(pause.wait).await;
                }
            }
        }
    }

    /// A free slot, waiting for a connection to close when there is none. Connections are not
    /// accepted-and-closed at the cap: that would turn a queued webhook into a reset one, while
    /// the kernel's backlog (128 with Tokio's `bind`, then the client's SYN retries) keeps it
    /// until a slot frees, which the timeouts guarantee within `header_read_timeout` for a
    /// silent client. Measured: 5,000 silent sockets held `smsflow serve` at 512 connections
    /// and 525 descriptors, and `/healthz` was answered after 9 s, when the first of them timed
    /// out (the probe's 20,000 had exhausted `axum::serve`'s descriptors).
    async fn slot(&mut self) -> OwnedSemaphorePermit {
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return slot;
        }
        let now = Instant::now();
        let quiet = |at: Instant| now.saturating_duration_since(at) >= CAP_REPORT_INTERVAL;
        if self.cap_reported.is_none_or(quiet) {
            tracing::warn!(
                max_connections = self.max_connections,
                "at the connection cap: new connections wait in the backlog until one closes"
            );
            self.cap_reported = Some(now);
        }
        match Arc::clone(&self.slots).acquire_owned().await {
            Ok(slot) => slot,
            // The semaphore is never closed.
            Err(_closed) => std::future::pending().await,
        }
    }
}

/// Errors that belong to one queued connection rather than to the listener.
fn is_connection_error(problem: &io::Error) -> bool {
    matches!(
        problem.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The first pause after an accept error.
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause: at most one futile `accept` a second while the process is out of file
/// descriptors. `axum::serve` slept 1 s after every error, logging each.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// An error this long after the previous one starts a new burst.
const ACCEPT_QUIET: Duration = Duration::from_secs(5);

/// Pauses after accept errors: 10 ms doubling to 1 s within a burst, reported once per burst.
///
/// A burst lasts while errors come less than [`ACCEPT_QUIET`] apart, even with successful
/// accepts between them: out of file descriptors, one closed connection lets one accept
/// succeed and the next fail, and a burst that ended at each success would log and reset at
/// every close.
#[derive(Debug, Default)]
struct AcceptBackoff {
    next_wait: Duration,
    last_failure: Option<Instant>,
}

/// What to do after an accept error.
#[derive(Debug, PartialEq, Eq)]
struct Pause {
    /// How long to wait before accepting again.
    wait: Duration,
    /// Whether this error starts a burst, and so is logged.
    report: bool,
}

impl AcceptBackoff {
    fn failed(&mut self, now: Instant) -> Pause {
        let report = self
            .last_failure
            .is_none_or(|last| now.saturating_duration_since(last) >= ACCEPT_QUIET);
        if report {
            self.next_wait = FIRST_ACCEPT_BACKOFF;
        }
        self.last_failure = Some(now);
        let wait = self.next_wait;
        self.next_wait = (wait * 2).min(MAX_ACCEPT_BACKOFF);
        Pause { wait, report }
    }
}

/// Serves one connection until it closes, a deadline passes, or shutdown has let its request
/// finish. `_slot` frees the connection's place under the cap when this returns.
async fn serve_connection(
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<()>,
) {
    let watch = Arc::new(Watch::new(&shared.limits));
    // Unknown only when the socket is already gone: its requests would not be served anyway.
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let io = TokioIo::new(Watched {
        inner: stream,
        watch: Arc::clone(&watch),
    });
    let requests = Requests {
        app: shared.app.clone(),
        peer,
        watch: Arc::clone(&watch),
        body_read_timeout: shared.limits.body_read_timeout,
    };
    let mut connection = pin!(shared.http.serve_connection(io, requests));
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(problem) = served {
                    tracing::debug!("connection ended: {problem}");
                }
                return;
            }
            expired = watch.expired() => {
                // Dropping the connection closes the socket.
                tracing::debug!("closing a connection: {expired}");
                return;
            }
            // The sender is only ever dropped: `changed` then resolves at once.
            _ = stopping.changed(), if !draining => {
                draining = true;
                // An idle connection closes now, a busy one after its response.
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Why a connection was closed by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    HeadTooSlow,
    Idle,
    ResponseUnread,
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HeadTooSlow => "the request head did not arrive within header_read_timeout",
            Self::Idle => "no request within idle_timeout",
            Self::ResponseUnread => "the client did not read its response within idle_timeout",
        })
    }
}

/// One connection's stage and deadline, kept by its socket ([`Watched`]) and its requests
/// ([`InFlight`]), and enforced by [`Watch::expired`].
struct Watch {
    stage: Mutex<Stage>,
    /// Woken when a deadline appears or comes sooner; a deadline that goes away or moves later
    /// is noticed when the old one passes.
    changed: Notify,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

struct Stage {
    requests_in_flight: usize,
    /// Bytes of the next request have arrived (or, before the first, the connection is new).
    head_started: bool,
    /// The stage's deadline: none while a request is in flight.
    deadline: Option<(Instant, Expiry)>,
    /// Since when the socket has refused our writes.
    write_blocked_since: Option<Instant>,
}

/// `base + limit`, or no deadline for a limit too long to add to the clock.
fn after(base: Instant, limit: Duration) -> Option<Instant> {
    base.checked_add(limit)
}

impl Watch {
    fn new(limits: &ConnectionLimits) -> Self {
        let deadline =
            after(Instant::now(), limits.header_read_timeout).map(|at| (at, Expiry::HeadTooSlow));
        Self {
            stage: Mutex::new(Stage {
                requests_in_flight: 0,
                head_started: true,
                deadline,
                write_blocked_since: None,
            }),
            changed: Notify::new(),
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }

    fn stage(&self) -> MutexGuard<'_, Stage> {
        // A panic while holding this lock leaves plain values behind: still usable.
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes came in: on an idle connection, the next request's head has begun.
    fn bytes_arrived(&self) {
        let mut stage = self.stage();
        if stage.requests_in_flight > 0 || stage.head_started {
            return;
        }
        stage.head_started = true;
        stage.deadline =
            after(Instant::now(), self.header_read_timeout).map(|at| (at, Expiry::HeadTooSlow));
        drop(stage);
        self.changed.notify_one();
    }

    /// A request's head is complete: no connection deadline until its response is written.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut stage = self.stage();
        stage.requests_in_flight += 1;
        stage.deadline = None;
        InFlight(Arc::clone(self))
    }

    fn request_finished(&self) {
        let mut stage = self.stage();
        stage.requests_in_flight = stage.requests_in_flight.saturating_sub(1);
        if stage.requests_in_flight > 0 {
            return;
        }
        stage.head_started = false;
        stage.deadline = after(Instant::now(), self.idle_timeout).map(|at| (at, Expiry::Idle));
        drop(stage);
        self.changed.notify_one();
    }

    fn write_blocked(&self) {
        let mut stage = self.stage();
        if stage.write_blocked_since.is_none() {
            stage.write_blocked_since = Some(Instant::now());
            drop(stage);
            self.changed.notify_one();
        }
    }

    fn write_went_through(&self) {
        self.stage().write_blocked_since = None;
    }

    /// The earliest deadline now in force.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        let stage = self.stage();
        let unread = stage
            .write_blocked_since
            .and_then(|since| after(since, self.idle_timeout))
            .map(|at| (at, Expiry::ResponseUnread));
        match (stage.deadline, unread) {
            (Some(own), Some(unread)) => Some(if unread.0 < own.0 { unread } else { own }),
            (own, unread) => own.or(unread),
        }
    }

    /// Resolves when the connection's deadline passes, with the reason.
    async fn expired(&self) -> Expiry {
        loop {
            // `notify_one` keeps a wakeup that comes before this is awaited.
            let changed = self.changed.notified();
            match self.deadline() {
                None => changed.await,
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A request in flight on a connection, from its complete head until its response has been
/// written (hyper drops the response body then) or abandoned.
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A socket that tells its [`Watch`] when bytes arrive and when writes are refused.
struct Watched<T> {
    inner: T,
    watch: Arc<Watch>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.bytes_arrived();
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    fn note<R>(&self, written: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match &written {
            Poll::Pending => self.watch.write_blocked(),
            Poll::Ready(_) => self.watch.write_went_through(),
        }
        written
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The hyper service of one connection: the app, with each request timed and tracked.
struct Requests {
    app: Router,
    /// The client's address, given to handlers as axum's `ConnectInfo`.
    peer: std::net::SocketAddr,
    watch: Arc<Watch>,
    body_read_timeout: Duration,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Requests {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.watch.request_started();
        let limit = self.body_read_timeout;
        let late = Arc::new(AtomicBool::new(false));
        let mut request = request.map(|body| TimedBody::new(body, limit, Arc::clone(&late)));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let Ok(response) = app.oneshot(request).await;
            // Whatever the handler made of the failed read, the client hears why.
            let response = if late.load(Ordering::Acquire) {
                body_too_slow(limit)
            } else {
                response
            };
            Ok(response.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// 408 with a JSON error, closing the connection: the rest of the body may still come.
fn body_too_slow(limit: Duration) -> axum::response::Response {
    let message = format!(
        "the request body did not arrive within {}; send it again",
        humantime::format_duration(limit)
    );
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A response body that keeps its request [`InFlight`] until hyper is done with it.
struct Tracked {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// The connection failed or the body was malformed.
    #[error(transparent)]
    Read(#[from] hyper::Error),
    /// The body did not arrive within the body read timeout.
    #[error("the request body did not arrive within {}", humantime::format_duration(*.0))]
    TooSlow(Duration),
}

/// A request body that fails once `body_read_timeout` has passed since its head, and says so
/// in `late`.
struct TimedBody {
    inner: Incoming,
    limit: Duration,
    deadline: Option<Instant>,
    /// Started at the first read that has to wait: most bodies never need one.
    timer: Option<Pin<Box<Sleep>>>,
    late: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(inner: Incoming, limit: Duration, late: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            limit,
            deadline: after(Instant::now(), limit),
            timer: None,
            late,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.late.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(BodyError::TooSlow(this.limit))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(BodyError::Read)));
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        this.late.store(true, Ordering::Release);
        Poll::Ready(Some(Err(BodyError::TooSlow(this.limit))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn accept_errors_back_off_from_10_ms_doubling_to_1_s_and_are_reported_once_per_burst() {
        let start = Instant::now();
        let mut backoff = AcceptBackoff::default();
        let mut now = start;
        let mut waits = Vec::new();
        let mut reports = 0;
        for _ in 0..10 {
            let pause = backoff.failed(now);
            reports += usize::from(pause.report);
            waits.push(pause.wait.as_millis());
            now += pause.wait;
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(reports, 1, "only the burst's first error is logged");
    }

    #[test]
    fn a_quiet_spell_ends_the_burst_but_a_success_between_errors_does_not() {
        let start = Instant::now();
        let mut backoff = AcceptBackoff::default();
        assert!(backoff.failed(start).report);
        // An accept succeeded in between (a connection closed and freed a descriptor).
        let next = backoff.failed(at(start, 100));
        assert_eq!(
            next,
            Pause {
                wait: Duration::from_millis(20),
                report: false
            }
        );
        let after_quiet = backoff.failed(at(start, 100) + ACCEPT_QUIET);
        assert_eq!(
            after_quiet,
            Pause {
                wait: FIRST_ACCEPT_BACKOFF,
                report: true
            }
        );
    }

    #[test]
    fn limits_that_cannot_serve_are_refused_with_what_to_change() {
        assert_eq!(ConnectionLimits::default().check(), Ok(()));
        let zero = ConnectionLimits {
            idle_timeout: Duration::ZERO,
            ..ConnectionLimits::default()
        };
        assert_eq!(zero.check(), Err(LimitsError::ZeroTimeout("idle_timeout")));
        let none = ConnectionLimits {
            max_connections: 0,
            ..ConnectionLimits::default()
        };
        assert_eq!(none.check(), Err(LimitsError::NoConnections));
        let tiny = ConnectionLimits {
            max_header_bytes: 16,
            ..ConnectionLimits::default()
        };
        assert_eq!(
            tiny.check().map_err(|problem| problem.to_string()),
            Err("max_header_bytes is 16: it must be at least 1024 (write 16384 for 16 KiB)".into())
        );
    }

    #[tokio::test]
    async fn a_deadline_that_comes_sooner_wakes_the_watch() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(50),
            idle_timeout: Duration::from_secs(3600),
            ..ConnectionLimits::default()
        };
        let watch = Arc::new(Watch::new(&limits));
        drop(watch.request_started());
        // Idle for an hour, until a byte of the next head arrives.
        watch.bytes_arrived();
        let expired = tokio::time::timeout(Duration::from_secs(5), watch.expired()).await;
        assert_eq!(expired, Ok(Expiry::HeadTooSlow));
    }
}
