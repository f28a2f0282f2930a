//! A lean HTTP/1.1 client for requests without a body (`GET`, `HEAD` and the like: most
//! of what a proxy forwards), driven by the request's own task.
//!
//! The request head is written from a buffer the connection keeps, the response head is
//! parsed (by `httparse`) from the connection's read buffer, and the body is passed on
//! from that buffer as it comes, framed by `Content-Length`, chunked or until the backend
//! closes. hyper's client ([`crate::pool::Conn`]) stays for requests with a body and for
//! upgrades: it runs each connection on a task of its own and hands requests, responses
//! and body frames over channels, which measured as about a third of the proxy's CPU
//! time per request.

use std::future::poll_fn;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, request, response};
use hyper::body::Frame;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use crate::connect::{UpstreamIo, connect};
use crate::headers::{X_FORWARDED_FOR, is_forwarded, write_forwarded};
use crate::pool::{ConnectError, Pool, Pooled};

/// The most headers a response (or its trailers) may carry, as hyper's client allows.
const MAX_HEADERS: usize = 100;
/// The largest response head, as hyper's client allows by default.
const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// The longest chunk-size line (with its extensions) of a chunked body.
const MAX_CHUNK_LINE: usize = 4096;
/// Room made in the read buffer before each read.
const READ_SPACE: usize = 16 * 1024;

/// A plain keep-alive connection to a backend.
pub(crate) struct RawConn {
    io: UpstreamIo,
    /// Bytes read from the backend and not passed on yet.
    read: BytesMut,
    /// The request head being written.
    write: Vec<u8>,
    /// Where each header of the response head being parsed lies in `read`.
    spans: Vec<(HeaderName, Range<usize>)>,
    /// The deadline of the response head the connection waits for (see
    /// [`crate::pool::Conn`]: one timer per connection, moved later per exchange).
    timer: Deadline,
    /// Whether the backend lets the connection serve another exchange after this one.
    keep_alive: bool,
    /// Whether an exchange ended on it before (a pooled connection).
    reused: bool,
}

impl Pooled for RawConn {
    fn is_closed(&mut self) -> bool {
        if !self.keep_alive || !self.read.is_empty() {
            return true;
        }
        // An idle connection the backend closed (or wrote to, unasked) is readable. The
        // readiness is looked at without waiting (so without the task's waker), and
        // confirmed by a read only when it is set, which it rarely is.
        let stream = self.io.stream();
        match stream.poll_read_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut byte = [0; 1];
                !matches!(stream.try_read(&mut byte), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    fn is_reusable(&self) -> bool {
        self.keep_alive && self.read.is_empty()
    }
}

/// A connection's response deadline, on one Tokio sleep that is moved only when it
/// must be: at once to an earlier deadline, and to a later one (the usual case, each
/// exchange's deadline being later than the one before) only when it fires first
/// ([`crate::timer::poll_shared`]). It expires at the deadline last set all the same.
struct Deadline {
    sleep: Pin<Box<Sleep>>,
    at: Instant,
}

impl Deadline {
    fn new(timeout: Duration) -> Self {
        let sleep = Box::pin(tokio::time::sleep(timeout));
        let at = sleep.deadline();
        Self { sleep, at }
    }

    fn set(&mut self, at: Instant) {
        self.at = at;
    }

    /// Whether the deadline has passed; if not, the task is woken when it does.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        crate::timer::poll_shared(self.sleep.as_mut(), self.at, cx).is_ready()
    }
}

impl RawConn {
    /// Starts the wait for a response: it must start within `timeout`.
    pub(crate) fn arm(&mut self, timeout: Duration) {
        self.timer.set(Instant::now() + timeout);
    }
}

impl Pool<RawConn> {
    /// Opens a new plain connection.
    pub(crate) async fn open_raw(&self) -> Result<RawConn, ConnectError> {
        let io = connect(
            self.addr,
            self.settings.connect_timeout,
            Arc::clone(&self.open),
        )
        .await
        .map_err(ConnectError::Io)?;
        Ok(RawConn {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            spans: Vec::new(),
            timer: Deadline::new(self.settings.connect_timeout),
            keep_alive: true,
            reused: false,
        })
    }
}

/// Why an exchange on a plain connection failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// The connection was found closed before any of the response came: a pooled
    /// connection the backend closed meanwhile. `sent` tells whether the whole request
    /// had been written (then the backend may have seen it).
    Closed {
        sent: bool,
    },
    /// The response head did not start within the response timeout.
    TimedOut,
    Io(io::Error),
    /// The backend's response is not HTTP/1.x as this client reads it.
    Invalid(&'static str),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed { .. } => f.write_str("the backend closed the connection"),
            Self::TimedOut => f.write_str("the backend did not answer in time"),
            Self::Io(error) => write!(f, "{error}"),
            Self::Invalid(what) => write!(f, "invalid response: {what}"),
        }
    }
}

/// How the response body is delimited, and how far it has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Until the backend closes the connection.
    Close,
    /// The body was read to its end.
    Done,
}

/// Where a chunked body's reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, with this many bytes left.
    Data(u64),
    /// Before the line end that closes a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers,
}

impl Framing {
    pub(crate) fn is_done(self) -> bool {
        matches!(self, Self::Done | Self::Length(0))
    }
}

/// Sends a request without a body and waits for the response head (skipping `1xx`
/// interim responses other than `101`), until the connection's timer (armed by the
/// caller) runs out.
pub(crate) async fn send(
    conn: &mut RawConn,
    head: &request::Parts,
    forwarded: Forwarded<'_>,
) -> Result<(response::Parts, Framing), ExchangeError> {
    let reused = std::mem::replace(&mut conn.reused, true);
    encode_head(&mut conn.write, head, forwarded);
    if let Err(error) = write_all(conn).await {
        return Err(match error {
            // A pooled connection the backend closed: the request did not get there
            // whole, so it may go on another connection.
            ExchangeError::Io(error) if reused && is_closed_error(&error) => {
                ExchangeError::Closed { sent: false }
            }
            error => error,
        });
    }
    let mut received = false;
    loop {
        if let Some(status) = parse_head(conn)? {
            let (response, framing) = response_head(conn, status, &head.method)?;
            if response.status.is_informational()
                && response.status != StatusCode::SWITCHING_PROTOCOLS
            {
                continue;
            }
            if framing == Framing::Close {
                conn.keep_alive = false;
            }
            return Ok((response, framing));
        }
        // The timer is looked at when there is nothing to read: a backend that keeps
        // sending a head never whole still times out, at its first pause after the
        // deadline (or when the head grows too large).
        let read = poll_fn(|cx| match poll_fill(&mut conn.io, &mut conn.read, cx) {
            Poll::Pending if conn.timer.poll_expired(cx) => {
                Poll::Ready(Err(ExchangeError::TimedOut))
            }
            read => read.map_err(ExchangeError::Io),
        })
        .await;
        match read {
            Ok(0) if !received && conn.read.is_empty() && reused => {
                return Err(ExchangeError::Closed { sent: true });
            }
            Ok(0) => return Err(ExchangeError::Invalid("the connection closed mid-response")),
            Ok(_) => received = true,
            Err(ExchangeError::Io(error)) if !received && reused && is_closed_error(&error) => {
                return Err(ExchangeError::Closed { sent: true });
            }
            Err(error) => return Err(error),
        }
    }
}

fn is_closed_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// Who asked and how, for the `X-Forwarded-*` headers the head is written with.
#[derive(Clone, Copy)]
pub(crate) struct Forwarded<'a> {
    pub(crate) client_ip: &'a HeaderValue,
    pub(crate) proto: &'a HeaderValue,
}

/// The request line and headers, origin-form target, HTTP/1.1, with the
/// `X-Forwarded-*` headers [`crate::headers::set_forwarded`] would set (written here
/// rather than inserted in the header map first, which cost more than the rest of the
/// head's encoding).
fn encode_head(buf: &mut Vec<u8>, head: &request::Parts, forwarded: Forwarded<'_>) {
    buf.clear();
    buf.extend_from_slice(head.method.as_str().as_bytes());
    buf.push(b' ');
    let target = head.uri.path_and_query().map_or("/", |path| path.as_str());
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = None;
    let mut forwarded_for = false;
    for (name, value) in &head.headers {
        if *name == HOST {
            // The first, as `set_forwarded` takes it.
            host = host.or(Some(value));
        } else if is_forwarded(name) {
            forwarded_for |= *name == X_FORWARDED_FOR;
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    write_forwarded(
        buf,
        &head.headers,
        forwarded_for,
        host,
        forwarded.client_ip,
        forwarded.proto,
    );
    buf.extend_from_slice(b"\r\n");
}

async fn write_all(conn: &mut RawConn) -> Result<(), ExchangeError> {
    let RawConn {
        io, write, timer, ..
    } = conn;
    let mut written = 0;
    while written < write.len() {
        // As for reading: the timer is looked at when the backend takes nothing.
        let wrote = poll_fn(
            |cx| match Pin::new(io.stream()).poll_write(cx, &write[written..]) {
                Poll::Pending if timer.poll_expired(cx) => {
                    Poll::Ready(Err(ExchangeError::TimedOut))
                }
                wrote => wrote.map_err(ExchangeError::Io),
            },
        )
        .await?;
        if wrote == 0 {
            return Err(ExchangeError::Io(io::ErrorKind::WriteZero.into()));
        }
        written += wrote;
    }
    Ok(())
}

/// Reads what the backend sent into `read`; `Ok(0)` when it closed the connection.
fn poll_fill(
    io: &mut UpstreamIo,
    read: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if read.capacity() - read.len() < READ_SPACE / 4 {
        read.reserve(READ_SPACE);
    }
    tokio_util::io::poll_read_buf(Pin::new(io.stream()), cx, read)
}

/// What the status line of a response head said, and the head's length.
struct StatusLine {
    len: usize,
    code: u16,
    version: Version,
    seen: Seen,
}

/// Which of the headers that frame a response or end its connection it has: looked up
/// in its header map only when it does (most responses have no `Transfer-Encoding` and
/// no `Connection`).
#[derive(Clone, Copy, Default)]
struct Seen {
    transfer_encoding: bool,
    content_length: bool,
    connection: bool,
}

impl Seen {
    fn note(&mut self, name: &HeaderName) {
        if *name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if *name == CONTENT_LENGTH {
            self.content_length = true;
        } else if *name == CONNECTION {
            self.connection = true;
        }
    }
}

/// Parses the response head at the start of `conn.read` once it is whole, noting the
/// place of each header in `conn.spans`.
fn parse_head(conn: &mut RawConn) -> Result<Option<StatusLine>, ExchangeError> {
    if conn.read.is_empty() {
        return Ok(None);
    }
    // Left uninitialised: httparse writes the ones it parses (initialising all 100
    // cost more than parsing a short head).
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        &conn.read,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if conn.read.len() >= MAX_HEAD_BYTES => {
            return Err(ExchangeError::Invalid("the response head is too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ExchangeError::Invalid("too many headers"));
        }
        Err(_) => return Err(ExchangeError::Invalid("a malformed response head")),
    };
    let base = conn.read.as_ptr() as usize;
    conn.spans.clear();
    let mut seen = Seen::default();
    for header in response.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| ExchangeError::Invalid("a malformed header name"))?;
        seen.note(&name);
        let start = header.value.as_ptr() as usize - base;
        conn.spans.push((name, start..start + header.value.len()));
    }
    let code = response.code.unwrap_or_default();
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    Ok(Some(StatusLine {
        len,
        code,
        version,
        seen,
    }))
}

/// Takes the parsed response head out of `conn.read`: its status and headers (sharing
/// the bytes read), and how its body is delimited.
fn response_head(
    conn: &mut RawConn,
    line: StatusLine,
    method: &Method,
) -> Result<(response::Parts, Framing), ExchangeError> {
    let status = StatusCode::from_u16(line.code)
        .map_err(|_| ExchangeError::Invalid("a malformed status code"))?;
    let bytes = conn.read.split_to(line.len).freeze();
    let mut headers = HeaderMap::with_capacity(conn.spans.len());
    for (name, span) in conn.spans.drain(..) {
        let value = HeaderValue::from_maybe_shared(bytes.slice(span))
            .map_err(|_| ExchangeError::Invalid("a malformed header value"))?;
        headers.append(name, value);
    }
    let framing = framing(method, status, &mut headers, line.seen)?;
    conn.keep_alive = keeps_alive(line.version, &headers, line.seen);
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = line.version;
    parts.headers = headers;
    Ok((parts, framing))
}

/// How the body of a response with this status and these headers to a `method` request
/// is delimited (RFC 9112, section 6.3).
fn framing(
    method: &Method,
    status: StatusCode,
    headers: &mut HeaderMap,
    seen: Seen,
) -> Result<Framing, ExchangeError> {
    Ok(
        if *method == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Framing::Done
        } else if seen.transfer_encoding {
            // The last coding must be chunked to delimit the body; otherwise the body ends
            // when the connection does. `Content-Length` means nothing then.
            headers.remove(CONTENT_LENGTH);
            if last_coding_is_chunked(headers) {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::Close
            }
        } else if seen.content_length {
            Framing::Length(content_length(headers)?)
        } else {
            Framing::Close
        },
    )
}

fn last_coding_is_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

/// The one length every `Content-Length` field (and list element) gives.
fn content_length(headers: &HeaderMap) -> Result<u64, ExchangeError> {
    let invalid = ExchangeError::Invalid("an invalid content-length");
    let mut length = None;
    for value in &headers.get_all(CONTENT_LENGTH) {
        let value = value
            .to_str()
            .map_err(|_| ExchangeError::Invalid("an invalid content-length"))?;
        for element in value.split(',') {
            let element = element.trim();
            if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid);
            }
            let parsed: u64 = element
                .parse()
                .map_err(|_| ExchangeError::Invalid("an invalid content-length"))?;
            if length.is_some_and(|length| length != parsed) {
                return Err(invalid);
            }
            length = Some(parsed);
        }
    }
    length.ok_or(invalid)
}

/// Whether the backend keeps the connection open after this response: HTTP/1.1 unless
/// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
fn keeps_alive(version: Version, headers: &HeaderMap, seen: Seen) -> bool {
    if !seen.connection {
        return version != Version::HTTP_10;
    }
    let mut tokens = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim);
    if version == Version::HTTP_10 {
        tokens.any(|token| token.eq_ignore_ascii_case("keep-alive"))
    } else {
        !tokens.any(|token| token.eq_ignore_ascii_case("close"))
    }
}

/// Polls the next frame of a response body from the connection: data as it was read,
/// then the trailers of a chunked body, if any. The body is done when `framing` is.
pub(crate) fn poll_body(
    conn: &mut RawConn,
    framing: &mut Framing,
    cx: &mut Context<'_>,
) -> Poll<Option<io::Result<Frame<Bytes>>>> {
    loop {
        match framing {
            Framing::Done => return Poll::Ready(None),
            Framing::Length(0) => {
                *framing = Framing::Done;
                return Poll::Ready(None);
            }
            Framing::Length(left) => {
                if !conn.read.is_empty() {
                    let data = take(&mut conn.read, left);
                    if *left == 0 {
                        *framing = Framing::Done;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
            }
            Framing::Close => {
                if !conn.read.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(conn.read.split().freeze()))));
                }
            }
            Framing::Chunked(Chunk::Size) => {
                if let Some(size) = chunk_size(&mut conn.read)? {
                    *framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                    continue;
                }
            }
            Framing::Chunked(Chunk::Data(left)) => {
                if !conn.read.is_empty() {
                    let data = take(&mut conn.read, left);
                    if *left == 0 {
                        *framing = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
            }
            Framing::Chunked(Chunk::DataEnd) => {
                if conn.read.len() >= 2 {
                    if conn.read[..2] != *b"\r\n" {
                        return Poll::Ready(Some(Err(invalid_body(
                            "a chunk without its line end",
                        ))));
                    }
                    conn.read.advance(2);
                    *framing = Framing::Chunked(Chunk::Size);
                    continue;
                }
            }
            Framing::Chunked(Chunk::Trailers) => {
                if let Some(trailers) = trailers(&mut conn.read)? {
                    *framing = Framing::Done;
                    return Poll::Ready(
                        (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers))),
                    );
                }
            }
        }
        // More is needed.
        if ready!(poll_fill(&mut conn.io, &mut conn.read, cx))? == 0 {
            if *framing == Framing::Close {
                *framing = Framing::Done;
                conn.keep_alive = false;
                return Poll::Ready(None);
            }
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the backend closed the connection before the body's end",
            ))));
        }
    }
}

/// Up to `left` bytes from the start of `read`, counted off `left`.
fn take(read: &mut BytesMut, left: &mut u64) -> Bytes {
    let len = usize::try_from(*left).map_or(read.len(), |left| left.min(read.len()));
    *left -= len as u64;
    read.split_to(len).freeze()
}

fn invalid_body(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The size on a whole chunk-size line at the start of `read` (consumed with it); its
/// extensions are ignored.
fn chunk_size(read: &mut BytesMut) -> io::Result<Option<u64>> {
    let Some(end) = read.iter().position(|&b| b == b'\n') else {
        if read.len() > MAX_CHUNK_LINE {
            return Err(invalid_body("a chunk-size line too long"));
        }
        return Ok(None);
    };
    let line = read[..end]
        .strip_suffix(b"\r")
        .ok_or_else(|| invalid_body("a chunk-size line without its carriage return"))?;
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let rest = &line[digits..];
    if digits == 0
        || digits > 16
        || !(rest.is_empty() || rest[0] == b';' || rest[0] == b' ' || rest[0] == b'\t')
    {
        return Err(invalid_body("an invalid chunk size"));
    }
    let size = line[..digits]
        .iter()
        .fold(0u64, |size, &digit| size << 4 | u64::from(hex_value(digit)));
    read.advance(end + 1);
    Ok(Some(size))
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// The trailer section at the start of `read` once it is whole (consumed with it).
fn trailers(read: &mut BytesMut) -> io::Result<Option<HeaderMap>> {
    if read.starts_with(b"\r\n") {
        read.advance(2);
        return Ok(Some(HeaderMap::new()));
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (len, map) = match httparse::parse_headers(read, &mut fields) {
        Ok(httparse::Status::Complete((len, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for field in fields {
                let name = HeaderName::from_bytes(field.name.as_bytes())
                    .map_err(|_| invalid_body("a malformed trailer name"))?;
                let value = HeaderValue::from_bytes(field.value)
                    .map_err(|_| invalid_body("a malformed trailer value"))?;
                map.append(name, value);
            }
            (len, map)
        }
        Ok(httparse::Status::Partial) if read.len() >= MAX_HEAD_BYTES => {
            return Err(invalid_body("trailers too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid_body("malformed trailers")),
    };
    read.advance(len);
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (at most 10 s) for a deadline to pass, and says how long that took.
    async fn wait(deadline: &mut Deadline) -> Duration {
        let began = Instant::now();
        let expired = poll_fn(|cx| {
            if deadline.poll_expired(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::time::timeout(Duration::from_secs(10), expired)
            .await
            .expect("the deadline passes");
        began.elapsed()
    }

    #[tokio::test]
    async fn a_deadline_expires_at_the_one_last_set() {
        let mut deadline = Deadline::new(Duration::from_millis(20));
        // Later than the sleep's: it fires first, and the wait goes on.
        deadline.set(Instant::now() + Duration::from_millis(80));
        assert!(wait(&mut deadline).await >= Duration::from_millis(79));
        // Expired, then set later again.
        deadline.set(Instant::now() + Duration::from_millis(50));
        assert!(wait(&mut deadline).await >= Duration::from_millis(49));
        // Earlier than the sleep's.
        deadline.set(Instant::now() + Duration::from_secs(60));
        deadline.set(Instant::now() + Duration::from_millis(30));
        assert!(wait(&mut deadline).await >= Duration::from_millis(29));
    }

    /// What the chunk-size line at the start of `input` gives, and what is left.
    fn check_chunk_size(input: &str) -> String {
        let mut read = BytesMut::from(input);
        match chunk_size(&mut read) {
            Ok(Some(size)) => format!("{size} rest={:?}", std::str::from_utf8(&read).unwrap()),
            Ok(None) => "more".to_owned(),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn chunk_sizes_are_read_with_their_line() {
        assert_eq!(check_chunk_size("1a\r\nabc"), "26 rest=\"abc\"");
        assert_eq!(check_chunk_size("FF;name=value\r\n"), "255 rest=\"\"");
        assert_eq!(check_chunk_size("0\r\n\r\n"), "0 rest=\"\\r\\n\"");
        assert_eq!(check_chunk_size("1a"), "more");
        assert_eq!(check_chunk_size("\r\n"), "error: an invalid chunk size");
        assert_eq!(check_chunk_size("x1\r\n"), "error: an invalid chunk size");
        assert_eq!(
            check_chunk_size("1\n"),
            "error: a chunk-size line without its carriage return"
        );
        assert_eq!(
            check_chunk_size("11111111111111111\r\n"),
            "error: an invalid chunk size"
        );
    }

    fn check_trailers(input: &str) -> String {
        let mut read = BytesMut::from(input);
        match trailers(&mut read) {
            Ok(Some(map)) => {
                let fields: Vec<String> = map
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value.to_str().unwrap()))
                    .collect();
                format!("[{}] rest={}", fields.join(" "), read.len())
            }
            Ok(None) => "more".to_owned(),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn trailers_end_with_an_empty_line() {
        assert_eq!(check_trailers("\r\nnext"), "[] rest=4");
        assert_eq!(check_trailers("X-Sum: 5\r\n\r\n"), "[x-sum=5] rest=0");
        assert_eq!(check_trailers("X-Sum: 5\r\n"), "more");
        assert_eq!(
            check_trailers("bad line\r\n\r\n"),
            "error: malformed trailers"
        );
    }

    /// The framing a response head gives a `GET` (or the method named first).
    fn check_head(input: &str) -> String {
        check_head_for(&Method::GET, input)
    }

    fn check_head_for(method: &Method, input: &str) -> String {
        let mut read = BytesMut::from(input);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(&read).unwrap() {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => return "more".to_owned(),
        };
        let mut spans = Vec::new();
        let mut seen = Seen::default();
        let base = read.as_ptr() as usize;
        for header in response.headers.iter() {
            let start = header.value.as_ptr() as usize - base;
            let name = HeaderName::from_bytes(header.name.as_bytes()).unwrap();
            seen.note(&name);
            spans.push((name, start..start + header.value.len()));
        }
        let line = StatusLine {
            len,
            code: response.code.unwrap(),
            version: if response.version == Some(0) {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            },
            seen,
        };
        let bytes = read.split_to(len).freeze();
        match framing_of(method, &line, &bytes, spans) {
            Ok((framing, keep_alive)) => format!("{framing:?} keep_alive={keep_alive}"),
            Err(error) => format!("error: {error}"),
        }
    }

    fn framing_of(
        method: &Method,
        line: &StatusLine,
        bytes: &Bytes,
        spans: Vec<(HeaderName, Range<usize>)>,
    ) -> Result<(Framing, bool), ExchangeError> {
        let mut headers = HeaderMap::new();
        for (name, span) in spans {
            headers.append(
                name,
                HeaderValue::from_maybe_shared(bytes.slice(span)).unwrap(),
            );
        }
        let status = StatusCode::from_u16(line.code).unwrap();
        let framing = framing(method, status, &mut headers, line.seen)?;
        Ok((framing, keeps_alive(line.version, &headers, line.seen)))
    }

    #[test]
    fn response_bodies_are_framed_as_rfc_9112_says() {
        assert_eq!(
            check_head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            "Length(5) keep_alive=true"
        );
        assert_eq!(
            check_head("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
            "Length(5) keep_alive=true"
        );
        assert_eq!(
            check_head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n"),
            "error: invalid response: an invalid content-length"
        );
        assert_eq!(
            check_head("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"),
            "error: invalid response: an invalid content-length"
        );
        assert_eq!(
            check_head(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"
            ),
            "Chunked(Size) keep_alive=true"
        );
        assert_eq!(
            check_head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            "Close keep_alive=true"
        );
        assert_eq!(
            check_head("HTTP/1.1 200 OK\r\n\r\n"),
            "Close keep_alive=true"
        );
        assert_eq!(
            check_head("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"),
            "Done keep_alive=true"
        );
        assert_eq!(
            check_head("HTTP/1.1 304 Not Modified\r\n\r\n"),
            "Done keep_alive=true"
        );
        assert_eq!(
            check_head_for(
                &Method::HEAD,
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
            ),
            "Done keep_alive=true"
        );
        assert_eq!(
            check_head("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
            "Length(0) keep_alive=false"
        );
        assert_eq!(
            check_head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"),
            "Length(0) keep_alive=false"
        );
        assert_eq!(
            check_head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: Keep-Alive\r\n\r\n"),
            "Length(0) keep_alive=true"
        );
    }

    #[test]
    fn request_heads_are_origin_form_http_1_1() {
        let (mut head, ()) = http::Request::get("/a?b=c").body(()).unwrap().into_parts();
        head.headers
            .insert("host", HeaderValue::from_static("app.test"));
        head.headers.append("x-many", HeaderValue::from_static("1"));
        head.headers.append("x-many", HeaderValue::from_static("2"));
        let mut buf = Vec::new();
        let forwarded = Forwarded {
            client_ip: &HeaderValue::from_static("192.0.2.1"),
            proto: &HeaderValue::from_static("http"),
        };
        encode_head(&mut buf, &head, forwarded);
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "GET /a?b=c HTTP/1.1\r\nhost: app.test\r\nx-many: 1\r\nx-many: 2\r\n\
             x-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: app.test\r\n\r\n"
        );
        // What the client sent of them is replaced, but for the addresses before.
        head.headers
            .append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        head.headers
            .append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        head.headers
            .insert("x-forwarded-proto", HeaderValue::from_static("https"));
        head.headers
            .insert("x-forwarded-host", HeaderValue::from_static("spoofed.test"));
        head.headers.remove("host");
        encode_head(&mut buf, &head, forwarded);
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "GET /a?b=c HTTP/1.1\r\nx-many: 1\r\nx-many: 2\r\n\
             x-forwarded-for: 203.0.113.7, 10.0.0.1, 192.0.2.1\r\nx-forwarded-proto: http\r\n\r\n"
        );
    }
}
