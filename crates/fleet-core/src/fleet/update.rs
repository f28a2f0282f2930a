//! `Fleet::update` and `Fleet::rollback`: resolve → backup → pull → candidate → health
//! gate → (switch) → retire the old container → record; any failure brings the old
//! container back. Every step is journaled in the store before it runs.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Fleet, OnProgress};
use crate::deployment::{
    Deployment, DeploymentKind, Outcome, Release, RollbackOptions, Step, StepTime, Strategy,
    UpdateOptions, UpdateReport, UpdateTarget,
};
use crate::engine::{ContainerInfo, ContainerState};
use crate::error::{EngineError, EngineOperation, Error, engine_error, error_chain};
use crate::name::InstanceName;
use crate::resolve::ResolvedImage;
use crate::spec::InstanceSpec;
use crate::store::{EventKind, Finished, InstanceRecord, NewDeployment};
use crate::view::{Backup, BackupReason, Progress};

/// The journal of one deployment: each step recorded before it runs, with the time the
/// previous one took.
struct Journal<'a> {
    fleet: &'a Fleet,
    id: i64,
    step: Step,
    since: Instant,
    times: Vec<StepTime>,
    cancel: Option<CancellationToken>,
}

impl Journal<'_> {
    /// Records that `step` is about to run; refuses to when the deployment was
    /// cancelled.
    fn step(&mut self, step: Step) -> Result<(), Error> {
        if self
            .cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
        {
            return Err(Error::Cancelled { step: self.step });
        }
        self.close();
        self.step = step;
        self.fleet
            .store
            .set_deployment_step(self.id, step, &self.times)?;
        crash_point(step);
        Ok(())
    }

    /// Records the time the current step took.
    fn close(&mut self) {
        self.times.push(StepTime {
            step: self.step,
            ms: super::backup::millis(self.since.elapsed()),
        });
        self.since = Instant::now();
    }

    /// Runs `work`, ending early with [`Error::Cancelled`] when the deployment is
    /// cancelled meanwhile.
    async fn cancellable<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some(cancel) = &self.cancel else {
            return work.await;
        };
        tokio::select! {
            result = work => result,
            () = cancel.cancelled() => Err(Error::Cancelled { step: self.step }),
        }
    }

    fn finish(&mut self, finished: &Finished<'_>) -> Result<(), Error> {
        self.close();
        self.fleet
            .store
            .finish_deployment(self.id, finished, &self.times)
    }
}

/// Fault injection for the crash-recovery tests: with the `test-util` feature, a process
/// whose `FLEET_TEST_CRASH_AT` names a step dies (SIGKILL-like, no clean-up) right after
/// journaling it.
fn crash_point(step: Step) {
    #[cfg(feature = "test-util")]
    if std::env::var("FLEET_TEST_CRASH_AT").is_ok_and(|at| at == step.as_str()) {
        std::process::abort();
    }
    let _ = step;
}

/// What a deployment deploys, and how.
struct Plan {
    kind: DeploymentKind,
    strategy: Strategy,
    resolved: ResolvedImage,
    backup_first: bool,
    cancel: Option<CancellationToken>,
    /// The backup whose data replaces the instance's before the candidate starts.
    restore: Option<Backup>,
    /// A new spec for the instance (`reconfigure`): the candidate runs it, and it is
    /// recorded once the candidate serves.
    spec: Option<InstanceSpec>,
}

impl Plan {
    /// The spec the candidate runs.
    fn spec<'a>(&'a self, record: &'a InstanceRecord) -> &'a InstanceSpec {
        self.spec.as_ref().unwrap_or(&record.spec)
    }
}

impl Fleet {
    /// Updates an instance to `options.target` (default: what its channel resolves to
    /// now), holding its lease: back up the data, pull by digest, start a candidate
    /// container (new generation), health-gate it, retire the old one. Nothing is done
    /// when the instance already runs the target digest.
    ///
    /// A failure at any step brings the old container back: the report's outcome is
    /// [`Outcome::RolledBack`], with the step that failed and why (the candidate's last
    /// output included). [`Outcome::Failed`] means the old container could not be
    /// brought back either; the reason says what runs. Errors are for what stops an
    /// update before anything changes (an unknown instance, a busy one, a target that
    /// cannot be resolved, an unavailable strategy).
    ///
    /// Strategy `recreate` (the default until fleet's proxy runs) stops the old
    /// container before starting the candidate on the same host ports; the downtime is
    /// measured and reported. `blue-green` needs the proxy (`fleet serve`).
    pub async fn update(
        &self,
        name: &InstanceName,
        options: &UpdateOptions,
        progress: &OnProgress<'_>,
    ) -> Result<UpdateReport, Error> {
        self.with_lease(name, "update", async || {
            let started = Instant::now();
            let record = self.record(name)?;
            let resolved = self
                .resolve_target(&record, &options.target, progress)
                .await?;
            let strategy = self.strategy(options.strategy).await?;
            if record.digest.as_ref() == Some(&resolved.digest) {
                let release = Release {
                    tag: record.tag.clone(),
                    digest: record.digest.clone(),
                    version: self.running_version(&record).await,
                };
                return Ok(unchanged(name, release, started));
            }
            let plan = Plan {
                kind: DeploymentKind::Update,
                strategy,
                resolved,
                backup_first: !options.no_backup,
                cancel: options.cancel.clone(),
                restore: None,
                spec: None,
            };
            self.deploy(&record, &plan, started, progress).await
        })
        .await
    }

    /// What [`update`](Self::update) would deploy: what runs now and the target, without
    /// changing anything (`fleet update --dry-run`).
    pub async fn plan_update(
        &self,
        name: &InstanceName,
        target: &UpdateTarget,
    ) -> Result<(Release, Release), Error> {
        let record = self.record(name)?;
        let resolved = self.resolve_target(&record, target, &|_| {}).await?;
        Ok((
            Release {
                tag: record.tag.clone(),
                digest: record.digest.clone(),
                version: None,
            },
            Release {
                tag: resolved.tag,
                digest: Some(resolved.digest),
                version: None,
            },
        ))
    }

    /// Rolls an instance back to what it ran before its current deployment, through the
    /// same safe path as an update (backup, candidate, health gate, old container back
    /// if the candidate fails). Rolling back twice returns to where it started.
    ///
    /// With `restore_data`, the data also goes back to how it was before that
    /// deployment (its pre-update backup, verified first): the container is recreated
    /// with the app stopped while the data is swapped, and if the rolled-back version
    /// fails, the data the instance had comes back with it.
    pub async fn rollback(
        &self,
        name: &InstanceName,
        options: &RollbackOptions,
        progress: &OnProgress<'_>,
    ) -> Result<UpdateReport, Error> {
        self.with_lease(name, "rollback", async || {
            let started = Instant::now();
            let record = self.record(name)?;
            let undone = self
                .store
                .deployments(name)?
                .into_iter()
                .map(|r| r.deployment)
                .find(|d| {
                    d.outcome == Outcome::Updated
                        && d.kind != DeploymentKind::Reconfigure
                        && d.to.digest == record.digest
                })
                .ok_or_else(|| Error::NoRollbackTarget {
                    instance: name.to_string(),
                })?;
            let (tag, digest) = match (undone.from.tag.clone(), undone.from.digest.clone()) {
                (tag, Some(digest)) => (tag, digest),
                _ => {
                    return Err(Error::NoRollbackTarget {
                        instance: name.to_string(),
                    });
                }
            };
            let restore = if options.restore_data {
                let id = undone.backup.ok_or_else(|| Error::NoSuchBackup {
                    instance: name.to_string(),
                    id: None,
                })?;
                let backup = self
                    .store
                    .backups(name)?
                    .into_iter()
                    .find(|b| b.id == id)
                    .ok_or_else(|| Error::NoSuchBackup {
                        instance: name.to_string(),
                        id: Some(id),
                    })?;
                Some(backup)
            } else {
                None
            };
            let resolved = ResolvedImage {
                reference: format!("{}@{digest}", record.spec.image.image().name()),
                tag,
                digest,
            };
            let strategy = if restore.is_some() {
                Strategy::Recreate
            } else {
                self.strategy(options.strategy).await?
            };
            let plan = Plan {
                kind: DeploymentKind::Rollback,
                strategy,
                resolved,
                backup_first: true,
                cancel: None,
                restore,
                spec: None,
            };
            self.deploy(&record, &plan, started, progress).await
        })
        .await
    }

    /// Puts a changed spec in place through the update path: a new container of the
    /// version the instance runs (or of the new image, when the spec names another),
    /// with the new settings, backed up first, health-gated, rolled back on any failure;
    /// the new spec is recorded once the new container serves. Nothing is done when the
    /// spec is unchanged.
    ///
    /// The ports and the data directory of an existing instance cannot change this way
    /// ([`Error::InvalidSpec`]): remove and create it.
    pub async fn reconfigure(
        &self,
        spec: InstanceSpec,
        options: &UpdateOptions,
        progress: &OnProgress<'_>,
    ) -> Result<UpdateReport, Error> {
        spec.validate()?;
        spec.resolved_env()?;
        let name = spec.name.clone();
        self.with_lease(&name, "reconfigure", async || {
            let started = Instant::now();
            let record = self.record(&name)?;
            let strategy = self.strategy(options.strategy).await?;
            let current = Release {
                tag: record.tag.clone(),
                digest: record.digest.clone(),
                version: None,
            };
            if record.spec == spec {
                return Ok(unchanged(&name, current, started));
            }
            let fixed = |s: &InstanceSpec| {
                let mut ports: Vec<(u16, Option<u16>)> =
                    s.ports.iter().map(|p| (p.container, p.host)).collect();
                ports.sort_unstable();
                ports
            };
            if fixed(&spec) != fixed(&record.spec) || spec.data_dir != record.spec.data_dir {
                return Err(Error::InvalidSpec {
                    instance: name.to_string(),
                    reason: "its ports or data directory would change, which an existing instance cannot do yet: `fleet rm` it (its data stays) and create it again".into(),
                });
            }
            let resolved = match (&record.digest, spec.image == record.spec.image) {
                (Some(digest), true) => ResolvedImage {
                    tag: record.tag.clone(),
                    digest: digest.clone(),
                    reference: format!("{}@{digest}", spec.image.image().name()),
                },
                _ => self.resolve(&spec).await?,
            };
            let plan = Plan {
                kind: DeploymentKind::Reconfigure,
                strategy,
                resolved,
                backup_first: !options.no_backup,
                cancel: options.cancel.clone(),
                restore: None,
                spec: Some(spec.clone()),
            };
            self.deploy(&record, &plan, started, progress).await
        })
        .await
    }

    /// The instance's deployments, newest first.
    pub fn history(&self, name: &InstanceName) -> Result<Vec<Deployment>, Error> {
        self.record(name)?;
        Ok(self
            .store
            .deployments(name)?
            .into_iter()
            .map(|record| record.deployment)
            .collect())
    }

    /// The strategy an update uses: the one asked for if it can run here, else
    /// blue-green when `fleet serve` runs on this state directory, recreate otherwise.
    pub async fn strategy(&self, asked: Option<Strategy>) -> Result<Strategy, Error> {
        let serving = self.serve_client().await.is_some();
        match asked {
            Some(Strategy::BlueGreen) if !serving => Err(Error::StrategyUnavailable {
                strategy: Strategy::BlueGreen,
                reason: "it needs fleet's proxy, and `fleet serve` does not run on this state directory; start it, or use --strategy recreate".into(),
            }),
            Some(strategy) => Ok(strategy),
            None if serving => Ok(Strategy::BlueGreen),
            None => Ok(Strategy::Recreate),
        }
    }

    /// The digest (and tag) `target` means for this instance.
    async fn resolve_target(
        &self,
        record: &InstanceRecord,
        target: &UpdateTarget,
        progress: &OnProgress<'_>,
    ) -> Result<ResolvedImage, Error> {
        let spec = &record.spec;
        let image = spec.image.image().name();
        progress(Progress::Resolving {
            image: spec.image.to_string(),
        });
        let resolved = match target {
            UpdateTarget::Channel => self.resolve(spec).await?,
            UpdateTarget::Tag(tag) => {
                let channel: fleet_registry::ChannelRef = format!("{image}:{tag}")
                    .parse()
                    .map_err(|source| Error::InvalidTarget {
                        instance: spec.name.to_string(),
                        target: tag.clone(),
                        reason: error_chain(&source),
                    })?;
                self.resolver
                    .resolve(&channel)
                    .await
                    .map_err(|source| Error::Registry {
                        image: channel.to_string(),
                        source,
                    })?
            }
            UpdateTarget::Digest(digest) => ResolvedImage {
                tag: None,
                digest: digest.clone(),
                reference: format!("{image}@{digest}"),
            },
        };
        progress(Progress::Resolved {
            tag: resolved.tag.clone(),
            digest: resolved.digest.clone(),
        });
        Ok(resolved)
    }

    /// Runs a deployment under the lease the caller holds.
    async fn deploy(
        &self,
        record: &InstanceRecord,
        plan: &Plan,
        started: Instant,
        progress: &OnProgress<'_>,
    ) -> Result<UpdateReport, Error> {
        let name = &record.spec.name;
        let from = Release {
            tag: record.tag.clone(),
            digest: record.digest.clone(),
            version: self.running_version(record).await,
        };
        let mut to = Release {
            tag: plan.resolved.tag.clone(),
            digest: Some(plan.resolved.digest.clone()),
            version: None,
        };
        let generation = record.generation + 1;
        let first = if plan.backup_first {
            Step::Backup
        } else {
            Step::Pull
        };
        let id = self.store.insert_deployment(
            &NewDeployment {
                instance: name,
                kind: plan.kind,
                strategy: plan.strategy,
                from: &from,
                from_generation: record.generation,
                from_container: record.container_id.as_deref(),
                to: &to,
                to_generation: generation,
                restores_backup: plan.restore.as_ref().map(|b| b.id),
                spec: plan.spec.as_ref(),
            },
            first,
        )?;
        crash_point(first);
        let mut journal = Journal {
            fleet: self,
            id,
            step: first,
            since: Instant::now(),
            times: Vec::new(),
            cancel: plan.cancel.clone(),
        };
        let mut report = UpdateReport {
            instance: name.clone(),
            from,
            to: to.clone(),
            outcome: Outcome::InProgress,
            step: None,
            reason: None,
            backup: None,
            downtime_ms: None,
            duration_ms: 0,
            deployment: Some(id),
        };
        let result = match plan.strategy {
            Strategy::BlueGreen => {
                self.blue_green_steps(
                    record,
                    plan,
                    generation,
                    &mut journal,
                    &mut report,
                    progress,
                )
                .await
            }
            _ => {
                self.recreate_steps(
                    record,
                    plan,
                    generation,
                    &mut journal,
                    &mut report,
                    progress,
                )
                .await
            }
        };
        let (outcome, reason) = match result {
            Ok(version) => {
                to.version = version;
                (Outcome::Updated, None)
            }
            Err(failure) => {
                report.step = Some(journal.step);
                (failure.outcome, Some(failure.reason))
            }
        };
        journal.finish(&Finished {
            outcome,
            reason: reason.as_deref(),
            to_version: to.version.as_deref(),
            downtime_ms: report.downtime_ms,
        })?;
        let what = match outcome {
            Outcome::Updated => format!(
                "{} to {}",
                plan.kind
                    .as_str()
                    .replace("update", "updated")
                    .replace("rollback", "rolled back"),
                describe(&to)
            ),
            _ => format!(
                "{} to {} {}: {}",
                plan.kind.as_str(),
                describe(&to),
                outcome,
                reason.as_deref().unwrap_or_default()
            ),
        };
        self.store.record_event(
            Some(name.as_str()),
            if outcome == Outcome::Updated {
                EventKind::Deployed
            } else {
                EventKind::Error
            },
            &what,
        )?;
        report.to = to;
        report.outcome = outcome;
        report.reason = reason;
        report.duration_ms = super::backup::millis(started.elapsed());
        Ok(report)
    }

    /// The recreate strategy: stop the old container, start the candidate on the same
    /// host ports, gate it; on failure remove the candidate and start the old one again.
    /// Returns the candidate's app version.
    async fn recreate_steps(
        &self,
        record: &InstanceRecord,
        plan: &Plan,
        generation: u64,
        journal: &mut Journal<'_>,
        report: &mut UpdateReport,
        progress: &OnProgress<'_>,
    ) -> Result<Option<String>, Failure> {
        let spec = plan.spec(record);
        let old_spec = &record.spec;
        let name = &spec.name;
        self.prepare(record, plan, generation, journal, report, progress)
            .await?;
        journal
            .step(Step::StopOld)
            .map_err(Failure::before_change)?;
        let (old, old_running) = self.old_container(record).await?;
        let down = Instant::now();
        if let Some(old) = old.as_ref().filter(|_| old_running) {
            progress(Progress::Stopping {
                instance: name.to_string(),
            });
            match self
                .engine
                .stop_container(&old.id, self.config.stop_grace)
                .await
            {
                Ok(()) | Err(EngineError::NotFound { .. }) => {}
                Err(source) => {
                    return Err(Failure::before_change(engine_error(
                        EngineOperation::StopContainer,
                        &old.id,
                    )(source)));
                }
            }
        }
        // `rollback --restore-data`: the data as it was before the deployment undone,
        // while no container runs.
        let mut previous_data = None;
        if let Some(backup) = &plan.restore {
            let restored = match journal.step(Step::RestoreData) {
                Ok(()) => self.swap_in_backup(record, backup, progress).await,
                Err(error) => Err(error),
            };
            match restored {
                Ok(previous) => previous_data = previous,
                Err(error) => {
                    return Err(self
                        .bring_back(
                            old_spec,
                            old.as_ref().map(|o| o.id.as_str()),
                            old_running,
                            None,
                            None,
                            &error,
                            down,
                            report,
                            progress,
                        )
                        .await);
                }
            }
        }
        // Behind the proxy (recreate asked for explicitly), the candidate is reached
        // through it too.
        let publish = !self.behind_proxy(name).map_err(Failure::before_change)?;
        let candidate = self
            .start_candidate(spec, plan, generation, publish, journal, progress)
            .await;
        let candidate = match candidate {
            Ok(candidate) => candidate,
            Err((error, candidate)) => {
                return Err(self
                    .bring_back(
                        old_spec,
                        old.as_ref().map(|o| o.id.as_str()),
                        old_running,
                        candidate,
                        previous_data,
                        &error,
                        down,
                        report,
                        progress,
                    )
                    .await);
            }
        };
        if let Some(previous) = previous_data {
            // Kept in this deployment's own pre-update backup.
            let _ = previous.remove();
        }
        if !publish {
            self.route_to(spec, &candidate, false)
                .await
                .map_err(Failure::after_switch)?;
        }
        report.downtime_ms = old_running.then(|| super::backup::millis(down.elapsed()));
        let version = self.version_of(spec, &candidate).await;
        self.retire(
            record,
            plan,
            generation,
            old.as_ref().map(|o| o.id.as_str()),
            &candidate,
            journal,
        )
        .await?;
        Ok(version)
    }

    /// Backup (unless skipped), pull, and the removal of a candidate an interrupted
    /// deployment left: nothing that touches the running container.
    async fn prepare(
        &self,
        record: &InstanceRecord,
        plan: &Plan,
        generation: u64,
        journal: &mut Journal<'_>,
        report: &mut UpdateReport,
        progress: &OnProgress<'_>,
    ) -> Result<(), Failure> {
        let spec = plan.spec(record);
        let name = &spec.name;
        if plan.backup_first {
            let run = journal
                .cancellable(self.take_backup(record, BackupReason::PreUpdate, progress))
                .await
                .map_err(Failure::before_change)?;
            report.backup = Some(run.backup.id);
            self.store
                .set_deployment_backup(journal.id, run.backup.id)
                .map_err(Failure::before_change)?;
            self.prune(name, false).map_err(Failure::before_change)?;
        }
        journal.step(Step::Pull).map_err(Failure::before_change)?;
        journal
            .cancellable(self.pull(spec, &plan.resolved, progress))
            .await
            .map_err(Failure::before_change)?;
        // A candidate of this generation left by an interrupted deployment is an orphan.
        let candidate_name = self.container_name(name, generation);
        self.remove_container(&candidate_name)
            .await
            .map_err(Failure::before_change)
    }

    /// The blue-green strategy: the candidate starts beside the old container, publishing
    /// nothing, and is gated on its own address; the proxy's routes switch to it, the old
    /// container drains and is retired. Until the switch, a failure only removes the
    /// candidate: the old container never stopped serving.
    ///
    /// An instance that still publishes its ports itself (created before `fleet serve`
    /// ran) moves behind the proxy here: the old container stops (freeing the ports)
    /// right before the proxy takes them; that gap is the downtime reported.
    async fn blue_green_steps(
        &self,
        record: &InstanceRecord,
        plan: &Plan,
        generation: u64,
        journal: &mut Journal<'_>,
        report: &mut UpdateReport,
        progress: &OnProgress<'_>,
    ) -> Result<Option<String>, Failure> {
        let spec = plan.spec(record);
        let old_spec = &record.spec;
        let name = &spec.name;
        self.prepare(record, plan, generation, journal, report, progress)
            .await?;
        let (old, old_running) = self.old_container(record).await?;
        let candidate = match self
            .start_candidate(spec, plan, generation, false, journal, progress)
            .await
        {
            Ok(candidate) => candidate,
            Err((error, candidate)) => {
                if let Some(candidate) = &candidate {
                    let _ = self.remove_container(candidate).await;
                }
                return Err(Failure {
                    outcome: Outcome::RolledBack,
                    reason: format!(
                        "{}; the old version never stopped serving",
                        error_chain(&error)
                    ),
                });
            }
        };

        journal.step(Step::Switch).map_err(Failure::before_change)?;
        let moving_in = !self.behind_proxy(name).map_err(Failure::before_change)?;
        let gap = Instant::now();
        if moving_in && let Some(old) = old.as_ref().filter(|_| old_running) {
            progress(Progress::Stopping {
                instance: name.to_string(),
            });
            if let Err(source) = self
                .engine
                .stop_container(&old.id, self.config.stop_grace)
                .await
            {
                let _ = self.remove_container(&candidate).await;
                return Err(Failure::before_change(engine_error(
                    EngineOperation::StopContainer,
                    &old.id,
                )(source)));
            }
        }
        if let Err(error) = self.route_to(spec, &candidate, true).await {
            // Back to the old container: its routes, or its own published ports.
            let back = match old.as_ref().filter(|_| old_running) {
                Some(old) if moving_in => {
                    let _ = self.unroute(name).await;
                    self.start_and_gate(old_spec, &old.id, true, progress).await
                }
                Some(old) => self.route_to(old_spec, &old.id, false).await.map(drop),
                None => Ok(()),
            };
            let _ = self.remove_container(&candidate).await;
            return Err(match back {
                Ok(()) => Failure {
                    outcome: Outcome::RolledBack,
                    reason: format!("{}; the old version serves again", error_chain(&error)),
                },
                Err(again) => Failure {
                    outcome: Outcome::Failed,
                    reason: format!(
                        "{}; the old version did not come back either: {}",
                        error_chain(&error),
                        error_chain(&again)
                    ),
                },
            });
        }
        report.downtime_ms = Some(if moving_in && old_running {
            super::backup::millis(gap.elapsed())
        } else {
            0
        });
        let version = self.version_of(spec, &candidate).await;
        if let Some(old) = old.as_ref().filter(|_| old_running && !moving_in) {
            // Drained by the switch: stop it gracefully before it is removed.
            let _ = self
                .engine
                .stop_container(&old.id, self.config.stop_grace)
                .await;
        }
        self.retire(
            record,
            plan,
            generation,
            old.as_ref().map(|o| o.id.as_str()),
            &candidate,
            journal,
        )
        .await?;
        Ok(version)
    }

    /// The container the instance runs before the deployment, and whether it runs.
    async fn old_container(
        &self,
        record: &InstanceRecord,
    ) -> Result<(Option<ContainerInfo>, bool), Failure> {
        let old = match &record.container_id {
            Some(id) => self.inspect(id).await.map_err(Failure::before_change)?,
            None => None,
        };
        let running = old
            .as_ref()
            .is_some_and(|info| info.state == ContainerState::Running);
        Ok((old, running))
    }

    /// The candidate serves: remove the old container and record the deployment.
    async fn retire(
        &self,
        record: &InstanceRecord,
        plan: &Plan,
        generation: u64,
        old: Option<&str>,
        candidate: &str,
        journal: &mut Journal<'_>,
    ) -> Result<(), Failure> {
        let name = &record.spec.name;
        journal.step(Step::Retire).map_err(Failure::after_switch)?;
        if let Some(old) = old {
            self.remove_container(old)
                .await
                .map_err(Failure::after_switch)?;
        }
        self.store
            .set_deployed(
                name,
                generation,
                plan.resolved.tag.as_deref(),
                &plan.resolved.digest,
                candidate,
            )
            .map_err(Failure::after_switch)?;
        if let Some(spec) = &plan.spec {
            self.store.set_spec(spec).map_err(Failure::after_switch)?;
        }
        self.store
            .set_health(name, crate::health::Health::Healthy)
            .map_err(Failure::after_switch)?;
        journal.step(Step::Record).map_err(Failure::after_switch)
    }

    /// Creates, starts and gates the candidate; on failure, the error and the candidate
    /// (when it was created).
    async fn start_candidate(
        &self,
        spec: &crate::spec::InstanceSpec,
        plan: &Plan,
        generation: u64,
        publish: bool,
        journal: &mut Journal<'_>,
        progress: &OnProgress<'_>,
    ) -> Result<String, (Error, Option<String>)> {
        journal.step(Step::Start).map_err(|e| (e, None))?;
        let candidate = self
            .create_container(spec, &plan.resolved, generation, publish, progress)
            .await
            .map_err(|e| (e, None))?;
        let with = |e: Error| (e, Some(candidate.clone()));
        self.store
            .set_deployment_candidate(journal.id, &candidate)
            .map_err(with)?;
        self.start_recorded(spec, &candidate, progress)
            .await
            .map_err(with)?;
        journal.step(Step::Gate).map_err(with)?;
        journal
            .cancellable(self.gate(spec, &candidate, progress))
            .await
            .map_err(with)?;
        Ok(candidate)
    }

    /// The candidate failed: remove it and start the old container again (gated).
    #[allow(clippy::too_many_arguments)]
    async fn bring_back(
        &self,
        spec: &crate::spec::InstanceSpec,
        old: Option<&str>,
        old_running: bool,
        candidate: Option<String>,
        previous_data: Option<fleet_backup::PreviousData>,
        error: &Error,
        down: Instant,
        report: &mut UpdateReport,
        progress: &OnProgress<'_>,
    ) -> Failure {
        let reason = error_chain(error);
        progress(Progress::RollingBack {
            instance: spec.name.to_string(),
            reason: "the new version failed".into(),
        });
        if let Some(candidate) = &candidate
            && let Err(remove) = self.remove_container(candidate).await
        {
            return Failure {
                outcome: Outcome::Failed,
                reason: format!(
                    "{reason}; the candidate {candidate} could not be removed ({}); the old container is stopped",
                    error_chain(&remove)
                ),
            };
        }
        if let Some(previous) = previous_data {
            let path = previous.path().to_owned();
            let put_back = tokio::task::spawn_blocking(move || previous.put_back()).await;
            if !matches!(put_back, Ok(Ok(()))) {
                return Failure {
                    outcome: Outcome::Failed,
                    reason: format!(
                        "{reason}; the data could not be put back: it is at {} and in the deployment's pre-update backup; the old container is stopped",
                        path.display()
                    ),
                };
            }
        }
        let Some(old) = old.filter(|_| old_running) else {
            return Failure {
                outcome: Outcome::RolledBack,
                reason,
            };
        };
        let restarted = self.start_and_gate(spec, old, true, progress).await;
        report.downtime_ms = Some(super::backup::millis(down.elapsed()));
        match restarted {
            Ok(()) => Failure {
                outcome: Outcome::RolledBack,
                reason: format!("{reason}; the old version runs again"),
            },
            Err(again) => Failure {
                outcome: Outcome::Failed,
                reason: format!(
                    "{reason}; the old version did not come back either: {}",
                    error_chain(&again)
                ),
            },
        }
    }

    /// The version a container's health answer reports, if it says.
    async fn version_of(
        &self,
        spec: &crate::spec::InstanceSpec,
        container: &str,
    ) -> Option<String> {
        let info = self.inspect(container).await.ok()??;
        self.reported_version(spec, &info).await
    }
}

/// The report of an instance that already runs what was asked.
fn unchanged(name: &InstanceName, release: Release, started: Instant) -> UpdateReport {
    UpdateReport {
        instance: name.clone(),
        from: release.clone(),
        to: release,
        outcome: Outcome::Unchanged,
        step: None,
        reason: None,
        backup: None,
        downtime_ms: None,
        duration_ms: super::backup::millis(started.elapsed()),
        deployment: None,
    }
}

/// Why a deployment did not complete, and where the instance stands.
struct Failure {
    outcome: Outcome,
    reason: String,
}

impl Failure {
    /// A failure before the old container was touched: it still serves.
    fn before_change(error: Error) -> Failure {
        Failure {
            outcome: Outcome::RolledBack,
            reason: format!("{}; the old version still serves", error_chain(&error)),
        }
    }

    /// A failure after the candidate took over (recording it): the candidate serves.
    fn after_switch(error: Error) -> Failure {
        Failure {
            outcome: Outcome::Failed,
            reason: format!(
                "{}; the new version serves, but the deployment is not fully recorded (fleet reconcile repairs it)",
                error_chain(&error)
            ),
        }
    }
}

/// `v1.1.0 (sha256:1a2b3c4d5e6f)`.
fn describe(release: &Release) -> String {
    let digest = release
        .digest
        .as_ref()
        .map(|d| d.as_str().chars().take(19).collect::<String>())
        .unwrap_or_default();
    match &release.tag {
        Some(tag) => format!("{tag} ({digest})"),
        None => digest,
    }
}
