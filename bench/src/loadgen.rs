//! The load generator: keep-alive HTTP/1.1 connections posting requests as fast as they are
//! acknowledged (closed loop) or at a fixed rate (open loop).
//!
//! Each connection is a task with its own hyper client connection; requests are built (and
//! signed) on the fly, so the ceiling and the engine are driven with exactly the same work on
//! the client side. Given several servers ([`run_spread`]), request `i` goes to server
//! `i mod n`: each connection task keeps one connection to each. A closed loop may also bound
//! its *backlog*: request `i` is only posted once
//! all but `backlog` of the requests before it were answered (by whatever [`Live::answered`]
//! is told: the fake provider's arrivals, or the engine's inbox count). The rate it reaches is
//! then what the engine sustains, not what its queue swallows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use crate::latency::new_histogram;

/// A request not answered within this long counts as failed (its connection is dropped): a
/// stalled server ends the run with its requests failed instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the load generator posts: request `index` for `index` in `0..count()`.
pub trait Requests: Send + Sync + 'static {
    /// The `index`th request.
    ///
    /// # Errors
    ///
    /// When it cannot be built.
    fn request(&self, index: u64) -> anyhow::Result<Request<Full<Bytes>>>;

    /// How many requests there are.
    fn count(&self) -> u64;
}

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each connection posts its next request when the last is acknowledged, until every
    /// request was posted or `max_time` passed.
    Closed {
        /// Stop posting after this long.
        max_time: Duration,
        /// At most this many requests posted and not yet answered (see [`Live::answered`]).
        backlog: Option<u64>,
    },
    /// Request `i` is due at `i / rate` seconds from the start.
    Open {
        /// Requests per second.
        rate: f64,
    },
}

/// Counters shared with whoever watches the run while it goes.
#[derive(Debug, Default)]
pub struct Live {
    acked: AtomicU64,
    failed: AtomicU64,
    answered: AtomicU64,
    changed: Notify,
}

impl Live {
    /// Acknowledged (2xx) so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Tells the run that `total` requests were answered so far (it only grows).
    pub fn answered(&self, total: u64) {
        self.answered.fetch_max(total, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Answered, plus refused or failed (which will never be answered).
    pub(crate) fn settled(&self) -> u64 {
        self.answered.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire)
    }

    /// Waits until request `index` may be posted under `backlog`; false when `deadline` came
    /// first.
    async fn wait_for_room(&self, index: u64, backlog: u64, deadline: Instant) -> bool {
        loop {
            let changed = self.changed.notified();
            if index < self.settled() + backlog {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // A bounded wait: a notification sent between the check and here is not lost.
            let _ = tokio::time::timeout(Duration::from_millis(10), changed).await;
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Acked,
    /// Another status.
    Refused(u16),
    /// No answer: the connection broke.
    Failed,
}

/// One request posted.
#[derive(Debug, Clone, Copy)]
pub struct Posted {
    /// Its index.
    pub index: u64,
    /// When the load generator started posting it.
    pub started: Instant,
    /// How it ended.
    pub outcome: Outcome,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Every request posted, in no particular order.
    pub posted: Vec<Posted>,
    /// Acknowledgement latency (microseconds), request start to the last byte of the answer.
    pub ack: Histogram<u64>,
    /// When the run started.
    pub started: Instant,
    /// When the last acknowledgement came.
    pub last_ack: Instant,
    /// Open loop: the most a request started after its due time.
    pub max_lateness: Duration,
}

impl Report {
    fn count(&self, matches: impl Fn(Outcome) -> bool) -> u64 {
        self.posted
            .iter()
            .filter(|posted| matches(posted.outcome))
            .count() as u64
    }

    /// 2xx answers.
    pub fn acked(&self) -> u64 {
        self.count(|outcome| outcome == Outcome::Acked)
    }

    /// Non-2xx answers.
    pub fn refused(&self) -> u64 {
        self.count(|outcome| matches!(outcome, Outcome::Refused(_)))
    }

    /// Requests without an answer.
    pub fn failed(&self) -> u64 {
        self.count(|outcome| outcome == Outcome::Failed)
    }

    /// Acknowledgements per second, from the start to the last one.
    pub fn ack_rate(&self) -> f64 {
        per_second(self.acked(), self.last_ack.duration_since(self.started))
    }
}

/// `count` per `elapsed`, 0 when no time passed.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

struct Shared {
    targets: Vec<SocketAddr>,
    requests: Arc<dyn Requests>,
    pace: Pace,
    live: Arc<Live>,
    claimed: AtomicU64,
    connections: u64,
    started: Instant,
}

impl Shared {
    /// The next request lane `lane` posts (after `sent` of its own), and when it is due.
    async fn next(&self, lane: u64, sent: u64) -> Option<(u64, Option<Instant>)> {
        match self.pace {
            Pace::Closed { max_time, backlog } => {
                let deadline = self.started + max_time;
                if Instant::now() >= deadline {
                    return None;
                }
                let index = self.claimed.fetch_add(1, Ordering::AcqRel);
                if index >= self.requests.count() {
                    return None;
                }
                if let Some(backlog) = backlog
                    && !self.live.wait_for_room(index, backlog, deadline).await
                {
                    return None;
                }
                Some((index, None))
            }
            Pace::Open { rate } => {
                // Lanes take turns: lane `l` posts requests l, l + n, l + 2n...
                let index = lane + sent * self.connections;
                let due = self.started + Duration::from_secs_f64(index as f64 / rate);
                (index < self.requests.count()).then_some((index, Some(due)))
            }
        }
    }
}

/// Posts `requests` to `target` over `connections` connections, paced by `pace`.
///
/// # Errors
///
/// When a connection cannot be made (the server is not up, or stopped) or a request cannot
/// be built.
pub async fn run(
    target: SocketAddr,
    connections: usize,
    requests: Arc<dyn Requests>,
    pace: Pace,
    live: Arc<Live>,
) -> anyhow::Result<Report> {
    run_spread(&[target], connections, requests, pace, live).await
}

/// Posts `requests` round-robin over `targets` (request `i` to `targets[i % n]`), from
/// `connections` tasks that each keep a connection to every target, paced by `pace`.
///
/// # Errors
///
/// When `targets` is empty, a connection cannot be made (a server is not up, or stopped) or
/// a request cannot be built.
pub async fn run_spread(
    targets: &[SocketAddr],
    connections: usize,
    requests: Arc<dyn Requests>,
    pace: Pace,
    live: Arc<Live>,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !targets.is_empty(),
        "the load generator needs a server to post to"
    );
    let connections = connections.max(1);
    let shared = Arc::new(Shared {
        targets: targets.to_vec(),
        requests,
        pace,
        live,
        claimed: AtomicU64::new(0),
        connections: connections as u64,
        started: Instant::now(),
    });
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..connections as u64 {
        lanes.spawn(run_lane(Arc::clone(&shared), lane));
    }
    let mut report = Report::empty(shared.started)?;
    while let Some(lane) = lanes.join_next().await {
        report.merge(lane.context("a load generator connection panicked")??)?;
    }
    Ok(report)
}

impl Report {
    fn empty(started: Instant) -> anyhow::Result<Self> {
        Ok(Self {
            posted: Vec::new(),
            ack: new_histogram()?,
            started,
            last_ack: started,
            max_lateness: Duration::ZERO,
        })
    }

    fn merge(&mut self, lane: Report) -> anyhow::Result<()> {
        self.posted.extend(lane.posted);
        self.ack.add(&lane.ack)?;
        self.last_ack = self.last_ack.max(lane.last_ack);
        self.max_lateness = self.max_lateness.max(lane.max_lateness);
        Ok(())
    }
}

async fn run_lane(shared: Arc<Shared>, lane: u64) -> anyhow::Result<Report> {
    let mut report = Report::empty(shared.started)?;
    let mut per_target: Vec<Option<SendRequest<Full<Bytes>>>> =
        shared.targets.iter().map(|_| None).collect();
    let mut sent = 0;
    while let Some((index, due)) = shared.next(lane, sent).await {
        sent += 1;
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
            report.max_lateness = report.max_lateness.max(due.elapsed());
        }
        let request = shared.requests.request(index)?;
        // Lossless: the remainder is below the number of targets.
        let slot = (index % per_target.len() as u64) as usize;
        let started = Instant::now();
        let outcome = exchange(&mut per_target[slot], shared.targets[slot], request).await?;
        let done = Instant::now();
        match outcome {
            Outcome::Acked => {
                shared.live.acked.fetch_add(1, Ordering::AcqRel);
                report.ack.saturating_record(micros(done - started));
                report.last_ack = done;
            }
            Outcome::Refused(_) | Outcome::Failed => {
                shared.live.failed.fetch_add(1, Ordering::AcqRel);
                shared.live.changed.notify_waiters();
            }
        }
        report.posted.push(Posted {
            index,
            started,
            outcome,
        });
    }
    Ok(report)
}

/// Whole microseconds, at least 1 (the histogram's lowest value).
pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Posts `request` on `connection`, opening a new one when there is none or it closed.
/// An answer that takes longer than [`REQUEST_TIMEOUT`] is a failure, and the connection is
/// dropped.
async fn exchange(
    connection: &mut Option<SendRequest<Full<Bytes>>>,
    target: SocketAddr,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<Outcome> {
    let mut sender = match connection.take() {
        Some(sender) if !sender.is_closed() => sender,
        _ => connect(target).await?,
    };
    let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
        if sender.ready().await.is_err() {
            return None;
        }
        let response = sender.send_request(request).await.ok()?;
        let status = response.status();
        // The whole answer is read, so the connection can carry the next request.
        response.into_body().collect().await.ok()?;
        Some(status)
    })
    .await;
    let Ok(Some(status)) = answered else {
        return Ok(Outcome::Failed);
    };
    *connection = Some(sender);
    Ok(if status.is_success() {
        Outcome::Acked
    } else {
        Outcome::Refused(status.as_u16())
    })
}

async fn connect(target: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .with_context(|| format!("cannot connect to {target}: is the server still running?"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("the HTTP handshake with {target} failed"))?;
    // A broken connection shows up as a failed request on `sender`; nothing to do here.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::contacts::Contacts;
    use crate::twilio::{InboundTexts, Webhook};

    async fn ceiling() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(crate::ceiling::serve(listener));
        address
    }

    fn texts(address: SocketAddr, count: u64) -> Arc<InboundTexts> {
        Arc::new(InboundTexts {
            webhook: Webhook {
                signed_url: "https://sms.example.com/webhooks/twilio".to_owned(),
                path: "/webhooks/twilio".to_owned(),
                host: address.to_string(),
                auth_token: "token".to_owned(),
                account_sid: "ACx".to_owned(),
                to: "+15550001000".to_owned(),
            },
            contacts: Contacts::default().block(count).unwrap(),
            body: "HELP".to_owned(),
            tag: "t".to_owned(),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_loop_posts_every_request_exactly_once() {
        let address = ceiling().await;
        let pace = Pace::Closed {
            max_time: Duration::from_secs(30),
            backlog: None,
        };
        let live = Arc::new(Live::default());
        let report = run(address, 4, texts(address, 300), pace, Arc::clone(&live))
            .await
            .unwrap();
        assert_eq!(
            (report.acked(), report.refused(), report.failed()),
            (300, 0, 0)
        );
        let indices: HashSet<u64> = report.posted.iter().map(|posted| posted.index).collect();
        assert_eq!(indices, (0..300).collect());
        assert_eq!(report.ack.len(), 300);
        assert_eq!(live.acked(), 300);
        assert!(report.ack_rate() > 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_backlog_holds_requests_back_until_earlier_ones_are_answered() {
        let address = ceiling().await;
        let pace = Pace::Closed {
            // Long enough that a loaded machine still delivers the answers before it ends.
            max_time: Duration::from_secs(2),
            backlog: Some(10),
        };
        let live = Arc::new(Live::default());
        let answer = Arc::clone(&live);
        // Five answers arrive while the loop runs: five more requests may go.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer.answered(5);
        });
        let report = run(address, 4, texts(address, 1000), pace, live)
            .await
            .unwrap();
        assert_eq!(report.acked(), 15);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_loop_posts_at_its_rate() {
        let address = ceiling().await;
        let started = Instant::now();
        let report = run(
            address,
            4,
            texts(address, 50),
            Pace::Open { rate: 250.0 },
            Arc::default(),
        )
        .await
        .unwrap();
        assert_eq!(report.acked(), 50);
        // The last request is due at 49 / 250 s.
        assert!(
            started.elapsed() >= Duration::from_millis(196),
            "{:?}",
            started.elapsed()
        );
        let mut starts: Vec<Instant> = report.posted.iter().map(|posted| posted.started).collect();
        starts.sort();
        assert!(starts[49] - starts[0] >= Duration::from_millis(190));
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_an_error_that_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let pace = Pace::Closed {
            max_time: Duration::from_secs(5),
            backlog: None,
        };
        let error = run(address, 1, texts(address, 1), pace, Arc::default())
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("is the server still running"),
            "{error:#}"
        );
    }
}
