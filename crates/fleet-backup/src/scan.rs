//! One streaming pass over an archive that checks everything against the manifest, shared
//! by `verify` (which discards the content) and `restore` (which writes it out).

use std::collections::HashMap;
use std::io::{self, Read};

use sha2::Digest;
use tar::EntryType;

use crate::Error;
use crate::manifest::{
    self, DATA_DIR, Entry, EntryKind, MANIFEST_PATH, MAX_MANIFEST_BYTES, Manifest, Sha256,
};
use crate::problem::Problem;

/// Receives the content of a verified-so-far archive. Its errors abort the scan: they are
/// about the destination, not the archive.
pub(crate) trait Sink {
    /// The manifest has been read and found safe.
    fn start(&mut self, manifest: &Manifest) -> Result<(), Error>;
    /// A file entry begins; its data follows through [`Sink::data`].
    fn begin_file(&mut self, entry: &Entry) -> Result<(), Error>;
    /// The next piece of the current file.
    fn data(&mut self, data: &[u8]) -> Result<(), Error>;
    /// The current file is complete and matches its checksum.
    fn end_file(&mut self, entry: &Entry) -> Result<(), Error>;
    /// A symlink entry that matches the manifest.
    fn symlink(&mut self, entry: &Entry) -> Result<(), Error>;
}

/// A sink that keeps nothing: verification only.
pub(crate) struct Discard;

impl Sink for Discard {
    fn start(&mut self, _: &Manifest) -> Result<(), Error> {
        Ok(())
    }
    fn begin_file(&mut self, _: &Entry) -> Result<(), Error> {
        Ok(())
    }
    fn data(&mut self, _: &[u8]) -> Result<(), Error> {
        Ok(())
    }
    fn end_file(&mut self, _: &Entry) -> Result<(), Error> {
        Ok(())
    }
    fn symlink(&mut self, _: &Entry) -> Result<(), Error> {
        Ok(())
    }
}

/// What a scan found. The archive is good when `problems` is empty.
pub(crate) struct Scan {
    pub(crate) manifest: Option<Manifest>,
    pub(crate) problems: Vec<Problem>,
}

/// Reads the whole decompressed archive, reporting every problem; passes content to `sink`
/// until the first problem.
pub(crate) fn scan(decompressed: &mut dyn Read, sink: &mut dyn Sink) -> Result<Scan, Error> {
    let mut problems = Vec::new();
    let mut archive = tar::Archive::new(decompressed);
    let mut entries = match archive.entries() {
        Ok(entries) => entries,
        Err(err) => {
            problems.push(Problem::Unreadable {
                after: None,
                reason: err.to_string(),
            });
            return Ok(Scan {
                manifest: None,
                problems,
            });
        }
    };
    let manifest = match entries.next() {
        None => Err(Problem::NoManifest {
            found: "an empty archive".to_owned(),
        }),
        Some(Err(err)) => Err(Problem::Unreadable {
            after: None,
            reason: err.to_string(),
        }),
        Some(Ok(first)) => read_manifest(first),
    };
    let manifest = match manifest {
        Ok(manifest) => manifest,
        Err(problem) => {
            problems.push(problem);
            return Ok(Scan {
                manifest: None,
                problems,
            });
        }
    };
    problems.extend(manifest.problems());
    if !problems.is_empty() {
        return Ok(Scan {
            manifest: Some(manifest),
            problems,
        });
    }
    sink.start(&manifest)?;

    let index: HashMap<&str, usize> = manifest
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    let mut seen = vec![false; manifest.entries.len()];
    let mut last: Option<String> = None;
    let mut buf = vec![0; 1 << 20];
    let mut readable = true;
    loop {
        let mut item = match entries.next() {
            None => break,
            Some(Ok(item)) => item,
            Some(Err(err)) => {
                problems.push(Problem::Unreadable {
                    after: last.clone(),
                    reason: err.to_string(),
                });
                readable = false;
                break;
            }
        };
        let raw_name = String::from_utf8_lossy(&item.path_bytes()).into_owned();
        let path = match data_path(&item.path_bytes()) {
            Ok(path) => path,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let found = match item.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => "file",
            EntryType::Directory => "directory",
            EntryType::Symlink => "symlink",
            other => {
                problems.push(Problem::Unsafe {
                    entry: raw_name,
                    reason: unsupported_type(other, &item),
                });
                continue;
            }
        };
        let Some(&i) = index.get(path.as_str()) else {
            problems.push(Problem::Unexpected { entry: path });
            continue;
        };
        if std::mem::replace(&mut seen[i], true) {
            problems.push(Problem::Duplicate { entry: path });
            continue;
        }
        let expected = &manifest.entries[i];
        if expected.kind.describe() != found {
            problems.push(Problem::KindMismatch {
                entry: path,
                expected: expected.kind.describe(),
                found,
            });
            continue;
        }
        match &expected.kind {
            EntryKind::File { size, sha256, .. } => {
                if item.size() != *size {
                    problems.push(Problem::SizeMismatch {
                        entry: path,
                        expected: *size,
                        found: item.size(),
                    });
                    continue;
                }
                let writing = problems.is_empty();
                if writing {
                    sink.begin_file(expected)?;
                }
                let mut hasher = sha2::Sha256::new();
                let mut read = 0u64;
                loop {
                    match item.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            read += n as u64;
                            hasher.update(&buf[..n]);
                            if writing {
                                sink.data(&buf[..n])?;
                            }
                        }
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => {
                            problems.push(Problem::Unreadable {
                                after: last.clone(),
                                reason: err.to_string(),
                            });
                            readable = false;
                            break;
                        }
                    }
                }
                if !readable {
                    break;
                }
                if read != *size {
                    problems.push(Problem::Unreadable {
                        after: last.clone(),
                        reason: format!("entry `{path}` ends after {read} of {size} bytes"),
                    });
                    readable = false;
                    break;
                }
                let digest = Sha256(hasher.finalize().into());
                if digest != *sha256 {
                    problems.push(Problem::ChecksumMismatch {
                        entry: path.clone(),
                        expected: sha256.to_string(),
                        found: digest.to_string(),
                    });
                } else if writing {
                    sink.end_file(expected)?;
                }
            }
            EntryKind::Symlink { target } => {
                let found = item
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                if found != *target {
                    problems.push(Problem::LinkMismatch {
                        entry: path,
                        expected: target.clone(),
                        found,
                    });
                    continue;
                }
                if problems.is_empty() {
                    sink.symlink(expected)?;
                }
            }
            EntryKind::Dir => {}
        }
        last = Some(path);
    }
    for (entry, seen) in manifest.entries.iter().zip(&seen) {
        if !seen {
            problems.push(Problem::Missing {
                entry: entry.path.clone(),
            });
        }
    }
    if readable {
        // Read to the very end, so zstd checks the frame checksum and notices truncation.
        let decoder = archive.into_inner();
        loop {
            match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if buf[..n].iter().any(|&b| b != 0) {
                        problems.push(Problem::TrailingData);
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    problems.push(Problem::Unreadable {
                        after: last.clone(),
                        reason: err.to_string(),
                    });
                    break;
                }
            }
        }
    }
    Ok(Scan {
        manifest: Some(manifest),
        problems,
    })
}

/// Reads and parses the manifest from the first entry, without checking its entries.
pub(crate) fn read_manifest(mut first: tar::Entry<'_, impl Read>) -> Result<Manifest, Problem> {
    let name = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if name != MANIFEST_PATH || first.header().entry_type() != EntryType::Regular {
        return Err(Problem::NoManifest { found: name });
    }
    if first.size() > MAX_MANIFEST_BYTES {
        return Err(Problem::InvalidManifest {
            reason: format!("{} bytes is more than the limit", first.size()),
        });
    }
    let mut json = Vec::with_capacity(usize::try_from(first.size()).unwrap_or(0));
    first
        .read_to_end(&mut json)
        .map_err(|err| Problem::Unreadable {
            after: None,
            reason: err.to_string(),
        })?;
    parse_manifest(&json)
}

/// Parses manifest JSON, checking the version first so a newer format is named as such.
pub(crate) fn parse_manifest(json: &[u8]) -> Result<Manifest, Problem> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned =
        serde_json::from_slice(json).map_err(|err| Problem::InvalidManifest {
            reason: err.to_string(),
        })?;
    if versioned.version != manifest::FORMAT_VERSION {
        return Err(Problem::UnsupportedVersion {
            version: versioned.version,
        });
    }
    serde_json::from_slice(json).map_err(|err| Problem::InvalidManifest {
        reason: err.to_string(),
    })
}

/// The manifest path of a tar entry name, or why the name is unacceptable.
fn data_path(raw: &[u8]) -> Result<String, Problem> {
    let lossy = String::from_utf8_lossy(raw).into_owned();
    let unsafe_entry = |reason: &str| Problem::Unsafe {
        entry: lossy.clone(),
        reason: reason.to_owned(),
    };
    let Ok(name) = std::str::from_utf8(raw) else {
        return Err(unsafe_entry("the name is not valid UTF-8"));
    };
    if name.starts_with('/') {
        return Err(unsafe_entry("absolute path"));
    }
    if name.split('/').any(|c| c == "..") {
        return Err(unsafe_entry("path contains `..`"));
    }
    let name = name.strip_suffix('/').unwrap_or(name);
    if name == DATA_DIR {
        return Ok(manifest::ROOT.to_owned());
    }
    let Some(path) = name
        .strip_prefix(DATA_DIR)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return Err(Problem::Unexpected { entry: lossy });
    };
    match manifest::check_path(path) {
        Ok(()) if path != manifest::ROOT => Ok(path.to_owned()),
        Ok(()) => Err(unsafe_entry("path is not in canonical form")),
        Err(reason) => Err(unsafe_entry(reason)),
    }
}

/// Why an entry of a type fleet-backup never writes is refused.
fn unsupported_type(kind: EntryType, item: &tar::Entry<'_, impl Read>) -> String {
    match kind {
        EntryType::Char | EntryType::Block => "device file".to_owned(),
        EntryType::Fifo => "FIFO".to_owned(),
        EntryType::Link => {
            let target = item.link_name_bytes().unwrap_or_default();
            match data_path(&target) {
                Ok(_) => "hard link (fleet-backup archives contain none)".to_owned(),
                Err(_) => format!(
                    "hard link to `{}` outside the archived directory",
                    String::from_utf8_lossy(&target)
                ),
            }
        }
        other => format!("unsupported entry type {:?}", other.as_byte() as char),
    }
}
