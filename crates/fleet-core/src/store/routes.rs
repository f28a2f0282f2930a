//! Route rows: what `fleet serve`'s proxy sends where. A route takes one published host
//! port of an instance to the container serving it, by its address on the fleet
//! network. A restarted `fleet serve` serves the same routes at once.

use std::net::SocketAddr;

use rusqlite::{Row, params};

use super::{Store, now_ms};
use crate::error::Error;
use crate::name::InstanceName;

/// One route of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteRecord {
    /// `<instance>-<container port>`.
    pub(crate) name: String,
    pub(crate) instance: InstanceName,
    /// Where clients connect.
    pub(crate) host_port: u16,
    /// The host name requests must name (on the shared port), if any.
    pub(crate) host: Option<String>,
    pub(crate) container_port: u16,
    /// The serving container's address and port.
    pub(crate) backend: SocketAddr,
}

impl RouteRecord {
    /// The route of `instance`'s `container_port`, published on `host_port`.
    pub(crate) fn new(
        instance: &InstanceName,
        host_port: u16,
        container_port: u16,
        backend: SocketAddr,
    ) -> RouteRecord {
        RouteRecord {
            name: format!("{instance}-{container_port}"),
            instance: instance.clone(),
            host_port,
            host: None,
            container_port,
            backend,
        }
    }

    /// The route of requests for `host` on the shared port.
    pub(crate) fn by_host(
        instance: &InstanceName,
        shared_port: u16,
        host: String,
        container_port: u16,
        backend: SocketAddr,
    ) -> RouteRecord {
        RouteRecord {
            name: format!("{instance}-host"),
            instance: instance.clone(),
            host_port: shared_port,
            host: Some(host),
            container_port,
            backend,
        }
    }
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<RouteRecord> {
    let conversion = |index: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e)
    };
    let instance: String = row.get(1)?;
    let backend: String = row.get(5)?;
    Ok(RouteRecord {
        name: row.get(0)?,
        instance: instance.parse().map_err(|e| conversion(1, Box::new(e)))?,
        host_port: row.get(2)?,
        host: row.get(3)?,
        container_port: row.get(4)?,
        backend: backend.parse().map_err(|e| conversion(5, Box::new(e)))?,
    })
}

const COLUMNS: &str = "name, instance, host_port, host, container_port, backend";

impl Store {
    /// Every route, by host port.
    pub(crate) fn routes(&self) -> Result<Vec<RouteRecord>, Error> {
        self.read("list routes", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS} FROM routes ORDER BY host_port, host"
            ))?;
            statement.query_map([], from_row)?.collect()
        })
    }

    /// The routes of one instance, by host port.
    pub(crate) fn instance_routes(&self, name: &InstanceName) -> Result<Vec<RouteRecord>, Error> {
        self.read("list routes", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS} FROM routes WHERE instance = ?1 ORDER BY host_port, host"
            ))?;
            statement.query_map([name.as_str()], from_row)?.collect()
        })
    }

    /// Replaces the routes of `name` with `routes`, in one transaction.
    pub(crate) fn set_routes(
        &self,
        name: &InstanceName,
        routes: &[RouteRecord],
    ) -> Result<(), Error> {
        self.write("record routes", |tx| {
            tx.execute("DELETE FROM routes WHERE instance = ?1", [name.as_str()])
                .map_err(|e| self.error("record routes", e))?;
            for route in routes {
                tx.execute(
                    "INSERT INTO routes (name, instance, host_port, host, container_port, backend, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        route.name,
                        route.instance.as_str(),
                        route.host_port,
                        route.host,
                        route.container_port,
                        route.backend.to_string(),
                        now_ms()
                    ],
                )
                .map_err(|e| self.error("record routes", e))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_replaced_per_instance() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("fleet.db")).unwrap();
        let alice: InstanceName = "alice".parse().unwrap();
        let bob: InstanceName = "bob".parse().unwrap();
        let route = |name: &InstanceName, host, ip: &str| {
            RouteRecord::new(name, host, 8080, format!("{ip}:8080").parse().unwrap())
        };
        store
            .set_routes(&alice, &[route(&alice, 5001, "172.18.0.2")])
            .unwrap();
        store
            .set_routes(&bob, &[route(&bob, 5002, "172.18.0.3")])
            .unwrap();
        store
            .set_routes(&alice, &[route(&alice, 5001, "172.18.0.4")])
            .unwrap();
        let all = store.routes().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "alice-8080");
        assert_eq!(all[0].backend.to_string(), "172.18.0.4:8080");
        store.set_routes(&alice, &[]).unwrap();
        assert!(store.instance_routes(&alice).unwrap().is_empty());
        assert_eq!(store.instance_routes(&bob).unwrap().len(), 1);
    }
}
