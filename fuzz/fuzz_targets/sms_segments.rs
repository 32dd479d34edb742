//! Fuzz target `sms_segments`: the invariants are in `smsflow_fuzz::sms_segments`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::sms_segments::run(data));
