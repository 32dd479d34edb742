//! smsflow: a two-way SMS workflow engine.
//!
//! One module per concern (the architecture is in `DESIGN.md` at the repository's root):
//!
//! | module | owns |
//! | --- | --- |
//! | [`agents`] | the people who answer handed-off conversations, and their sign-in |
//! | [`campaigns`] | a flow sent to a segment: paced, gated per contact, resumable |
//! | [`contacts`] | contacts: typed fields, tags, locale, time zone; CSV import |
//! | [`segments`] | the segment query language over contacts |
//! | [`handoff`] | queues of handed-off conversations: states, assignment, service levels |
//! | [`engine`] | the composition root: builds everything from [`config::Config`] once |
//! | [`server`] | the HTTP layer: routes by caller, the auth layers, the pages, one error type |
//! | [`listener`] | TCP under connection limits hostile clients cannot outlast (HTTP/1.1) |
//! | [`ingress`] | provider webhooks (verify, parse) and the one accept pipeline |
//! | [`inbox`] | the durable inbound queue, retries, dead letters |
//! | [`compliance`] | keyword screening, the consent ledger, the send gate |
//! | [`flow`] | the flow language, its checks, the runtime |
//! | [`simulation`] | a flow on a simulated clock in an engine built like the server's: what `test` and `chat` drive |
//! | [`scenario`] | `smsflow test`: flow scenarios, each run in a simulation |
//! | [`plugin`] | the wasmtime host, sandbox, grants |
//! | [`outbound`] | the one send path, provider adapters, pacing |
//! | [`events`] | event webhooks to the operator's systems |
//! | [`store`] | every table, its key layout and codec; nothing else sees sled |
//! | [`locks`] | one lock per conversation |
//! | [`sms`], [`phone`], [`clock`], [`template`] | neutral types: texts, segments, numbers, time, message templates |
//! | [`config`], [`cli`] | `smsflow.toml` and the command line |

pub mod agents;
pub mod campaigns;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod compliance;
pub mod config;
pub mod contacts;
pub mod engine;
pub mod events;
pub mod flow;
pub mod handoff;
pub mod inbox;
pub mod ingress;
pub mod input;
pub mod listener;
pub mod locks;
pub mod measure;
pub mod metrics;
pub mod outbound;
pub mod phone;
pub mod plugin;
pub mod retention;
pub mod scenario;
pub mod segments;
pub mod server;
pub mod simulation;
pub mod sms;
pub mod store;
pub mod telemetry;
pub mod template;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
