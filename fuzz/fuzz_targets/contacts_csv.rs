//! Fuzz target `contacts_csv`: the invariants are in `smsflow_fuzz::contacts_csv`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smsflow_fuzz::contacts_csv::run(data));
