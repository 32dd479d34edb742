//! The flows in service, and every version a conversation may still be pinned to.
//!
//! Installing a new set of flows (at start, or when a file changes) only changes which version
//! *new* runs start on. Each version's text is stored in the store, so after a restart a conversation
//! pinned to a version whose file has since changed is rebuilt from that stored text.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow};

use super::check::CheckLimits;
use super::compile::compile;
use super::conversation::FlowRef;
use super::{Diagnostic, Flow, check};
use crate::plugin::PluginHost;
use crate::store::flow_versions::FlowVersions;

/// The flows new runs start on.
#[derive(Debug, Default)]
pub struct FlowSet {
    /// By id.
    pub by_id: BTreeMap<String, Arc<Flow>>,
    /// Normalised keyword to flow id.
    pub keywords: BTreeMap<String, String>,
    /// The catch-all flow's id.
    pub catch_all: Option<String>,
}

impl FlowSet {
    fn new(flows: impl IntoIterator<Item = Arc<Flow>>) -> Self {
        let mut set = FlowSet::default();
        for flow in flows {
            for keyword in &flow.triggers.keywords {
                set.keywords.insert(keyword.clone(), flow.id.clone());
            }
            if flow.triggers.catch_all {
                set.catch_all = Some(flow.id.clone());
            }
            set.by_id.insert(flow.id.clone(), flow);
        }
        set
    }
}

/// Flows in service and pinned versions.
#[derive(Debug)]
pub struct Registry {
    current: RwLock<Arc<FlowSet>>,
    versions: Mutex<HashMap<(String, String), Arc<Flow>>>,
    sources: FlowVersions,
    /// What reloaded flows are checked against: a flow the gate would refuse to send from is
    /// refused here instead.
    limits: CheckLimits,
}

impl Registry {
    /// An empty registry storing version texts in `sources`, checking the flows it loads
    /// against `limits`.
    pub fn new(sources: FlowVersions, limits: CheckLimits) -> Self {
        Self {
            current: RwLock::new(Arc::new(FlowSet::default())),
            versions: Mutex::new(HashMap::new()),
            sources,
            limits,
        }
    }

    /// Puts `flows` in service, replacing the previous set.
    ///
    /// # Errors
    ///
    /// When a version's text cannot be stored.
    pub fn install(&self, flows: Vec<Flow>) -> anyhow::Result<()> {
        let flows: Vec<Arc<Flow>> = flows.into_iter().map(Arc::new).collect();
        let mut versions = self
            .versions
            .lock()
            .map_err(|_| anyhow!("flow versions lock poisoned"))?;
        for flow in &flows {
            self.sources
                .insert(&flow.id, &flow.version, &flow.source)
                .context("cannot store a flow version")?;
            versions.insert((flow.id.clone(), flow.version.clone()), Arc::clone(flow));
        }
        drop(versions);
        let set = Arc::new(FlowSet::new(flows));
        *self
            .current
            .write()
            .map_err(|_| anyhow!("flow set lock poisoned"))? = set;
        Ok(())
    }

    /// The flows new runs start on.
    pub fn current(&self) -> Arc<FlowSet> {
        self.current.read().map_or_else(
            |poisoned| Arc::clone(&poisoned.into_inner()),
            |set| Arc::clone(&set),
        )
    }

    /// The weights of flow `flow`'s first split, as its current version has them.
    pub fn split_weights(&self, flow: Option<&str>) -> Vec<(String, f64)> {
        let flows = self.current();
        flow.and_then(|id| flows.by_id.get(id))
            .map(|flow| flow.split_weights())
            .unwrap_or_default()
    }

    /// The exact version a run is pinned to.
    ///
    /// # Errors
    ///
    /// When the version was never installed in this store, or its stored text no longer
    /// compiles (which would take an engine change).
    pub fn pinned(&self, flow: &FlowRef) -> anyhow::Result<Arc<Flow>> {
        let key = (flow.id.clone(), flow.version.clone());
        if let Some(found) = self
            .versions
            .lock()
            .map_err(|_| anyhow!("flow versions lock poisoned"))?
            .get(&key)
        {
            return Ok(Arc::clone(found));
        }
        let source = self
            .sources
            .get(&flow.id, &flow.version)
            .context("cannot read a stored flow version")?
            .with_context(|| {
                format!(
                    "flow `{}` version {} is not in the store",
                    flow.id, flow.version
                )
            })?;
        let path = Path::new("(stored)").join(format!("{}@{}.toml", flow.id, flow.version));
        let compiled = compile(&path, &source).map_err(|errors| {
            anyhow!(
                "stored flow `{}` version {} no longer compiles: {}",
                flow.id,
                flow.version,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        let compiled = Arc::new(compiled);
        self.versions
            .lock()
            .map_err(|_| anyhow!("flow versions lock poisoned"))?
            .insert(key, Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Loads and checks the flows at `dir` (against the plugins and the registry's limits) and
    /// installs them if they are all good; on any problem nothing changes and the problems are
    /// returned.
    ///
    /// # Errors
    ///
    /// The problems found, or a storage failure as a single diagnostic.
    pub fn reload(&self, dir: &Path, plugins: &PluginHost) -> Result<usize, Vec<Diagnostic>> {
        let loaded = check::load(dir, Some(plugins), &self.limits);
        if !loaded.errors.is_empty() {
            return Err(loaded.errors);
        }
        let count = loaded.flows.len();
        self.install(loaded.flows).map_err(|error| {
            vec![Diagnostic {
                path: dir.to_owned(),
                at: super::Location { line: 1, column: 1 },
                message: format!("{error:#}"),
            }]
        })?;
        Ok(count)
    }

    /// Reloads `dir` whenever its flow files change (checked every `interval`), until the
    /// task is dropped. A set with errors is logged and not installed: the running flows stay.
    pub async fn watch(self: Arc<Self>, dir: &Path, plugins: Arc<PluginHost>, interval: Duration) {
        let mut seen = fingerprint(dir);
        loop {
            tokio::time::sleep(interval).await;
            let now = fingerprint(dir);
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload(dir, &plugins) {
                Ok(count) => tracing::info!(count, dir = %dir.display(), "flows reloaded"),
                Err(errors) => {
                    for error in errors {
                        tracing::error!("flow not reloaded: {error}");
                    }
                }
            }
        }
    }
}

/// The names, sizes and modification times of the flow files: a change in any of them is a
/// change worth reloading for.
fn fingerprint(dir: &Path) -> Vec<(std::path::PathBuf, u64, Option<SystemTime>)> {
    check::flow_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|path| {
            let metadata = std::fs::metadata(&path).ok();
            let size = metadata.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = metadata.and_then(|metadata| metadata.modified().ok());
            (path, size, modified)
        })
        .collect()
}
