//! The fleet test bed.
