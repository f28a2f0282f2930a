//! An embeddable HTTP/1.1 reverse proxy whose routes switch atomically, so an update
//! loses no request.
//!
//! `fleet-proxy` listens on ports, routes each request by the port it arrived on and
//! its `Host`, and forwards it to a backend socket address over pooled keep-alive
//! connections. Switching a route's backend is one atomic swap of the route table:
//! the next request goes to the new backend, requests and upgraded connections on the
//! old one go on, and a [`Switch`] waits for the old backend to drain (with a deadline)
//! before its owner stops it. Clients' keep-alive connections are never broken by a
//! switch. It knows nothing of Docker or registries.
//!
//! # Map
//!
//! - [`Proxy`]: made from a [`ProxyConfig`] (limits, timeouts, pool); [`Proxy::listen`]
//!   or [`Proxy::serve`] start a [`Listener`]; [`Proxy::shutdown`] and
//!   [`Listener::close`] stop gracefully and return a [`ShutdownReport`].
//! - [`Routes`] ([`Proxy::routes`]): the route table. A route has a [`RouteName`], a
//!   [`RouteRule`] (a port, optionally a [`HostName`]) and a backend address.
//!   [`Routes::set_backend`] and [`Routes::remove`] return a [`Switch`], whose
//!   [`Switch::drained`] gives a [`DrainReport`]. [`Routes::get`] and [`Routes::list`]
//!   return [`RouteInfo`] with the backend's [`BackendStats`] (requests, upgraded
//!   connections, open upstream connections).
//! - [`Error`]: configuration and listening errors.
//!
//! # What a client sees
//!
//! - Requests and responses stream both ways, never buffered whole; `X-Forwarded-For`
//!   (appended), `X-Forwarded-Proto` and `X-Forwarded-Host` are set; hop-by-hop headers
//!   (`Connection` and the headers it names, `Keep-Alive`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade` unless upgrading, `Proxy-*`) are removed both ways.
//! - `Upgrade` requests (WebSocket) are proxied; the upgraded connection lives until
//!   either side closes it or its backend's drain times out.
//! - The proxy answers itself with a small HTML page: `404` when no route matches,
//!   `431` for a request head over [`ProxyConfig::max_header_bytes`], `413` for a body
//!   over [`ProxyConfig::max_body_bytes`], `502` naming the route when the backend
//!   cannot be reached or fails, `504` when it does not answer within
//!   [`ProxyConfig::response_timeout`]. An idempotent request without a body whose
//!   connection was refused is sent once more after [`ProxyConfig::retry_delay`], to
//!   the route's backend at that moment.
//!
//! The library never prints: it logs through `tracing`.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use fleet_proxy::{Proxy, ProxyConfig, RouteName, RouteRule};
//!
//! # async fn run() -> Result<(), fleet_proxy::Error> {
//! let proxy = Proxy::new(ProxyConfig::default());
//! let alice: RouteName = "alice".parse()?;
//! proxy.routes().insert(alice.clone(), RouteRule::port(8080), "172.18.0.5:80".parse().unwrap())?;
//! let listener = proxy.listen("0.0.0.0:8080".parse().unwrap()).await?;
//!
//! // Later, the new version is healthy: switch, then wait for the old one to drain.
//! let switch = proxy.routes().set_backend(&alice, "172.18.0.6:80".parse().unwrap())?;
//! let report = switch.drained(Duration::from_secs(30)).await;
//! assert_eq!(report.in_flight_left, 0, "{report}");
//! // Now the old container can be stopped.
//!
//! listener.close(Duration::from_secs(10)).await;
//! # Ok(())
//! # }
//! ```

mod backend;
mod body;
mod client;
mod config;
mod connect;
mod drain;
mod error;
mod forward;
mod headers;
mod limits;
mod names;
mod pages;
mod pool;
mod proxy;
mod routes;
mod server;
mod timer;
mod track;
mod upgrade;

pub use backend::BackendStats;
pub use config::ProxyConfig;
pub use drain::{DrainReport, Switch};
pub use error::Error;
pub use names::{HostName, RouteName};
pub use proxy::Proxy;
pub use routes::{RouteInfo, RouteRule, Routes};
pub use server::{Listener, ShutdownReport};
