//! Fuzz target `webhook_signing`: the invariants are in `smsflow_fuzz::webhook_signing`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::webhook_signing::run(data));
