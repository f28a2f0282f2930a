//! Connecting to backends: plain TCP to a socket address, counted per address.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Open upstream connections per backend address.
#[derive(Clone, Default)]
pub(crate) struct ConnectionCounts(Arc<Mutex<HashMap<SocketAddr, Arc<AtomicUsize>>>>);

impl ConnectionCounts {
    pub(crate) fn for_addr(&self, addr: SocketAddr) -> Arc<AtomicUsize> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(counts.entry(addr).or_default())
    }
}

/// Connects to a backend within `timeout`; the connection counts in `count` while open.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    count: Arc<AtomicUsize>,
) -> io::Result<UpstreamIo> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
    stream.set_nodelay(true)?;
    count.fetch_add(1, Ordering::Relaxed);
    Ok(UpstreamIo {
        io: TokioIo::new(stream),
        count,
    })
}

/// A connection to a backend, counted while open.
pub(crate) struct UpstreamIo {
    io: TokioIo<TcpStream>,
    count: Arc<AtomicUsize>,
}

impl UpstreamIo {
    /// The socket, for [`crate::client`], which reads and writes it itself.
    pub(crate) fn stream(&mut self) -> &mut TcpStream {
        self.io.inner_mut()
    }
}

impl Drop for UpstreamIo {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
