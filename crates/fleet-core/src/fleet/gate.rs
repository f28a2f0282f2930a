//! The health gate: probe a started container as its policy says, end early when it
//! exits, and keep its last output for the error.

use std::net::IpAddr;

use std::time::Duration;

use fleet_health::{HealthReport, Verdict};

use super::{Fleet, OnProgress};
use crate::health::Health;

use crate::engine::{ContainerInfo, ContainerState, LogOptions};
use crate::error::{EngineOperation, Error, engine_error};

use crate::spec::InstanceSpec;
use crate::store::EventKind;
use crate::view::Progress;

impl Fleet {
    /// Starts the container and, if asked and the spec has a health check, waits until
    /// it is healthy.
    pub(super) async fn start_and_gate(
        &self,
        spec: &InstanceSpec,
        container: &str,
        wait: bool,
        progress: &OnProgress<'_>,
    ) -> Result<(), Error> {
        self.start_recorded(spec, container, progress).await?;
        if wait {
            self.gate(spec, container, progress).await?;
        }
        // Behind the proxy, the route follows the container (its address may change
        // when it starts again).
        self.route_to(spec, container, false).await?;
        Ok(())
    }

    /// Starts the container and records it.
    pub(super) async fn start_recorded(
        &self,
        spec: &InstanceSpec,
        container: &str,
        progress: &OnProgress<'_>,
    ) -> Result<(), Error> {
        progress(Progress::Starting {
            instance: spec.name.to_string(),
        });
        self.engine
            .start_container(container)
            .await
            .map_err(engine_error(EngineOperation::StartContainer, &container))?;
        self.store.record_event(
            Some(spec.name.as_str()),
            EventKind::Started,
            "container started",
        )?;
        Ok(())
    }

    /// Waits until the started container is healthy as the spec's policy says (nothing
    /// to wait for without a health check), and, when its image has a Docker
    /// `HEALTHCHECK`, until Docker says healthy too. Ends early when it exits; the error
    /// carries its last output.
    pub(super) async fn gate(
        &self,
        spec: &InstanceSpec,
        container: &str,
        progress: &OnProgress<'_>,
    ) -> Result<(), Error> {
        let Some(health) = &spec.health else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + health.policy.deadline;
        // The gate ends early if the container exits: a crash on start need not wait
        // for the deadline.
        let failure = tokio::select! {
            report = self.wait_healthy(spec, container, progress) => match report {
                Ok(report) if report.verdict == Verdict::Healthy => {
                    tokio::select! {
                        docker = self.wait_docker_healthy(container, deadline) => docker?,
                        exit = self.watch_exit(container) => Some(exit?),
                    }
                }
                Ok(report) => Some(format!(
                    "{} after {:.1}s and {} probes; last: {}",
                    report.verdict,
                    report.elapsed.as_secs_f64(),
                    report.attempts.len(),
                    report.last_reason().unwrap_or("no answer")
                )),
                // It exited before the first probe: keep its output in the error too.
                Err(Error::Unhealthy { reason, .. }) => Some(reason),
                Err(error) => return Err(error),
            },
            exit = self.watch_exit(container) => Some(exit?),
        };
        if let Some(reason) = failure {
            // The container is about to be removed: keep what it said in the error.
            let output = self.last_output(container, 10).await;
            return Err(Error::Unhealthy {
                instance: spec.name.to_string(),
                reason: format!("{reason}{output}"),
                undone: false,
            });
        }
        self.store.set_health(&spec.name, Health::Healthy)?;
        Ok(())
    }

    /// Waits until Docker's own `HEALTHCHECK` (when the container has one) says healthy;
    /// `Some(reason)` when it says unhealthy or does not say healthy by `deadline`.
    async fn wait_docker_healthy(
        &self,
        container: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<String>, Error> {
        loop {
            let Some(info) = self.inspect(container).await? else {
                return Ok(Some(format!("its container {container} vanished")));
            };
            match info.docker_health.as_deref() {
                None | Some("healthy") => return Ok(None),
                Some("unhealthy") => {
                    return Ok(Some(
                        "fleet's probe passed, but Docker's HEALTHCHECK says unhealthy".into(),
                    ));
                }
                Some(_) if tokio::time::Instant::now() >= deadline => {
                    return Ok(Some(
                        "fleet's probe passed, but Docker's HEALTHCHECK did not say healthy before the deadline"
                            .into(),
                    ));
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Resolves when the container has exited (or is restarting after an exit), with a
    /// sentence saying so; never resolves while it runs.
    pub(super) async fn watch_exit(&self, container: &str) -> Result<String, Error> {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let Some(info) = self.inspect(container).await? else {
                return Ok(format!("its container {container} vanished"));
            };
            if matches!(
                info.state,
                ContainerState::Exited | ContainerState::Dead | ContainerState::Restarting
            ) {
                return Ok(exit_reason(container, &info));
            }
        }
    }

    /// The container's last `lines` lines of output, as a suffix for an error message.
    pub(super) async fn last_output(&self, container: &str, lines: usize) -> String {
        use futures::StreamExt as _;
        let output: Vec<String> = self
            .engine
            .logs(
                container,
                LogOptions {
                    tail: Some(lines),
                    follow: false,
                },
            )
            .filter_map(|line| async move { line.ok().map(|l| l.text) })
            .collect()
            .await;
        let text: String = output.concat();
        let text = text.trim_end();
        if text.is_empty() {
            return String::new();
        }
        let indented: Vec<String> = text.lines().map(|line| format!("  | {line}")).collect();
        format!("; its last output:\n{}", indented.join("\n"))
    }

    /// Waits for the instance's `container` as its health policy says.
    pub(crate) async fn wait_healthy(
        &self,
        spec: &InstanceSpec,
        container: &str,
        progress: &OnProgress<'_>,
    ) -> Result<HealthReport, Error> {
        let Some(health) = &spec.health else {
            return Err(Error::InvalidSpec {
                instance: spec.name.to_string(),
                reason: "it has no health check".into(),
            });
        };
        let info = self
            .inspect(container)
            .await?
            .ok_or_else(|| Error::Unhealthy {
                instance: spec.name.to_string(),
                reason: format!("its container {container} vanished"),
                undone: false,
            })?;
        let target = self.health_target(spec, &info)?;
        Ok(self
            .prober
            .wait_healthy_with(&target, &health.policy, |attempt| {
                progress(Progress::Probed {
                    attempt: attempt.number,
                    health: attempt.result.outcome.to_string(),
                    reason: attempt.result.reason.clone(),
                    starting: !attempt.counted && attempt.at < health.policy.start_period,
                })
            })
            .await)
    }

    /// The probe target of an instance's container: its health port as published on the
    /// host for HTTP, so the probe sees what users see; its address on the fleet network
    /// for TCP, because Docker's userland proxy accepts connections on a published port
    /// even when nothing listens in the container.
    pub(crate) fn health_target(
        &self,
        spec: &InstanceSpec,
        container: &ContainerInfo,
    ) -> Result<fleet_health::ProbeTarget, Error> {
        let invalid = |reason: &str| Error::InvalidSpec {
            instance: spec.name.to_string(),
            reason: reason.to_owned(),
        };
        let health = spec
            .health
            .as_ref()
            .ok_or_else(|| invalid("it has no health check"))?;
        let port = spec
            .health_port()
            .ok_or_else(|| invalid("its health check has no port"))?;
        let health_error = |source| Error::Health {
            instance: spec.name.to_string(),
            source,
        };
        if health.kind == fleet_health::ProbeKind::Tcp {
            let Some(ip) = container.ips.get(&self.config.network) else {
                // A container that has exited already has no address: say that it
                // exited, not that the network is wrong.
                if container.state != ContainerState::Running {
                    return Err(Error::Unhealthy {
                        instance: spec.name.to_string(),
                        reason: exit_reason(&container.name, container),
                        undone: false,
                    });
                }
                return Err(invalid(&format!(
                    "its container {} has no address on the network {}",
                    container.name, self.config.network
                )));
            };
            return health.target(ip, port).map_err(health_error);
        }
        // A container behind fleet's proxy (or a candidate not yet switched to)
        // publishes nothing: probe it on its address, as the proxy reaches it.
        let published = container.ports.iter().any(|p| p.container == port);
        if !published {
            let Some(ip) = container.ips.get(&self.config.network) else {
                if container.state != ContainerState::Running {
                    return Err(Error::Unhealthy {
                        instance: spec.name.to_string(),
                        reason: exit_reason(&container.name, container),
                        undone: false,
                    });
                }
                return Err(invalid(&format!(
                    "its container {} publishes no port and has no address on the network {}",
                    container.name, self.config.network
                )));
            };
            return health.target(ip, port).map_err(health_error);
        }
        let host_port = self
            .store
            .instance_ports(&spec.name)?
            .into_iter()
            .find(|p| p.container == port)
            .map(|p| p.host)
            .ok_or_else(|| invalid("its health port is not published"))?;
        let host = match self.config.bind_address {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) if ip.is_unspecified() => "::1".to_owned(),
            ip => ip.to_string(),
        };
        health.target(&host, host_port).map_err(health_error)
    }
}

/// "its container exited with code 3": what the gate reports when a container exits.
fn exit_reason(container: &str, info: &ContainerInfo) -> String {
    if info.state == ContainerState::Created {
        return format!("its container {container} never started");
    }
    let code = info
        .exit_code
        .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let restarting = if info.state == ContainerState::Restarting {
        ", restarting"
    } else {
        ""
    };
    format!("its container exited with code {code}{restarting}")
}
