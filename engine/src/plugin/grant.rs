//! What the operator grants each plugin, in `smsflow.toml`, and the checks made with it.
//!
//! A plugin's manifest asks for capabilities; the operator grants them under
//! `[plugins.grants.<name>]`, along with the HTTP origins a connector may reach, the credentials
//! the host adds to those requests, the plugin's settings and its limits:
//!
//! ```toml
//! [plugins.grants.crm-notes]
//! capabilities = ["config", "http"]
//! http = ["https://api.hubapi.com"]
//! config = { base_url = "https://api.hubapi.com" }
//! credentials = [{ origin = "https://api.hubapi.com", env = "HUBSPOT_TOKEN", scheme = "Bearer" }]
//! limits = { timeout_ms = 8000 }
//! ```
//!
//! Granted names must resolve to public addresses (see `egress`); `private_network = true`
//! lets a plugin meant for an internal service reach private ones.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Origin, Url};

use super::error::LoadError;
use super::limits::{Limits, LimitsOverride};
use super::manifest::{Capability, Manifest};

/// The operator's grant for one plugin, as written in `smsflow.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Capabilities granted besides `log` and `clock`.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Origins (`https://api.example.com`, `http://127.0.0.1:9400`) the plugin may call.
    #[serde(default)]
    pub http: Vec<String>,
    /// Whether the granted names may resolve to loopback, private or link-local addresses (an
    /// internal CRM). Off, only origins written as IP literals reach such addresses.
    #[serde(default)]
    pub private_network: bool,
    /// Secrets the host adds to requests for an origin.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// The plugin's settings. Strings reach the plugin as they are; other values as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Overrides of the default limits.
    #[serde(default)]
    pub limits: LimitsOverride,
}

/// A secret the host adds to every request a plugin makes to `origin`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The origin the secret is for.
    pub origin: String,
    /// The header to set (default `authorization`).
    #[serde(default = "default_credential_header")]
    pub header: String,
    /// The environment variable holding the secret, read once at load.
    pub env: String,
    /// A scheme written before the secret, such as `Bearer`.
    #[serde(default)]
    pub scheme: Option<String>,
}

fn default_credential_header() -> String {
    "authorization".to_owned()
}

/// A grant checked against the plugin's manifest, with its origins parsed, secrets read and
/// limits merged: what the sandbox uses on every call.
#[derive(Debug, Clone)]
pub struct EffectiveGrant {
    /// Capabilities the plugin may import (always including `log` and `clock`).
    pub capabilities: BTreeSet<Capability>,
    /// Origins the plugin may call.
    pub http_origins: Vec<Origin>,
    /// Whether its names may resolve to non-public addresses ([`Grant::private_network`]).
    pub private_network: bool,
    /// Headers added to requests, by origin.
    pub credentials: Vec<(Origin, String, String)>,
    /// Settings, as the plugin reads them.
    pub config: BTreeMap<String, String>,
    /// Limits for each call.
    pub limits: Limits,
}

impl EffectiveGrant {
    /// Checks `grant` against what `manifest` asks for.
    ///
    /// # Errors
    ///
    /// [`LoadError::NotGranted`] when the manifest asks for a capability the grant lacks;
    /// [`LoadError::Grant`] for an origin that is not an `http(s)` URL, a credential for an
    /// origin that is not granted, a credential whose environment variable is unset, or limits
    /// that give a CPU budget for the other meter than the one they name.
    pub fn new(manifest: &Manifest, grant: &Grant, defaults: &Limits) -> Result<Self, LoadError> {
        let plugin = &manifest.name;
        let grant_error = |message: String| LoadError::Grant {
            plugin: plugin.clone(),
            message,
        };
        let mut capabilities: BTreeSet<Capability> = Capability::ALL
            .into_iter()
            .filter(|capability| capability.always_granted())
            .collect();
        for capability in &manifest.capabilities {
            if !capability.always_granted() && !grant.capabilities.contains(capability) {
                return Err(LoadError::NotGranted {
                    plugin: plugin.clone(),
                    capability: *capability,
                });
            }
            capabilities.insert(*capability);
        }
        let http_origins = grant
            .http
            .iter()
            .map(|origin| parse_origin(origin).map_err(&grant_error))
            .collect::<Result<Vec<_>, _>>()?;
        if !http_origins.is_empty() && !capabilities.contains(&Capability::Http) {
            return Err(grant_error(
                "`http` origins are listed but the plugin does not ask for the `http` capability"
                    .to_owned(),
            ));
        }
        let credentials = grant
            .credentials
            .iter()
            .map(|credential| {
                let origin = parse_origin(&credential.origin).map_err(&grant_error)?;
                if !http_origins.contains(&origin) {
                    return Err(grant_error(format!(
                        "credential for {} which is not in `http`",
                        credential.origin
                    )));
                }
                let secret = std::env::var(&credential.env).map_err(|_| {
                    grant_error(format!(
                        "credential for {} reads ${}, which is not set",
                        credential.origin, credential.env
                    ))
                })?;
                let value = match &credential.scheme {
                    Some(scheme) => format!("{scheme} {secret}"),
                    None => secret,
                };
                Ok((origin, credential.header.to_ascii_lowercase(), value))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = grant
            .config
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    toml::Value::String(text) => text.clone(),
                    other => serde_json::to_string(other)
                        .map_err(|error| grant_error(format!("config `{key}`: {error}")))?,
                };
                Ok((key.clone(), text))
            })
            .collect::<Result<BTreeMap<_, _>, LoadError>>()?;
        Ok(Self {
            capabilities,
            http_origins,
            private_network: grant.private_network,
            credentials,
            config,
            limits: defaults.with(&grant.limits).map_err(grant_error)?,
        })
    }

    /// Whether a request to `url` is allowed.
    pub fn allows(&self, url: &Url) -> bool {
        let origin = url.origin();
        self.http_origins.contains(&origin)
    }

    /// Whether an origin of the allow-list is the IP literal `address` (`http://127.0.0.1:9400`).
    pub fn names_address(&self, address: IpAddr) -> bool {
        self.http_origins.iter().any(|origin| match origin {
            Origin::Tuple(_, Host::Ipv4(v4), _) => IpAddr::V4(*v4) == address,
            Origin::Tuple(_, Host::Ipv6(v6), _) => IpAddr::V6(*v6) == address,
            _ => false,
        })
    }

    /// The headers to add to a request to `url`.
    pub fn credentials_for<'a>(&'a self, url: &Url) -> impl Iterator<Item = (&'a str, &'a str)> {
        let origin = url.origin();
        self.credentials
            .iter()
            .filter(move |(credential_origin, _, _)| *credential_origin == origin)
            .map(|(_, header, value)| (header.as_str(), value.as_str()))
    }
}

fn parse_origin(text: &str) -> Result<Origin, String> {
    let url = Url::parse(text).map_err(|error| format!("`{text}` is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` is not an http or https origin"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "`{text}` has a path or query; grant an origin (scheme, host and port) only"
        ));
    }
    Ok(url.origin())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plugin::manifest::World;

    fn manifest(capabilities: Vec<Capability>) -> Manifest {
        Manifest {
            name: "crm".into(),
            version: "0.1.0".into(),
            world: World::Connector,
            description: String::new(),
            capabilities,
        }
    }

    #[test]
    fn origins_match_with_and_without_default_port() {
        let grant = Grant {
            capabilities: vec![Capability::Http],
            http: vec!["https://api.example.com".into()],
            ..Grant::default()
        };
        let effective = EffectiveGrant::new(
            &manifest(vec![Capability::Http]),
            &grant,
            &Limits::default(),
        )
        .unwrap();
        assert!(effective.allows(&Url::parse("https://api.example.com:443/v1/x").unwrap()));
        assert!(!effective.allows(&Url::parse("http://api.example.com/v1/x").unwrap()));
        assert!(!effective.allows(&Url::parse("https://api.example.com.evil.io/").unwrap()));
        assert!(!effective.allows(&Url::parse("https://api.example.com:8443/").unwrap()));
    }

    #[test]
    fn a_capability_asked_for_but_not_granted_is_refused() {
        let error = EffectiveGrant::new(
            &manifest(vec![Capability::Http]),
            &Grant::default(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                LoadError::NotGranted {
                    capability: Capability::Http,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_credential_needs_its_secret_and_a_granted_origin() {
        let mut grant = Grant {
            capabilities: vec![Capability::Http],
            http: vec!["https://api.example.com".into()],
            credentials: vec![Credential {
                origin: "https://other.example.com".into(),
                header: "authorization".into(),
                env: "SMSFLOW_TEST_UNSET_SECRET".into(),
                scheme: Some("Bearer".into()),
            }],
            ..Grant::default()
        };
        let error = EffectiveGrant::new(
            &manifest(vec![Capability::Http]),
            &grant,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("not in `http`"), "{error}");
        grant.credentials[0].origin = "https://api.example.com".into();
        let error = EffectiveGrant::new(
            &manifest(vec![Capability::Http]),
            &grant,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("SMSFLOW_TEST_UNSET_SECRET"),
            "{error}"
        );
    }

    #[test]
    fn non_string_config_reaches_the_plugin_as_json() {
        let grant: Grant = toml::from_str(
            r#"
            capabilities = ["config"]
            [config]
            base_url = "http://x"
            faq = [{ keywords = ["hours"], answer = "9-5" }]
            "#,
        )
        .unwrap();
        let effective = EffectiveGrant::new(
            &manifest(vec![Capability::Config]),
            &grant,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(effective.config["base_url"], "http://x");
        assert_eq!(
            effective.config["faq"],
            r#"[{"answer":"9-5","keywords":["hours"]}]"#
        );
    }
}
