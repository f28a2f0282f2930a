//! `fleet serve`: fleet's reverse proxy ([`fleet_proxy`]) for one state directory.
//!
//! Instances created or updated while it runs are reached through it on their host
//! ports; their containers publish no port themselves. Its routes live in the store
//! (`routes`), so a restarted `fleet serve` serves the same routes at once. Commands
//! switch routes through its control socket (`<state dir>/serve.sock`, owner only) and
//! wait for the old container to drain before they stop it. While it is down, the
//! instances behind it are not reachable on their host ports (their containers run on;
//! it is meant to run under systemd or another supervisor that restarts it).
//!
//! With an API address, it also answers `GET /api/health` over HTTP ([`ApiHealth`]), which
//! [`check`] asks: the health check of a container running `fleet serve`.

mod api;
mod control;
mod server;

pub use api::{ApiCheck, ApiHealth, HEALTH_PATH, check};
pub(crate) use control::{ControlClient, Request, RouteSpec};
pub use control::{Drained, SOCKET};
pub use server::ServeReport;
