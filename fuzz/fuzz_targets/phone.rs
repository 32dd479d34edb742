//! Fuzz target `phone`: the invariants are in `smsflow_fuzz::phone`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::phone::run(data));
