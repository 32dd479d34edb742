//! `just bench`: smsflow measured against what bare HTTP allows on the same machine, in one run.
//!
//! [`loadgen`] drives keep-alive HTTP/1.1 connections with signed Twilio webhooks ([`twilio`]),
//! closed loop or open loop; the `ceiling` binary answers them with nothing but hyper; the real
//! `smsflow serve` answers them through the whole engine ([`engine`]), sending its replies to
//! [`fake_twilio`], which notes when each arrives; [`latency`] joins the two into
//! ingest-to-provider latency and the exactly-once check. [`scenarios`] are the end-to-end runs,
//! [`plugin`] reads the criterion plugin-call bench, [`state`] measures a seeded store,
//! [`broadcast`] a campaign to many contacts, [`cluster`] the HELP scenario on one node against
//! cluster mode on [`nats`] JetStream, and
//! [`report`] writes the JSON and the table in `BENCHMARKS.md`.

pub mod broadcast;
pub mod ceiling;
pub mod cluster;
pub mod contacts;
pub mod engine;
pub mod fake_twilio;
pub mod latency;
pub mod loadgen;
pub mod machine;
pub mod nats;
pub mod plan;
pub mod plugin;
pub mod process;
pub mod report;
pub mod scenarios;
pub mod state;
pub mod twilio;
