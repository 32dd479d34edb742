//! What tests and benchmarks share (the `test-support` feature): a provider that records what
//! the gate let through, and engine builders for the usual set-ups. Tests build the engine
//! through [`crate::engine::EngineBuilder`] like the server does; nothing here wires parts of
//! its own.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;

pub use crate::clock::ManualClock;
use crate::outbound::{Cleared, Provider, Receipt, SendError};

/// A text a provider took: what the gate cleared, as it would go on the air.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The outbox id.
    pub id: String,
    /// Our number.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The text, with what the content rules added.
    pub body: String,
}

/// A provider that records every text and answers with ids `rec-1`, `rec-2`, …
#[derive(Debug, Default)]
pub struct RecordingProvider {
    sent: Mutex<Vec<Recorded>>,
    next_id: AtomicU64,
}

impl RecordingProvider {
    /// Every text taken so far, in order.
    pub fn sent(&self) -> Vec<Recorded> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The bodies of the texts taken for `to`, in order.
    pub fn bodies_to(&self, to: &str) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|text| text.to == to)
            .map(|text| text.body)
            .collect()
    }
}

impl Provider for RecordingProvider {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            self.sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Recorded {
                    id: message.id.clone(),
                    from: message.from.clone(),
                    to: message.to.clone(),
                    body: message.body.clone(),
                });
            let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Receipt {
                provider_id: format!("rec-{n}"),
            })
        })
    }
}

/// The repository's root.
pub fn repository() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example plugins `just plugins` builds, with the compile cache the tests share, each
/// granted the capabilities its manifest asks for (no HTTP origins, no settings).
pub fn example_plugins() -> crate::plugin::PluginsConfig {
    use crate::plugin::{Capability, Grant};
    let grant = |capabilities: &[Capability]| Grant {
        capabilities: capabilities.to_vec(),
        ..Grant::default()
    };
    let grants = [
        ("crm-notes", grant(&[Capability::Config, Capability::Http])),
        (
            "order-status",
            grant(&[Capability::Config, Capability::Http]),
        ),
        ("faq-replies", grant(&[Capability::Config])),
    ];
    crate::plugin::PluginsConfig {
        dir: repository().join("target/plugins"),
        cache_dir: Some(repository().join("target/plugin-cache")),
        grants: grants
            .into_iter()
            .map(|(name, grant)| (name.to_owned(), grant))
            .collect(),
        ..crate::plugin::PluginsConfig::default()
    }
}

/// A flow answering PING with one transactional text: the load of the retention, fault and
/// chaos runs, where what is said matters less than that each text is answered once.
pub const PING_FLOW: &str = r#"
id = "ping"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "pong"
[triggers]
keywords = ["PING"]
[steps.pong]
type = "end"
text = "Acme Clinic: pong. Reply STOP to opt out."
"#;

/// A config for tests: the example plugins, pacing that never binds, everything else default.
pub fn config() -> crate::config::Config {
    let mut config = crate::config::Config {
        plugins: example_plugins(),
        ..crate::config::Config::default()
    };
    config.provider.messages_per_second = 100_000.0;
    config
}

/// Runs outbox passes until one sends nothing; returns how many texts the provider took. A
/// pass sends each recipient at most one text (its record is durable before the next), so a
/// conversation's texts take one pass each.
///
/// # Errors
///
/// When a pass fails.
pub async fn deliver_all(outbox: &crate::outbound::Outbox) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let sent = outbox.deliver_due().await?;
        if sent == 0 {
            return Ok(total);
        }
        total += sent;
    }
}

/// Plugin calls passed through to another [`crate::plugin::PluginCalls`], counted: for tests
/// that prove a path calls no plugin.
pub struct CountingCalls {
    inner: std::sync::Arc<dyn crate::plugin::PluginCalls>,
    calls: AtomicU64,
}

impl CountingCalls {
    /// Counts the calls made through to `inner`.
    pub fn new(inner: std::sync::Arc<dyn crate::plugin::PluginCalls>) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
        }
    }

    /// How many calls were made.
    pub fn count(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl crate::plugin::PluginCalls for CountingCalls {
    fn classify<'a>(
        &'a self,
        plugin: &'a str,
        text: &'a str,
        context: &'a crate::plugin::Context,
    ) -> BoxFuture<'a, Result<crate::plugin::Intent, crate::plugin::CallError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.classify(plugin, text, context)
    }

    fn draft_reply<'a>(
        &'a self,
        plugin: &'a str,
        text: &'a str,
        context: &'a crate::plugin::Context,
    ) -> BoxFuture<'a, Result<crate::plugin::Draft, crate::plugin::CallError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.draft_reply(plugin, text, context)
    }

    fn connect<'a>(
        &'a self,
        plugin: &'a str,
        call: &'a crate::plugin::ConnectorCall,
    ) -> BoxFuture<'a, Result<std::collections::BTreeMap<String, String>, crate::plugin::CallError>>
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.connect(plugin, call)
    }
}
