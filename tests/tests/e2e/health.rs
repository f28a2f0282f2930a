//! End-to-end scenarios for health.
