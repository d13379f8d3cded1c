//! Fuzz target: see `bookcal_fuzz::checks::datetimes` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bookcal_fuzz::checks::datetimes(data));
