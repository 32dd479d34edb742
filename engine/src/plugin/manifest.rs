//! `<name>.plugin.toml` (or `plugin.toml`): what a plugin says about itself.

use std::path::Path;

use serde::Deserialize;

use super::error::LoadError;

/// The world a plugin targets: which kind of plugin it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Classifies an inbound text into an intent.
    Classifier,
    /// Looks records up in, and writes them to, a CRM or an API.
    Connector,
    /// Drafts a reply.
    ReplyGenerator,
}

impl World {
    /// The world's name in the WIT package.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classifier => "classifier",
            Self::Connector => "connector",
            Self::ReplyGenerator => "reply-generator",
        }
    }

    /// The host interfaces the world may import.
    pub fn imports(self) -> &'static [Capability] {
        use Capability::{Clock, Config, Http, Kv, Log};
        match self {
            Self::Classifier | Self::ReplyGenerator => &[Log, Clock, Config, Kv],
            Self::Connector => &[Log, Clock, Config, Kv, Http],
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A host interface a plugin may import. `log` and `clock` are always granted; the others must
/// be requested in the manifest and granted by the operator.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// `smsflow:plugin/log`.
    Log,
    /// `smsflow:plugin/clock`.
    Clock,
    /// `smsflow:plugin/config`: the operator's settings for the plugin.
    Config,
    /// `smsflow:plugin/kv`: a durable key-value store private to the plugin.
    Kv,
    /// `smsflow:plugin/http`: outbound HTTP to the operator's allow-list.
    Http,
}

impl Capability {
    /// Every capability, in WIT order.
    pub const ALL: [Self; 5] = [Self::Log, Self::Clock, Self::Config, Self::Kv, Self::Http];

    /// The interface's name in the WIT package (`log`, `http`, ...).
    pub fn interface(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Clock => "clock",
            Self::Config => "config",
            Self::Kv => "kv",
            Self::Http => "http",
        }
    }

    /// Whether every plugin gets this capability without asking.
    pub fn always_granted(self) -> bool {
        matches!(self, Self::Log | Self::Clock)
    }

    /// The capability whose interface a component imports under `import_name`
    /// (`smsflow:plugin/http@0.1.0`), if it is one of ours.
    pub fn from_import_name(import_name: &str) -> Option<Self> {
        let interface = import_name.strip_prefix(super::WIT_PACKAGE_PREFIX)?;
        let interface = interface.strip_suffix(super::WIT_VERSION_SUFFIX)?;
        Self::ALL
            .into_iter()
            .find(|capability| capability.interface() == interface)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.interface())
    }
}

/// The contents of a plugin's `plugin.toml`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name, as flows and the operator's grants refer to it: lower case letters,
    /// digits and dashes.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The world the component targets.
    pub world: World,
    /// One line on what the plugin does.
    #[serde(default)]
    pub description: String,
    /// Host interfaces the plugin asks for, besides `log` and `clock`.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

impl Manifest {
    /// Reads and checks a manifest file.
    ///
    /// # Errors
    ///
    /// [`LoadError::Manifest`] when the file cannot be read, is not valid TOML for a manifest
    /// (the message gives the line and column), has a bad name, or asks for a capability its
    /// world does not have.
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        let manifest_error = |message: String| LoadError::Manifest {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| manifest_error(read_error(path, &error)))?;
        let manifest: Self =
            toml::from_str(&text).map_err(|error| manifest_error(error.to_string()))?;
        manifest.check().map_err(manifest_error)?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), String> {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !valid_name {
            return Err(format!(
                "name `{}` must be 1-64 lower case letters, digits and dashes",
                self.name
            ));
        }
        if let Some(capability) = self
            .capabilities
            .iter()
            .find(|capability| !self.world.imports().contains(capability))
        {
            return Err(format!(
                "capability `{capability}` is not available to the {} world",
                self.world
            ));
        }
        Ok(())
    }

    /// The manifest path for a component file: `<stem>.plugin.toml` beside it, or else
    /// `plugin.toml` in the same folder when only that one exists. With neither, it is
    /// `<stem>.plugin.toml`, so the error [`Manifest::from_file`] gives names the file the
    /// developer should add (`smsflow plugin build` writes it).
    pub fn path_for(component: &Path) -> std::path::PathBuf {
        let stem = component
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let beside = component.with_file_name(format!("{stem}.plugin.toml"));
        let shared = component.with_file_name("plugin.toml");
        if !beside.exists() && shared.exists() {
            shared
        } else {
            beside
        }
    }
}

/// What to say when a manifest cannot be read: for a missing one, where it belongs.
fn read_error(path: &Path, error: &std::io::Error) -> String {
    if error.kind() != std::io::ErrorKind::NotFound {
        return error.to_string();
    }
    let file = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "not found: a plugin's manifest `{file}` goes beside its component \
         (`smsflow plugin build` writes both; from a crate, copy its manifest there)"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_components_own_manifest_wins_and_is_the_one_named_when_neither_exists() {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("greeter.wasm");
        let beside = dir.path().join("greeter.plugin.toml");
        let shared = dir.path().join("plugin.toml");
        assert_eq!(Manifest::path_for(&component), beside);
        std::fs::write(&shared, "").unwrap();
        assert_eq!(Manifest::path_for(&component), shared);
        std::fs::write(&beside, "").unwrap();
        assert_eq!(Manifest::path_for(&component), beside);
    }

    #[test]
    fn a_missing_manifest_is_named_with_where_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = Manifest::path_for(&dir.path().join("greeter.wasm"));
        let message = Manifest::from_file(&path).unwrap_err().to_string();
        assert!(
            message.contains("greeter.plugin.toml: not found")
                && message.contains("goes beside its component")
                && !message.contains("/plugin.toml"),
            "{message}"
        );
    }
}
