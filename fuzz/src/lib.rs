//! bookcal's fuzz targets: each target in `fuzz_targets/` feeds its input to one
//! function of [`checks`], which panics when an invariant breaks. The same functions
//! replay the kept corpora and regression inputs in the integration tests
//! (`tests/it/attack.rs`), so what the fuzzer once found stays fixed on stable Rust.
#![forbid(unsafe_code)]

#[path = "checks.rs"]
pub mod checks;
