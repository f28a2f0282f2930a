//! The one chunk pipeline between threads: byte buffers handed from one thread to another
//! through a bounded queue and handed back for reuse, so memory stays bounded and no chunk
//! costs an allocation (and its page faults). Hashing ([`crate::hasher`]), writing the
//! archive ([`crate::writeback`]) and decompressing ahead of a restore ([`crate::pipe`])
//! all run on it.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// A buffer of bytes and what the receiving side needs to know about them (`M`).
pub(crate) struct Chunk<M> {
    pub(crate) bytes: Vec<u8>,
    pub(crate) meta: M,
}

/// A pipeline of at most `buffers` buffers: both ends together never hold more.
pub(crate) fn channel<M>(buffers: usize) -> (ChunkSender<M>, ChunkReceiver<M>) {
    assert!(buffers >= 2, "one buffer to fill while another is consumed");
    // Neither queue can hold more than every buffer, so neither ever drops one.
    let (tx, rx) = sync_channel(buffers);
    let (spare_tx, spare) = sync_channel(buffers);
    (
        ChunkSender {
            tx,
            spare,
            made: 0,
            buffers,
        },
        ChunkReceiver {
            rx,
            spare: spare_tx,
        },
    )
}

/// The sending end was dropped before the chunk could be received, or the receiving one.
#[derive(Debug)]
pub(crate) struct Disconnected;

/// The filling end of a [`channel`].
pub(crate) struct ChunkSender<M> {
    tx: SyncSender<Chunk<M>>,
    spare: Receiver<Vec<u8>>,
    made: usize,
    buffers: usize,
}

impl<M> ChunkSender<M> {
    /// A buffer to fill: one handed back (as the receiver left it) or a new empty one while
    /// fewer than `buffers` exist; otherwise waits for one to come back.
    pub(crate) fn buffer(&mut self) -> Result<Vec<u8>, Disconnected> {
        match self.spare.try_recv() {
            Ok(buf) => Ok(buf),
            Err(_) if self.made < self.buffers => {
                self.made += 1;
                Ok(Vec::new())
            }
            Err(_) => self.spare.recv().map_err(|_| Disconnected),
        }
    }

    /// Hands a chunk over, waiting while the queue is full.
    pub(crate) fn send(&self, chunk: Chunk<M>) -> Result<(), Disconnected> {
        self.tx.send(chunk).map_err(|_| Disconnected)
    }
}

/// The consuming end of a [`channel`].
pub(crate) struct ChunkReceiver<M> {
    rx: Receiver<Chunk<M>>,
    spare: SyncSender<Vec<u8>>,
}

impl<M> ChunkReceiver<M> {
    /// The next chunk; `None` once the sender is gone and every chunk was received.
    pub(crate) fn recv(&self) -> Option<Chunk<M>> {
        self.rx.recv().ok()
    }

    /// Hands a received chunk's buffer back to the sender for reuse.
    pub(crate) fn recycle(&self, buf: Vec<u8>) {
        // Fails only once the sender is gone, when the buffer is not needed.
        let _ = self.spare.try_send(buf);
    }
}

impl<M> Iterator for &ChunkReceiver<M> {
    type Item = Chunk<M>;

    fn next(&mut self) -> Option<Chunk<M>> {
        self.recv()
    }
}

/// A [`channel`] whose receiving end runs `consume` on a helper thread, and the thread.
pub(crate) struct Consumer<M, R> {
    tx: Option<ChunkSender<M>>,
    handle: Option<JoinHandle<io::Result<R>>>,
    /// What the thread does, for errors: "hashing", "archive writer".
    what: &'static str,
}

impl<M: Send + 'static, R: Send + 'static> Consumer<M, R> {
    /// Starts the thread, with at most `buffers` buffers between it and the caller.
    pub(crate) fn spawn(
        what: &'static str,
        buffers: usize,
        consume: impl FnOnce(&ChunkReceiver<M>) -> io::Result<R> + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel(buffers);
        let handle = std::thread::spawn(move || consume(&rx));
        Consumer {
            tx: Some(tx),
            handle: Some(handle),
            what,
        }
    }

    /// A buffer to fill (see [`ChunkSender::buffer`]).
    pub(crate) fn buffer(&mut self) -> io::Result<Vec<u8>> {
        let result = match &mut self.tx {
            Some(tx) => tx.buffer(),
            None => Err(Disconnected),
        };
        result.map_err(|Disconnected| self.stopped())
    }

    /// Hands a chunk to the thread.
    pub(crate) fn send(&mut self, chunk: Chunk<M>) -> io::Result<()> {
        let result = match &self.tx {
            Some(tx) => tx.send(chunk),
            None => Err(Disconnected),
        };
        result.map_err(|Disconnected| self.stopped())
    }

    /// Waits for the thread to consume every chunk sent: what it returned.
    pub(crate) fn finish(mut self) -> io::Result<R> {
        self.tx = None;
        match self.handle.take() {
            Some(handle) => handle
                .join()
                .map_err(|_| io::Error::other(format!("the {} thread panicked", self.what)))?,
            None => Err(self.stopped()),
        }
    }

    /// The thread stopped early: its own error rather than a generic one, when it has one.
    fn stopped(&mut self) -> io::Error {
        self.tx = None;
        let generic = || io::Error::other(format!("the {} thread stopped", self.what));
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Err(err))) => err,
            _ => generic(),
        }
    }
}

impl<M, R> Drop for Consumer<M, R> {
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

    /// Sends `chunks` chunks through a pipeline of `buffers` buffers; says how many buffers
    /// were made, how many chunks arrived and whether their bytes were intact.
    fn run(buffers: usize, chunks: u8) -> String {
        let mut consumer = Consumer::spawn("test", buffers, |rx: &ChunkReceiver<u8>| {
            let mut seen = Vec::new();
            for chunk in rx {
                seen.push(chunk.bytes.iter().all(|&b| b == chunk.meta));
                rx.recycle(chunk.bytes);
            }
            Ok(seen)
        });
        let mut made = 0;
        for i in 0..chunks {
            let mut buf = consumer.buffer().unwrap();
            if buf.capacity() == 0 {
                made += 1;
            }
            buf.clear();
            buf.resize(1000 + usize::from(i), i);
            consumer
                .send(Chunk {
                    bytes: buf,
                    meta: i,
                })
                .unwrap();
        }
        let seen = consumer.finish().unwrap();
        format!(
            "made at most {buffers}: {}, received {}, intact: {}",
            made <= buffers,
            seen.len(),
            seen.iter().all(|&ok| ok)
        )
    }

    #[test]
    fn chunks_arrive_in_order_in_bounded_reused_buffers() {
        insta::assert_snapshot!(run(2, 0), @"made at most 2: true, received 0, intact: true");
        insta::assert_snapshot!(run(2, 1), @"made at most 2: true, received 1, intact: true");
        insta::assert_snapshot!(run(4, 200), @"made at most 4: true, received 200, intact: true");
    }

    #[test]
    fn a_thread_error_is_reported_by_the_next_call() {
        let mut consumer = Consumer::spawn("test", 2, |rx: &ChunkReceiver<()>| {
            rx.recv();
            Err::<(), _>(io::Error::other("disk full"))
        });
        let mut error = None;
        for _ in 0..10 {
            let sent = consumer
                .buffer()
                .and_then(|bytes| consumer.send(Chunk { bytes, meta: () }));
            if let Err(err) = sent {
                error = Some(err.to_string());
                break;
            }
        }
        insta::assert_snapshot!(error.unwrap(), @"disk full");
        insta::assert_snapshot!(consumer.finish().unwrap_err(), @"the test thread stopped");
    }
}
