//! Starting writeback early, so that the fsync that makes an archive or a restore durable
//! overlaps with the work instead of waiting for all of it at the end.

use std::fs::File;
use std::io::{self, Write};

use crate::chunks::{Chunk, Consumer};

/// Writeback is started every this many bytes.
const STEP: u64 = 8 << 20;

/// Tracks bytes written to a file and starts their writeback every [`STEP`] bytes.
pub(crate) struct Writeback {
    offset: u64,
    started: u64,
}

impl Writeback {
    /// For a file whose next write lands at `offset`.
    pub(crate) fn at(offset: u64) -> Self {
        Writeback {
            offset,
            started: offset,
        }
    }

    /// Records `len` more bytes written to `file`.
    pub(crate) fn wrote(&mut self, file: &File, len: u64) {
        self.offset += len;
        if self.offset - self.started >= STEP {
            self.start(file);
        }
    }

    /// Starts writeback of everything recorded so far.
    pub(crate) fn start(&mut self, file: &File) {
        if self.offset > self.started {
            start_writeback(file, self.started, self.offset - self.started);
            self.started = self.offset;
        }
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a valid descriptor. Failure only loses the head start: the
    // fsync that follows still makes the data durable, so the result is ignored.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            i64::try_from(offset).unwrap_or(i64::MAX),
            i64::try_from(len).unwrap_or(i64::MAX),
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}

/// A file writer that starts writeback as it goes.
pub(crate) struct WritebackFile<'a> {
    pub(crate) file: &'a File,
    pub(crate) writeback: Writeback,
}

impl Write for WritebackFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.writeback.wrote(self.file, n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes handed to the writer thread at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight to the writer thread, plus the one being filled and the one being
/// written: at most this many MiB buffered.
const BUFFERS: usize = 10;

/// Writes on a helper thread (starting writeback as it goes), so that the thread producing
/// the data never waits for the disk while compression workers sit idle.
pub(crate) struct BackgroundWriter {
    thread: Consumer<(), ()>,
    buf: Vec<u8>,
}

impl BackgroundWriter {
    /// Writes to `file` from its current position, which is `offset`.
    pub(crate) fn spawn(file: File, offset: u64) -> Self {
        let mut thread = Consumer::spawn("archive writer", BUFFERS, move |chunks| {
            let mut out = WritebackFile {
                file: &file,
                writeback: Writeback::at(offset),
            };
            for chunk in chunks {
                out.write_all(&chunk.bytes)?;
                chunks.recycle(chunk.bytes);
            }
            Ok(())
        });
        let mut buf = thread.buffer().expect("the first buffer is a new one");
        buf.reserve_exact(CHUNK);
        BackgroundWriter { thread, buf }
    }

    /// Writes what is buffered and waits for the writer thread: its first error, if any.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send()?;
        self.thread.finish()
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut next = self.thread.buffer()?;
        next.clear();
        next.reserve_exact(CHUNK);
        let bytes = std::mem::replace(&mut self.buf, next);
        self.thread.send(Chunk { bytes, meta: () })
    }
}

impl Write for BackgroundWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            // On failure, the writer thread's own error.
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
