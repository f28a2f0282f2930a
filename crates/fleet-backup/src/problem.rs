//! What verification can find wrong with an archive.

use std::fmt;

/// One thing wrong with an archive. Entry paths are relative to the archived directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The compressed stream or the tar structure cannot be read past this point.
    Unreadable {
        /// The last entry read completely, if any.
        after: Option<String>,
        /// The decoder's or parser's complaint.
        reason: String,
    },
    /// The first entry is not the manifest.
    NoManifest {
        /// What the first entry was instead.
        found: String,
    },
    /// The manifest is not valid JSON of the expected shape.
    InvalidManifest {
        /// The parser's complaint.
        reason: String,
    },
    /// The manifest was written by a newer, incompatible version.
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// An entry that would write outside the target or create a device, a FIFO or a link
    /// this crate does not produce.
    Unsafe {
        /// The entry as named in the archive.
        entry: String,
        /// What makes it unsafe.
        reason: String,
    },
    /// The manifest lists an entry the archive does not contain.
    Missing {
        /// The entry.
        entry: String,
    },
    /// The archive contains an entry the manifest does not list.
    Unexpected {
        /// The entry.
        entry: String,
    },
    /// The archive contains an entry twice.
    Duplicate {
        /// The entry.
        entry: String,
    },
    /// The entry is of another kind (file, directory, symlink) than the manifest says.
    KindMismatch {
        /// The entry.
        entry: String,
        /// The kind the manifest lists.
        expected: &'static str,
        /// The kind in the archive.
        found: &'static str,
    },
    /// The entry's size differs from the manifest.
    SizeMismatch {
        /// The entry.
        entry: String,
        /// The size the manifest lists.
        expected: u64,
        /// The size in the archive.
        found: u64,
    },
    /// The entry's content does not hash to the manifest's SHA-256.
    ChecksumMismatch {
        /// The entry.
        entry: String,
        /// The manifest's digest, hex.
        expected: String,
        /// The digest of the archived content, hex.
        found: String,
    },
    /// The symlink points elsewhere than the manifest says.
    LinkMismatch {
        /// The entry.
        entry: String,
        /// The target the manifest lists.
        expected: String,
        /// The target in the archive.
        found: String,
    },
    /// Non-zero bytes follow the end of the tar stream.
    TrailingData,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable {
                after: Some(after),
                reason,
            } => {
                write!(f, "unreadable after entry `{after}`: {reason}")
            }
            Problem::Unreadable {
                after: None,
                reason,
            } => write!(f, "unreadable: {reason}"),
            Problem::NoManifest { found } => {
                write!(f, "first entry is `{found}`, not the manifest")
            }
            Problem::InvalidManifest { reason } => write!(f, "invalid manifest: {reason}"),
            Problem::UnsupportedVersion { version } => {
                write!(f, "unsupported manifest version {version}")
            }
            Problem::Unsafe { entry, reason } => write!(f, "unsafe entry `{entry}`: {reason}"),
            Problem::Missing { entry } => write!(f, "entry `{entry}` is listed but missing"),
            Problem::Unexpected { entry } => write!(f, "entry `{entry}` is not in the manifest"),
            Problem::Duplicate { entry } => write!(f, "entry `{entry}` appears twice"),
            Problem::KindMismatch {
                entry,
                expected,
                found,
            } => {
                write!(
                    f,
                    "entry `{entry}` is a {found}, the manifest says {expected}"
                )
            }
            Problem::SizeMismatch {
                entry,
                expected,
                found,
            } => {
                write!(
                    f,
                    "entry `{entry}` has {found} bytes, the manifest says {expected}"
                )
            }
            Problem::ChecksumMismatch {
                entry,
                expected,
                found,
            } => {
                write!(
                    f,
                    "entry `{entry}` has SHA-256 {found}, the manifest says {expected}"
                )
            }
            Problem::LinkMismatch {
                entry,
                expected,
                found,
            } => {
                write!(
                    f,
                    "symlink `{entry}` points to `{found}`, the manifest says `{expected}`"
                )
            }
            Problem::TrailingData => write!(f, "non-zero data after the end of the archive"),
        }
    }
}

/// Every problem found in one archive, in the order found. Never empty inside an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// The problems as a slice.
    pub fn as_slice(&self) -> &[Problem] {
        &self.0
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An archive of a million files can have a million problems; a message stays readable.
        const SHOWN: usize = 20;
        for (i, problem) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, "; and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}
