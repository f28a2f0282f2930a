//! End-to-end scenarios for registry.
