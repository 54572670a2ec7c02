//! Fuzz target `gvariant`: see `check_gvariant` in `fuzz/src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxtree_fuzz::check_gvariant(data));
