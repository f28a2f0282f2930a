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
