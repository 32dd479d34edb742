//! smsflow: a two-way SMS workflow engine.
//!
//! One module per concern (see `DESIGN.md`): [`plugin`] hosts the sandboxed WebAssembly plugins,
//! [`config`] reads the operator's `smsflow.toml`, [`flow`] holds the flow language, [`store`] owns the sled database, [`clock`] is
//! the engine's notion of now, and [`cli`] is the `smsflow` command line.

pub mod cli;
pub mod clock;
pub mod config;
pub mod flow;
pub mod outbound;
pub mod plugin;
pub mod store;
