//! Recovery: a deployment whose process died (killed, crashed, the host rebooted) left
//! its journal in the store. Whoever takes the instance's lease next finishes it, when
//! the candidate had passed its health gate, or undoes it: afterwards exactly one
//! container of the instance runs, no candidate is left, and the deployment is marked
//! updated or rolled back.

use super::Fleet;
use crate::deployment::{Outcome, Step, Strategy};
use crate::engine::ContainerState;
use crate::error::{Error, error_chain};
use crate::name::InstanceName;
use crate::store::{DeploymentRecord, DesiredState, EventKind, Finished};

/// What recovery did to one interrupted deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub(crate) deployment: i64,
    pub(crate) outcome: Outcome,
    pub(crate) reason: String,
}

impl Fleet {
    /// Finishes or undoes the instance's interrupted deployments. Runs under the lease
    /// (so the process that journaled them is gone).
    pub(super) async fn recover(&self, name: &InstanceName) -> Result<Vec<Recovered>, Error> {
        let interrupted: Vec<DeploymentRecord> = self
            .store
            .deployments(name)?
            .into_iter()
            .filter(|r| r.deployment.outcome == Outcome::InProgress)
            .collect();
        let mut done = Vec::new();
        for record in interrupted {
            let recovered = self.recover_one(name, &record).await?;
            tracing::warn!(
                instance = %name,
                deployment = record.deployment.id,
                "recovered an interrupted deployment: {}",
                recovered.reason
            );
            self.store.finish_deployment(
                record.deployment.id,
                &Finished {
                    outcome: recovered.outcome,
                    reason: Some(&recovered.reason),
                    to_version: None,
                    downtime_ms: record.deployment.downtime_ms,
                },
                &record.deployment.steps,
            )?;
            self.store.record_event(
                Some(name.as_str()),
                if recovered.outcome == Outcome::Updated {
                    EventKind::Deployed
                } else {
                    EventKind::Reconciled
                },
                &format!(
                    "deployment {} recovered: {}",
                    record.deployment.id, recovered.reason
                ),
            )?;
            done.push(recovered);
        }
        Ok(done)
    }

    async fn recover_one(
        &self,
        name: &InstanceName,
        record: &DeploymentRecord,
    ) -> Result<Recovered, Error> {
        let deployment = &record.deployment;
        let step = deployment.step;
        let candidate_name = self.container_name(name, deployment.to_generation);
        let candidate = match &record.to_container {
            Some(id) => self.inspect(id).await?,
            None => self.inspect(&candidate_name).await?,
        };
        let recovered = |outcome, reason: String| Recovered {
            deployment: deployment.id,
            outcome,
            reason: format!("interrupted at step {step}; {reason}"),
        };
        // Past the gate, the candidate was healthy: finish what the process began.
        let blue_green = deployment.strategy == Strategy::BlueGreen;
        let past_gate = step >= Step::Retire || (blue_green && step == Step::Switch);
        if past_gate
            && let Some(candidate) = candidate
                .as_ref()
                .filter(|c| c.state == ContainerState::Running)
        {
            let instance = self.record(name)?;
            let spec = record.spec.as_ref().unwrap_or(&instance.spec);
            self.route_to(spec, &candidate.id, blue_green).await?;
            if let Some(old) = &record.from_container
                && *old != candidate.id
            {
                self.remove_container(old).await?;
            }
            let digest = deployment
                .to
                .digest
                .clone()
                .ok_or_else(|| Error::InvalidSpec {
                    instance: name.to_string(),
                    reason: format!("deployment {} has no digest", deployment.id),
                })?;
            self.store.set_deployed(
                name,
                deployment.to_generation,
                deployment.to.tag.as_deref(),
                &digest,
                &candidate.id,
            )?;
            if let Some(spec) = &record.spec {
                self.store.set_spec(spec)?;
            }
            return Ok(recovered(
                Outcome::Updated,
                "the new version had passed its health gate; it serves now".into(),
            ));
        }
        // Before that, undo: no candidate, the old container as it was.
        if let Some(candidate) = &candidate
            && Some(&candidate.id) != record.from_container.as_ref()
        {
            self.remove_container(&candidate.id).await?;
        }
        let instance = self.record(name)?;
        // A rollback that was restoring data: the data directory may hold the restored
        // data; this deployment's own pre-update backup holds what was there.
        if deployment.restored.is_some()
            && step >= Step::RestoreData
            && let Some(own) = deployment.backup
        {
            let backup = self
                .store
                .backups(name)?
                .into_iter()
                .find(|b| b.id == own)
                .ok_or_else(|| Error::NoSuchBackup {
                    instance: name.to_string(),
                    id: Some(own),
                })?;
            if let Some(previous) = self.swap_in_backup(&instance, &backup, &|_| {}).await? {
                let _ = previous.remove();
            }
        }
        let Some(old) = record.from_container.as_deref() else {
            return Ok(recovered(
                Outcome::RolledBack,
                "the candidate was removed".into(),
            ));
        };
        // The record may already point at the candidate (a crash inside the retire step
        // with the candidate gone): put the old container back in the record.
        if instance.container_id.as_deref() != Some(old)
            && let Some(digest) = &deployment.from.digest
        {
            self.store.set_deployed(
                name,
                deployment.from_generation,
                deployment.from.tag.as_deref(),
                digest,
                old,
            )?;
        }
        let info = self.inspect(old).await?;
        let Some(info) = info else {
            return Ok(recovered(
                Outcome::Failed,
                format!("the old container {old} is gone too; `fleet reconcile` recreates it"),
            ));
        };
        if instance.desired == DesiredState::Running && info.state != ContainerState::Running {
            if let Err(error) = self
                .start_and_gate(&instance.spec, old, true, &|_| {})
                .await
            {
                return Ok(recovered(
                    Outcome::Failed,
                    format!(
                        "the candidate was removed, but the old version did not start again: {}",
                        error_chain(&error)
                    ),
                ));
            }
            return Ok(recovered(
                Outcome::RolledBack,
                "the candidate was removed and the old version started again".into(),
            ));
        }
        // Behind the proxy, the routes may point at the candidate that is gone.
        self.route_to(&instance.spec, old, false).await?;
        Ok(recovered(
            Outcome::RolledBack,
            "the candidate was removed; the old version serves".into(),
        ))
    }
}
