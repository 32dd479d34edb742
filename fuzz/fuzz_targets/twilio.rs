//! Fuzz target `twilio`: the invariants are in `smsflow_fuzz::twilio`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::twilio::run(data));
