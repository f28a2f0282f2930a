//! Status (the store and the engine compared, health probed now) and reconciliation
//! (making the engine agree with the store again).

use std::collections::{BTreeSet, HashMap};

use fleet_health::ProbeResult;
use futures::StreamExt as _;

use crate::engine::{ContainerInfo, ContainerState, LABEL_DIGEST, LABEL_INSTANCE, LABEL_SCOPE};
use crate::error::{EngineOperation, Error, engine_error, error_chain};
use crate::fleet::Fleet;
use crate::health::Health;
use crate::name::InstanceName;
use crate::store::{DesiredState, EventKind, HealthRecorded, InstanceRecord};
use crate::view::{
    Drift, FailedRepair, FleetStatus, InstanceOverview, InstanceStatus, ReconcileReport, Repair,
};

/// How many health probes `status` runs at once.
const PROBE_CONCURRENCY: usize = 32;

/// The store and the engine side by side.
struct Survey {
    /// Each instance with its current container (if the engine has it).
    instances: Vec<(InstanceRecord, Option<ContainerInfo>)>,
    /// Containers of this fleet that no instance owns.
    strays: Vec<ContainerInfo>,
}

fn drift_of(record: &InstanceRecord, container: Option<&ContainerInfo>) -> Vec<Drift> {
    let instance = record.spec.name.to_string();
    let Some(container) = container else {
        return vec![Drift::MissingContainer { instance }];
    };
    let mut drift = Vec::new();
    if let (Some(expected), Some(running)) = (&record.digest, container.labels.get(LABEL_DIGEST))
        && expected.as_str() != running
    {
        drift.push(Drift::DigestMismatch {
            instance: instance.clone(),
            expected: expected.clone(),
            running: running.clone(),
        });
    }
    match (record.desired, container.state) {
        (DesiredState::Running, ContainerState::Running | ContainerState::Restarting) => {}
        (DesiredState::Running, state) => drift.push(Drift::NotRunning { instance, state }),
        (DesiredState::Stopped, ContainerState::Running | ContainerState::Restarting) => {
            drift.push(Drift::ShouldBeStopped { instance })
        }
        (DesiredState::Stopped, _) => {}
    }
    drift
}

impl Fleet {
    async fn survey(&self, names: &[InstanceName]) -> Result<Survey, Error> {
        let all = self.store.instances()?;
        let records = if names.is_empty() {
            all.clone()
        } else {
            names
                .iter()
                .map(|name| self.record(name))
                .collect::<Result<_, _>>()?
        };
        let scope = self.store.scope().to_owned();
        let containers = self
            .engine
            .list_containers(&[(LABEL_SCOPE, &scope)])
            .await
            .map_err(engine_error(EngineOperation::ListContainers, "this fleet"))?;
        let by_id: HashMap<&str, &ContainerInfo> =
            containers.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut owned = BTreeSet::new();
        let mut instances = Vec::new();
        for record in records {
            let container = record
                .container_id
                .as_deref()
                .and_then(|id| by_id.get(id))
                .map(|c| (*c).clone());
            if let Some(container) = &container {
                owned.insert(container.id.clone());
            }
            instances.push((record, container));
        }
        // Containers of instances not asked about are neither owned nor stray here.
        let all_names: BTreeSet<String> = all.iter().map(|r| r.spec.name.to_string()).collect();
        let all_current: BTreeSet<&str> = all
            .iter()
            .filter_map(|r| r.container_id.as_deref())
            .collect();
        let asked: BTreeSet<String> = names.iter().map(ToString::to_string).collect();
        let strays = containers
            .into_iter()
            .filter(|c| !owned.contains(&c.id) && !all_current.contains(c.id.as_str()))
            .filter(|c| {
                let label = c.labels.get(LABEL_INSTANCE);
                names.is_empty()
                    || label.is_some_and(|l| asked.contains(l) || !all_names.contains(l))
            })
            .collect();
        Ok(Survey { instances, strays })
    }

    /// Every instance with its container's state and its last recorded health: one
    /// engine listing, no probes (for `fleet ls`).
    pub async fn overview(&self) -> Result<Vec<InstanceOverview>, Error> {
        let survey = self.survey(&[]).await?;
        survey
            .instances
            .into_iter()
            .map(|(record, container)| {
                // Health recorded for a container that no longer runs says nothing about
                // now (a recreate clears it in the store).
                let running = container
                    .as_ref()
                    .is_some_and(|c| c.state == ContainerState::Running);
                Ok(InstanceOverview {
                    state: container.map(|c| c.state),
                    health: record.last_health.filter(|_| running),
                    instance: self.view(record)?,
                })
            })
            .collect()
    }

    /// The status of the named instances (all when `names` is empty): each container's
    /// state, the digest it runs, a health probe made now (in parallel), and every drift
    /// between the store and the engine. Health changes are recorded as events.
    pub async fn status(&self, names: &[InstanceName]) -> Result<FleetStatus, Error> {
        let survey = self.survey(names).await?;
        // Unordered, so that one hung probe never holds up the next ones; sorted back.
        let mut probes = futures::stream::iter(survey.instances.iter().enumerate().map(
            |(index, (record, container))| async move {
                let probe = async {
                    let container = container
                        .as_ref()
                        .filter(|c| c.state == ContainerState::Running)?;
                    let health = record.spec.health.as_ref()?;
                    let target = self.health_target(&record.spec, container).ok()?;
                    Some(self.prober.probe(&target, health.policy.timeout).await)
                };
                (index, probe.await)
            },
        ))
        .buffer_unordered(PROBE_CONCURRENCY)
        .collect::<Vec<(usize, Option<ProbeResult>)>>()
        .await;
        probes.sort_by_key(|(index, _)| *index);
        let probes = probes.into_iter().map(|(_, probe)| probe);

        let mut instances = Vec::new();
        for ((record, container), probe) in survey.instances.into_iter().zip(probes) {
            let drift = drift_of(&record, container.as_ref());
            let health = match (&container, &probe) {
                (None, _) => Health::Missing,
                (Some(_), Some(probe)) => Health::from(probe.outcome),
                (Some(c), None) if c.state != ContainerState::Running => Health::Stopped,
                (Some(c), None) => c
                    .docker_health
                    .as_deref()
                    .map_or(Health::Unknown, Health::from_docker),
            };
            if let HealthRecorded::Changed { previous } =
                self.store.set_health(&record.spec.name, health)?
            {
                let message = match (previous, &probe) {
                    (Some(previous), Some(p)) => {
                        format!("{previous} -> {health}{}", reason_suffix(p))
                    }
                    (Some(previous), None) => format!("{previous} -> {health}"),
                    (None, _) => format!("-> {health}"),
                };
                self.store.record_event(
                    Some(record.spec.name.as_str()),
                    EventKind::HealthChanged,
                    &message,
                )?;
            }
            let running_digest = container
                .as_ref()
                .and_then(|c| c.labels.get(LABEL_DIGEST))
                .and_then(|label| label.parse().ok());
            instances.push(InstanceStatus {
                state: container.as_ref().map(|c| c.state),
                running_digest,
                docker_health: container.as_ref().and_then(|c| c.docker_health.clone()),
                health,
                probe,
                drift,
                instance: self.view(record)?,
            });
        }
        let strays = survey.strays.iter().map(stray).collect();
        Ok(FleetStatus { instances, strays })
    }

    /// Makes the engine agree with the store: recreates missing containers and those
    /// running another digest, starts or stops containers as desired, and removes stray
    /// containers of this fleet. Instances another operation holds (their lease) are
    /// left alone and reported as skipped. An instance that cannot be repaired is
    /// reported as failed and the others are still repaired. Returns what it did.
    pub async fn reconcile(&self) -> Result<ReconcileReport, Error> {
        let survey = self.survey(&[]).await?;
        let mut report = ReconcileReport::default();
        // An instance another operation holds (an update starting its candidate, say) is
        // left alone: what looks like drift may be that operation's work in progress.
        let busy = |instance: &str| -> Result<Option<String>, Error> {
            let Ok(name) = instance.parse::<InstanceName>() else {
                return Ok(None);
            };
            Ok(self
                .store
                .lease_holder(&name)?
                .filter(|lease| lease.owner != self.owner)
                .map(|lease| {
                    format!(
                        "left alone: {instance} is busy ({} by {})",
                        lease.operation, lease.owner
                    )
                }))
        };
        for container in &survey.strays {
            if let Some(instance) = container.labels.get(LABEL_INSTANCE)
                && let Some(why) = busy(instance)?
            {
                report.skipped.push(Repair {
                    drift: stray(container),
                    action: why,
                });
                continue;
            }
            match self.remove_container(&container.id).await {
                Ok(()) => report.repaired.push(Repair {
                    drift: stray(container),
                    action: format!("removed container {}", container.name),
                }),
                Err(error) => report.failed.push(FailedRepair {
                    drift: stray(container),
                    error: error_chain(&error),
                }),
            }
        }
        for (record, container) in survey.instances {
            let drift = drift_of(&record, container.as_ref());
            if drift.is_empty() {
                continue;
            }
            let name = record.spec.name.clone();
            if let Some(why) = busy(name.as_str())? {
                report.skipped.extend(drift.into_iter().map(|drift| Repair {
                    drift,
                    action: why.clone(),
                }));
                continue;
            }
            // One instance that cannot be repaired (its env file is gone, its port is
            // taken) must not leave the others unrepaired: record the failure, go on.
            match self.repair(&name, &drift).await {
                Ok(action) => report
                    .repaired
                    .extend(drift.into_iter().map(|drift| Repair {
                        drift,
                        action: action.clone(),
                    })),
                Err(error) => {
                    let error = error_chain(&error);
                    let _ = self.store.record_event(
                        Some(name.as_str()),
                        EventKind::Error,
                        &format!("reconcile failed: {error}"),
                    );
                    report
                        .failed
                        .extend(drift.into_iter().map(|drift| FailedRepair {
                            drift,
                            error: error.clone(),
                        }));
                }
            }
        }
        Ok(report)
    }

    /// Repairs one instance's `drift` under its lease; returns what was done.
    async fn repair(&self, name: &InstanceName, drift: &[Drift]) -> Result<String, Error> {
        self.with_lease(name, "reconcile", async || {
            let record = self.record(name)?;
            let recreate = drift.iter().any(|d| {
                matches!(
                    d,
                    Drift::MissingContainer { .. } | Drift::DigestMismatch { .. }
                )
            });
            let mut actions = Vec::new();
            let mut container = record.container_id.clone().unwrap_or_default();
            if recreate {
                container = self.recreate(&record, &|_| {}).await?;
                let generation = record.generation + 1;
                actions.push(format!(
                    "recreated container {}",
                    self.container_name(name, generation)
                ));
            }
            match record.desired {
                DesiredState::Running => {
                    let running = self
                        .inspect(&container)
                        .await?
                        .is_some_and(|c| c.state == ContainerState::Running);
                    if !running {
                        self.engine
                            .start_container(&container)
                            .await
                            .map_err(engine_error(EngineOperation::StartContainer, &container))?;
                        actions.push("started it".to_owned());
                    }
                }
                DesiredState::Stopped => {
                    if drift
                        .iter()
                        .any(|d| matches!(d, Drift::ShouldBeStopped { .. }))
                    {
                        self.engine
                            .stop_container(&container, self.config.stop_grace)
                            .await
                            .map_err(engine_error(EngineOperation::StopContainer, &container))?;
                        actions.push("stopped it".to_owned());
                    }
                }
            }
            let action = actions.join(", ");
            self.store
                .record_event(Some(name.as_str()), EventKind::Reconciled, &action)?;
            Ok(action)
        })
        .await
    }
}

fn stray(container: &ContainerInfo) -> Drift {
    Drift::StrayContainer {
        container: container.name.clone(),
        instance: container.labels.get(LABEL_INSTANCE).cloned(),
    }
}

fn reason_suffix(probe: &ProbeResult) -> String {
    probe
        .reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}
