//! Hand-made archives for attacks and corruption: the test bed's, shared with the
//! end-to-end tests that feed them to `fleet restore`.

pub(crate) use fleet_tests::archive::{
    dir_entry, entry, file_entry, manifest, symlink_entry, tar_bytes, write_archive,
};
