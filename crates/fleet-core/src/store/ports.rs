//! Port allocation rows. The table's primary key is the host port, so two instances can
//! never hold one port, whatever the processes involved.

use rusqlite::params;
use serde::Serialize;

use super::{Store, now_ms, timestamp};
use crate::error::{Error, PortHolder};
use crate::name::InstanceName;
use crate::ports::PortRange;
use crate::spec::PortSpec;

/// A host port held by an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortAllocation {
    /// The host port.
    pub host: u16,
    /// The container port it is published for.
    pub container: u16,
    /// The instance holding it.
    pub instance: InstanceName,
    /// When it was allocated.
    pub allocated_at: jiff::Timestamp,
}

impl Store {
    /// Every allocation, by host port.
    pub(crate) fn ports(&self) -> Result<Vec<PortAllocation>, Error> {
        self.read("list ports", |c| {
            let mut statement = c.prepare(
                "SELECT port, container_port, instance, allocated_at FROM ports ORDER BY port",
            )?;
            statement.query_map([], row)?.collect()
        })
    }

    /// The allocations of one instance, by container port order of allocation.
    pub(crate) fn instance_ports(&self, name: &InstanceName) -> Result<Vec<PortAllocation>, Error> {
        self.read("list ports", |c| {
            let mut statement = c.prepare(
                "SELECT port, container_port, instance, allocated_at FROM ports WHERE instance = ?1 ORDER BY rowid",
            )?;
            statement.query_map([name.as_str()], row)?.collect()
        })
    }

    /// Allocates a host port for each of `requests` to `instance`, in one transaction.
    ///
    /// A fixed port is taken as given unless the store or `check` says someone holds it
    /// ([`Error::PortTaken`]); an automatic one is the first of `candidates` that neither
    /// the store nor `check` rejects, in `range` order ([`Error::PortsExhausted`] if none). Because the
    /// transaction is `IMMEDIATE`, concurrent allocations (threads or processes) are
    /// serialised and see each other's rows.
    pub(crate) fn allocate_ports(
        &self,
        instance: &InstanceName,
        requests: &[PortSpec],
        range: &PortRange,
        check: &dyn Fn(u16) -> Result<(), PortHolder>,
    ) -> Result<Vec<PortAllocation>, Error> {
        self.write("allocate ports", |tx| {
            let holder_in_store = |port: u16| -> Result<Option<String>, Error> {
                tx.query_row("SELECT instance FROM ports WHERE port = ?1", [port], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                    .map_err(|e| self.error("allocate ports", e))
            };
            let now = now_ms();
            let mut allocations = Vec::new();
            for request in requests {
                let port = match request.host {
                    Some(port) => {
                        if let Some(name) = holder_in_store(port)? {
                            return Err(Error::PortTaken { port, holder: PortHolder::Instance { name } });
                        }
                        check(port).map_err(|holder| Error::PortTaken { port, holder })?;
                        port
                    }
                    None => {
                        let mut chosen = None;
                        for port in range.iter() {
                            if holder_in_store(port)?.is_none() && check(port).is_ok() {
                                chosen = Some(port);
                                break;
                            }
                        }
                        chosen.ok_or_else(|| range.exhausted())?
                    }
                };
                tx.execute(
                    "INSERT INTO ports (port, instance, container_port, allocated_at) VALUES (?1, ?2, ?3, ?4)",
                    params![port, instance.as_str(), request.container, now],
                )
                .map_err(|e| self.error("allocate ports", e))?;
                allocations.push(PortAllocation {
                    host: port,
                    container: request.container,
                    instance: instance.clone(),
                    allocated_at: timestamp(now),
                });
            }
            Ok(allocations)
        })
    }

    /// Releases every port of `instance`.
    pub(crate) fn release_ports(&self, instance: &InstanceName) -> Result<(), Error> {
        self.write("release ports", |tx| {
            tx.execute("DELETE FROM ports WHERE instance = ?1", [instance.as_str()])
                .map_err(|e| self.error("release ports", e))?;
            Ok(())
        })
    }
}

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PortAllocation> {
    Ok(PortAllocation {
        host: row.get(0)?,
        container: row.get(1)?,
        instance: row.get::<_, String>(2)?.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        allocated_at: timestamp(row.get(3)?),
    })
}
