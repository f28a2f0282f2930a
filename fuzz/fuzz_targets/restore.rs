//! Fuzzes `fleet_backup::restore`: whatever the archive, nothing is written outside the
//! target and a failed restore leaves the target as it was.
//!
//! Run with `cargo +nightly fuzz run restore` from this directory. The property lives in the
//! test suite (`crates/fleet-backup/tests/it/fuzz_property.rs`), which also runs it over
//! crafted inputs on every `cargo test`.

#![no_main]

#[path = "../../crates/fleet-backup/tests/it/fuzz_property.rs"]
mod property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    property::check_restore_stays_inside(data);
});
