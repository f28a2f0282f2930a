//! Backends, clients and a proxy for the tests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fleet_proxy::{Proxy, ProxyConfig, RouteName, RouteRule};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

pub(crate) fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A backend: a hyper server on a free loopback port, counting the requests it got.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl Backend {
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections open to this backend now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections this backend accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

pub(crate) async fn backend<F, Fut>(handler: F) -> Backend
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    backend_on(listener, handler)
}

pub(crate) fn backend_on<F, Fut>(listener: TcpListener, handler: F) -> Backend
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (counted, open_count, accepted_count) =
        (Arc::clone(&hits), Arc::clone(&open), Arc::clone(&accepted));
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let hits = Arc::clone(&counted);
            let open = Arc::clone(&open_count);
            open.fetch_add(1, Ordering::SeqCst);
            accepted_count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let response = handler(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Backend {
        addr,
        hits,
        open,
        accepted,
        accept,
    }
}

/// A backend answering every request with its name.
pub(crate) async fn named(name: &'static str) -> Backend {
    backend(move |_| async move { Response::new(full(name)) }).await
}

/// A loopback address nothing listens on.
pub(crate) async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub(crate) fn route(name: &str) -> RouteName {
    name.parse().unwrap()
}

/// A proxy listening on a free loopback port, with `app` routed there to `backend`.
pub(crate) async fn proxy(config: ProxyConfig, backend: SocketAddr) -> (Proxy, SocketAddr) {
    let proxy = Proxy::new(config);
    let listener = proxy.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr();
    proxy
        .routes()
        .insert(route("app"), RouteRule::port(addr.port()), backend)
        .unwrap();
    (proxy, addr)
}

/// One client connection, kept alive across requests.
pub(crate) struct Client {
    send: SendRequest<Body>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self { send }
    }

    pub(crate) async fn send(
        &mut self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        self.send.ready().await?;
        self.send.send_request(request).await
    }

    /// `GET path`: the status and the whole body as text.
    pub(crate) async fn get(&mut self, path: &str) -> Result<(StatusCode, String), BoxError> {
        let request = Request::get(path)
            .header("host", "app.test")
            .body(full(""))
            .unwrap();
        let response = self.send(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(body.to_vec())?))
    }
}

/// Sends one request on a new connection; returns the status, headers and body text.
pub(crate) async fn send(
    addr: SocketAddr,
    request: Request<Body>,
) -> (StatusCode, HeaderMap, String) {
    let response = Client::connect(addr).await.send(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// `GET /` for `app.test` on a new connection.
pub(crate) async fn get(addr: SocketAddr) -> (StatusCode, String) {
    let request = Request::get("/")
        .header("host", "app.test")
        .body(full(""))
        .unwrap();
    let (status, _, body) = send(addr, request).await;
    (status, body)
}

/// Polls `condition` every few milliseconds for up to 5 s.
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A backend whose responses stream `first`, then wait for [`Gate::open`], then send
/// `rest`: a response in flight for as long as the test wants.
pub(crate) struct Gate {
    pub(crate) backend: Backend,
    open: Arc<tokio::sync::Semaphore>,
}

impl Gate {
    pub(crate) async fn start() -> Self {
        let open = Arc::new(tokio::sync::Semaphore::new(0));
        let gate = Arc::clone(&open);
        let backend = backend(move |_| {
            let gate = Arc::clone(&gate);
            async move {
                let (mut sender, body) =
                    http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
                tokio::spawn(async move {
                    let _ = sender.send_data(Bytes::from_static(b"first;")).await;
                    let _permit = gate.acquire().await;
                    let _ = sender.send_data(Bytes::from_static(b"rest")).await;
                });
                Response::new(body.boxed())
            }
        })
        .await;
        Self { backend, open }
    }

    /// Lets every waiting and future response finish.
    pub(crate) fn open(&self) {
        self.open.add_permits(1 << 20);
    }
}
