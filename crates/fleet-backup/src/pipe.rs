//! Decompression on a helper thread, so that verifying and writing files overlap with it.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::chunks::{self, Chunk, ChunkReceiver, ChunkSender};
use crate::progress::Tracker;

/// Decompressed bytes handed over at a time.
const CHUNK: usize = 1 << 20;
/// Buffers in all: four chunks in flight, one being decoded into and one being read, so at
/// most this many MiB between the threads.
const BUFFERS: usize = 6;

/// What follows a chunk's bytes: more chunks, or the error that ended the stream.
type Ending = Option<io::Error>;

/// Runs `body` on the decompressed content of `file`, which a helper thread decodes ahead
/// (in at most [`BUFFERS`] buffers, so memory stays bounded). `tracker` follows the
/// compressed bytes consumed.
pub(crate) fn decompressed<T>(
    file: &File,
    tracker: &mut Tracker<'_>,
    body: impl FnOnce(&mut dyn Read) -> T,
) -> T {
    let consumed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (chunks, rx) = chunks::channel(BUFFERS);
        let consumed = &consumed;
        scope.spawn(move || decode(file, consumed, chunks));
        let mut reader = ChunkReader {
            rx,
            current: Vec::new(),
            pos: 0,
            ending: None,
            done: false,
            consumed,
            tracker,
        };
        body(&mut reader)
        // Dropping the reader here disconnects the channel, which stops the decoder thread.
    })
}

fn decode(file: &File, consumed: &AtomicU64, mut chunks: ChunkSender<Ending>) {
    let counting = Counting {
        inner: file,
        consumed,
    };
    let mut decoder = match zstd::Decoder::new(counting) {
        Ok(decoder) => decoder,
        Err(err) => {
            let _ = chunks.send(Chunk {
                bytes: Vec::new(),
                meta: Some(err),
            });
            return;
        }
    };
    loop {
        let Ok(mut buf) = chunks.buffer() else {
            return; // The reader is gone: stop.
        };
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
                // What was decoded before the error, then the error itself.
                let _ = chunks.send(Chunk {
                    bytes: buf,
                    meta: Some(err),
                });
                return;
            }
        };
        if !buf.is_empty()
            && chunks
                .send(Chunk {
                    bytes: buf,
                    meta: None,
                })
                .is_err()
        {
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
    rx: ChunkReceiver<Ending>,
    current: Vec<u8>,
    pos: usize,
    /// The error to return once `current` is read.
    ending: Ending,
    done: bool,
    consumed: &'t AtomicU64,
    tracker: &'t mut Tracker<'a>,
}

impl Read for ChunkReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if let Some(err) = self.ending.take() {
                self.done = true;
                return Err(err);
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Some(chunk) => {
                    let used = std::mem::replace(&mut self.current, chunk.bytes);
                    // The first `current` is no buffer of the pipeline's.
                    if used.capacity() > 0 {
                        self.rx.recycle(used);
                    }
                    self.ending = chunk.meta;
                    self.pos = 0;
                    self.tracker.set(self.consumed.load(Ordering::Relaxed));
                }
                None => {
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
