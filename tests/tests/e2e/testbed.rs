//! The test bed itself: registry harness, test app images, containers.
