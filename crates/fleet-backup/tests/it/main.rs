//! Integration tests of fleet-backup: one binary, one module per concern.

mod common;
mod corrupt;
mod craft;
mod malicious;
mod retention;
mod roundtrip;
mod sqlite;
