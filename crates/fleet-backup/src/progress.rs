//! Progress reporting for long operations.

/// How far an operation has come, in bytes.
///
/// For `create` the bytes are file content read (`total` is the size of everything to
/// archive); for `verify` and `restore` they are archive bytes read (`total` is the archive's
/// size). `done` only grows and ends equal to `total` on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes processed so far.
    pub done: u64,
    /// Bytes to process in all.
    pub total: u64,
}

/// Calls back at most once per this many bytes, so a callback can be slow-ish.
const STEP: u64 = 1 << 20;

/// Counts bytes and calls the callback every [`STEP`] bytes and at the end.
pub(crate) struct Tracker<'a> {
    callback: &'a mut dyn FnMut(Progress),
    done: u64,
    total: u64,
    reported: u64,
}

impl<'a> Tracker<'a> {
    pub(crate) fn new(callback: &'a mut dyn FnMut(Progress), total: u64) -> Self {
        callback(Progress { done: 0, total });
        Tracker {
            callback,
            done: 0,
            total,
            reported: 0,
        }
    }

    pub(crate) fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.done - self.reported >= STEP {
            self.report();
        }
    }

    /// Sets the bytes done so far (never backwards).
    pub(crate) fn set(&mut self, done: u64) {
        if done > self.done {
            self.advance(done - self.done);
        }
    }

    /// Reports completion: `done` becomes `total`.
    pub(crate) fn finish(&mut self) {
        self.done = self.done.max(self.total);
        self.total = self.done;
        self.report();
    }

    fn report(&mut self) {
        self.reported = self.done;
        (self.callback)(Progress {
            done: self.done,
            total: self.total.max(self.done),
        });
    }
}
