//! Fuzz target `delta`: see `check_delta` in `fuzz/src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxtree_fuzz::check_delta(data));
