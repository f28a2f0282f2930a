//! `fleet serve`: fleet's proxy for one state directory, with the routes of the store,
//! and the control socket commands switch them through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleet_proxy::{Listener, Proxy, ProxyConfig, RouteName, RouteRule, ShutdownReport, Switch};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};

use super::api;
use super::control::{ControlClient, Drained, Request, Response, RouteSpec, SOCKET};
use crate::error::Error;
use crate::fleet::Fleet;

/// What `fleet serve` did, when it stops.
#[derive(Debug)]
#[non_exhaustive]
pub struct ServeReport {
    /// The routes it served at start.
    pub routes: usize,
    /// How the proxy shut down (requests drained, connections closed).
    pub shutdown: ShutdownReport,
}

/// The proxy, its listeners (one per host port routes use) and where they bind.
struct State {
    proxy: Proxy,
    listeners: Mutex<HashMap<u16, Listener>>,
    bind: std::net::IpAddr,
}

impl State {
    fn listeners(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Listener>> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Listens on `port` unless a listener does already.
    async fn ensure_listener(&self, port: u16) -> Result<(), String> {
        if self.listeners().contains_key(&port) {
            return Ok(());
        }
        let addr = SocketAddr::new(self.bind, port);
        let listener = self
            .proxy
            .listen(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        self.listeners().insert(port, listener);
        Ok(())
    }

    /// Closes the listeners of ports no route uses any more.
    fn close_unused(&self, timeout: Duration) {
        let used = self.proxy.routes().ports();
        let unused: Vec<Listener> = {
            let mut listeners = self.listeners();
            let ports: Vec<u16> = listeners
                .keys()
                .copied()
                .filter(|p| !used.contains(p))
                .collect();
            ports
                .into_iter()
                .filter_map(|p| listeners.remove(&p))
                .collect()
        };
        for listener in unused {
            tokio::spawn(listener.close(timeout));
        }
    }
}

impl Fleet {
    /// Runs fleet's proxy for this state directory until `shutdown` resolves, then
    /// drains it: the routes of the store on their host ports, and the control socket
    /// (`<state dir>/serve.sock`, 0600) through which `fleet update` switches them, and
    /// with `api`, the HTTP API on that address (`GET /api/health`).
    /// Interrupted deployments of every instance are recovered once it serves.
    ///
    /// Fails when another `fleet serve` answers on this state directory, or when it
    /// cannot listen on `api`.
    pub async fn serve(
        self: Arc<Self>,
        api: Option<SocketAddr>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<ServeReport, Error> {
        let path = self.dirs.root().join(SOCKET);
        let failed = |reason: String| Error::Serve {
            path: path.clone(),
            reason,
        };
        if path.exists() {
            if ControlClient::find(self.dirs.root()).await.is_some() {
                return Err(failed(
                    "another `fleet serve` already runs on this state directory".into(),
                ));
            }
            // Left by a serve that died: nobody answers on it.
            std::fs::remove_file(&path).map_err(|e| failed(format!("cannot remove it: {e}")))?;
        }
        let state = Arc::new(State {
            proxy: Proxy::new(ProxyConfig::default()),
            listeners: Mutex::new(HashMap::new()),
            bind: self.config.bind_address,
        });
        let routes = self.store.routes()?;
        for route in &routes {
            let name = RouteName::new(&route.name)
                .map_err(|e| failed(format!("route {}: {e}", route.name)))?;
            let rule = rule(route.host_port, route.host.as_deref())
                .map_err(|e| failed(format!("route {}: {e}", route.name)))?;
            state
                .proxy
                .routes()
                .insert(name, rule, route.backend)
                .map_err(|e| failed(format!("route {}: {e}", route.name)))?;
            if let Err(reason) = state.ensure_listener(route.host_port).await {
                tracing::warn!(route = %route.name, "{reason}");
            }
        }
        // Before the socket: a serve that cannot listen on its API leaves nothing behind.
        let api_listener = match api {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| failed(format!("cannot serve its API on {addr}: {e}")))?,
            ),
            None => None,
        };
        let socket =
            UnixListener::bind(&path).map_err(|e| failed(format!("cannot listen: {e}")))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| failed(format!("cannot make it private: {e}")))?;
        tracing::info!(routes = routes.len(), socket = %path.display(), "serving");
        let api_task = api_listener.map(|listener| {
            let state = Arc::clone(&state);
            let count: api::RouteCount = Arc::new(move || state.proxy.routes().list().len());
            tokio::spawn(async move {
                if let Err(error) = api::run(listener, count, std::future::pending()).await {
                    tracing::warn!("API: {error}");
                }
            })
        });

        let recovery = {
            let fleet = Arc::clone(&self);
            tokio::spawn(async move { fleet.recover_all().await })
        };
        let drain = self.config.drain_timeout;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = socket.accept() => match accepted {
                    Ok((stream, _)) => {
                        let state = Arc::clone(&state);
                        tokio::spawn(async move { handle(stream, &state, drain).await });
                    }
                    Err(error) => tracing::warn!("control socket: {error}"),
                },
            }
        }
        recovery.abort();
        // A draining serve is no longer healthy: its API goes first.
        if let Some(task) = api_task {
            task.abort();
        }
        drop(socket);
        let _ = std::fs::remove_file(&path);
        let shutdown = state.proxy.shutdown(drain).await;
        Ok(ServeReport {
            routes: routes.len(),
            shutdown,
        })
    }

    /// Recovers every instance's interrupted deployments (each under its lease; busy
    /// instances are left to whoever holds them).
    pub async fn recover_all(&self) -> Result<(), Error> {
        for record in self.store.instances()? {
            let name = record.spec.name;
            match self.with_lease(&name, "recover", async || Ok(())).await {
                Ok(()) | Err(Error::Busy { .. }) => {}
                Err(error) => tracing::warn!(instance = %name, "recovery failed: {error}"),
            }
        }
        Ok(())
    }
}

/// Answers one control connection.
async fn handle(stream: UnixStream, state: &State, drain: Duration) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() {
        return;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => answer(request, state, drain).await,
        Err(e) => Response {
            error: Some(format!("a request fleet serve does not understand: {e}")),
            ..Response::default()
        },
    };
    let mut text = serde_json::to_string(&response).expect("responses serialize");
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

async fn answer(request: Request, state: &State, default_drain: Duration) -> Response {
    let pid = std::process::id();
    let result = match request {
        Request::Ping => Ok(Vec::new()),
        Request::Apply { routes, drain_ms } => {
            apply(state, routes, duration(drain_ms, default_drain)).await
        }
        Request::Remove { names, drain_ms } => {
            remove(state, names, duration(drain_ms, default_drain)).await
        }
    };
    match result {
        Ok(drained) => Response {
            error: None,
            pid,
            drained,
        },
        Err(error) => Response {
            error: Some(error),
            pid,
            drained: Vec::new(),
        },
    }
}

/// The proxy's rule for a route: its port, and its host name if it has one.
fn rule(port: u16, host: Option<&str>) -> Result<RouteRule, fleet_proxy::Error> {
    Ok(match host {
        Some(host) => RouteRule::host(port, fleet_proxy::HostName::new(host)?),
        None => RouteRule::port(port),
    })
}

fn duration(ms: u64, default: Duration) -> Duration {
    if ms == 0 {
        default
    } else {
        Duration::from_millis(ms)
    }
}

async fn apply(
    state: &State,
    routes: Vec<RouteSpec>,
    drain: Duration,
) -> Result<Vec<Drained>, String> {
    let mut switches = Vec::new();
    for route in routes {
        let name = RouteName::new(&route.name).map_err(|e| e.to_string())?;
        // Listen first: a route must never point at a port nobody serves.
        state.ensure_listener(route.port).await?;
        let table = state.proxy.routes();
        let switch = if table.get(&name).is_some() {
            table.set_backend(&name, route.backend)
        } else {
            rule(route.port, route.host.as_deref())
                .and_then(|rule| table.insert(name.clone(), rule, route.backend))
                .and_then(|()| table.set_backend(&name, route.backend))
        };
        switches.push(switch.map_err(|e| e.to_string())?);
    }
    Ok(drained(switches, drain).await)
}

async fn remove(
    state: &State,
    names: Vec<String>,
    drain: Duration,
) -> Result<Vec<Drained>, String> {
    let mut switches = Vec::new();
    for name in names {
        let name = RouteName::new(&name).map_err(|e| e.to_string())?;
        if state.proxy.routes().get(&name).is_some() {
            switches.push(
                state
                    .proxy
                    .routes()
                    .remove(&name)
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    let drained = drained(switches, drain).await;
    state.close_unused(drain);
    Ok(drained)
}

async fn drained(switches: Vec<Switch>, drain: Duration) -> Vec<Drained> {
    futures::future::join_all(switches.into_iter().map(|switch| async move {
        let route = switch.route().as_str().to_owned();
        let previous = switch.previous();
        let report = switch.drained(drain).await;
        Drained {
            route,
            previous,
            in_flight_left: report.in_flight_left,
            upgraded_closed: report.upgraded_closed,
            waited_ms: u64::try_from(report.waited.as_millis()).unwrap_or(u64::MAX),
        }
    }))
    .await
}
