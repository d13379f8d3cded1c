//! Fuzz target: see `bookcal_fuzz::checks::query_strings` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bookcal_fuzz::checks::query_strings(data));
