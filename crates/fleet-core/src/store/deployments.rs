//! Deployment rows: the journal of each update and rollback. A row is written before the
//! first step that changes anything, and its `step` before each later step runs, so an
//! interrupted deployment says how far it got.

use rusqlite::{Row, params};

use super::{Store, now_ms, timestamp};
use crate::deployment::{Deployment, DeploymentKind, Outcome, Release, Step, StepTime, Strategy};
use crate::error::Error;
use crate::name::InstanceName;

const COLUMNS: &str = "id, instance, kind, strategy, started_at, finished_at, step, outcome, reason, \
     from_tag, from_digest, from_version, from_generation, from_container, \
     to_tag, to_digest, to_version, to_generation, to_container, backup_id, downtime_ms, steps, \
     restores_backup, spec";

/// A deployment row with the containers involved, for recovery.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentRecord {
    pub(crate) deployment: Deployment,
    /// The container that ran before.
    pub(crate) from_container: Option<String>,
    /// The candidate, once created.
    pub(crate) to_container: Option<String>,
    /// The spec the deployment puts in place, when it changes it.
    pub(crate) spec: Option<crate::spec::InstanceSpec>,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<DeploymentRecord> {
    let conversion = |index: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e)
    };
    let text = |index: usize| -> rusqlite::Result<String> { row.get(index) };
    let digest = |index: usize| -> rusqlite::Result<Option<fleet_registry::Digest>> {
        row.get::<_, Option<String>>(index)?
            .map(|d| d.parse())
            .transpose()
            .map_err(|e| conversion(index, Box::new(e)))
    };
    let parsed = |index: usize, e: String| conversion(index, e.into());
    let steps: String = row.get(21)?;
    Ok(DeploymentRecord {
        deployment: Deployment {
            id: row.get(0)?,
            instance: text(1)?.parse().map_err(|e| conversion(1, Box::new(e)))?,
            kind: text(2)?.parse().map_err(|e| parsed(2, e))?,
            strategy: text(3)?
                .parse()
                .map_err(|e: crate::deployment::UnknownStrategy| parsed(3, e.to_string()))?,
            started_at: timestamp(row.get(4)?),
            finished_at: row.get::<_, Option<i64>>(5)?.map(timestamp),
            step: text(6)?.parse().map_err(|e| parsed(6, e))?,
            outcome: text(7)?.parse().map_err(|e| parsed(7, e))?,
            reason: row.get(8)?,
            from: Release {
                tag: row.get(9)?,
                digest: digest(10)?,
                version: row.get(11)?,
            },
            from_generation: row.get::<_, i64>(12)? as u64,
            to: Release {
                tag: row.get(14)?,
                digest: digest(15)?,
                version: row.get(16)?,
            },
            to_generation: row.get::<_, i64>(17)? as u64,
            backup: row.get(19)?,
            restored: row.get(22)?,
            downtime_ms: row.get::<_, Option<i64>>(20)?.map(|ms| ms as u64),
            steps: serde_json::from_str(&steps).map_err(|e| conversion(21, Box::new(e)))?,
        },
        from_container: row.get(13)?,
        to_container: row.get(18)?,
        spec: row
            .get::<_, Option<String>>(23)?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| conversion(23, Box::new(e)))?,
    })
}

/// A deployment about to start.
pub(crate) struct NewDeployment<'a> {
    pub(crate) instance: &'a InstanceName,
    pub(crate) kind: DeploymentKind,
    pub(crate) strategy: Strategy,
    pub(crate) from: &'a Release,
    pub(crate) from_generation: u64,
    pub(crate) from_container: Option<&'a str>,
    pub(crate) to: &'a Release,
    pub(crate) to_generation: u64,
    pub(crate) restores_backup: Option<i64>,
    /// The new spec, when the deployment changes it.
    pub(crate) spec: Option<&'a crate::spec::InstanceSpec>,
}

/// How a deployment ended, to record.
pub(crate) struct Finished<'a> {
    pub(crate) outcome: Outcome,
    pub(crate) reason: Option<&'a str>,
    pub(crate) to_version: Option<&'a str>,
    pub(crate) downtime_ms: Option<u64>,
}

impl Store {
    /// Journals a new deployment (outcome `in_progress`, at `step`); returns its id.
    pub(crate) fn insert_deployment(
        &self,
        new: &NewDeployment<'_>,
        step: Step,
    ) -> Result<i64, Error> {
        self.write("record deployment", |tx| {
            tx.execute(
                "INSERT INTO deployments (instance, kind, strategy, started_at, step, outcome,
                     from_tag, from_digest, from_version, from_generation, from_container,
                     to_tag, to_digest, to_version, to_generation, restores_backup, spec)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'in_progress', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    new.instance.as_str(),
                    new.kind.as_str(),
                    new.strategy.to_string(),
                    now_ms(),
                    step.as_str(),
                    new.from.tag,
                    new.from.digest.as_ref().map(fleet_registry::Digest::as_str),
                    new.from.version,
                    new.from_generation as i64,
                    new.from_container,
                    new.to.tag,
                    new.to.digest.as_ref().map(fleet_registry::Digest::as_str),
                    new.to.version,
                    new.to_generation as i64,
                    new.restores_backup,
                    new.spec
                        .map(|spec| serde_json::to_string(spec).expect("specs serialize")),
                ],
            )
            .map_err(|e| self.error("record deployment", e))?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Journals that the deployment is about to run `step`, with the times of the steps
    /// done.
    pub(crate) fn set_deployment_step(
        &self,
        id: i64,
        step: Step,
        steps: &[StepTime],
    ) -> Result<(), Error> {
        let steps = serde_json::to_string(steps).unwrap_or_else(|_| "[]".into());
        self.write("journal deployment step", |tx| {
            tx.execute(
                "UPDATE deployments SET step = ?2, steps = ?3 WHERE id = ?1",
                params![id, step.as_str(), steps],
            )
            .map_err(|e| self.error("journal deployment step", e))?;
            Ok(())
        })
    }

    /// Records the deployment's backup.
    pub(crate) fn set_deployment_backup(&self, id: i64, backup: i64) -> Result<(), Error> {
        self.write("record deployment backup", |tx| {
            tx.execute(
                "UPDATE deployments SET backup_id = ?2 WHERE id = ?1",
                params![id, backup],
            )
            .map_err(|e| self.error("record deployment backup", e))?;
            Ok(())
        })
    }

    /// Records the candidate container, once created.
    pub(crate) fn set_deployment_candidate(&self, id: i64, container: &str) -> Result<(), Error> {
        self.write("record deployment candidate", |tx| {
            tx.execute(
                "UPDATE deployments SET to_container = ?2 WHERE id = ?1",
                params![id, container],
            )
            .map_err(|e| self.error("record deployment candidate", e))?;
            Ok(())
        })
    }

    /// Records how the deployment ended.
    pub(crate) fn finish_deployment(
        &self,
        id: i64,
        finished: &Finished<'_>,
        steps: &[StepTime],
    ) -> Result<(), Error> {
        let steps = serde_json::to_string(steps).unwrap_or_else(|_| "[]".into());
        self.write("record deployment outcome", |tx| {
            tx.execute(
                "UPDATE deployments SET outcome = ?2, reason = ?3, to_version = COALESCE(?4, to_version),
                     downtime_ms = ?5, steps = ?6, finished_at = ?7 WHERE id = ?1",
                params![
                    id,
                    finished.outcome.as_str(),
                    finished.reason,
                    finished.to_version,
                    finished.downtime_ms.map(|ms| ms as i64),
                    steps,
                    now_ms()
                ],
            )
            .map_err(|e| self.error("record deployment outcome", e))?;
            Ok(())
        })
    }

    /// The instance's deployments, newest first.
    pub(crate) fn deployments(
        &self,
        instance: &InstanceName,
    ) -> Result<Vec<DeploymentRecord>, Error> {
        self.read("list deployments", |c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE instance = ?1 ORDER BY id DESC"
            ))?;
            statement
                .query_map([instance.as_str()], from_row)?
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_is_journaled_step_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("fleet.db")).unwrap();
        let alice: InstanceName = "alice".parse().unwrap();
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64)).parse().ok();
        let from = Release {
            tag: Some("v1.0.0".into()),
            digest: digest('1'),
            version: Some("1.0.0".into()),
        };
        let to = Release {
            tag: Some("v1.1.0".into()),
            digest: digest('2'),
            version: None,
        };
        let id = store
            .insert_deployment(
                &NewDeployment {
                    instance: &alice,
                    kind: DeploymentKind::Update,
                    strategy: Strategy::Recreate,
                    from: &from,
                    from_generation: 1,
                    from_container: Some("c1"),
                    to: &to,
                    to_generation: 2,
                    restores_backup: None,
                    spec: None,
                },
                Step::Backup,
            )
            .unwrap();
        let times = [StepTime {
            step: Step::Backup,
            ms: 12,
        }];
        store.set_deployment_step(id, Step::Pull, &times).unwrap();
        store.set_deployment_backup(id, 7).unwrap();
        store.set_deployment_candidate(id, "c2").unwrap();
        let record = &store.deployments(&alice).unwrap()[0];
        assert_eq!(record.deployment.step, Step::Pull);
        assert_eq!(record.deployment.outcome, Outcome::InProgress);
        assert_eq!(record.from_container.as_deref(), Some("c1"));
        assert_eq!(record.to_container.as_deref(), Some("c2"));
        assert_eq!(record.deployment.steps, times);
        assert_eq!(record.deployment.backup, Some(7));

        store
            .finish_deployment(
                id,
                &Finished {
                    outcome: Outcome::Updated,
                    reason: None,
                    to_version: Some("1.1.0"),
                    downtime_ms: Some(900),
                },
                &times,
            )
            .unwrap();
        let done = &store.deployments(&alice).unwrap()[0].deployment;
        assert_eq!(done.outcome, Outcome::Updated);
        assert_eq!(done.to.version.as_deref(), Some("1.1.0"));
        assert_eq!(done.from, from);
        assert_eq!(done.downtime_ms, Some(900));
        assert!(done.finished_at.is_some());
    }
}
