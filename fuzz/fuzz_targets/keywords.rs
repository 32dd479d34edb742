//! Fuzz target `keywords`: the invariants are in `smsflow_fuzz::keywords`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::keywords::run(data));
