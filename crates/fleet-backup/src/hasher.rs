//! SHA-256 of the archived files on a helper thread, so that the thread feeding the
//! compressor only reads: when compression is cheap (incompressible data, small files), the
//! checksum no longer limits the pace.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::Digest;

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

/// A buffer with the pieces it holds, in order.
struct Batch {
    buf: Vec<u8>,
    pieces: Vec<Piece>,
}

/// Hashes files, one after another, on a helper thread. The caller reads each file's bytes
/// into [`Hasher::room`], takes them back from [`Hasher::commit`] to compress them, and
/// marks each file's end with [`Hasher::end_file`]; [`Hasher::finish`] returns one digest
/// per file, in order. At most [`BUFFERS`] × [`BUF`] bytes are held.
pub(crate) struct Hasher {
    tx: Option<SyncSender<Batch>>,
    spare: Receiver<Vec<u8>>,
    made: usize,
    current: Batch,
    filled: usize,
    handle: Option<JoinHandle<Vec<Sha256>>>,
}

impl Hasher {
    pub(crate) fn spawn() -> Self {
        let (tx, rx) = sync_channel::<Batch>(BUFFERS);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(BUFFERS);
        let handle = std::thread::spawn(move || {
            let mut digests = Vec::new();
            let mut hasher = sha2::Sha256::new();
            for batch in rx {
                let mut at = 0;
                for piece in batch.pieces {
                    match piece {
                        Piece::Data(len) => {
                            hasher.update(&batch.buf[at..at + len]);
                            at += len;
                        }
                        Piece::EndFile => {
                            digests.push(Sha256(hasher.finalize_reset().into()));
                        }
                    }
                }
                // Fails only once the reading side is gone, when the buffer is not needed.
                let _ = spare_tx.try_send(batch.buf);
            }
            digests
        });
        Hasher {
            tx: Some(tx),
            spare,
            made: 1,
            current: Batch {
                buf: vec![0; BUF],
                pieces: Vec::new(),
            },
            filled: 0,
            handle: Some(handle),
        }
    }

    /// Room to read the current file's next bytes into: at least [`MIN_ROOM`] bytes.
    pub(crate) fn room(&mut self) -> io::Result<&mut [u8]> {
        if BUF - self.filled < MIN_ROOM {
            self.send()?;
        }
        Ok(&mut self.current.buf[self.filled..])
    }

    /// Takes the first `len` bytes of [`Hasher::room`] as the current file's next bytes, and
    /// returns them.
    pub(crate) fn commit(&mut self, len: usize) -> &[u8] {
        let start = self.filled;
        self.filled += len;
        match self.current.pieces.last_mut() {
            Some(Piece::Data(n)) => *n += len,
            _ => self.current.pieces.push(Piece::Data(len)),
        }
        &self.current.buf[start..self.filled]
    }

    /// Ends the current file: its digest is the next one [`Hasher::finish`] returns.
    pub(crate) fn end_file(&mut self) {
        self.current.pieces.push(Piece::EndFile);
    }

    /// Waits for the hashing to catch up: the digest of every file, in order.
    pub(crate) fn finish(mut self) -> io::Result<Vec<Sha256>> {
        self.send()?;
        self.tx = None;
        let handle = self.handle.take().expect("finish runs once");
        handle
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))
    }

    /// Hands the current buffer over and takes a free one.
    fn send(&mut self) -> io::Result<()> {
        if self.current.pieces.is_empty() {
            self.filled = 0;
            return Ok(());
        }
        let next = match self.spare.try_recv() {
            Ok(buf) => buf,
            Err(_) if self.made < BUFFERS => {
                self.made += 1;
                vec![0; BUF]
            }
            Err(_) => self
                .spare
                .recv()
                .map_err(|_| io::Error::other("the hashing thread stopped"))?,
        };
        let batch = std::mem::replace(
            &mut self.current,
            Batch {
                buf: next,
                pieces: Vec::new(),
            },
        );
        self.filled = 0;
        let tx = self.tx.as_ref().expect("not finished");
        tx.send(batch)
            .map_err(|_| io::Error::other("the hashing thread stopped"))
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
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
