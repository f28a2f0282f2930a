//! SHA-256 of the archived files on a helper thread, so that the thread feeding the
//! compressor only reads: when compression is cheap (incompressible data, small files), the
//! checksum no longer limits the pace.

use std::io;

use sha2::Digest;

use crate::chunks::{Chunk, ChunkReceiver, Consumer};
use crate::manifest::Sha256;

/// The size of each buffer: files are read into them, then hashed.
const BUF: usize = 1 << 20;
/// Buffers in all, so the hashing thread is at most this many MiB behind the reading one.
const BUFFERS: usize = 8;
/// A buffer with less room left than this is handed over rather than read into.
const MIN_ROOM: usize = 64 << 10;

/// One run of the current file's bytes in a buffer, or the end of that file.
enum Piece {
    Data(usize),
    EndFile,
}

/// Hashes files, one after another, on a helper thread. The caller reads each file's bytes
/// into [`Hasher::room`], takes them back from [`Hasher::commit`] to compress them, and
/// marks each file's end with [`Hasher::end_file`]; [`Hasher::finish`] returns one digest
/// per file, in order. At most [`BUFFERS`] × [`BUF`] bytes are held.
pub(crate) struct Hasher {
    thread: Consumer<Vec<Piece>, Vec<Sha256>>,
    /// The buffer being filled (always [`BUF`] long) and the pieces it holds, in order.
    buf: Vec<u8>,
    pieces: Vec<Piece>,
    filled: usize,
}

impl Hasher {
    pub(crate) fn spawn() -> Self {
        let mut thread = Consumer::spawn("hashing", BUFFERS, hash);
        let mut buf = thread.buffer().expect("the first buffer is a new one");
        buf.resize(BUF, 0);
        Hasher {
            thread,
            buf,
            pieces: Vec::new(),
            filled: 0,
        }
    }

    /// Room to read the current file's next bytes into: at least [`MIN_ROOM`] bytes.
    pub(crate) fn room(&mut self) -> io::Result<&mut [u8]> {
        if BUF - self.filled < MIN_ROOM {
            self.send()?;
        }
        Ok(&mut self.buf[self.filled..])
    }

    /// Takes the first `len` bytes of [`Hasher::room`] as the current file's next bytes, and
    /// returns them.
    pub(crate) fn commit(&mut self, len: usize) -> &[u8] {
        let start = self.filled;
        self.filled += len;
        match self.pieces.last_mut() {
            Some(Piece::Data(n)) => *n += len,
            _ => self.pieces.push(Piece::Data(len)),
        }
        &self.buf[start..self.filled]
    }

    /// Ends the current file: its digest is the next one [`Hasher::finish`] returns.
    pub(crate) fn end_file(&mut self) {
        self.pieces.push(Piece::EndFile);
    }

    /// Waits for the hashing to catch up: the digest of every file, in order.
    pub(crate) fn finish(mut self) -> io::Result<Vec<Sha256>> {
        self.send()?;
        self.thread.finish()
    }

    /// Hands the current buffer over and takes a free one.
    fn send(&mut self) -> io::Result<()> {
        if self.pieces.is_empty() {
            self.filled = 0;
            return Ok(());
        }
        let mut next = self.thread.buffer()?;
        // New buffers come empty; those handed back are still `BUF` long.
        next.resize(BUF, 0);
        let bytes = std::mem::replace(&mut self.buf, next);
        let meta = std::mem::take(&mut self.pieces);
        self.filled = 0;
        self.thread.send(Chunk { bytes, meta })
    }
}

/// The hashing thread: the digest of every file, in order.
fn hash(chunks: &ChunkReceiver<Vec<Piece>>) -> io::Result<Vec<Sha256>> {
    let mut digests = Vec::new();
    let mut hasher = sha2::Sha256::new();
    for chunk in chunks {
        let mut at = 0;
        for piece in chunk.meta {
            match piece {
                Piece::Data(len) => {
                    hasher.update(&chunk.bytes[at..at + len]);
                    at += len;
                }
                Piece::EndFile => digests.push(Sha256(hasher.finalize_reset().into())),
            }
        }
        chunks.recycle(chunk.bytes);
    }
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds files of the given lengths (byte `i` of file `f` is `(i + f) % 251`, so no two
    /// files of 251 bytes or more are alike) through a hasher, reading at most `step` bytes
    /// at a time; says which digests differ from a direct SHA-256.
    fn check(lens: &[usize], step: usize) -> String {
        let mut hasher = Hasher::spawn();
        let mut expected = Vec::new();
        for (file, &len) in lens.iter().enumerate() {
            let content: Vec<u8> = (0..len).map(|i| ((i + file) % 251) as u8).collect();
            expected.push(Sha256(sha2::Sha256::digest(&content).into()));
            let mut at = 0;
            while at < len {
                let room = hasher.room().unwrap();
                let n = room.len().min(step).min(len - at);
                room[..n].copy_from_slice(&content[at..at + n]);
                assert_eq!(hasher.commit(n), &content[at..at + n]);
                at += n;
            }
            hasher.end_file();
        }
        let digests = hasher.finish().unwrap();
        let wrong: Vec<usize> = (0..digests.len().min(expected.len()))
            .filter(|&i| digests[i] != expected[i])
            .collect();
        format!(
            "{} digests for {} files, wrong: {wrong:?}",
            digests.len(),
            expected.len()
        )
    }

    #[test]
    fn digests_match_whatever_the_buffer_boundaries() {
        insta::assert_snapshot!(check(&[], 1 << 20), @"0 digests for 0 files, wrong: []");
        insta::assert_snapshot!(check(&[0, 0, 5], 1 << 20), @"3 digests for 3 files, wrong: []");
        insta::assert_snapshot!(check(&[10 << 20, 3, 1 << 20, 0, (1 << 20) + 1], 1 << 20), @"5 digests for 5 files, wrong: []");
        insta::assert_snapshot!(check(&[100_000; 40], 7_000), @"40 digests for 40 files, wrong: []");
        insta::assert_snapshot!(check(&[(BUF - MIN_ROOM) + 1, BUF, 12], 1 << 20), @"3 digests for 3 files, wrong: []");
        // Many small files share each buffer.
        insta::assert_snapshot!(check(&[5_000; 700], 1 << 20), @"700 digests for 700 files, wrong: []");
    }
}
