//! Bodies streamed through the proxy, frame by frame, never buffered whole.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::backend::InFlight;
use crate::client::{self, Framing, RawConn};
use crate::limits::BodyTooLarge;
use crate::pool::Conn;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body on its way to a backend: the client's, cut off past the limit.
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    limit: u64,
    read: u64,
}

impl RequestBody {
    pub(crate) fn new(incoming: Incoming, limit: Option<u64>) -> Self {
        Self {
            inner: Some(incoming),
            limit: limit.unwrap_or(u64::MAX),
            read: 0,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            self.read += data.len() as u64;
            if self.read > self.limit {
                self.inner = None;
                let limit = self.limit;
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

/// A response body on its way to the client: the backend's, streamed while the request
/// counts as in flight on it, or a page of the proxy's own.
pub(crate) enum ResponseBody {
    Upstream(UpstreamBody),
    Raw(RawBody),
    Page(Full<Bytes>),
}

/// The backend's response body, and what the exchange holds until its end: the request's
/// place in the backend's count and the connection, which goes back to the pool when the
/// body was read to its end (and is closed otherwise).
pub(crate) struct UpstreamBody {
    body: Incoming,
    exchange: Option<(InFlight, Conn)>,
}

impl UpstreamBody {
    fn finish(&mut self) {
        if let Some((in_flight, conn)) = self.exchange.take()
            && self.body.is_end_stream()
        {
            in_flight.backend().pool.checkin(conn);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The backend's response body read by [`crate::client`] from a plain connection, and
/// what the exchange holds until its end, as for [`UpstreamBody`].
pub(crate) struct RawBody {
    framing: Framing,
    exchange: Option<(InFlight, RawConn)>,
}

impl RawBody {
    fn finish(&mut self) {
        if let Some((in_flight, conn)) = self.exchange.take()
            && self.framing.is_done()
        {
            in_flight.backend().raw.checkin(conn);
        }
    }
}

impl Drop for RawBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl ResponseBody {
    pub(crate) fn raw(framing: Framing, in_flight: InFlight, conn: RawConn) -> Self {
        Self::Raw(RawBody {
            framing,
            exchange: Some((in_flight, conn)),
        })
    }

    pub(crate) fn upstream(body: Incoming, in_flight: InFlight, conn: Conn) -> Self {
        Self::Upstream(UpstreamBody {
            body,
            exchange: Some((in_flight, conn)),
        })
    }

    pub(crate) fn empty() -> Self {
        Self::Page(Full::default())
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Upstream(upstream) => {
                let frame = ready!(Pin::new(&mut upstream.body).poll_frame(cx));
                match &frame {
                    // The exchange is over: the request leaves the backend's count now,
                    // not when hyper gets round to dropping the body.
                    Some(Ok(_)) if upstream.body.is_end_stream() => upstream.finish(),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => upstream.finish(),
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Self::Raw(raw) => {
                let Some((_, conn)) = raw.exchange.as_mut() else {
                    return Poll::Ready(None);
                };
                let frame = ready!(client::poll_body(conn, &mut raw.framing, cx));
                match &frame {
                    // As above: the exchange is over with its last byte.
                    Some(Ok(_)) if raw.framing.is_done() => raw.finish(),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => raw.finish(),
                }
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Self::Page(page) => Pin::new(page)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream(upstream) => upstream.body.is_end_stream(),
            Self::Raw(raw) => raw.framing.is_done(),
            Self::Page(page) => page.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream(upstream) => upstream.body.size_hint(),
            Self::Raw(raw) => match raw.framing {
                Framing::Length(left) => SizeHint::with_exact(left),
                Framing::Done => SizeHint::with_exact(0),
                Framing::Chunked(_) | Framing::Close => SizeHint::default(),
            },
            Self::Page(page) => page.size_hint(),
        }
    }
}
