//! The test app.

fn main() {}
