//! Where a plugin's HTTP requests may go, by address.
//!
//! The allow-list ([`EffectiveGrant::allows`]) compares origins, but a granted name resolves to
//! whatever its DNS says at the time of the request: an answer that changed after the operator
//! granted it (DNS rebinding) points `api.example.com` at 169.254.169.254, the cloud metadata
//! service, or at 127.0.0.1, where the engine's own operator API listens. So the plugins' HTTP
//! client resolves names through a guard that refuses every address outside the public
//! internet, and `http.send` checks IP literals, which reqwest connects to without resolving,
//! the same way. The operator opts in twice over: an origin written as an IP literal
//! (`http://127.0.0.1:9400`) is reached as written, and `private_network = true` in a plugin's
//! grant lets its names resolve to private addresses (an internal CRM).
//!
//! The client ignores `HTTP_PROXY` and friends: through a proxy the proxy resolves the name,
//! and the guard would check nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::future::BoxFuture;

use super::grant::EffectiveGrant;

/// Turns a host name into addresses for the plugins' HTTP client: the system's resolver unless
/// the host is built with another (tests answer names without DNS). Whatever it answers still
/// passes the address guard.
pub trait NameLookup: Send + Sync + 'static {
    /// The addresses of `host`.
    ///
    /// # Errors
    ///
    /// When the name cannot be resolved; the request then fails as an upstream failure.
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addresses.map(|address| address.ip()).collect())
        })
    }
}

/// The range a non-public address belongs to, named for the operator; `None` for an address on
/// the public internet.
///
/// IPv4 addresses embedded in IPv6 ones (`::ffff:127.0.0.1`, the NAT64 prefix `64:ff9b::/96`)
/// are judged as the IPv4 address they reach.
pub(super) fn special_range(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = address.octets();
    let range = match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (169, 254, _) => "link-local (169.254.0.0/16, where cloud metadata services answer)",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

fn special_v6(address: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(address) {
        return special_v4(v4);
    }
    let first = address.segments()[0];
    let range = match first {
        _ if address.is_unspecified() => "unspecified (::)",
        _ if address.is_loopback() => "loopback (::1)",
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast (ff00::/8)",
        _ => return None,
    };
    Some(range)
}

/// The IPv4 address an IPv6 address reaches, for the forms that reach one: IPv4-mapped
/// (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`). `::` and `::1` are not IPv4-compatible
/// forms here: they are IPv6's own unspecified and loopback addresses.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = address.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = address.segments();
    let [high, low] = [segments[6], segments[7]];
    let [h1, h2] = high.to_be_bytes();
    let [l1, l2] = low.to_be_bytes();
    (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| Ipv4Addr::new(h1, h2, l1, l2))
}

/// A DNS answer the guard refused: `host` resolves to `address`, in a non-public `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PrivateAddress {
    /// The name the plugin asked for.
    host: String,
    /// The address it resolved to.
    address: IpAddr,
    /// The range the address is in.
    range: &'static str,
}

impl PrivateAddress {
    /// The refusal for `address`, or `None` when it is public.
    fn check(host: &str, address: IpAddr) -> Option<Self> {
        special_range(address).map(|range| Self {
            host: host.to_owned(),
            address,
            range,
        })
    }

    /// What the plugin is told, with the operator's two ways to allow it.
    pub(super) fn denial(&self, plugin: &str) -> String {
        format!(
            "{} resolves to {}, a {} address, which plugins may not reach: set \
             `private_network = true` in [plugins.grants.{plugin}] if it is meant to reach a \
             private network, or grant the address itself as an origin",
            self.host, self.address, self.range
        )
    }
}

impl std::fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, a {} address",
            self.host, self.address, self.range
        )
    }
}

impl std::error::Error for PrivateAddress {}

/// The guard's refusal somewhere in the causes of a failed request, if that is why it failed.
pub(super) fn refused_address<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a PrivateAddress> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(refused) = error.downcast_ref::<PrivateAddress>() {
            return Some(refused);
        }
        cause = error.source();
    }
    None
}

/// An IP literal in a request the grant does not name, outside the public internet. The
/// allow-list already implies that the grant names the literal; this check keeps loopback and
/// the metadata address closed should the allow-list ever match more loosely (wildcards).
pub(super) fn unnamed_private_literal(
    grant: &EffectiveGrant,
    url: &url::Url,
) -> Option<PrivateAddress> {
    let address = match url.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    if grant.private_network || grant.names_address(address) {
        return None;
    }
    PrivateAddress::check(&address.to_string(), address)
}

/// reqwest's resolver: `lookup`, and with `guard` the refusal of non-public answers.
struct Resolver {
    lookup: Arc<dyn NameLookup>,
    guard: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let answer = self.lookup.lookup(&host);
        let guard = self.guard;
        Box::pin(async move {
            let addresses = answer.await?;
            // One private answer refuses the name: a rebinding attack answers with both.
            let refused = addresses
                .iter()
                .find_map(|&address| PrivateAddress::check(&host, address));
            if let Some(refused) = refused.filter(|_| guard) {
                return Err(refused.into());
            }
            let addresses = addresses.into_iter().map(|ip| SocketAddr::new(ip, 0));
            Ok(Box::new(addresses) as reqwest::dns::Addrs)
        })
    }
}

/// The plugins' HTTP clients: the guarded one every plugin uses, and one without the guard for
/// the plugins whose grant says `private_network = true`. Two clients, so no connection made
/// for one kind is ever reused by the other.
#[derive(Debug, Clone)]
pub(super) struct HttpClients {
    public: reqwest::Client,
    private: reqwest::Client,
}

impl HttpClients {
    /// Clients resolving names with `lookup`.
    ///
    /// # Errors
    ///
    /// When reqwest cannot build a client (its TLS setup failed).
    pub fn new(lookup: Arc<dyn NameLookup>) -> anyhow::Result<Self> {
        Ok(Self {
            public: client(Arc::clone(&lookup), true)?,
            private: client(lookup, false)?,
        })
    }

    /// The client for a plugin with `grant`.
    pub fn for_grant(&self, grant: &EffectiveGrant) -> &reqwest::Client {
        if grant.private_network {
            &self.private
        } else {
            &self.public
        }
    }
}

fn client(lookup: Arc<dyn NameLookup>, guard: bool) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        // A redirect could lead outside the allow-list: plugins see 3xx answers instead.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(Resolver { lookup, guard }))
        .user_agent(concat!("smsflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the plugins' HTTP client")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn range(text: &str) -> Option<&'static str> {
        special_range(text.parse().unwrap())
    }

    #[test]
    fn loopback_private_link_local_and_their_ipv6_forms_are_special() {
        for address in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(range(address).is_some(), "{address} should be special");
        }
        assert_eq!(
            range("::ffff:169.254.169.254"),
            range("169.254.169.254"),
            "a mapped address is judged as the IPv4 address it reaches"
        );
    }

    #[test]
    fn public_addresses_are_not_special() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(range(address), None, "{address} should be public");
        }
    }
}
