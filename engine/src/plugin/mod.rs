//! The WebAssembly plugin host.
//!
//! Plugins are components targeting one world of `plugins/sdk/wit/v0.1.0` (classifier, connector,
//! reply-generator). The host keeps one wasmtime [`Engine`] with the pooling allocator and epoch
//! interruption, compiles each component once (cached on disk), checks its imports against its
//! world, its manifest and the operator's grant, and keeps an `InstancePre` for it. Every call
//! gets a fresh store with the plugin's limits: a CPU budget (time on the CPU counted in epoch
//! ticks, or fuel), a memory limit, a wall-clock timeout that covers host calls, and input and
//! output size limits. A plugin that traps, loops or runs out of memory fails its call with a
//! [`CallError`]; the engine goes on.
//!
//! Code compiled to count fuel counts it whatever the store says, so plugins metered with fuel
//! run on an engine of their own, built when the first of them loads.

mod api;
mod bindings;
mod cache;
mod calls;
mod egress;
mod error;
mod grant;
mod kv_quota;
mod limits;
mod manifest;
mod sandbox;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config as WasmtimeConfig, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    Store, Trap, UpdateDeadline,
};

pub use api::{
    ConnectorCall, Context, Draft, Intent, PluginFailure, TextInput, call_input_example,
    call_input_help,
};
pub use calls::PluginCalls;
pub use egress::{NameLookup, SystemLookup};
pub use error::{CallError, LoadError};
pub use grant::{Credential, EffectiveGrant, Grant};
pub use kv_quota::KvUsage;
pub use limits::{CpuMeter, Limits, LimitsOverride};
pub use manifest::{Capability, Manifest, World};

use bindings::host::smsflow::plugin as host_interfaces;
use cache::CompileCache;
use egress::HttpClients;
use kv_quota::KvShare;
use sandbox::{CallState, Services};

/// Component imports of our own interfaces start with this...
const WIT_PACKAGE_PREFIX: &str = "smsflow:plugin/";
/// ...and end with this.
const WIT_VERSION_SUFFIX: &str = "@0.1.0";
/// The largest memory any plugin may be granted; the pooling allocator reserves slots this big.
const MAX_MEMORY_BYTES: usize = 256 << 20;
/// How often the epoch advances: a looping plugin yields to the runtime at this interval, so
/// its timeout can fire, and an epoch-metered plugin's CPU time is counted in these.
const EPOCH_TICK_MS: u64 = 2;
const EPOCH_TICK: Duration = Duration::from_millis(EPOCH_TICK_MS);

/// The `[plugins]` section of `smsflow.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// The folder of built plugins: `<name>.wasm` with `<name>.plugin.toml` beside it.
    #[serde(default = "default_plugins_dir")]
    pub dir: PathBuf,
    /// Where compiled plugins are cached; none to compile at every start.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: Option<PathBuf>,
    /// Plugin calls running at once; further calls wait for a slot.
    #[serde(default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: u32,
    /// Limits for every plugin, unless its grant overrides them.
    #[serde(default)]
    pub limits: Limits,
    /// What each plugin is granted, by plugin name.
    #[serde(default)]
    pub grants: BTreeMap<String, Grant>,
}

impl PluginsConfig {
    /// What the flow tools (`smsflow check`, `smsflow test`) grant a plugin: the operator's
    /// grant when there is one, else what its manifest asks for, with no HTTP origins and no
    /// settings.
    pub fn tool_grant(&self, manifest: &Manifest) -> Grant {
        self.grants
            .get(&manifest.name)
            .cloned()
            .unwrap_or_else(|| Grant {
                capabilities: manifest.capabilities.clone(),
                ..Grant::default()
            })
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: default_plugins_dir(),
            cache_dir: default_cache_dir(),
            max_concurrent_calls: default_max_concurrent_calls(),
            limits: Limits::default(),
            grants: BTreeMap::new(),
        }
    }
}

fn default_plugins_dir() -> PathBuf {
    PathBuf::from("target/plugins")
}

fn default_cache_dir() -> Option<PathBuf> {
    Some(PathBuf::from("target/plugin-cache"))
}

fn default_max_concurrent_calls() -> u32 {
    64
}

/// A loaded plugin.
#[derive(Debug)]
pub struct Plugin {
    /// Its manifest.
    pub manifest: Manifest,
    /// The component file it was loaded from.
    pub path: PathBuf,
    /// The component's size in bytes.
    pub size: usize,
    /// What it may do and use.
    pub grant: Arc<EffectiveGrant>,
    /// The names of the component's imports.
    pub imports: Vec<String>,
    /// The names of the component's exports.
    pub exports: Vec<String>,
    /// For a classifier, the intents it says it can return.
    pub intents: Vec<String>,
    name: Arc<str>,
    kv: Arc<KvShare>,
    pre: WorldPre,
}

impl WorldPre {
    /// The engine the plugin was compiled for; its stores must belong to it.
    fn engine(&self) -> &Engine {
        match self {
            Self::Classifier(pre) => pre.engine(),
            Self::Connector(pre) => pre.engine(),
            Self::ReplyGenerator(pre) => pre.engine(),
        }
    }
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How much of the key-value store it holds.
    pub fn kv_usage(&self) -> KvUsage {
        self.kv.usage()
    }
}

enum WorldPre {
    Classifier(bindings::classifier::ClassifierPre<CallState>),
    Connector(bindings::connector::ConnectorPre<CallState>),
    ReplyGenerator(bindings::reply_generator::ReplyGeneratorPre<CallState>),
}

impl std::fmt::Debug for WorldPre {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Classifier(_) => "Classifier",
            Self::Connector(_) => "Connector",
            Self::ReplyGenerator(_) => "ReplyGenerator",
        })
    }
}

/// One wasmtime engine, its linker and its compiled-code cache.
struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache: CompileCache,
}

/// What every runtime is built with.
#[derive(Debug, Clone)]
struct RuntimeSettings {
    max_concurrent_calls: u32,
    cache_dir: Option<PathBuf>,
}

impl Runtime {
    /// An engine whose code counts CPU with `meter`, with the host's imports linked.
    fn new(meter: CpuMeter, settings: &RuntimeSettings) -> anyhow::Result<Self> {
        let engine = build_engine(settings.max_concurrent_calls, meter)?;
        spawn_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        // Every interface of the `host` world; the import check at load narrows what each
        // plugin may actually import.
        bindings::host::Host_::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)?;
        Ok(Self {
            cache: CompileCache::new(&engine, settings.cache_dir.clone()),
            engine,
            linker,
        })
    }
}

/// Loads plugins and runs calls into them, each in its own sandbox.
pub struct PluginHost {
    /// An engine per CPU meter in use; the default meter's is built with the host.
    runtimes: BTreeMap<CpuMeter, Runtime>,
    /// What a runtime built later is built with.
    settings: RuntimeSettings,
    services: Services,
    slots: Arc<Semaphore>,
    defaults: Limits,
    plugins: BTreeMap<String, Arc<Plugin>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugins", &self.plugins.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// A host with no plugins loaded yet.
    ///
    /// # Errors
    ///
    /// When wasmtime cannot be configured (it falls back from the pooling allocator to
    /// on-demand allocation when the machine's address space is short), or the HTTP client
    /// cannot be built.
    pub fn new(
        config: &PluginsConfig,
        kv: crate::store::plugin_kv::PluginKv,
        clock: crate::clock::SharedClock,
    ) -> anyhow::Result<Self> {
        Self::with_lookup(config, kv, clock, Arc::new(SystemLookup))
    }

    /// A host whose plugins' HTTP requests resolve names with `lookup` instead of the system's
    /// resolver (tests answer names without DNS). The addresses it answers are checked as the
    /// system's would be: a name resolving to a loopback, private or link-local address is
    /// refused unless the plugin's grant says `private_network = true`.
    ///
    /// # Errors
    ///
    /// As [`PluginHost::new`].
    pub fn with_lookup(
        config: &PluginsConfig,
        kv: crate::store::plugin_kv::PluginKv,
        clock: crate::clock::SharedClock,
        lookup: Arc<dyn NameLookup>,
    ) -> anyhow::Result<Self> {
        let settings = RuntimeSettings {
            max_concurrent_calls: config.max_concurrent_calls,
            cache_dir: config.cache_dir.clone(),
        };
        let meter = config.limits.cpu;
        let runtimes = BTreeMap::from([(meter, Runtime::new(meter, &settings)?)]);
        let http = HttpClients::new(lookup)?;
        Ok(Self {
            runtimes,
            settings,
            services: Services { kv, http, clock },
            slots: Arc::new(Semaphore::new(config.max_concurrent_calls.max(1) as usize)),
            defaults: config.limits.clone(),
            plugins: BTreeMap::new(),
        })
    }

    /// Loads every `*.wasm` in `config.dir` with the grants in `config`.
    ///
    /// # Errors
    ///
    /// The first plugin that fails to load, or the folder being unreadable. A missing folder
    /// is an error too: the operator named it.
    pub async fn load_dir(&mut self, config: &PluginsConfig) -> anyhow::Result<()> {
        self.load_dir_with(&config.dir, |manifest| {
            config
                .grants
                .get(&manifest.name)
                .cloned()
                .unwrap_or_default()
        })
        .await
    }

    /// Loads every `*.wasm` in `dir`, asking `grant_for` what each plugin is granted. The
    /// flow tools (`smsflow check`, `smsflow test`) use it to grant what a manifest asks for.
    ///
    /// # Errors
    ///
    /// As [`PluginHost::load_dir`].
    pub async fn load_dir_with(
        &mut self,
        dir: &Path,
        grant_for: impl Fn(&Manifest) -> Grant,
    ) -> anyhow::Result<()> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "cannot read the plugins folder {} (build the plugins with `just plugins`)",
                dir.display()
            )
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "wasm")
            })
            .collect();
        paths.sort();
        for path in paths {
            let manifest = Manifest::from_file(&Manifest::path_for(&path))?;
            let grant = grant_for(&manifest);
            self.load(&path, manifest, &grant).await?;
        }
        Ok(())
    }

    /// Loads one component with its manifest and the operator's grant for it.
    ///
    /// # Errors
    ///
    /// A [`LoadError`] saying what is wrong: an unreadable or invalid file, a core module
    /// instead of a component, an import outside the plugin's world, manifest or grant, missing
    /// exports, or a name already taken. Nothing is registered on error.
    pub async fn load(
        &mut self,
        path: &Path,
        manifest: Manifest,
        grant: &Grant,
    ) -> Result<Arc<Plugin>, LoadError> {
        let plugin = manifest.name.clone();
        if let Some(existing) = self.plugins.get(&plugin) {
            return Err(LoadError::Duplicate {
                plugin,
                first: existing.path.clone(),
                second: path.to_owned(),
            });
        }
        let effective = EffectiveGrant::new(&manifest, grant, &self.defaults)?;
        if effective.limits.memory_bytes > MAX_MEMORY_BYTES {
            return Err(LoadError::Grant {
                plugin,
                message: format!("memory_bytes is over the host's maximum of {MAX_MEMORY_BYTES}"),
            });
        }
        let runtime = self.runtime(effective.limits.cpu, &plugin)?;
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        if wasmparser::Parser::is_core_wasm(&bytes) {
            return Err(LoadError::CoreModule {
                plugin,
                path: path.to_owned(),
            });
        }
        let invalid = |message: String| LoadError::Invalid {
            plugin: plugin.clone(),
            path: path.to_owned(),
            message,
        };
        if !wasmparser::Parser::is_component(&bytes) {
            return Err(invalid(
                "the file does not start with a component header".into(),
            ));
        }
        let component = runtime
            .cache
            .load(&runtime.engine, &bytes)
            .map_err(|error| invalid(format!("{error:#}")))?;
        let component_type = component.component_type();
        let imports: Vec<String> = component_type
            .imports(&runtime.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports: Vec<String> = component_type
            .exports(&runtime.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        for import in &imports {
            check_import(&manifest, &effective, import).map_err(|reason| {
                LoadError::ForbiddenImport {
                    plugin: plugin.clone(),
                    import: import.clone(),
                    reason,
                }
            })?;
        }
        let mismatch = |error: wasmtime::Error| LoadError::WorldMismatch {
            plugin: plugin.clone(),
            world: manifest.world,
            message: format!("{error:#}"),
        };
        let instance_pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(mismatch)?;
        let pre = match manifest.world {
            World::Classifier => WorldPre::Classifier(
                bindings::classifier::ClassifierPre::new(instance_pre).map_err(mismatch)?,
            ),
            World::Connector => WorldPre::Connector(
                bindings::connector::ConnectorPre::new(instance_pre).map_err(mismatch)?,
            ),
            World::ReplyGenerator => WorldPre::ReplyGenerator(
                bindings::reply_generator::ReplyGeneratorPre::new(instance_pre)
                    .map_err(mismatch)?,
            ),
        };
        let name: Arc<str> = Arc::from(plugin.as_str());
        let kv = KvShare::open(self.services.kv.clone(), Arc::clone(&name)).map_err(|error| {
            LoadError::Store {
                plugin: plugin.clone(),
                message: error.to_string(),
            }
        })?;
        let mut loaded = Plugin {
            name,
            kv: Arc::new(kv),
            manifest,
            path: path.to_owned(),
            size: bytes.len(),
            grant: Arc::new(effective),
            imports,
            exports,
            intents: Vec::new(),
            pre,
        };
        if let WorldPre::Classifier(pre) = &loaded.pre {
            loaded.intents = self
                .sandboxed(&loaded, 0, async |store| {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance.call_intents(&mut *store).await.map(Ok)
                })
                .await
                .map_err(|error| LoadError::WorldMismatch {
                    plugin: plugin.clone(),
                    world: World::Classifier,
                    message: format!("`intents()` failed: {error}"),
                })?;
        }
        let loaded = Arc::new(loaded);
        self.plugins.insert(plugin, Arc::clone(&loaded));
        Ok(loaded)
    }

    /// The runtime for plugins metered with `meter`, built on first use.
    fn runtime(&mut self, meter: CpuMeter, plugin: &str) -> Result<&Runtime, LoadError> {
        match self.runtimes.entry(meter) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let runtime =
                    Runtime::new(meter, &self.settings).map_err(|error| LoadError::Grant {
                        plugin: plugin.to_owned(),
                        message: format!(
                            "cannot set up the engine for cpu = \"{meter}\" ({error:#}); the other meter may work"
                        ),
                    })?;
                Ok(entry.insert(runtime))
            }
        }
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(name)
    }

    /// Every loaded plugin, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }

    /// Classifies `text` with the classifier plugin `plugin`.
    ///
    /// # Errors
    ///
    /// A [`CallError`]: the plugin is not loaded or not a classifier, the input or output is
    /// over its limit, it ran out of CPU, memory or time, it trapped, or it reported an error.
    pub async fn classify(
        &self,
        plugin: &str,
        text: &str,
        context: &Context,
    ) -> Result<Intent, CallError> {
        let loaded = self.plugin(plugin)?;
        let WorldPre::Classifier(pre) = &loaded.pre else {
            return Err(wrong_world(loaded, World::Classifier));
        };
        let wit_context = context.to_wit();
        let intent = self
            .sandboxed(loaded, text.len() + context.size(), async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .call_classify(&mut *store, text, &wit_context)
                    .await
            })
            .await?;
        let intent = Intent::from(intent);
        check_output(loaded, intent.size())?;
        Ok(intent)
    }

    /// Asks the reply-generator plugin `plugin` for a draft reply to `text`.
    ///
    /// # Errors
    ///
    /// As [`PluginHost::classify`].
    pub async fn draft_reply(
        &self,
        plugin: &str,
        text: &str,
        context: &Context,
    ) -> Result<Draft, CallError> {
        let loaded = self.plugin(plugin)?;
        let WorldPre::ReplyGenerator(pre) = &loaded.pre else {
            return Err(wrong_world(loaded, World::ReplyGenerator));
        };
        let wit_context = context.to_wit();
        let draft = self
            .sandboxed(loaded, text.len() + context.size(), async |store| {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance
                    .call_draft_reply(&mut *store, text, &wit_context)
                    .await
            })
            .await?;
        let draft = Draft::from(draft);
        check_output(loaded, draft.size())?;
        Ok(draft)
    }

    /// Runs a lookup or a write on the connector plugin `plugin`; the result's fields become
    /// conversation fields.
    ///
    /// # Errors
    ///
    /// As [`PluginHost::classify`].
    pub async fn connect(
        &self,
        plugin: &str,
        call: &ConnectorCall,
    ) -> Result<BTreeMap<String, String>, CallError> {
        let loaded = self.plugin(plugin)?;
        let WorldPre::Connector(pre) = &loaded.pre else {
            return Err(wrong_world(loaded, World::Connector));
        };
        let fields = match call {
            ConnectorCall::Lookup {
                entity,
                key,
                context,
            } => {
                let wit_context = context.to_wit();
                let input_size = entity.len() + key.len() + context.size();
                self.sandboxed(loaded, input_size, async |store| {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance
                        .call_lookup(&mut *store, entity, key, &wit_context)
                        .await
                })
                .await?
            }
            ConnectorCall::Write {
                entity,
                fields,
                context,
            } => {
                let wit_context = context.to_wit();
                let wit_fields = api::fields_to_wit(fields);
                let input_size = entity.len() + api::fields_size(fields) + context.size();
                self.sandboxed(loaded, input_size, async |store| {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    instance
                        .call_write(&mut *store, entity, &wit_fields, &wit_context)
                        .await
                })
                .await?
            }
        };
        let fields = api::fields_from_wit(fields);
        check_output(loaded, api::fields_size(&fields))?;
        Ok(fields)
    }

    /// Runs one call given as JSON (`smsflow plugin call`) and returns its result as JSON.
    ///
    /// # Errors
    ///
    /// [`CallError::BadInput`] when `input` does not fit the plugin's world; otherwise as
    /// [`PluginHost::classify`].
    pub async fn call_json(
        &self,
        plugin: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let world = self.plugin(plugin)?.manifest.world;
        let result = match world {
            World::Classifier => {
                let input: TextInput = call_input(plugin, world, input)?;
                serde_json::to_value(self.classify(plugin, &input.text, &input.context).await?)
            }
            World::ReplyGenerator => {
                let input: TextInput = call_input(plugin, world, input)?;
                serde_json::to_value(
                    self.draft_reply(plugin, &input.text, &input.context)
                        .await?,
                )
            }
            World::Connector => {
                let call: ConnectorCall = call_input(plugin, world, input)?;
                serde_json::to_value(self.connect(plugin, &call).await?)
            }
        };
        result.map_err(|error| CallError::BadInput {
            plugin: plugin.to_owned(),
            message: format!("result is not JSON: {error}"),
        })
    }

    fn plugin(&self, name: &str) -> Result<&Arc<Plugin>, CallError> {
        self.plugins.get(name).ok_or_else(|| CallError::NotLoaded {
            plugin: name.to_owned(),
        })
    }

    /// Runs `call` in a fresh store with the plugin's limits, and turns every way it can fail
    /// into a [`CallError`] naming the plugin and the limit; timed and counted for `/metrics`.
    async fn sandboxed<T>(
        &self,
        plugin: &Plugin,
        input_size: usize,
        call: impl AsyncFnOnce(
            &mut Store<CallState>,
        )
            -> wasmtime::Result<Result<T, host_interfaces::types::PluginError>>,
    ) -> Result<T, CallError> {
        let began = Instant::now();
        let result = self.sandboxed_call(plugin, input_size, call).await;
        let metrics = crate::metrics::instruments();
        let name = plugin.name();
        crate::metrics::observe(&metrics.plugin_calls, &[("plugin", name)], began.elapsed());
        if let Err(error) = &result {
            crate::metrics::count(
                &metrics.plugin_errors,
                &[("plugin", name), ("kind", error.kind())],
            );
        }
        result
    }

    async fn sandboxed_call<T>(
        &self,
        plugin: &Plugin,
        input_size: usize,
        call: impl AsyncFnOnce(
            &mut Store<CallState>,
        )
            -> wasmtime::Result<Result<T, host_interfaces::types::PluginError>>,
    ) -> Result<T, CallError> {
        let limits = &plugin.grant.limits;
        let name = plugin.name().to_owned();
        if input_size > limits.max_input_bytes {
            return Err(CallError::InputTooLarge {
                plugin: name,
                actual: input_size,
                limit: limits.max_input_bytes,
            });
        }
        let timeout = Duration::from_millis(limits.timeout_ms);
        let started = Instant::now();
        // The wait for a free slot counts against the timeout too: the caller waits no longer.
        let Ok(Ok(_slot)) = tokio::time::timeout(timeout, self.slots.acquire()).await else {
            return Err(CallError::Timeout {
                plugin: name,
                timeout_ms: limits.timeout_ms,
            });
        };
        let mut store = Store::new(
            plugin.pre.engine(),
            CallState::new(
                Arc::clone(&plugin.name),
                Arc::clone(&plugin.grant),
                Arc::clone(&plugin.kv),
                self.services.clone(),
            ),
        );
        store.limiter(|state| state);
        store.set_hostcall_fuel(limits.hostcall_fuel());
        set_cpu_budget(&mut store, limits).map_err(|error| CallError::Trap {
            plugin: name.clone(),
            message: format!("cannot set the CPU budget: {error}"),
        })?;
        let remaining = timeout.saturating_sub(started.elapsed());
        let outcome = tokio::time::timeout(remaining, call(&mut store)).await;
        tracing::debug!(
            plugin = &*plugin.name,
            fuel_used = store
                .get_fuel()
                .map(|left| limits.cpu_fuel.saturating_sub(left))
                .ok(),
            elapsed_us = started.elapsed().as_micros(),
            "plugin call"
        );
        match outcome {
            Err(_elapsed) => Err(CallError::Timeout {
                plugin: name,
                timeout_ms: limits.timeout_ms,
            }),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(failure))) => {
                let failure = PluginFailure::from(failure);
                check_output(plugin, failure.size())?;
                Err(CallError::Plugin {
                    plugin: name,
                    failure,
                })
            }
            Ok(Err(error)) => Err(classify_trap(plugin, &store, &error)),
        }
    }
}

/// Why an import is refused, or `Ok` when the plugin may have it.
fn check_import(manifest: &Manifest, grant: &EffectiveGrant, import: &str) -> Result<(), String> {
    if import == format!("{WIT_PACKAGE_PREFIX}types{WIT_VERSION_SUFFIX}") {
        return Ok(());
    }
    let Some(capability) = Capability::from_import_name(import) else {
        return Err(if import.starts_with("wasi:") {
            "plugins get no WASI; only the smsflow:plugin@0.1.0 interfaces of their world".into()
        } else {
            format!(
                "it is not an interface of smsflow:plugin@0.1.0, whose interfaces are types, {}",
                Capability::ALL.map(Capability::interface).join(", ")
            )
        });
    };
    if !manifest.world.imports().contains(&capability) {
        return Err(format!(
            "`{capability}` is not part of the {} world",
            manifest.world
        ));
    }
    if !capability.always_granted() && !manifest.capabilities.contains(&capability) {
        return Err(format!(
            "`{capability}` is not listed in the plugin manifest's capabilities"
        ));
    }
    if !grant.capabilities.contains(&capability) {
        return Err(format!("`{capability}` is not granted by the operator"));
    }
    Ok(())
}

/// `input` read as what a plugin of `world` takes; the error says what that is, with an example,
/// rather than serde's "did not match any variant".
fn call_input<T: serde::de::DeserializeOwned>(
    plugin: &str,
    world: World,
    input: serde_json::Value,
) -> Result<T, CallError> {
    serde_json::from_value(input).map_err(|error| CallError::BadInput {
        plugin: plugin.to_owned(),
        message: format!(
            "{}; this input does not fit: {error}",
            call_input_help(world)
        ),
    })
}

fn wrong_world(plugin: &Plugin, expected: World) -> CallError {
    CallError::WrongWorld {
        plugin: plugin.name().to_owned(),
        actual: plugin.manifest.world,
        expected,
    }
}

fn check_output(plugin: &Plugin, size: usize) -> Result<(), CallError> {
    let limit = plugin.grant.limits.max_output_bytes;
    if size > limit {
        return Err(CallError::OutputTooLarge {
            plugin: plugin.name().to_owned(),
            actual: size,
            limit,
        });
    }
    Ok(())
}

fn classify_trap(plugin: &Plugin, store: &Store<CallState>, error: &wasmtime::Error) -> CallError {
    let name = plugin.name().to_owned();
    let limits = &plugin.grant.limits;
    if let Some(desired) = store.data().memory_refused {
        return CallError::MemoryLimitExceeded {
            plugin: name,
            desired,
            limit: limits.memory_bytes,
        };
    }
    if error.downcast_ref::<CpuTimeExhausted>().is_some() {
        return CallError::CpuTimeExceeded {
            plugin: name,
            cpu_ms: limits.cpu_ms,
        };
    }
    if is_hostcall_fuel_exhausted(error) {
        return CallError::TransferTooLarge {
            plugin: name,
            limit: limits.hostcall_fuel(),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::CpuBudgetExceeded {
            plugin: name,
            fuel: limits.cpu_fuel,
        },
        _ => CallError::Trap {
            plugin: name,
            message: trap_message(error),
        },
    }
}

/// What a trap says, cause by cause: wasmtime wraps a host import's refusal (a bad pointer,
/// an enum out of range) in a context line that only points at the backtrace, which is left
/// out, as is every backtrace.
fn trap_message(error: &wasmtime::Error) -> String {
    let causes: Vec<String> = error
        .chain()
        .filter_map(|cause| cause.to_string().lines().next().map(str::to_owned))
        .filter(|line| {
            !line.is_empty() && !line.starts_with("error while executing at wasm backtrace")
        })
        .collect();
    if causes.is_empty() {
        "unknown trap".to_owned()
    } else {
        causes.join(": ")
    }
}

/// Whether wasmtime stopped the call for copying more than the store's hostcall fuel allows.
/// Its error type is private, so it is known by its message; a test that returns too much data
/// notices if the message changes.
fn is_hostcall_fuel_exhausted(error: &wasmtime::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().contains("fuel allocated for hostcalls"))
}

/// What the epoch callback of an epoch-metered call returns once its CPU budget is spent.
#[derive(Debug)]
struct CpuTimeExhausted;

impl std::fmt::Display for CpuTimeExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU time budget exhausted")
    }
}

impl std::error::Error for CpuTimeExhausted {}

/// Gives the store its CPU budget, and makes the plugin yield to the runtime at every epoch
/// tick so the wall-clock timeout can fire even while it computes (the timeout also covers its
/// host calls).
fn set_cpu_budget(store: &mut Store<CallState>, limits: &Limits) -> wasmtime::Result<()> {
    // A new store's deadline is epoch 0, long passed: without this every call stopped to
    // yield at its first function entry.
    store.set_epoch_deadline(1);
    match limits.cpu {
        CpuMeter::Fuel => {
            store.set_fuel(limits.cpu_fuel)?;
            store.epoch_deadline_async_yield_and_update(1);
        }
        CpuMeter::Epoch => {
            // The callback runs once per tick the plugin's code sees, so it counts the time the
            // code runs, to within a tick; time spent in host calls is at most one tick each.
            let budget = (limits.cpu_ms / EPOCH_TICK_MS).max(1);
            let mut ticks = 0;
            store.epoch_deadline_callback(move |_| {
                ticks += 1;
                if ticks > budget {
                    return Err(wasmtime::Error::new(CpuTimeExhausted));
                }
                Ok(UpdateDeadline::Yield(1))
            });
        }
    }
    Ok(())
}

fn build_engine(max_concurrent_calls: u32, meter: CpuMeter) -> anyhow::Result<Engine> {
    let mut config = WasmtimeConfig::new();
    config
        .epoch_interruption(true)
        .consume_fuel(meter == CpuMeter::Fuel)
        // The data segments are mapped copy-on-write once per pool slot: with the page scan
        // below, pages a call only read (a classifier's tables) are neither copied in nor reset
        // (keyword-intents: 10.4 µs copying its 16 KB at each instantiation, 9.4 µs mapped).
        .memory_init_cow(true);
    let slots = max_concurrent_calls.max(1);
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(slots)
        .total_core_instances(slots * 4)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        .max_memory_size(MAX_MEMORY_BYTES)
        // Memory kept resident is reset with a memset instead of a page-table round trip, and
        // the PAGEMAP_SCAN ioctl (Linux 6.7+) finds the pages a call wrote, so only those are
        // reset: a Rust plugin's 1 MiB stack was memset whole after every call, 40% of a
        // keyword-intents call (faq-replies: 58.5 µs without the scan, 33.4 µs with it).
        // BENCHMARKS.md has the measurements.
        .linear_memory_keep_resident(4 << 20)
        .pagemap_scan(Enabled::Auto)
        .table_keep_resident(1 << 16);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(error) => {
            // Spin does the same: a machine with little virtual address space (a ulimit, some
            // containers) cannot reserve the pool; on-demand allocation is slower but works.
            tracing::warn!(%error, "pooling allocator unavailable, falling back to on-demand allocation");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).map_err(anyhow::Error::from)
        }
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("smsflow-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the epoch ticker: plugin timeouts will not interrupt running code");
    }
}
