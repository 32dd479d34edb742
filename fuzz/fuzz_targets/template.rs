//! Fuzz target `template`: the invariants are in `smsflow_fuzz::template`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::template::run(data));
