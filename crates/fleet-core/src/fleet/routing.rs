//! Instances behind `fleet serve`'s proxy: their routes (host port → the serving
//! container's address on the fleet network), recorded in the store and switched
//! through the control socket.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Fleet;
use crate::error::Error;
use crate::name::InstanceName;
use crate::serve::{ControlClient, Drained, Request, RouteSpec};
use crate::spec::InstanceSpec;
use crate::store::RouteRecord;

impl Fleet {
    /// The `fleet serve` of this state directory, when one answers.
    pub(crate) async fn serve_client(&self) -> Option<ControlClient> {
        ControlClient::find(self.dirs.root()).await
    }

    /// Whether the instance is reached through the proxy (it has routes).
    pub(crate) fn behind_proxy(&self, name: &InstanceName) -> Result<bool, Error> {
        Ok(!self.store.instance_routes(name)?.is_empty())
    }

    /// Points the instance's routes at `container` (recording them), and has `fleet
    /// serve` switch to it and drain the previous container. Without routes, nothing is
    /// done unless `create` (a new instance behind the proxy). Returns how each previous
    /// backend drained.
    pub(crate) async fn route_to(
        &self,
        spec: &InstanceSpec,
        container: &str,
        create: bool,
    ) -> Result<Vec<Drained>, Error> {
        let name = &spec.name;
        if !create && !self.behind_proxy(name)? {
            return Ok(Vec::new());
        }
        let info = self.inspect(container).await?.ok_or_else(|| Error::Serve {
            path: self.dirs.root().join(crate::serve::SOCKET),
            reason: format!("the container {container} of {name} vanished before it was routed"),
        })?;
        let ip: IpAddr = info
            .ips
            .get(&self.config.network)
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| Error::InvalidSpec {
                instance: name.to_string(),
                reason: format!(
                    "its container {} has no address on the network {}",
                    info.name, self.config.network
                ),
            })?;
        let ports = self.store.instance_ports(name)?;
        let mut routes: Vec<RouteRecord> = ports
            .iter()
            .map(|port| {
                RouteRecord::new(
                    name,
                    port.host,
                    port.container,
                    SocketAddr::new(ip, port.container),
                )
            })
            .collect();
        // Many instances on one port, told apart by host name: NAME.DOMAIN.
        if let (Some(shared), Some(domain), Some(first)) = (
            self.config.serve.shared_port,
            &self.config.serve.domain,
            spec.ports.first(),
        ) {
            routes.push(RouteRecord::by_host(
                name,
                shared,
                format!("{name}.{domain}"),
                first.container,
                SocketAddr::new(ip, first.container),
            ));
        }
        self.store.set_routes(name, &routes)?;
        let Some(client) = self.serve_client().await else {
            // Recorded: a `fleet serve` started later serves them.
            return Ok(Vec::new());
        };
        let request = Request::Apply {
            routes: routes
                .iter()
                .map(|r| RouteSpec {
                    name: r.name.clone(),
                    port: r.host_port,
                    host: r.host.clone(),
                    backend: r.backend,
                })
                .collect(),
            drain_ms: millis(self.config.drain_timeout),
        };
        let response = client
            .call(
                &request,
                self.config.drain_timeout + Duration::from_secs(10),
            )
            .await?;
        Ok(response.drained)
    }

    /// Takes the instance out of the proxy: its routes are forgotten and `fleet serve`
    /// drains and closes them.
    pub(crate) async fn unroute(&self, name: &InstanceName) -> Result<(), Error> {
        let routes = self.store.instance_routes(name)?;
        if routes.is_empty() {
            return Ok(());
        }
        self.store.set_routes(name, &[])?;
        if let Some(client) = self.serve_client().await {
            client
                .call(
                    &Request::Remove {
                        names: routes.into_iter().map(|r| r.name).collect(),
                        drain_ms: millis(self.config.drain_timeout),
                    },
                    self.config.drain_timeout + Duration::from_secs(10),
                )
                .await?;
        }
        Ok(())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
