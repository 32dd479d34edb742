//! The real engine: `target/release/smsflow serve` on a fresh store, configured for the bench.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;

use crate::process::Server;
use crate::twilio::Webhook;

/// The URL the engine believes Twilio calls; webhooks are signed over it.
pub const PUBLIC_URL: &str = "https://sms.bench.invalid";
/// `[server] api_token`.
pub const API_TOKEN: &str = "bench-api-token";
/// `[provider] account_sid`.
pub const ACCOUNT_SID: &str = "ACbench";
/// `[provider] auth_token`.
pub const AUTH_TOKEN: &str = "bench-auth-token";
/// `[provider] from`: our number.
pub const OURS: &str = "+15550001000";
/// The longest a call of [`Api`] may take: a stalled engine is an error, not a hung run.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);
/// A Tuesday, noon in New York: every bench number (212) is inside its quiet-hours window.
pub const DAYTIME: &str = "2026-03-03T17:00:00Z";

/// Where the repository and its build are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The repository (flows/, BENCHMARKS.md).
    pub repo: PathBuf,
    /// Cargo's target folder.
    pub target: PathBuf,
}

impl Paths {
    /// `target/release/smsflow`.
    pub fn binary(&self) -> PathBuf {
        self.target.join("release/smsflow")
    }

    /// `target/release/ceiling`.
    pub fn ceiling(&self) -> PathBuf {
        self.target.join("release/ceiling")
    }

    /// `target/plugins`: the prebuilt components.
    pub fn plugins(&self) -> PathBuf {
        self.target.join("plugins")
    }

    /// Refuses to go on without the release binaries and the plugins: the bench builds nothing.
    ///
    /// # Errors
    ///
    /// Naming what is missing and the command that builds it.
    pub fn check(&self) -> anyhow::Result<()> {
        for binary in [self.binary(), self.ceiling()] {
            anyhow::ensure!(
                binary.is_file(),
                "{} is missing: run `just bench`, or `cargo build --release -p smsflow -p smsflow-bench` first",
                binary.display()
            );
        }
        let keyword_intents = self.plugins().join("keyword-intents.wasm");
        anyhow::ensure!(
            keyword_intents.is_file(),
            "{} is missing: build the plugins with `just plugins` first",
            keyword_intents.display()
        );
        Ok(())
    }
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Status {
    /// The inbox.
    pub inbox: InboxStatus,
}

/// `GET /v1/status`'s `inbox`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct InboxStatus {
    /// Acknowledged and not yet processed.
    pub pending: u64,
    /// Failed every attempt.
    pub dead_letters: u64,
}

/// A folder holding `smsflow.toml` and the store it names.
#[derive(Debug)]
pub struct Setup {
    /// The folder (removed when dropped).
    pub dir: tempfile::TempDir,
}

impl Setup {
    /// Writes the bench's `smsflow.toml` into a new temporary folder: Twilio through the fake
    /// at `fake_url`, pacing that never binds, the repository's flows and the prebuilt plugins.
    ///
    /// # Errors
    ///
    /// When the folder or the file cannot be written.
    pub fn new(paths: &Paths, fake_url: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("smsflow-bench-")
            .tempdir()?;
        let setup = Self { dir };
        std::fs::write(setup.config(), config_text(paths, fake_url))
            .with_context(|| format!("cannot write {}", setup.config().display()))?;
        Ok(setup)
    }

    /// Adds `text` (a section such as `[cluster]`) to the end of its `smsflow.toml`.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn append(&self, text: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let path = self.config();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        write!(file, "\n{text}").with_context(|| format!("cannot write {}", path.display()))
    }

    /// Its `smsflow.toml`.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("smsflow.toml")
    }

    /// The store's folder.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

/// The configuration; the plugin grants are those of `tests/common/mod.rs`.
fn config_text(paths: &Paths, fake_url: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
public_url = "{PUBLIC_URL}"
api_token = "{API_TOKEN}"

[store]
path = "store"

[flows]
dir = "{flows}"

[provider]
kind = "twilio"
from = "{OURS}"
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
api_base = "{fake_url}"
# Pacing must never be what is measured.
messages_per_second = 100000

[plugins]
dir = "{plugins}"
cache_dir = "{cache}"

[plugins.grants.crm-notes]
capabilities = ["config", "http"]

[plugins.grants.order-status]
capabilities = ["config", "http"]
http = ["{fake_url}"]
config = {{ base_url = "{fake_url}" }}

[plugins.grants.faq-replies]
capabilities = ["config"]
"#,
        flows = paths.repo.join("flows").display(),
        plugins = paths.plugins().display(),
        cache = paths.target.join("plugin-cache").display(),
    )
}

/// A running `smsflow serve`.
#[derive(Debug)]
pub struct Engine {
    /// The server process.
    pub server: Server,
    /// Its HTTP API.
    pub api: Api,
    /// From spawning the process to `/healthz` answering.
    pub ready_in: Duration,
}

impl Engine {
    /// Starts `smsflow serve` on `setup` with the clock at [`DAYTIME`], and waits until
    /// `/healthz` answers.
    ///
    /// # Errors
    ///
    /// When it does not come up; the message ends with its log.
    pub async fn start(paths: &Paths, setup: &Setup) -> anyhow::Result<Self> {
        let mut command = Command::new(paths.binary());
        command
            .args(["serve", "--config"])
            .arg(setup.config())
            .env("SMSFLOW_CLOCK", DAYTIME);
        let log = setup.dir.path().join("smsflow.log");
        let server = Server::spawn(command, "smsflow serve", &log, "smsflow listening on ")?;
        let api = Api {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::builder()
                .timeout(API_TIMEOUT)
                .build()
                .context("cannot build the API's HTTP client")?,
        };
        let ready = match api.wait_healthy(Duration::from_secs(300)).await {
            Ok(ready) => ready,
            Err(error) => return Err(error.context(server.log_tail())),
        };
        let ready_in = ready.duration_since(server.spawned);
        Ok(Self {
            server,
            api,
            ready_in,
        })
    }

    /// Where Twilio webhooks go.
    pub fn webhook(&self) -> Webhook {
        Webhook {
            signed_url: format!("{PUBLIC_URL}{}", smsflow::server::TWILIO_INBOUND_PATH),
            path: smsflow::server::TWILIO_INBOUND_PATH.to_owned(),
            host: self.server.addr.to_string(),
            auth_token: AUTH_TOKEN.to_owned(),
            account_sid: ACCOUNT_SID.to_owned(),
            to: OURS.to_owned(),
        }
    }
}

/// The engine's HTTP API, for the calls the harness makes besides the load.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://<address>`.
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    /// Waits until `/healthz` answers `ok`; returns when it did.
    ///
    /// # Errors
    ///
    /// When it does not within `timeout`.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await;
            if let Ok(response) = answer
                && response.status().is_success()
            {
                return Ok(Instant::now());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "smsflow serve did not answer /healthz within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `GET /v1/status`, or `None` when this engine has no such endpoint.
    ///
    /// # Errors
    ///
    /// When the engine does not answer, or answers something else.
    pub async fn status(&self) -> anyhow::Result<Option<Status>> {
        let Some(response) = self.get("/v1/status").await? else {
            return Ok(None);
        };
        let body = response.bytes().await.context("GET /v1/status")?;
        Ok(Some(
            serde_json::from_slice(&body).context("GET /v1/status is not the status")?,
        ))
    }

    /// `GET /v1/conversations/{phone}`, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// When the engine does not answer, or answers something else.
    pub async fn conversation(&self, phone: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let Some(response) = self.get(&format!("/v1/conversations/{phone}")).await? else {
            return Ok(None);
        };
        let body = response.bytes().await.context("GET /v1/conversations")?;
        Ok(Some(
            serde_json::from_slice(&body).context("GET /v1/conversations is not JSON")?,
        ))
    }

    /// `GET /v1/cluster`: this node's partitions and senders, or `None` when it is not in
    /// cluster mode.
    ///
    /// # Errors
    ///
    /// When the node does not answer, or answers something else.
    pub async fn cluster(&self) -> anyhow::Result<Option<smsflow::cluster::node::NodeReport>> {
        let Some(response) = self.get("/v1/cluster").await? else {
            return Ok(None);
        };
        let body = response.bytes().await.context("GET /v1/cluster")?;
        Ok(Some(
            serde_json::from_slice(&body).context("GET /v1/cluster is not a node's report")?,
        ))
    }

    /// `GET /metrics`, the Prometheus text, or `None` when there is no such endpoint.
    ///
    /// # Errors
    ///
    /// When the engine does not answer.
    pub async fn metrics(&self) -> anyhow::Result<Option<String>> {
        let Some(response) = self.get("/metrics").await? else {
            return Ok(None);
        };
        Ok(Some(response.text().await.context("GET /metrics")?))
    }

    /// A GET with the API token: `None` for a 404, an error for another non-2xx.
    async fn get(&self, path: &str) -> anyhow::Result<Option<reqwest::Response>> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .with_context(|| format!("GET {path} failed"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(
            response
                .error_for_status()
                .with_context(|| format!("GET {path}"))?,
        ))
    }
}
