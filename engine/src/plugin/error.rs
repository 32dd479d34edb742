//! What can go wrong loading or calling a plugin. Every variant names the plugin.

use std::path::PathBuf;

use super::api::PluginFailure;
use super::manifest::World;

/// A plugin could not be loaded. Nothing is registered when loading fails.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component file cannot be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The component file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is missing or invalid.
    #[error("plugin manifest {path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with line and column when it is a syntax error.
        message: String,
    },
    /// The file is a core WebAssembly module, not a component.
    #[error(
        "plugin `{plugin}` ({path}) is a core WebAssembly module, not a component: \
         run `wasm-tools component new` on it (`just plugins` does)"
    )]
    CoreModule {
        /// The plugin's name.
        plugin: String,
        /// The file.
        path: PathBuf,
    },
    /// The file is not WebAssembly, or not valid.
    #[error("plugin `{plugin}` ({path}) is not a valid WebAssembly component: {message}")]
    Invalid {
        /// The plugin's name.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// What the validator said.
        message: String,
    },
    /// The component imports something it may not have.
    #[error("plugin `{plugin}` imports `{import}`, which is refused: {reason}")]
    ForbiddenImport {
        /// The plugin's name.
        plugin: String,
        /// The import's name, as the component spells it.
        import: String,
        /// Why it is refused.
        reason: String,
    },
    /// The manifest asks for a capability that the operator did not grant.
    #[error(
        "plugin `{plugin}` asks for the `{capability}` capability, which smsflow.toml does not grant \
         (add it to [plugins.grants.{plugin}] capabilities)"
    )]
    NotGranted {
        /// The plugin's name.
        plugin: String,
        /// The capability.
        capability: super::Capability,
    },
    /// The component does not export what its world requires.
    #[error("plugin `{plugin}` does not implement the {world} world: {message}")]
    WorldMismatch {
        /// The plugin's name.
        plugin: String,
        /// The world its manifest names.
        world: World,
        /// What is missing or mistyped.
        message: String,
    },
    /// The operator's grant is unusable (a bad origin, a missing secret).
    #[error("grant for plugin `{plugin}`: {message}")]
    Grant {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// Two plugins have the same name.
    #[error("two plugins are named `{plugin}`: {first} and {second}")]
    Duplicate {
        /// The name.
        plugin: String,
        /// The plugin already loaded.
        first: PathBuf,
        /// The plugin refused.
        second: PathBuf,
    },
    /// The store could not be read (the plugin's key-value usage).
    #[error("plugin `{plugin}`: cannot read its key-value usage from the store: {message}")]
    Store {
        /// The plugin's name.
        plugin: String,
        /// What the store said.
        message: String,
    },
    /// The compiled-code cache failed in a way that is not just a miss.
    #[error("plugin `{plugin}`: compiled-code cache: {message}")]
    Cache {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        message: String,
    },
}

/// A plugin call failed. The engine keeps serving; a flow takes the step's `on_error` route.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No plugin of that name is loaded.
    #[error("plugin `{plugin}` is not loaded")]
    NotLoaded {
        /// The name asked for.
        plugin: String,
    },
    /// The plugin is of another kind than the call needs.
    #[error("plugin `{plugin}` is a {actual} plugin, not a {expected}")]
    WrongWorld {
        /// The plugin's name.
        plugin: String,
        /// Its world.
        actual: World,
        /// The world the call needs.
        expected: World,
    },
    /// The call's input is over the plugin's input limit.
    #[error("plugin `{plugin}` input is {actual} bytes, over its limit of {limit} bytes")]
    InputTooLarge {
        /// The plugin's name.
        plugin: String,
        /// The input size.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin returned more than its output limit.
    #[error("plugin `{plugin}` output is {actual} bytes, over its limit of {limit} bytes")]
    OutputTooLarge {
        /// The plugin's name.
        plugin: String,
        /// The output size.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin ran out of CPU budget counted in fuel (`cpu = "fuel"`).
    #[error(
        "plugin `{plugin}` used up its CPU budget of {fuel} fuel units (a loop? if it needs more, raise `cpu_fuel` in its grant's limits)"
    )]
    CpuBudgetExceeded {
        /// The plugin's name.
        plugin: String,
        /// The budget.
        fuel: u64,
    },
    /// The plugin ran out of CPU budget counted in time (`cpu = "epoch"`).
    #[error(
        "plugin `{plugin}` used up its CPU budget of {cpu_ms} ms (a loop? if it needs more, raise `cpu_ms` in its grant's limits)"
    )]
    CpuTimeExceeded {
        /// The plugin's name.
        plugin: String,
        /// The budget.
        cpu_ms: u64,
    },
    /// The plugin tried to grow its memory past its limit.
    #[error(
        "plugin `{plugin}` tried to grow its memory to {desired} bytes, over its limit of {limit} bytes"
    )]
    MemoryLimitExceeded {
        /// The plugin's name.
        plugin: String,
        /// The size asked for.
        desired: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin handed the host more data in one result or one host call than its limits
    /// allow for, counting every copy (a list whose items all point at the same memory).
    #[error(
        "plugin `{plugin}` handed the host more than {limit} bytes in one result or host call \
         (this bound follows `max_output_bytes` and `max_http_body_bytes`: raise them in its \
         grant's limits if it needs more)"
    )]
    TransferTooLarge {
        /// The plugin's name.
        plugin: String,
        /// The bound, in bytes.
        limit: usize,
    },
    /// The call, host calls included, took longer than the plugin's wall-clock timeout.
    #[error("plugin `{plugin}` did not finish within its timeout of {timeout_ms} ms")]
    Timeout {
        /// The plugin's name.
        plugin: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The plugin trapped (a panic, an unreachable, an out-of-bounds access).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin's name.
        plugin: String,
        /// The trap, first line.
        message: String,
    },
    /// The plugin ran and reported an error of its own.
    #[error("plugin `{plugin}` failed: {failure}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// What the plugin reported.
        failure: PluginFailure,
    },
    /// The call's input did not have the shape the plugin's world needs (`plugin call` only).
    #[error("input for plugin `{plugin}`: {message}")]
    BadInput {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

impl CallError {
    /// A word for the kind of failure (`/metrics` counts by it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotLoaded { .. } => "not_loaded",
            Self::WrongWorld { .. } => "wrong_world",
            Self::InputTooLarge { .. } => "input_too_large",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::CpuBudgetExceeded { .. } => "cpu_budget",
            Self::CpuTimeExceeded { .. } => "cpu_time",
            Self::MemoryLimitExceeded { .. } => "memory",
            Self::TransferTooLarge { .. } => "transfer_too_large",
            Self::Timeout { .. } => "timeout",
            Self::Trap { .. } => "trap",
            Self::Plugin { .. } => "plugin_error",
            _ => "other",
        }
    }
}

impl CallError {
    /// The plugin the error is about.
    pub fn plugin(&self) -> &str {
        match self {
            Self::NotLoaded { plugin }
            | Self::WrongWorld { plugin, .. }
            | Self::InputTooLarge { plugin, .. }
            | Self::OutputTooLarge { plugin, .. }
            | Self::CpuBudgetExceeded { plugin, .. }
            | Self::CpuTimeExceeded { plugin, .. }
            | Self::MemoryLimitExceeded { plugin, .. }
            | Self::TransferTooLarge { plugin, .. }
            | Self::Timeout { plugin, .. }
            | Self::Trap { plugin, .. }
            | Self::Plugin { plugin, .. }
            | Self::BadInput { plugin, .. } => plugin,
        }
    }
}
