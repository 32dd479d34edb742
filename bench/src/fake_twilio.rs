//! A fake Twilio Messages API, in process: `POST /2010-04-01/Accounts/{sid}/Messages.json`
//! answers 201 with a unique `sid` (all `engine/src/outbound/twilio.rs` reads) and records each
//! text with the instant it arrived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;

use crate::loadgen::Live;

/// A text the engine handed to the provider.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// `From`.
    pub from: String,
    /// `Body`.
    pub body: String,
    /// When its request arrived.
    pub at: Instant,
}

/// The fake provider.
#[derive(Debug)]
pub struct FakeTwilio {
    account_sid: String,
    authorization: String,
    by_recipient: Mutex<HashMap<String, Vec<Arrival>>>,
    accepted: AtomicU64,
    refused: AtomicU64,
    watcher: Mutex<Option<(Arc<Live>, u64)>>,
}

/// Locks `mutex`: a panic elsewhere cannot leave these maps half-written, so poisoning is
/// ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeTwilio {
    /// Serves a fake for `account_sid`, which expects `auth_token` in Basic auth, on a loopback
    /// port; returns it and its base URL (the engine's `[provider] api_base`).
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(account_sid: &str, auth_token: &str) -> anyhow::Result<(Arc<Self>, String)> {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{account_sid}:{auth_token}"));
        let fake = Arc::new(Self {
            account_sid: account_sid.to_owned(),
            authorization: format!("Basic {credentials}"),
            by_recipient: Mutex::default(),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            watcher: Mutex::default(),
        });
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                axum::routing::post(create_message),
            )
            .with_state(Arc::clone(&fake));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("the fake Twilio cannot bind a loopback port")?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("the fake Twilio stopped: {error}");
            }
        });
        Ok((fake, base))
    }

    /// Texts accepted so far.
    pub fn total(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }

    /// Requests refused (wrong account or credentials, no `To`): the engine's misconfiguration.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    /// From now on, tells `live` how many texts arrived since there were `baseline`; `None`
    /// stops telling.
    pub fn watch(&self, watcher: Option<(Arc<Live>, u64)>) {
        *lock(&self.watcher) = watcher;
    }

    /// Each of `numbers`' arrival instants, in order.
    pub fn arrivals(&self, numbers: impl Iterator<Item = String>) -> HashMap<String, Vec<Instant>> {
        let recorded = lock(&self.by_recipient);
        numbers
            .filter_map(|number| {
                let times = recorded.get(&number)?.iter().map(|text| text.at).collect();
                Some((number, times))
            })
            .collect()
    }

    /// The texts `number` received.
    pub fn texts_to(&self, number: &str) -> Vec<Arrival> {
        lock(&self.by_recipient)
            .get(number)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `total` texts arrived in all; false when `timeout` passed first.
    pub async fn wait_for(&self, total: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.total() < total {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    fn record(&self, to: String, arrival: Arrival) -> u64 {
        lock(&self.by_recipient)
            .entry(to)
            .or_default()
            .push(arrival);
        let total = self.accepted.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some((live, baseline)) = &*lock(&self.watcher) {
            live.answered(total.saturating_sub(*baseline));
        }
        total
    }

    fn refuse(&self, status: StatusCode, code: u32, message: &str) -> Response {
        self.refused.fetch_add(1, Ordering::AcqRel);
        let body = serde_json::json!({ "code": code, "message": message });
        (status, body.to_string()).into_response()
    }
}

async fn create_message(
    State(fake): State<Arc<FakeTwilio>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    if account != fake.account_sid || authorization != Some(fake.authorization.as_str()) {
        return fake.refuse(
            StatusCode::UNAUTHORIZED,
            20003,
            "wrong account or credentials",
        );
    }
    let mut form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let Some(to) = form.remove("To") else {
        return fake.refuse(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    let arrival = Arrival {
        from: form.remove("From").unwrap_or_default(),
        body: form.remove("Body").unwrap_or_default(),
        at,
    };
    let sid = format!("SM{:032x}", fake.record(to, arrival));
    let answer = serde_json::json!({ "sid": sid, "status": "queued" });
    (StatusCode::CREATED, answer.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send(
        base: &str,
        account: &str,
        password: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!(
                "{base}/2010-04-01/Accounts/{account}/Messages.json"
            ))
            .basic_auth(account, Some(password))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn each_text_gets_its_own_sid_and_is_recorded_with_its_arrival() {
        let (fake, base) = FakeTwilio::start("ACx", "secret").await.unwrap();
        let live = Arc::new(Live::default());
        fake.watch(Some((Arc::clone(&live), 0)));
        let before = Instant::now();
        let text = [
            ("To", "+12125550100"),
            ("From", "+15550001000"),
            ("Body", "Hi there"),
        ];
        let (status, first) = send(&base, "ACx", "secret", &text).await;
        assert_eq!(status, 201, "{first}");
        let (_, second) = send(&base, "ACx", "secret", &text).await;
        let sid =
            |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap()["sid"].clone();
        assert_ne!(sid(&first), sid(&second));
        assert!(sid(&first).as_str().unwrap().starts_with("SM"));
        let texts = fake.texts_to("+12125550100");
        assert_eq!(texts.len(), 2);
        assert_eq!(
            (texts[0].from.as_str(), texts[0].body.as_str()),
            ("+15550001000", "Hi there")
        );
        assert!(texts[0].at >= before && texts[0].at <= texts[1].at);
        assert_eq!(fake.total(), 2);
        assert!(fake.wait_for(2, Duration::ZERO).await);
        let arrivals =
            fake.arrivals(["+12125550100".to_owned(), "+19995550100".to_owned()].into_iter());
        assert_eq!(arrivals.len(), 1);
        assert_eq!(arrivals["+12125550100"].len(), 2);
        // The watcher heard both.
        assert!(live.settled() >= 2);
    }

    #[tokio::test]
    async fn a_misconfigured_engine_is_refused_and_counted() {
        let (fake, base) = FakeTwilio::start("ACx", "secret").await.unwrap();
        let text = [("To", "+12125550100"), ("Body", "Hi")];
        assert_eq!(send(&base, "ACx", "wrong", &text).await.0, 401);
        assert_eq!(send(&base, "ACother", "secret", &text).await.0, 401);
        assert_eq!(send(&base, "ACx", "secret", &[("Body", "Hi")]).await.0, 400);
        assert_eq!((fake.total(), fake.refused()), (0, 3));
    }
}
