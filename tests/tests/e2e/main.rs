//! End-to-end scenarios against the real Docker Engine and a real OCI registry.
//!
//! One test binary (one link) holds every scenario; each module owns one crate's
//! scenarios. The test bed they share lives in `fleet_tests` (`tests/src`).

mod backup;
mod core;
mod health;
mod registry;
mod testbed;
