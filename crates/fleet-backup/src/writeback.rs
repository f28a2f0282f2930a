//! Starting writeback early, so that the fsync that makes an archive or a restore durable
//! overlaps with the work instead of waiting for all of it at the end.

use std::fs::File;
use std::io::{self, Write};

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
/// Chunks in flight to the writer thread (so at most this many MiB buffered).
const DEPTH: usize = 8;

/// Writes on a helper thread (starting writeback as it goes), so that the thread producing
/// the data never waits for the disk while compression workers sit idle.
pub(crate) struct BackgroundWriter {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Written chunks coming back for reuse: no allocation (and page faults) per chunk.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    handle: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl BackgroundWriter {
    /// Writes to `file` from its current position, which is `offset`.
    pub(crate) fn spawn(file: File, offset: u64) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (spare_tx, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH + 2);
        let handle = std::thread::spawn(move || {
            let mut out = WritebackFile {
                file: &file,
                writeback: Writeback::at(offset),
            };
            for mut chunk in rx {
                out.write_all(&chunk)?;
                chunk.clear();
                let _ = spare_tx.try_send(chunk);
            }
            Ok(())
        });
        BackgroundWriter {
            tx: Some(tx),
            spare,
            buf: Vec::with_capacity(CHUNK),
            handle: Some(handle),
        }
    }

    /// Writes what is buffered and waits for the writer thread: its first error, if any.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send()?;
        self.tx = None;
        let handle = self.handle.take().expect("finish runs once");
        handle
            .join()
            .map_err(|_| io::Error::other("the archive writer thread panicked"))?
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        let tx = self.tx.as_ref().expect("not finished");
        // A send fails only when the thread has stopped on an error: `finish` reports it.
        tx.send(chunk)
            .map_err(|_| io::Error::other("the archive writer thread stopped"))
    }
}

impl Write for BackgroundWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK
            && let Err(err) = self.send()
        {
            // Surface the thread's own error rather than the generic one.
            return Err(self
                .handle
                .take()
                .and_then(|h| h.join().ok())
                .and_then(Result::err)
                .unwrap_or(err));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
