//! Flows: the TOML flow language, its validator and its runtime.

pub mod template;
