//! smsflow: a two-way SMS workflow engine.
//!
//! One module per concern (see `DESIGN.md`): [`plugin`] hosts the sandboxed WebAssembly plugins,
//! [`flow`] holds the flow language, its checks and the durable runtime, [`outbound`] is the
//! outbox every text leaves through, [`server`] is `smsflow serve` and its operator API,
//! [`config`] reads the operator's `smsflow.toml`, [`store`] owns the sled database, [`phone`]
//! validates numbers, [`clock`] is the engine's notion of now, and [`cli`] is the command line.

pub mod cli;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod events;
pub mod flow;
pub mod inbox;
pub mod ingress;
pub mod outbound;
pub mod phone;
pub mod plugin;
pub mod server;
pub mod store;
