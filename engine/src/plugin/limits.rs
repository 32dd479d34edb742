//! Per-plugin resource limits.

use serde::{Deserialize, Serialize};

/// How a plugin's CPU budget is counted.
///
/// `epoch` counts the time the plugin's code runs, in the host's 2 ms epoch ticks, which the
/// host needs for its wall-clock timeout anyway: it costs nothing more per call. `fuel` counts
/// WebAssembly instructions (about one unit each): deterministic, the same budget on a busy
/// machine as on an idle one, but the compiled code counts as it runs (BENCHMARKS.md has what
/// that costs per call).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CpuMeter {
    /// Time on the CPU, in epoch ticks: the budget is [`Limits::cpu_ms`].
    #[default]
    Epoch,
    /// WebAssembly instructions: the budget is [`Limits::cpu_fuel`].
    Fuel,
}

impl std::fmt::Display for CpuMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Epoch => "epoch",
            Self::Fuel => "fuel",
        })
    }
}

/// What one plugin call may use. Defaults suit a classifier answering in microseconds and a
/// connector waiting on a slow API; the operator overrides them per plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "LimitsOverride", into = "LimitsOverride")]
pub struct Limits {
    /// How the CPU budget is counted.
    pub cpu: CpuMeter,
    /// CPU budget in wasmtime fuel units (about one per WebAssembly instruction), with
    /// `cpu = "fuel"`.
    pub cpu_fuel: u64,
    /// CPU budget in milliseconds the plugin's code runs, host calls not counted, with
    /// `cpu = "epoch"`; counted in 2 ms ticks.
    pub cpu_ms: u64,
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
    /// Keys the plugin may hold in its key-value store, across all its calls.
    pub kv_max_keys: u64,
    /// Bytes of keys and values the plugin may hold in its key-value store.
    pub kv_max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: CpuMeter::default(),
            cpu_fuel: 500_000_000,
            cpu_ms: 1_000,
            memory_bytes: 32 << 20,
            timeout_ms: 5_000,
            max_input_bytes: 64 << 10,
            max_output_bytes: 64 << 10,
            max_http_body_bytes: 1 << 20,
            kv_max_keys: 10_000,
            kv_max_bytes: 16 << 20,
        }
    }
}

/// Per-plugin overrides of [`Limits`]; unset fields keep the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverride {
    /// See [`Limits::cpu`]. When unset, a `cpu_fuel` or `cpu_ms` given here picks its meter.
    pub cpu: Option<CpuMeter>,
    /// See [`Limits::cpu_fuel`].
    pub cpu_fuel: Option<u64>,
    /// See [`Limits::cpu_ms`].
    pub cpu_ms: Option<u64>,
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
    /// See [`Limits::kv_max_keys`].
    pub kv_max_keys: Option<u64>,
    /// See [`Limits::kv_max_bytes`].
    pub kv_max_bytes: Option<u64>,
}

impl Limits {
    /// These limits with `overrides` applied.
    ///
    /// A budget given without `cpu` picks its meter: `cpu_fuel = 20000000` alone means "count
    /// fuel", as it did before epochs could count CPU, so a grant written then keeps its meaning.
    ///
    /// # Errors
    ///
    /// A message for the operator when `overrides` gives a budget for the other meter than the
    /// one it names (`cpu = "epoch"` with `cpu_fuel`), or budgets for both.
    pub fn with(&self, overrides: &LimitsOverride) -> Result<Self, String> {
        let cpu = overrides.meter()?;
        Ok(Self {
            cpu: cpu.unwrap_or(self.cpu),
            cpu_fuel: overrides.cpu_fuel.unwrap_or(self.cpu_fuel),
            cpu_ms: overrides.cpu_ms.unwrap_or(self.cpu_ms),
            memory_bytes: overrides.memory_bytes.unwrap_or(self.memory_bytes),
            timeout_ms: overrides.timeout_ms.unwrap_or(self.timeout_ms),
            max_input_bytes: overrides.max_input_bytes.unwrap_or(self.max_input_bytes),
            max_output_bytes: overrides.max_output_bytes.unwrap_or(self.max_output_bytes),
            max_http_body_bytes: overrides
                .max_http_body_bytes
                .unwrap_or(self.max_http_body_bytes),
            kv_max_keys: overrides.kv_max_keys.unwrap_or(self.kv_max_keys),
            kv_max_bytes: overrides.kv_max_bytes.unwrap_or(self.kv_max_bytes),
        })
    }

    /// How many bytes the plugin may hand the host in one host call or one result (wasmtime's
    /// "hostcall fuel"). Without it, a result whose thousand fields all point at the same
    /// megabyte of memory is copied a thousand times into the host before any output limit
    /// is looked at. The largest legitimate transfers are an HTTP request and a result; each
    /// element of a list also costs the size of its host value (48 bytes for a field), which
    /// the doubling covers, and the slack covers a key-value write (at most 64 KiB) and logs.
    pub fn hostcall_fuel(&self) -> usize {
        const SLACK: usize = 1 << 20;
        let largest = self.max_output_bytes.max(self.max_http_body_bytes);
        largest.saturating_mul(2).saturating_add(SLACK)
    }
}

impl LimitsOverride {
    /// The meter these overrides name, or the one their budget implies, or none.
    fn meter(&self) -> Result<Option<CpuMeter>, String> {
        let implied = match (self.cpu_fuel, self.cpu_ms) {
            (Some(_), Some(_)) => {
                return Err(
                    "give `cpu_fuel` (with cpu = \"fuel\") or `cpu_ms` (with cpu = \"epoch\"), not both"
                        .into(),
                );
            }
            (Some(_), None) => Some(CpuMeter::Fuel),
            (None, Some(_)) => Some(CpuMeter::Epoch),
            (None, None) => None,
        };
        match (self.cpu, implied) {
            (Some(CpuMeter::Epoch), Some(CpuMeter::Fuel)) => {
                Err("`cpu_fuel` needs cpu = \"fuel\"; with epochs the budget is `cpu_ms`".into())
            }
            (Some(CpuMeter::Fuel), Some(CpuMeter::Epoch)) => {
                Err("`cpu_ms` needs cpu = \"epoch\"; with fuel the budget is `cpu_fuel`".into())
            }
            (named, implied) => Ok(named.or(implied)),
        }
    }
}

impl TryFrom<LimitsOverride> for Limits {
    type Error = String;

    /// `[plugins.limits]` is read as overrides of the built-in defaults, so it follows the same
    /// rule as a grant's limits.
    fn try_from(overrides: LimitsOverride) -> Result<Self, String> {
        Limits::default().with(&overrides)
    }
}

impl From<Limits> for LimitsOverride {
    /// Every limit, with the budget of its meter only, so it reads back as the same limits.
    fn from(limits: Limits) -> Self {
        Self {
            cpu: Some(limits.cpu),
            cpu_fuel: (limits.cpu == CpuMeter::Fuel).then_some(limits.cpu_fuel),
            cpu_ms: (limits.cpu == CpuMeter::Epoch).then_some(limits.cpu_ms),
            memory_bytes: Some(limits.memory_bytes),
            timeout_ms: Some(limits.timeout_ms),
            max_input_bytes: Some(limits.max_input_bytes),
            max_output_bytes: Some(limits.max_output_bytes),
            max_http_body_bytes: Some(limits.max_http_body_bytes),
            kv_max_keys: Some(limits.kv_max_keys),
            kv_max_bytes: Some(limits.kv_max_bytes),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(toml_text: &str) -> Result<Limits, String> {
        let overrides: LimitsOverride = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Limits::default().with(&overrides)
    }

    #[test]
    fn epoch_is_the_default_meter_and_a_budget_alone_picks_its_meter() {
        assert_eq!(Limits::default().cpu, CpuMeter::Epoch);
        assert_eq!(limits("cpu_fuel = 20000000").unwrap().cpu, CpuMeter::Fuel);
        assert_eq!(limits("cpu_ms = 50").unwrap().cpu, CpuMeter::Epoch);
        let fuel = limits("cpu = \"fuel\"").unwrap();
        assert_eq!((fuel.cpu, fuel.cpu_fuel), (CpuMeter::Fuel, 500_000_000));
    }

    #[test]
    fn a_budget_for_the_other_meter_is_refused_with_a_hint() {
        let error = limits("cpu = \"epoch\"\ncpu_fuel = 1").unwrap_err();
        assert!(error.contains("cpu_ms"), "{error}");
        let error = limits("cpu = \"fuel\"\ncpu_ms = 1").unwrap_err();
        assert!(error.contains("cpu_fuel"), "{error}");
        assert!(limits("cpu_fuel = 1\ncpu_ms = 1").is_err());
        assert!(limits("cpu = \"instructions\"").is_err());
    }

    #[test]
    fn the_defaults_section_follows_the_same_rule() {
        let parsed: Limits = toml::from_str("cpu_fuel = 7").unwrap();
        assert_eq!((parsed.cpu, parsed.cpu_fuel), (CpuMeter::Fuel, 7));
        assert!(toml::from_str::<Limits>("cpu = \"epoch\"\ncpu_fuel = 7").is_err());
        assert!(toml::from_str::<Limits>("timeout = 7").is_err());
        for limits in [Limits::default(), limits("cpu_fuel = 9").unwrap()] {
            let text = toml::to_string(&limits).unwrap();
            assert_eq!(toml::from_str::<Limits>(&text).unwrap(), limits, "{text}");
        }
    }
}
