//! Integration tests of fleet-backup: one binary, one module per concern.

mod common;
mod corrupt;
mod malicious;
mod retention;
mod roundtrip;
mod sqlite;
