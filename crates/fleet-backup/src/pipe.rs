//! Decompression on a helper thread, so that verifying and writing files overlap with it.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::progress::Tracker;

/// Decompressed bytes handed over at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: with [`CHUNK`], at most this many MiB buffered between the threads.
const DEPTH: usize = 4;

/// Runs `body` on the decompressed content of `file`, which a helper thread decodes ahead
/// (at most [`DEPTH`] chunks ahead, so memory stays bounded). `tracker` follows the
/// compressed bytes consumed.
pub(crate) fn decompressed<T>(
    file: &File,
    tracker: &mut Tracker<'_>,
    body: impl FnOnce(&mut dyn Read) -> T,
) -> T {
    let consumed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (chunks, rx) = sync_channel(DEPTH);
        let (spare_tx, spare) = sync_channel(DEPTH + 2);
        let consumed = &consumed;
        scope.spawn(move || decode(file, consumed, &chunks, &spare));
        let mut reader = ChunkReader {
            rx,
            spare: spare_tx,
            current: Vec::new(),
            pos: 0,
            done: false,
            consumed,
            tracker,
        };
        body(&mut reader)
        // Dropping the reader here disconnects the channel, which stops the decoder thread.
    })
}

fn decode(
    file: &File,
    consumed: &AtomicU64,
    chunks: &SyncSender<io::Result<Vec<u8>>>,
    spare: &Receiver<Vec<u8>>,
) {
    let counting = Counting {
        inner: file,
        consumed,
    };
    let mut decoder = match zstd::Decoder::new(counting) {
        Ok(decoder) => decoder,
        Err(err) => {
            let _ = chunks.send(Err(err));
            return;
        }
    };
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let result = loop {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(false);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Err(err),
            }
        };
        buf.truncate(filled);
        let end = match result {
            Ok(end) => end,
            Err(err) => {
                // Hand over what was decoded before the error, then the error itself.
                let _ = chunks.send(Ok(buf));
                let _ = chunks.send(Err(err));
                return;
            }
        };
        if !buf.is_empty() && chunks.send(Ok(buf)).is_err() {
            return; // The reader is gone: stop.
        }
        if end {
            return;
        }
    }
}

/// Counts the compressed bytes the decoder reads.
struct Counting<'a> {
    inner: &'a File,
    consumed: &'a AtomicU64,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads the chunks the decoder thread sends.
struct ChunkReader<'t, 'a> {
    rx: Receiver<io::Result<Vec<u8>>>,
    spare: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    consumed: &'t AtomicU64,
    tracker: &'t mut Tracker<'a>,
}

impl Read for ChunkReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.current, chunk);
                    let _ = self.spare.try_send(used);
                    self.pos = 0;
                    self.tracker.set(self.consumed.load(Ordering::Relaxed));
                }
                Ok(Err(err)) => {
                    self.done = true;
                    return Err(err);
                }
                Err(_) => {
                    self.done = true;
                    self.tracker.set(self.consumed.load(Ordering::Relaxed));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
