//! fleet-health against real local servers (axum on loopback over HTTP and HTTPS, raw
//! listeners): one test binary, one module per part of the crate.

mod many;
mod pki;
mod probe;
mod support;
mod tls;
mod wait;
