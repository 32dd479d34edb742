//! Fuzz target `segment_query`: the invariants are in `smsflow_fuzz::segment_query`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::segment_query::run(data));
