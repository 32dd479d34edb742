//! Fuzz target `telnyx`: the invariants are in `smsflow_fuzz::telnyx`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::telnyx::run(data));
