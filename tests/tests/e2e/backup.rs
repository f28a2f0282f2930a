//! End-to-end scenarios for backup.
