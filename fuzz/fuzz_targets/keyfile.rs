//! Fuzz target `keyfile`: see `check_keyfile` in `fuzz/src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxtree_fuzz::check_keyfile(data));
