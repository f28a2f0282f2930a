//! fleet-health against real local servers (axum on loopback, raw listeners): one test
//! binary, one module per part of the crate.

mod many;
mod probe;
mod support;
mod wait;
