//! The manifest: the first entry of every archive, describing every other entry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::BackupName;
use crate::problem::Problem;

/// The manifest format this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's name in the tar stream. Everything else lives under [`DATA_DIR`].
pub(crate) const MANIFEST_PATH: &str = "manifest.json";
/// The archived directory's name in the tar stream.
pub(crate) const DATA_DIR: &str = "data";
/// The path of the archived directory itself among the entries.
pub const ROOT: &str = ".";

/// The longest manifest accepted when reading, so a hostile archive cannot exhaust memory
/// (a million files make a manifest of about 250 MB).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1 << 30;
const MAX_PATH_BYTES: usize = 4096;
const MAX_COMPONENT_BYTES: usize = 255;
/// Linux gives up resolving a path after following this many symlinks.
const MAX_SYMLINK_FOLLOWS: usize = 40;

/// What an archive holds: when and from where it was taken, caller metadata, and every
/// directory, file and symlink with the metadata a restore needs and the SHA-256 of its
/// content.
///
/// The manifest, not the tar headers, is authoritative for metadata: it keeps mtimes to the
/// nanosecond and owners as numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// When the backup was started.
    pub created: Timestamp,
    /// The backup name, usually the instance name.
    pub name: BackupName,
    /// The archived directory as it was given, made absolute.
    pub source: String,
    /// Caller metadata, such as the image digest the instance ran.
    pub metadata: BTreeMap<String, String>,
    /// Every directory, file and symlink, parents before children; [`ROOT`] first.
    pub entries: Vec<Entry>,
    /// Files that were not archived (sockets, FIFOs, devices) and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// One directory, file or symlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the archived directory, `/`-separated; [`ROOT`] for the directory itself.
    pub path: String,
    /// What it is, with what only that kind has.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` at most).
    pub mode: u32,
    /// Last modification, to the nanosecond.
    pub mtime: Timestamp,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

/// The kind of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Its length in bytes.
        size: u64,
        /// The SHA-256 of its content.
        sha256: Sha256,
        /// Whether the content is an online-backup snapshot of a live SQLite database.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sqlite: bool,
    },
    /// A directory.
    Dir,
    /// A symbolic link; its target always resolves inside the archived directory.
    Symlink {
        /// The link's target, relative.
        target: String,
    },
}

impl EntryKind {
    /// `"file"`, `"directory"` or `"symlink"`.
    pub fn describe(&self) -> &'static str {
        match self {
            EntryKind::File { .. } => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink { .. } => "symlink",
        }
    }
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sha256(pub [u8; 32]);

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut bytes = [0; 32];
        hex::decode_to_slice(text.as_bytes(), &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Sha256(bytes))
    }
}

/// A file that was left out of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Relative to the archived directory.
    pub path: String,
    /// Why, such as "socket".
    pub reason: String,
}

/// The short description of an archive that [`list`](crate::list) shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSummary {
    /// The backup name.
    pub name: BackupName,
    /// When the backup was started.
    pub created: Timestamp,
    /// The archived directory.
    pub source: String,
    /// Caller metadata.
    pub metadata: BTreeMap<String, String>,
    /// Regular files, SQLite snapshots included.
    pub files: u64,
    /// Directories, the archived directory included.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Total size of all files.
    pub bytes: u64,
    /// SQLite databases archived as snapshots.
    pub sqlite: u64,
}

impl Manifest {
    /// Counts and totals.
    pub fn summary(&self) -> ManifestSummary {
        let mut summary = ManifestSummary {
            name: self.name.clone(),
            created: self.created,
            source: self.source.clone(),
            metadata: self.metadata.clone(),
            files: 0,
            dirs: 0,
            symlinks: 0,
            bytes: 0,
            sqlite: 0,
        };
        for entry in &self.entries {
            match &entry.kind {
                EntryKind::File { size, sqlite, .. } => {
                    summary.files += 1;
                    summary.bytes += size;
                    summary.sqlite += u64::from(*sqlite);
                }
                EntryKind::Dir => summary.dirs += 1,
                EntryKind::Symlink { .. } => summary.symlinks += 1,
            }
        }
        summary
    }

    /// Every reason this manifest cannot be restored safely: malformed or duplicate paths,
    /// entries without a parent directory, symlinks that resolve outside the directory.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.version != FORMAT_VERSION {
            problems.push(Problem::UnsupportedVersion {
                version: self.version,
            });
            return problems;
        }
        let unsafe_entry = |entry: &str, reason: &str| Problem::Unsafe {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let mut kinds: HashMap<&str, &EntryKind> = HashMap::with_capacity(self.entries.len());
        let mut links: HashMap<&str, &str> = HashMap::new();
        for entry in &self.entries {
            if let Err(reason) = check_path(&entry.path) {
                problems.push(unsafe_entry(&entry.path, reason));
            } else if kinds.insert(&entry.path, &entry.kind).is_some() {
                problems.push(Problem::Duplicate {
                    entry: entry.path.clone(),
                });
            } else if let EntryKind::Symlink { target } = &entry.kind {
                links.insert(&entry.path, target);
            }
        }
        match kinds.get(ROOT) {
            Some(EntryKind::Dir) => {}
            _ => problems.push(Problem::InvalidManifest {
                reason: "the archived directory itself is not listed as a directory".to_owned(),
            }),
        }
        let mut reported = HashSet::new();
        for entry in &self.entries {
            if entry.path == ROOT
                || check_path(&entry.path).is_err()
                || !reported.insert(&entry.path)
            {
                continue;
            }
            let parent = parent(&entry.path);
            if !matches!(kinds.get(parent), Some(EntryKind::Dir)) {
                problems.push(unsafe_entry(
                    &entry.path,
                    "its parent is not a directory in the archive",
                ));
            }
            if let EntryKind::Symlink { target } = &entry.kind
                && let Err(reason) = check_link(&entry.path, target, &links)
            {
                problems.push(unsafe_entry(&entry.path, reason));
            }
        }
        problems
    }
}

/// The parent of a checked entry path; [`ROOT`] for top-level entries.
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or(ROOT, |(parent, _)| parent)
}

/// Checks that `path` is [`ROOT`] or a plain relative path: no empty, `.` or `..`
/// component, no NUL, not absolute, not too long.
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    if path == ROOT {
        return Ok(());
    }
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("path too long");
    }
    for component in path.split('/') {
        match component {
            ".." => return Err("path contains `..`"),
            "" | "." => return Err("path is not in canonical form"),
            c if c.contains('\0') => return Err("path contains a NUL byte"),
            c if c.len() > MAX_COMPONENT_BYTES => return Err("file name too long"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that the symlink at `link` with `target` resolves inside the archived directory,
/// following the archive's own symlinks as the kernel would once it is restored.
///
/// Resolution is done on names, as the kernel does it on the restored tree: `..` after a
/// symlink climbs from where the symlink points, not from where it is.
pub(crate) fn check_link(
    link: &str,
    target: &str,
    links: &HashMap<&str, &str>,
) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("empty symlink target");
    }
    if target.starts_with('/') {
        return Err("symlink target is absolute");
    }
    if target.contains('\0') {
        return Err("symlink target contains a NUL byte");
    }
    if target.len() > MAX_PATH_BYTES {
        return Err("symlink target too long");
    }
    let mut at: Vec<&str> = match parent(link) {
        ROOT => Vec::new(),
        parent => parent.split('/').collect(),
    };
    let mut follows = 0;
    resolve(&mut at, target, links, &mut follows)
}

fn resolve<'a>(
    at: &mut Vec<&'a str>,
    target: &'a str,
    links: &HashMap<&str, &'a str>,
    follows: &mut usize,
) -> Result<(), &'static str> {
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return Err("symlink points outside the archived directory");
                }
            }
            name => {
                at.push(name);
                if let Some(next) = links.get(at.join("/").as_str()) {
                    *follows += 1;
                    if *follows > MAX_SYMLINK_FOLLOWS {
                        // The kernel gives up here too (ELOOP): nothing can be reached through it.
                        return Ok(());
                    }
                    at.pop();
                    resolve(at, next, links, follows)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `target` for a symlink at `link` in a tree with the given other symlinks.
    fn check(link: &str, target: &str, others: &[(&str, &str)]) -> String {
        let links: HashMap<&str, &str> = others.iter().copied().collect();
        match check_link(link, target, &links) {
            Ok(()) => "inside".to_owned(),
            Err(reason) => reason.to_owned(),
        }
    }

    #[test]
    fn symlink_targets() {
        insta::assert_snapshot!(check("l", "a", &[]), @"inside");
        insta::assert_snapshot!(check("l", ".", &[]), @"inside");
        insta::assert_snapshot!(check("a/b/l", "../../x", &[]), @"inside");
        insta::assert_snapshot!(check("a/b/l", "../../../x", &[]), @"symlink points outside the archived directory");
        insta::assert_snapshot!(check("l", "..", &[]), @"symlink points outside the archived directory");
        insta::assert_snapshot!(check("l", "/etc/passwd", &[]), @"symlink target is absolute");
        insta::assert_snapshot!(check("l", "a/../../b", &[]), @"symlink points outside the archived directory");
        // `up` points at the root from three levels down; `..` after it leaves the tree.
        insta::assert_snapshot!(check("a/b/c/m", "up/../x", &[("a/b/c/up", "../../..")]), @"symlink points outside the archived directory");
        insta::assert_snapshot!(check("a/b/c/m", "up/x", &[("a/b/c/up", "../../..")]), @"inside");
        insta::assert_snapshot!(check("m", "l1/../../x", &[("l1", "d/e")]), @"inside");
        insta::assert_snapshot!(check("m", "l1/../../../x", &[("l1", "d/e")]), @"symlink points outside the archived directory");
        // A loop never resolves, so nothing outside is reachable through it.
        insta::assert_snapshot!(check("a", "b", &[("a", "b"), ("b", "a")]), @"inside");
        insta::assert_snapshot!(check("l", "", &[]), @"empty symlink target");
    }

    fn check_p(path: &str) -> String {
        match check_path(path) {
            Ok(()) => "ok".to_owned(),
            Err(reason) => reason.to_owned(),
        }
    }

    #[test]
    fn entry_paths() {
        insta::assert_snapshot!(check_p("."), @"ok");
        insta::assert_snapshot!(check_p("a/b c/d"), @"ok");
        insta::assert_snapshot!(check_p("/etc"), @"absolute path");
        insta::assert_snapshot!(check_p("a/../b"), @"path contains `..`");
        insta::assert_snapshot!(check_p("a//b"), @"path is not in canonical form");
        insta::assert_snapshot!(check_p("./a"), @"path is not in canonical form");
        insta::assert_snapshot!(check_p("a/"), @"path is not in canonical form");
        insta::assert_snapshot!(check_p(""), @"empty path");
    }
}
