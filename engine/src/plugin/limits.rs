//! Per-plugin resource limits.

use serde::{Deserialize, Serialize};

/// What one plugin call may use. Defaults suit a classifier answering in microseconds and a
/// connector waiting on a slow API; the operator overrides them per plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// CPU budget in wasmtime fuel units (about one per WebAssembly instruction).
    pub cpu_fuel: u64,
    /// Linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time for the whole call, host calls (HTTP) included, in milliseconds.
    pub timeout_ms: u64,
    /// Size of the call's input (texts, fields, keys), in bytes.
    pub max_input_bytes: usize,
    /// Size of the plugin's result, in bytes.
    pub max_output_bytes: usize,
    /// Size of one HTTP request or response body, in bytes.
    pub max_http_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_fuel: 500_000_000,
            memory_bytes: 32 << 20,
            timeout_ms: 5_000,
            max_input_bytes: 64 << 10,
            max_output_bytes: 64 << 10,
            max_http_body_bytes: 1 << 20,
        }
    }
}

/// Per-plugin overrides of [`Limits`]; unset fields keep the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverride {
    /// See [`Limits::cpu_fuel`].
    pub cpu_fuel: Option<u64>,
    /// See [`Limits::memory_bytes`].
    pub memory_bytes: Option<usize>,
    /// See [`Limits::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`Limits::max_input_bytes`].
    pub max_input_bytes: Option<usize>,
    /// See [`Limits::max_output_bytes`].
    pub max_output_bytes: Option<usize>,
    /// See [`Limits::max_http_body_bytes`].
    pub max_http_body_bytes: Option<usize>,
}

impl Limits {
    /// These limits with `overrides` applied.
    pub fn with(&self, overrides: &LimitsOverride) -> Self {
        Self {
            cpu_fuel: overrides.cpu_fuel.unwrap_or(self.cpu_fuel),
            memory_bytes: overrides.memory_bytes.unwrap_or(self.memory_bytes),
            timeout_ms: overrides.timeout_ms.unwrap_or(self.timeout_ms),
            max_input_bytes: overrides.max_input_bytes.unwrap_or(self.max_input_bytes),
            max_output_bytes: overrides.max_output_bytes.unwrap_or(self.max_output_bytes),
            max_http_body_bytes: overrides
                .max_http_body_bytes
                .unwrap_or(self.max_http_body_bytes),
        }
    }
}
