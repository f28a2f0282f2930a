//! End-to-end scenarios for core.
