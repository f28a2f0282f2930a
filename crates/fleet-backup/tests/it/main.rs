//! Integration tests of fleet-backup: one binary, one module per concern.

mod common;
mod corrupt;
mod craft;
mod fuzz_cases;
mod fuzz_property;
mod malicious;
mod prop;
mod retention;
mod roundtrip;
mod sqlite;
