//! The crate's one error type.

use std::io;
use std::net::SocketAddr;

use crate::{RouteName, RouteRule};

/// What can go wrong when configuring or starting the proxy.
///
/// Failures of a proxied request are not errors of this type: the client gets a 4xx or
/// 5xx page (see the crate documentation) and the proxy logs the cause with `tracing`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A route name that is empty, too long or holds characters other than ASCII
    /// letters, digits, `-`, `_` and `.`.
    #[error("invalid route name {name:?}: {reason}")]
    InvalidRouteName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host name that cannot be matched against a `Host` header.
    #[error("invalid host name {host:?}: {reason}")]
    InvalidHostName {
        /// The host name as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A route of this name is already in the table.
    #[error("route {name} already exists")]
    RouteExists {
        /// The route's name.
        name: RouteName,
    },
    /// Another route already answers on this port (and host name).
    #[error("{rule} is already routed to {route}")]
    RuleTaken {
        /// The port and host name asked for.
        rule: RouteRule,
        /// The route that holds it.
        route: RouteName,
    },
    /// No route of this name is in the table.
    #[error("no route named {name}")]
    UnknownRoute {
        /// The name asked for.
        name: RouteName,
    },
    /// The proxy could not listen on an address.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },
    /// A listener handed to the proxy has no local address.
    #[error("cannot read the listener's local address")]
    ListenerAddress {
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },
}
