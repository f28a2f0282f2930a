//! The route table: which backend answers a request arriving on a port, by host name.
//!
//! The table is immutable and shared through an [`ArcSwap`]: a request loads the
//! current table without a lock, and a change builds a new table and swaps it in
//! whole, so a request sees the table before a change or after it, never half of it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::backend::{Backend, BackendStats, InFlight};
use crate::connect::ConnectionCounts;
use crate::drain::Switch;
use crate::names::request_host;
use crate::pool::PoolSettings;
use crate::{Error, HostName, RouteName};

/// Where a route answers: requests arriving on a listener's port, optionally only
/// those for one host name.
///
/// On a port, a request goes to the route of its `Host` when there is one, otherwise
/// to the port's route without a host name (its default), otherwise it is answered
/// `404`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteRule {
    /// The local port of the listener the request arrived on.
    pub port: u16,
    /// The host name the request must name, or `None` for every host name no other
    /// route on the port claims.
    pub host: Option<HostName>,
}

impl RouteRule {
    /// Every request arriving on `port` (that no host-name route on it claims).
    pub fn port(port: u16) -> Self {
        Self { port, host: None }
    }

    /// Requests arriving on `port` for `host`.
    pub fn host(port: u16, host: HostName) -> Self {
        Self {
            port,
            host: Some(host),
        }
    }
}

impl fmt::Display for RouteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "host {host} on port {}", self.port),
            None => write!(f, "port {}", self.port),
        }
    }
}

/// A route as the table holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The route's name.
    pub name: RouteName,
    /// Where it answers.
    pub rule: RouteRule,
    /// Its current backend.
    pub backend: SocketAddr,
    /// What is in flight on that backend.
    pub stats: BackendStats,
}

/// A route in the table. Immutable: switching its backend replaces it.
pub(crate) struct Route {
    pub(crate) name: RouteName,
    pub(crate) rule: RouteRule,
    pub(crate) backend: Arc<Backend>,
}

impl Route {
    fn info(&self) -> RouteInfo {
        RouteInfo {
            name: self.name.clone(),
            rule: self.rule.clone(),
            backend: self.backend.addr,
            stats: self.backend.stats(),
        }
    }
}

#[derive(Default, Clone)]
struct Table {
    by_name: BTreeMap<RouteName, Arc<Route>>,
    by_port: HashMap<u16, PortRoutes>,
}

#[derive(Default, Clone)]
struct PortRoutes {
    default: Option<Arc<Route>>,
    hosts: HashMap<HostName, Arc<Route>>,
}

impl PortRoutes {
    fn slot(&mut self, host: Option<&HostName>) -> Option<&mut Arc<Route>> {
        match host {
            Some(host) => self.hosts.get_mut(host),
            None => self.default.as_mut(),
        }
    }

    fn is_empty(&self) -> bool {
        self.default.is_none() && self.hosts.is_empty()
    }
}

impl Table {
    fn put(&mut self, route: Arc<Route>) {
        let port = self.by_port.entry(route.rule.port).or_default();
        match &route.rule.host {
            Some(host) => {
                port.hosts.insert(host.clone(), Arc::clone(&route));
            }
            None => port.default = Some(Arc::clone(&route)),
        }
        self.by_name.insert(route.name.clone(), route);
    }

    fn take(&mut self, name: &RouteName) -> Option<Arc<Route>> {
        let route = self.by_name.remove(name)?;
        if let Some(port) = self.by_port.get_mut(&route.rule.port) {
            match &route.rule.host {
                Some(host) => {
                    port.hosts.remove(host);
                }
                None => port.default = None,
            }
            if port.is_empty() {
                self.by_port.remove(&route.rule.port);
            }
        }
        Some(route)
    }

    fn holder(&mut self, rule: &RouteRule) -> Option<RouteName> {
        let port = self.by_port.get_mut(&rule.port)?;
        port.slot(rule.host.as_ref())
            .map(|route| route.name.clone())
    }
}

/// The proxy's route table, shared by every listener of one [`crate::Proxy`]. Cheap to
/// clone; every clone changes the same table.
#[derive(Clone)]
pub struct Routes {
    shared: Arc<Shared>,
}

struct Shared {
    table: ArcSwap<Table>,
    /// Serialises changes, so none is lost between reading and swapping the table.
    write: Mutex<()>,
    connections: ConnectionCounts,
    pool: Arc<PoolSettings>,
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.list()).finish()
    }
}

impl Routes {
    pub(crate) fn new(connections: ConnectionCounts, pool: PoolSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                table: ArcSwap::from_pointee(Table::default()),
                write: Mutex::new(()),
                connections,
                pool: Arc::new(pool),
            }),
        }
    }

    /// Adds a route to `backend`. Fails when a route of that name exists or another
    /// route already answers on the same port and host name.
    pub fn insert(
        &self,
        name: RouteName,
        rule: RouteRule,
        backend: SocketAddr,
    ) -> Result<(), Error> {
        self.change(|table| {
            if table.by_name.contains_key(&name) {
                return Err(Error::RouteExists { name });
            }
            if let Some(route) = table.holder(&rule) {
                return Err(Error::RuleTaken { rule, route });
            }
            let backend = self.backend(backend);
            table.put(Arc::new(Route {
                name,
                rule,
                backend,
            }));
            Ok(())
        })
    }

    /// Points a route at a new backend, atomically: every request that looks the
    /// route up from now on goes to `backend`, while requests and upgraded connections
    /// already on the previous backend go on. Await [`Switch::drained`] to know when
    /// the previous backend is idle (and to close its upgraded connections at a
    /// deadline) before stopping it.
    ///
    /// Pointing a route at the backend it already has changes nothing; the switch then
    /// drains at once.
    pub fn set_backend(&self, name: &RouteName, backend: SocketAddr) -> Result<Switch, Error> {
        let previous = self.change(|table| {
            let Some(route) = table.by_name.get(name) else {
                return Err(Error::UnknownRoute { name: name.clone() });
            };
            if route.backend.addr == backend {
                return Ok(None);
            }
            let new = Arc::new(Route {
                name: route.name.clone(),
                rule: route.rule.clone(),
                backend: self.backend(backend),
            });
            let old = table.take(name).expect("the route was just found");
            table.put(new);
            Ok(Some(old))
        })?;
        Ok(Switch::new(name.clone(), previous.map(retired)))
    }

    /// Removes a route: its requests are answered `404` (or go to the port's default
    /// route) from now on. The returned switch drains its last backend.
    pub fn remove(&self, name: &RouteName) -> Result<Switch, Error> {
        let old = self.change(|table| {
            table
                .take(name)
                .ok_or_else(|| Error::UnknownRoute { name: name.clone() })
        })?;
        Ok(Switch::new(name.clone(), Some(retired(old))))
    }

    /// The route of this name, if any.
    pub fn get(&self, name: &RouteName) -> Option<RouteInfo> {
        self.shared
            .table
            .load()
            .by_name
            .get(name)
            .map(|route| route.info())
    }

    /// Every route, by name.
    pub fn list(&self) -> Vec<RouteInfo> {
        self.shared
            .table
            .load()
            .by_name
            .values()
            .map(|route| route.info())
            .collect()
    }

    /// The ports routes answer on, in order: the listeners an embedder should run.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.shared.table.load().by_port.keys().copied().collect();
        ports.sort_unstable();
        ports
    }

    /// Finds the route for a request on `port` naming `host` and counts the request on
    /// its backend; `None` when no route answers there.
    pub(crate) fn enter(&self, port: u16, host: Option<&[u8]>) -> Option<(Arc<Route>, InFlight)> {
        loop {
            let route = self.find(port, host)?;
            // `None`: the route was switched between the lookup and now; look again.
            if let Some(in_flight) = route.backend.enter() {
                return Some((route, in_flight));
            }
        }
    }

    fn find(&self, port: u16, host: Option<&[u8]>) -> Option<Arc<Route>> {
        let table = self.shared.table.load();
        let routes = table.by_port.get(&port)?;
        if !routes.hosts.is_empty() {
            let route = host
                .and_then(request_host)
                .and_then(|host| routes.hosts.get(host.as_ref()));
            if let Some(route) = route {
                return Some(Arc::clone(route));
            }
        }
        routes.default.clone()
    }

    fn backend(&self, addr: SocketAddr) -> Arc<Backend> {
        Arc::new(Backend::new(
            addr,
            Arc::clone(&self.shared.pool),
            self.shared.connections.for_addr(addr),
        ))
    }

    fn change<T>(&self, change: impl FnOnce(&mut Table) -> Result<T, Error>) -> Result<T, Error> {
        let _write = self
            .shared
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut table = Table::clone(&self.shared.table.load());
        let out = change(&mut table)?;
        self.shared.table.store(Arc::new(table));
        Ok(out)
    }
}

/// Marks a route's backend as retired, after the table without it was swapped in.
fn retired(route: Arc<Route>) -> Arc<Backend> {
    route.backend.retire();
    Arc::clone(&route.backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let pool = PoolSettings {
            connect_timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
            max_idle: 1,
        };
        Routes::new(ConnectionCounts::default(), pool)
    }

    fn name(name: &str) -> RouteName {
        RouteName::new(name).unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Which backend port a request on `port` for `host` reaches, or "404".
    fn check(routes: &Routes, port: u16, host: &str) -> String {
        let host = (!host.is_empty()).then_some(host.as_bytes());
        match routes.enter(port, host) {
            Some((route, in_flight)) => {
                format!("{} {}", route.name, in_flight.backend().addr.port())
            }
            None => "404".to_owned(),
        }
    }

    #[test]
    fn requests_go_by_port_then_host_then_the_port_default() {
        let routes = routes();
        routes
            .insert(
                name("alice"),
                RouteRule::host(80, "alice.lan".parse().unwrap()),
                addr(1),
            )
            .unwrap();
        routes
            .insert(
                name("bob"),
                RouteRule::host(80, "bob.lan".parse().unwrap()),
                addr(2),
            )
            .unwrap();
        routes
            .insert(name("web"), RouteRule::port(8080), addr(3))
            .unwrap();
        assert_eq!(check(&routes, 80, "alice.lan"), "alice 1");
        assert_eq!(check(&routes, 80, "Bob.LAN:80"), "bob 2");
        assert_eq!(check(&routes, 80, "carol.lan"), "404");
        assert_eq!(check(&routes, 80, ""), "404");
        assert_eq!(check(&routes, 8080, "alice.lan"), "web 3");
        assert_eq!(check(&routes, 8080, ""), "web 3");
        assert_eq!(check(&routes, 81, "alice.lan"), "404");
        routes
            .insert(name("default"), RouteRule::port(80), addr(4))
            .unwrap();
        assert_eq!(check(&routes, 80, "carol.lan"), "default 4");
        assert_eq!(routes.ports(), [80, 8080]);
    }

    #[test]
    fn a_switch_sends_new_requests_to_the_new_backend_and_retires_the_old() {
        let routes = routes();
        routes
            .insert(name("a"), RouteRule::port(80), addr(1))
            .unwrap();
        let (_, before) = routes.enter(80, None).unwrap();
        let switch = routes.set_backend(&name("a"), addr(2)).unwrap();
        assert_eq!(switch.previous(), Some(addr(1)));
        assert_eq!(check(&routes, 80, ""), "a 2");
        // The old backend is retired: it takes no new request.
        assert!(before.backend().enter().is_none());
        assert_eq!(before.backend().stats().requests, 1);
        drop(before);
        assert_eq!(routes.get(&name("a")).unwrap().backend, addr(2));
    }

    #[test]
    fn switching_to_the_same_backend_changes_nothing() {
        let routes = routes();
        routes
            .insert(name("a"), RouteRule::port(80), addr(1))
            .unwrap();
        let switch = routes.set_backend(&name("a"), addr(1)).unwrap();
        assert_eq!(switch.previous(), None);
        assert_eq!(check(&routes, 80, ""), "a 1");
    }

    #[test]
    fn conflicts_and_unknown_routes_are_errors() {
        let routes = routes();
        routes
            .insert(name("a"), RouteRule::port(80), addr(1))
            .unwrap();
        let error = routes
            .insert(name("a"), RouteRule::port(81), addr(1))
            .unwrap_err();
        assert_eq!(error.to_string(), "route a already exists");
        let error = routes
            .insert(name("b"), RouteRule::port(80), addr(1))
            .unwrap_err();
        assert_eq!(error.to_string(), "port 80 is already routed to a");
        let error = routes.set_backend(&name("c"), addr(1)).unwrap_err();
        assert_eq!(error.to_string(), "no route named c");
        let _switch = routes.remove(&name("a")).unwrap();
        assert_eq!(check(&routes, 80, ""), "404");
        assert!(routes.remove(&name("a")).is_err());
        assert!(routes.list().is_empty());
        assert!(routes.ports().is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u16, Option<u8>, u16),
        Switch(u8, u16),
        Remove(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..4, 80u16..82, proptest::option::of(0u8..3), 1u16..5)
                .prop_map(|(n, p, h, b)| Op::Insert(n, p, h, b)),
            (0u8..4, 1u16..5).prop_map(|(n, b)| Op::Switch(n, b)),
            (0u8..4).prop_map(Op::Remove),
        ]
    }

    proptest::proptest! {
        /// The table answers every lookup as a plain list of routes would.
        #[test]
        fn the_table_agrees_with_a_list_of_routes(ops in proptest::collection::vec(op(), 1..40)) {
            let routes = routes();
            let mut model: Vec<(String, u16, Option<String>, u16)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(n, port, host, backend) => {
                        let host = host.map(|h| format!("h{h}.lan"));
                        let taken = model.iter().any(|r| r.0 == format!("r{n}") || (r.1 == port && r.2 == host));
                        let rule = RouteRule { port, host: host.as_deref().map(|h| h.parse().unwrap()) };
                        let result = routes.insert(name(&format!("r{n}")), rule, addr(backend));
                        proptest::prop_assert_eq!(result.is_err(), taken);
                        if !taken { model.push((format!("r{n}"), port, host, backend)); }
                    }
                    Op::Switch(n, backend) => {
                        let result = routes.set_backend(&name(&format!("r{n}")), addr(backend));
                        let found = model.iter_mut().find(|r| r.0 == format!("r{n}"));
                        proptest::prop_assert_eq!(result.is_ok(), found.is_some());
                        if let Some(r) = found { r.3 = backend; }
                    }
                    Op::Remove(n) => {
                        let result = routes.remove(&name(&format!("r{n}")));
                        let before = model.len();
                        model.retain(|r| r.0 != format!("r{n}"));
                        proptest::prop_assert_eq!(result.is_ok(), model.len() < before);
                    }
                }
                for port in 80..82 {
                    for host in ["h0.lan", "h1.lan", "h2.lan", "other.lan", ""] {
                        let expected = model.iter()
                            .find(|r| r.1 == port && r.2.as_deref() == Some(host))
                            .or_else(|| model.iter().find(|r| r.1 == port && r.2.is_none()))
                            .map_or("404".to_owned(), |r| format!("{} {}", r.0, r.3));
                        proptest::prop_assert_eq!(check(&routes, port, host), expected);
                    }
                }
            }
        }
    }
}
