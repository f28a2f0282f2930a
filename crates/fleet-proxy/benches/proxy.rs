//! `cargo xtask bench proxy` (written next).

fn main() {}
