//! Fuzz target `flow_check`: the invariants are in `smsflow_fuzz::flow_check`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::flow_check::run(data));
