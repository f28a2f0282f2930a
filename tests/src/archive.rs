//! Hand-made fleet-backup archives, written with the tar crate directly: attacks and
//! corruption that fleet-backup itself would never write, for the tests that must refuse them.

use std::path::Path;

pub use tar::{EntryType, Header};

/// One raw tar entry: any name, any type.
pub fn entry(name: &str, kind: EntryType, data: &[u8], link: Option<&str>) -> (Header, Vec<u8>) {
    let mut header = Header::new_gnu();
    let name = name.as_bytes();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    (header, data.to_vec())
}

/// A manifest as fleet-backup writes it, with the given entries after the root directory.
pub fn manifest(entries: serde_json::Value) -> Vec<u8> {
    let mut all = vec![
        serde_json::json!({"path": ".", "kind": "dir", "mode": 0o755, "mtime": "2026-01-01T00:00:00Z", "uid": 0, "gid": 0}),
    ];
    all.extend(entries.as_array().unwrap().iter().cloned());
    serde_json::to_vec(&serde_json::json!({
        "version": 1, "created": "2026-01-01T00:00:00Z", "name": "evil", "source": "/evil",
        "metadata": {}, "entries": all,
    }))
    .unwrap()
}

/// A manifest entry for a file with `content`.
pub fn file_entry(path: &str, content: &[u8]) -> serde_json::Value {
    use sha2::Digest;
    serde_json::json!({"path": path, "kind": "file", "size": content.len(),
        "sha256": hex::encode(sha2::Sha256::digest(content)), "mode": 0o644,
        "mtime": "2026-01-01T00:00:00Z", "uid": 0, "gid": 0})
}

/// A manifest entry for a symlink.
pub fn symlink_entry(path: &str, target: &str) -> serde_json::Value {
    serde_json::json!({"path": path, "kind": "symlink", "target": target, "mode": 0o777,
        "mtime": "2026-01-01T00:00:00Z", "uid": 0, "gid": 0})
}

/// A manifest entry for a directory.
pub fn dir_entry(path: &str) -> serde_json::Value {
    serde_json::json!({"path": path, "kind": "dir", "mode": 0o755, "mtime": "2026-01-01T00:00:00Z", "uid": 0, "gid": 0})
}

/// The tar bytes: `manifest.json`, `data/`, then `entries`.
pub fn tar_bytes(manifest: &[u8], entries: &[(Header, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let (header, data) = entry("manifest.json", EntryType::Regular, manifest, None);
    builder.append(&header, data.as_slice()).unwrap();
    let (header, data) = entry("data/", EntryType::Directory, b"", None);
    builder.append(&header, data.as_slice()).unwrap();
    for (header, data) in entries {
        builder.append(header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Writes `tar` compressed with zstd to `path`.
pub fn write_archive(path: &Path, tar: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, zstd::encode_all(tar, 3).unwrap()).unwrap();
}
