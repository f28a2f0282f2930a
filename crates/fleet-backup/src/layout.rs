//! The byte layout of an archive.
//!
//! An archive is one tar stream compressed as zstd frames:
//!
//! ```text
//! [frame A: tar entry `manifest.json`] [skippable frame: padding] [frame B: `data/...` entries, end of tar]
//! ```
//!
//! The manifest must come first (so `list` reads only a few kilobytes) yet holds the
//! checksum of every file, known only after every file is read. Reading each file twice
//! would double the I/O and let a file change between the two reads, so `create` reads each
//! file once: it computes the manifest's exact length from the walk (checksums have a fixed
//! width), reserves `compress_bound` of it at the start of the file, writes frame B after the
//! reservation, then writes frame A into it and fills the rest with a zstd skippable frame,
//! which every zstd decoder (the `zstd` CLI included) steps over. The decompressed stream
//! is a plain tar, so `tar -I zstd -xf` extracts an archive too.
//!
//! In frame B, entries come in manifest order (parents before children), except SQLite
//! snapshots: each comes wherever its copy, made on a helper thread, was ready, at the
//! latest last. Readers match tar entries to the manifest by path, never by position.

use std::io::{self, Write};

use tar::{EntryType, Header};

use crate::manifest::{DATA_DIR, Entry, EntryKind};

/// The tar block size.
pub(crate) const BLOCK: u64 = 512;

/// The first magic number of zstd skippable frames.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// The name of `entry` in the tar stream: under [`DATA_DIR`], directories with a trailing `/`.
pub(crate) fn tar_path(entry: &Entry) -> String {
    let mut path = if entry.path == crate::manifest::ROOT {
        DATA_DIR.to_owned()
    } else {
        format!("{DATA_DIR}/{}", entry.path)
    };
    if matches!(entry.kind, EntryKind::Dir) {
        path.push('/');
    }
    path
}

/// Writes the header (and GNU long-name records when needed) for `entry`.
pub(crate) fn write_entry_header(w: &mut impl Write, entry: &Entry) -> io::Result<()> {
    let (entry_type, size, link) = match &entry.kind {
        EntryKind::File { size, .. } => (EntryType::Regular, *size, None),
        EntryKind::Dir => (EntryType::Directory, 0, None),
        EntryKind::Symlink { target } => (EntryType::Symlink, 0, Some(target.as_str())),
    };
    let mut header = Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(entry.mode & 0o7777);
    header.set_uid(entry.uid.into());
    header.set_gid(entry.gid.into());
    // Tar keeps whole seconds since the epoch; the manifest keeps the exact time.
    header.set_mtime(entry.mtime.as_second().max(0).unsigned_abs());
    write_name(w, &mut header, tar_path(entry).as_bytes(), b'L')?;
    if let Some(link) = link {
        write_name(w, &mut header, link.as_bytes(), b'K')?;
    }
    header.set_cksum();
    w.write_all(header.as_bytes())
}

/// Writes the header of the manifest entry.
pub(crate) fn write_manifest_header(w: &mut impl Write, len: u64, mtime: u64) -> io::Result<()> {
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    write_name(
        w,
        &mut header,
        crate::manifest::MANIFEST_PATH.as_bytes(),
        b'L',
    )?;
    header.set_cksum();
    w.write_all(header.as_bytes())
}

/// Stores `name` in the header's name (`kind` `L`) or link name (`K`) field, preceded by a
/// GNU long-name record when it does not fit.
fn write_name(w: &mut impl Write, header: &mut Header, name: &[u8], kind: u8) -> io::Result<()> {
    let field = if kind == b'L' {
        &mut header.as_old_mut().name
    } else {
        &mut header.as_old_mut().linkname
    };
    if name.len() <= field.len() {
        field[..name.len()].copy_from_slice(name);
        return Ok(());
    }
    let width = field.len();
    field.copy_from_slice(&name[..width]);
    let mut long = Header::new_gnu();
    long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    long.set_mode(0o644);
    long.set_mtime(0);
    long.set_entry_type(EntryType::new(kind));
    long.set_size(name.len() as u64 + 1);
    long.set_cksum();
    w.write_all(long.as_bytes())?;
    w.write_all(name)?;
    w.write_all(&[0])?;
    write_padding(w, name.len() as u64 + 1)
}

/// Pads an entry of `len` bytes to the tar block size.
pub(crate) fn write_padding(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rest = (BLOCK - len % BLOCK) % BLOCK;
    w.write_all(&[0; BLOCK as usize][..rest as usize])
}

/// Rounds `len` up to the tar block size.
pub(crate) fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// The header of a zstd skippable frame with `len` bytes of content.
pub(crate) fn skippable_frame_header(len: u32) -> [u8; 8] {
    let mut header = [0; 8];
    header[..4].copy_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    header[4..].copy_from_slice(&len.to_le_bytes());
    header
}
