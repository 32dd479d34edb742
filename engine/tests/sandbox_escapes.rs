//! Plugins trying to reach what their grant does not: other spellings of a granted origin,
//! names that resolve to loopback or to the cloud metadata address, redirects, and servers
//! that hold a host call open. A connector written in WAT fetches the URL it is given as the
//! lookup key; every refusal is a typed error, nothing reaches the servers it may not reach,
//! and the same host goes on serving a well-behaved request.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use smsflow::clock::SystemClock;
use smsflow::plugin::{
    CallError, Capability, ConnectorCall, Context, Grant, LoadError, Manifest, NameLookup,
    PluginFailure, PluginHost, PluginsConfig, World,
};
use smsflow::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod support;

/// A connector whose `lookup(entity, key)` GETs the URL `key` and returns the fields `status`
/// (three digits) and `body`, or the host's error as its own.
fn fetcher_module() -> String {
    r#"(module
      (import "smsflow:plugin/http@0.1.0" "send"
        (func $send (param i32 i32 i32 i32 i32 i32 i32 i32 i32)))
      (memory (export "memory") 4)
      (global $heap (mut i32) (i32.const 8192))
      (data (i32.const 100) "status")
      (data (i32.const 110) "body")
      {realloc}
      (func (export "lookup")
        (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
        (local $status i32)
        ;; GET key, no headers, no body; the result<response, plugin-error> lands at 512.
        (call $send (i32.const 0) (local.get 2) (local.get 3)
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 512))
        ;; An error has the same layout in both results: hand it back as it is.
        (if (i32.load8_u (i32.const 512)) (then (return (i32.const 512))))
        (local.set $status (i32.load16_u (i32.const 516)))
        (i32.store8 (i32.const 600) (i32.add (i32.const 48) (i32.div_u (local.get $status) (i32.const 100))))
        (i32.store8 (i32.const 601) (i32.add (i32.const 48)
          (i32.rem_u (i32.div_u (local.get $status) (i32.const 10)) (i32.const 10))))
        (i32.store8 (i32.const 602) (i32.add (i32.const 48) (i32.rem_u (local.get $status) (i32.const 10))))
        ;; [field { "status", <digits> }, field { "body", <response body> }] at 640.
        (i32.store (i32.const 640) (i32.const 100))
        (i32.store (i32.const 644) (i32.const 6))
        (i32.store (i32.const 648) (i32.const 600))
        (i32.store (i32.const 652) (i32.const 3))
        (i32.store (i32.const 656) (i32.const 110))
        (i32.store (i32.const 660) (i32.const 4))
        (i32.store (i32.const 664) (i32.load (i32.const 528)))
        (i32.store (i32.const 668) (i32.load (i32.const 532)))
        (i32.store8 (i32.const 700) (i32.const 0))
        (i32.store (i32.const 704) (i32.const 640))
        (i32.store (i32.const 708) (i32.const 2))
        (i32.const 700))
      (func (export "write")
        (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
        (unreachable)))"#
        .replace("{realloc}", support::REALLOC)
}

/// Answers names from a table, as a DNS server under an attacker's control would.
struct FakeDns(BTreeMap<&'static str, Vec<IpAddr>>);

impl NameLookup for FakeDns {
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let answer = self.0.get(host).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("no such name {host}"))
        });
        Box::pin(async move { answer })
    }
}

/// A local server answering every request with `status`, `headers` and `body`, counting them.
struct Server {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start(status: u16, headers: &[(&'static str, String)], body: &'static str) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let headers: Vec<(&'static str, String)> = headers.to_vec();
        let router = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let headers = headers.clone();
            async move {
                let mut response = axum::response::Response::new(axum::body::Body::from(body));
                *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { address, hits }
    }

    async fn hello() -> Self {
        Self::start(200, &[], "hello").await
    }

    fn origin(&self) -> String {
        format!("http://{}", self.address)
    }

    fn port(&self) -> u16 {
        self.address.port()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

struct Harness {
    host: PluginHost,
    dir: tempfile::TempDir,
    /// A server the `good` plugin is granted, by IP literal.
    good: Server,
    _store: Store,
}

impl Harness {
    /// A host resolving names with `dns` (the system's resolver when `None`), with the plugin
    /// `good` granted a local server.
    async fn new(dns: Option<FakeDns>) -> Self {
        let store = Store::temporary().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = PluginsConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..PluginsConfig::default()
        };
        let kv = store.tables().plugin_kv;
        let clock = Arc::new(SystemClock);
        let host = match dns {
            Some(dns) => PluginHost::with_lookup(&config, kv, clock, Arc::new(dns)).unwrap(),
            None => PluginHost::new(&config, kv, clock).unwrap(),
        };
        let mut harness = Self {
            host,
            dir,
            good: Server::hello().await,
            _store: store,
        };
        let grant = format!("http = [\"{}\"]", harness.good.origin());
        harness.load_fetcher("good", &grant).await.unwrap();
        harness
    }

    /// Loads the fetcher as `name` with `grant_toml` (its capabilities are filled in).
    async fn load_fetcher(&mut self, name: &str, grant_toml: &str) -> Result<(), LoadError> {
        let mut grant: Grant = toml::from_str(grant_toml).unwrap();
        grant.capabilities = vec![Capability::Http];
        let path = self.dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, support::component("connector", &fetcher_module())).unwrap();
        let manifest = Manifest {
            name: name.into(),
            version: "0.1.0".into(),
            world: World::Connector,
            description: String::new(),
            capabilities: vec![Capability::Http],
        };
        self.host.load(&path, manifest, &grant).await.map(drop)
    }

    async fn fetch(&self, plugin: &str, url: &str) -> Result<BTreeMap<String, String>, CallError> {
        let call = ConnectorCall::Lookup {
            entity: "url".into(),
            key: url.into(),
            context: Context::default(),
        };
        self.host.connect(plugin, &call).await
    }

    /// The message of the `denied` error `plugin` got for `url`.
    async fn denied(&self, plugin: &str, url: &str) -> String {
        match self.fetch(plugin, url).await {
            Err(CallError::Plugin {
                failure: PluginFailure::Denied(message),
                ..
            }) => message,
            other => panic!("{url}: expected a denial, got {other:?}"),
        }
    }

    /// The well-behaved plugin still reaches its server: the host survived what came before.
    async fn assert_still_serving(&self) {
        let before = self.good.hits();
        let fields = self.fetch("good", &self.good.origin()).await.unwrap();
        assert_eq!(fields["status"], "200");
        assert_eq!(fields["body"], "hello");
        assert_eq!(self.good.hits(), before + 1);
    }
}

#[tokio::test]
async fn an_origin_granted_as_a_loopback_ip_literal_is_reached() {
    let harness = Harness::new(None).await;
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn other_spellings_of_a_granted_ip_are_the_same_origin_and_nothing_else_is() {
    let harness = Harness::new(None).await;
    let port = harness.good.port();
    // The URL parser writes IPv4 hosts in one form: decimal, hex, octal and short forms are
    // 127.0.0.1 itself, so they are the granted origin.
    for same in [
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("HTTP://127.0.0.1:{port}/x"),
    ] {
        let fields = harness.fetch("good", &same).await.unwrap();
        assert_eq!(fields["status"], "200", "{same}");
    }
    let hits = harness.good.hits();
    for other in [
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://127.0.0.2:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{}/", port + 1),
        format!("http://127.0.0.1.evil.example:{port}/"),
        format!("http://127.0.0.1:{port}@169.254.169.254/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://2852039166/latest/meta-data/".to_owned(),
        format!("file:///etc/passwd#127.0.0.1:{port}"),
    ] {
        let message = harness.denied("good", &other).await;
        assert!(message.contains("allow-list"), "{other}: {message}");
    }
    assert_eq!(
        harness.good.hits(),
        hits,
        "a refused request reached the server"
    );
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_granted_name_is_matched_case_blind_and_exactly() {
    let dns = FakeDns(BTreeMap::from([
        ("granted.example", vec!["127.0.0.1".parse().unwrap()]),
        ("granted.example.", vec!["127.0.0.1".parse().unwrap()]),
    ]));
    let mut harness = Harness::new(Some(dns)).await;
    let port = harness.good.port();
    let grant = format!("http = [\"http://granted.example:{port}\"]\nprivate_network = true");
    harness.load_fetcher("crm", &grant).await.unwrap();
    let fields = harness
        .fetch("crm", &format!("http://GRANTED.Example:{port}/"))
        .await
        .unwrap();
    assert_eq!(fields["body"], "hello");
    for other in [
        format!("http://granted.example.:{port}/"),
        format!("http://granted.example:{port}@127.0.0.1:{port}/"),
        format!("http://evil.example/?granted.example:{port}"),
    ] {
        let message = harness.denied("crm", &other).await;
        assert!(message.contains("allow-list"), "{other}: {message}");
    }
    assert_eq!(harness.good.hits(), 1);
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_granted_name_resolving_to_loopback_is_refused_without_private_network() {
    // `localhost` resolves to 127.0.0.1 through the system's resolver (/etc/hosts).
    let mut harness = Harness::new(None).await;
    let port = harness.good.port();
    let url = format!("http://localhost:{port}/");
    harness
        .load_fetcher("local", &format!("http = [\"http://localhost:{port}\"]"))
        .await
        .unwrap();
    let message = harness.denied("local", &url).await;
    assert!(
        message.contains("loopback") && message.contains("private_network = true"),
        "{message}"
    );
    assert!(message.contains("[plugins.grants.local]"), "{message}");
    assert_eq!(harness.good.hits(), 0);

    let grant = format!("http = [\"http://localhost:{port}\"]\nprivate_network = true");
    harness.load_fetcher("intranet", &grant).await.unwrap();
    let fields = harness.fetch("intranet", &url).await.unwrap();
    assert_eq!(fields["body"], "hello");
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn dns_answers_pointing_at_private_or_metadata_addresses_are_refused() {
    let answers: [(&'static str, &[&str], &str); 6] = [
        ("metadata.example", &["169.254.169.254"], "link-local"),
        ("mapped.example", &["::ffff:169.254.169.254"], "link-local"),
        (
            "rebind.example",
            &["93.184.216.34", "127.0.0.1"],
            "loopback",
        ),
        ("office.example", &["10.20.30.40"], "private"),
        ("ula.example", &["fd00::1"], "unique local"),
        ("cgnat.example", &["100.64.1.1"], "carrier-grade NAT"),
    ];
    let dns = FakeDns(
        answers
            .iter()
            .map(|(name, addresses, _)| {
                let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
                (*name, addresses)
            })
            .collect(),
    );
    let mut harness = Harness::new(Some(dns)).await;
    let origins: Vec<String> = answers
        .iter()
        .map(|(name, _, _)| format!("\"http://{name}\""))
        .collect();
    let grant = format!("http = [{}]", origins.join(", "));
    harness.load_fetcher("rebound", &grant).await.unwrap();
    for (name, addresses, range) in answers {
        let message = harness
            .denied("rebound", &format!("http://{name}/latest/meta-data/"))
            .await;
        assert!(
            message.contains(name) && message.contains(range),
            "{name}: {message}"
        );
        assert!(message.contains("private_network"), "{message}");
        let refused = addresses.last().unwrap();
        assert!(message.contains(refused), "{name}: {message}");
    }
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_redirect_to_the_metadata_address_or_another_server_is_not_followed() {
    let mut harness = Harness::new(None).await;
    let elsewhere = Server::hello().await;
    let to_metadata = Server::start(
        302,
        &[(
            "location",
            "http://169.254.169.254/latest/meta-data/".into(),
        )],
        "moved",
    )
    .await;
    let to_elsewhere = Server::start(301, &[("location", elsewhere.origin())], "moved").await;
    let grant = format!(
        "http = [\"{}\", \"{}\"]",
        to_metadata.origin(),
        to_elsewhere.origin()
    );
    harness.load_fetcher("redirected", &grant).await.unwrap();
    let fields = harness
        .fetch("redirected", &to_metadata.origin())
        .await
        .unwrap();
    assert_eq!(
        (fields["status"].as_str(), fields["body"].as_str()),
        ("302", "moved")
    );
    let fields = harness
        .fetch("redirected", &to_elsewhere.origin())
        .await
        .unwrap();
    assert_eq!(fields["status"], "301");
    assert_eq!((to_metadata.hits(), to_elsewhere.hits()), (1, 1));
    assert_eq!(elsewhere.hits(), 0, "the redirect was followed");
    harness.assert_still_serving().await;
}

/// A server that accepts connections and reads requests, then answers with `answer`.
async fn raw_server(answer: fn(tokio::net::TcpStream) -> BoxFuture<'static, ()>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).await;
            tokio::spawn(answer(stream));
        }
    });
    format!("http://{address}")
}

/// Calls `url` through a plugin with a 300 ms timeout, which must end the call at that time.
async fn assert_times_out(harness: &mut Harness, url: &str) {
    let grant = format!("http = [\"{url}\"]\nlimits = {{ timeout_ms = 300 }}");
    harness.load_fetcher("waiter", &grant).await.unwrap();
    let started = Instant::now();
    let error = harness.fetch("waiter", url).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            error,
            CallError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{error}"
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_ends_the_call_at_its_timeout() {
    let mut harness = Harness::new(None).await;
    let url = raw_server(|stream| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        })
    })
    .await;
    assert_times_out(&mut harness, &url).await;
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_server_trickling_one_byte_a_second_ends_the_call_at_its_timeout() {
    let mut harness = Harness::new(None).await;
    let url = raw_server(|mut stream| {
        Box::pin(async move {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..100 {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    })
    .await;
    assert_times_out(&mut harness, &url).await;
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_response_over_the_body_limit_is_an_upstream_failure() {
    let mut harness = Harness::new(None).await;
    let huge: &'static str = Box::leak("x".repeat(2 << 20).into_boxed_str());
    let server = Server::start(200, &[], huge).await;
    let grant = format!("http = [\"{}\"]", server.origin());
    harness.load_fetcher("glutton", &grant).await.unwrap();
    let error = harness
        .fetch("glutton", &server.origin())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { failure: PluginFailure::UpstreamFailure(message), .. }
            if message.contains("1048576-byte limit")),
        "{error}"
    );
    harness.assert_still_serving().await;
}
