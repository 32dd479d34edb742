//! What a plugin sees while it runs: the per-call store data, its memory limiter, and the host
//! imports (log, clock, config, kv, http), each checked against the plugin's grant.

use std::sync::Arc;

use wasmtime::ResourceLimiter;

use super::bindings::host::smsflow::plugin::{clock, config, http, kv, log, types};
use super::egress::{self, HttpClients};
use super::grant::EffectiveGrant;
use super::kv_quota::{KvQuota, KvShare, KvWriteError};
use super::manifest::Capability;
use crate::clock::SharedClock;

/// Longest key a plugin may store, in bytes.
const MAX_KV_KEY_BYTES: usize = 256;
/// Largest value a plugin may store, in bytes.
const MAX_KV_VALUE_BYTES: usize = 64 << 10;
/// Longest log message kept, in bytes; the rest is cut.
const MAX_LOG_MESSAGE_BYTES: usize = 4 << 10;
/// Log messages kept per call; the rest are dropped, so a plugin cannot flood the log.
const MAX_LOG_MESSAGES_PER_CALL: u32 = 64;

/// Services shared by every call.
#[derive(Debug, Clone)]
pub(super) struct Services {
    pub kv: crate::store::plugin_kv::PluginKv,
    pub http: HttpClients,
    pub clock: SharedClock,
}

/// The store data of one call.
pub(super) struct CallState {
    plugin: Arc<str>,
    grant: Arc<EffectiveGrant>,
    kv: Arc<KvShare>,
    services: Services,
    log_messages: u32,
    /// Set when the plugin tried to grow its memory past the limit: the size it asked for.
    pub memory_refused: Option<usize>,
}

impl CallState {
    pub fn new(
        plugin: Arc<str>,
        grant: Arc<EffectiveGrant>,
        kv: Arc<KvShare>,
        services: Services,
    ) -> Self {
        Self {
            plugin,
            grant,
            kv,
            services,
            log_messages: 0,
            memory_refused: None,
        }
    }

    fn has(&self, capability: Capability) -> bool {
        self.grant.capabilities.contains(&capability)
    }
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.grant.limits.memory_bytes {
            self.memory_refused = Some(desired);
            // An error traps at once, so the call fails with our reason rather than whatever
            // the guest's allocator does when a grow fails.
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl types::Host for CallState {}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        self.log_messages += 1;
        if self.log_messages > MAX_LOG_MESSAGES_PER_CALL {
            return;
        }
        let message = truncate(&message, MAX_LOG_MESSAGE_BYTES);
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl clock::Host for CallState {
    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.services.clock.now_ms()).unwrap_or(0)
    }
}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        // The import check at load already refuses a plugin importing `config` without the
        // grant; checking again keeps this correct if that check ever changes.
        if !self.has(Capability::Config) {
            return None;
        }
        self.grant.config.get(&key).cloned()
    }
}

impl kv::Host for CallState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        if !self.has(Capability::Kv) {
            return None;
        }
        match self.kv.get(&key) {
            Ok(value) => value,
            Err(error) => {
                tracing::error!(plugin = &*self.plugin, %error, "plugin kv read failed");
                None
            }
        }
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), types::PluginError> {
        if !self.has(Capability::Kv) {
            return Err(types::PluginError::Denied("kv is not granted".into()));
        }
        if key.len() > MAX_KV_KEY_BYTES || value.len() > MAX_KV_VALUE_BYTES {
            return Err(types::PluginError::InvalidInput(format!(
                "kv keys are at most {MAX_KV_KEY_BYTES} bytes and values {MAX_KV_VALUE_BYTES} bytes"
            )));
        }
        let limits = &self.grant.limits;
        let quota = KvQuota {
            max_keys: limits.kv_max_keys,
            max_bytes: limits.kv_max_bytes,
        };
        self.kv
            .set(&key, &value, quota)
            .map_err(|error| match error {
                KvWriteError::QuotaFull { .. } => types::PluginError::Denied(error.to_string()),
                KvWriteError::Store(_) => types::PluginError::Internal(error.to_string()),
            })
    }

    fn delete(&mut self, key: String) {
        if !self.has(Capability::Kv) {
            return;
        }
        if let Err(error) = self.kv.delete(&key) {
            tracing::error!(plugin = &*self.plugin, %error, "plugin kv delete failed");
        }
    }
}

impl http::Host for CallState {
    async fn send(&mut self, request: http::Request) -> Result<http::Response, types::PluginError> {
        use types::PluginError::{Denied, InvalidInput, UpstreamFailure};

        if !self.has(Capability::Http) {
            return Err(Denied("http is not granted".into()));
        }
        let url = url::Url::parse(&request.url)
            .map_err(|error| InvalidInput(format!("`{}` is not a URL: {error}", request.url)))?;
        if !self.grant.allows(&url) {
            tracing::warn!(plugin = &*self.plugin, url = %url, "plugin HTTP request refused");
            return Err(Denied(format!(
                "{} is not in this plugin's HTTP allow-list",
                url.origin().ascii_serialization()
            )));
        }
        if let Some(refused) = egress::unnamed_private_literal(&self.grant, &url) {
            tracing::warn!(plugin = &*self.plugin, url = %url, "plugin HTTP request refused");
            return Err(Denied(refused.denial(&self.plugin)));
        }
        let max_body = self.grant.limits.max_http_body_bytes;
        if request
            .body
            .as_ref()
            .is_some_and(|body| body.len() > max_body)
        {
            return Err(InvalidInput(format!(
                "request body is over the {max_body}-byte limit"
            )));
        }
        let method = match request.method {
            http::Method::Get => reqwest::Method::GET,
            http::Method::Post => reqwest::Method::POST,
            http::Method::Put => reqwest::Method::PUT,
            http::Method::Patch => reqwest::Method::PATCH,
            http::Method::Delete => reqwest::Method::DELETE,
        };
        let credentials: Vec<(&str, &str)> = self.grant.credentials_for(&url).collect();
        let client = self.services.http.for_grant(&self.grant);
        let mut builder = client.request(method, url.clone());
        for (name, value) in &request.headers {
            let name = name.to_ascii_lowercase();
            // The host owns these: credentials, and the headers that frame the request.
            let reserved = credentials.iter().any(|(header, _)| *header == name)
                || matches!(
                    name.as_str(),
                    "host" | "content-length" | "transfer-encoding" | "connection"
                );
            if !reserved {
                builder = builder.header(name, value);
            }
        }
        for (header, value) in credentials {
            builder = builder.header(header, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|error| self.request_failed(&url, &error))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| UpstreamFailure(format!("reading the response failed: {error}")))?
        {
            if body.len() + chunk.len() > max_body {
                return Err(UpstreamFailure(format!(
                    "response body is over the {max_body}-byte limit"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(http::Response {
            status,
            headers,
            body,
        })
    }
}

impl CallState {
    /// What the plugin is told about a request that failed before an answer: denied when the
    /// address guard refused the name, an upstream failure otherwise.
    fn request_failed(&self, url: &url::Url, error: &reqwest::Error) -> types::PluginError {
        if let Some(refused) = egress::refused_address(error) {
            tracing::warn!(plugin = &*self.plugin, url = %url, %refused, "plugin HTTP request refused");
            return types::PluginError::Denied(refused.denial(&self.plugin));
        }
        // reqwest's own message is "error sending request": the cause says what happened.
        let mut message = error.to_string();
        let mut cause = std::error::Error::source(error);
        while let Some(inner) = cause {
            message = format!("{message}: {inner}");
            cause = inner.source();
        }
        types::PluginError::UpstreamFailure(format!(
            "request to {} failed: {message}",
            url.origin().ascii_serialization()
        ))
    }
}

fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::plugin::grant::Grant;
    use crate::plugin::limits::Limits;
    use crate::plugin::manifest::{Manifest, World};

    fn state(plugin: &str, capabilities: Vec<Capability>, services: &Services) -> CallState {
        let manifest = Manifest {
            name: plugin.into(),
            version: "0.1.0".into(),
            world: World::Classifier,
            description: String::new(),
            capabilities: capabilities.clone(),
        };
        let grant = Grant {
            capabilities,
            ..Grant::default()
        };
        let grant = EffectiveGrant::new(&manifest, &grant, &Limits::default()).unwrap();
        let kv = KvShare::open(services.kv.clone(), Arc::from(plugin)).unwrap();
        CallState::new(
            Arc::from(plugin),
            Arc::new(grant),
            Arc::new(kv),
            services.clone(),
        )
    }

    fn services() -> (Services, crate::store::Store) {
        let store = crate::store::Store::temporary().unwrap();
        let services = Services {
            kv: store.tables().plugin_kv,
            http: HttpClients::new(Arc::new(egress::SystemLookup)).unwrap(),
            clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        };
        (services, store)
    }

    #[test]
    fn each_plugin_sees_only_its_own_keys() {
        let (services, _store) = services();
        let mut first = state("first", vec![Capability::Kv], &services);
        let mut second = state("second", vec![Capability::Kv], &services);
        kv::Host::set(&mut first, "greeting".into(), b"hola".to_vec()).unwrap();
        assert_eq!(
            kv::Host::get(&mut first, "greeting".into()),
            Some(b"hola".to_vec())
        );
        assert_eq!(kv::Host::get(&mut second, "greeting".into()), None);
        kv::Host::delete(&mut second, "greeting".into());
        assert_eq!(
            kv::Host::get(&mut first, "greeting".into()),
            Some(b"hola".to_vec())
        );
        kv::Host::delete(&mut first, "greeting".into());
        assert_eq!(kv::Host::get(&mut first, "greeting".into()), None);
    }

    #[test]
    fn kv_refuses_oversized_keys_and_values_and_ungranted_plugins() {
        let (services, _store) = services();
        let mut granted = state("granted", vec![Capability::Kv], &services);
        let too_long_key = "k".repeat(MAX_KV_KEY_BYTES + 1);
        assert!(matches!(
            kv::Host::set(&mut granted, too_long_key, Vec::new()),
            Err(types::PluginError::InvalidInput(_))
        ));
        let too_big_value = vec![0; MAX_KV_VALUE_BYTES + 1];
        assert!(matches!(
            kv::Host::set(&mut granted, "k".into(), too_big_value),
            Err(types::PluginError::InvalidInput(_))
        ));
        let mut ungranted = state("ungranted", vec![], &services);
        assert!(matches!(
            kv::Host::set(&mut ungranted, "k".into(), Vec::new()),
            Err(types::PluginError::Denied(_))
        ));
    }

    #[test]
    fn config_and_clock_answer_from_the_grant_and_the_engine_clock() {
        let (services, _store) = services();
        let mut plugin = state("plain", vec![], &services);
        assert_eq!(clock::Host::now_ms(&mut plugin), 1_700_000_000_000);
        assert_eq!(config::Host::get(&mut plugin, "anything".into()), None);
    }

    #[tokio::test]
    async fn http_to_an_ungranted_origin_is_denied_without_a_request() {
        let (services, _store) = services();
        let mut plugin = state("connector", vec![Capability::Http], &services);
        let request = http::Request {
            method: http::Method::Get,
            url: "http://127.0.0.1:9/secret".into(),
            headers: Vec::new(),
            body: None,
        };
        let error = http::Host::send(&mut plugin, request).await.unwrap_err();
        assert!(matches!(error, types::PluginError::Denied(_)), "{error:?}");
    }
}
