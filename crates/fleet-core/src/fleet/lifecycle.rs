//! Start, stop, restart and remove an instance; the purge rule.

use std::path::{Path, PathBuf};

use super::Fleet;
use crate::data_dir;

use crate::error::{EngineError, EngineOperation, Error, engine_error};
use crate::name::InstanceName;

use crate::store::{DesiredState, EventKind, InstanceRecord};
use crate::view::Instance;

impl Fleet {
    /// Starts a stopped instance (recreating its container if it vanished) and waits
    /// until it is healthy.
    pub async fn start(&self, name: &InstanceName) -> Result<Instance, Error> {
        self.with_lease(name, "start", async || {
            let record = self.record(name)?;
            self.store.set_desired(name, DesiredState::Running)?;
            let container = self.ensure_container(&record, &|_| {}).await?;
            let info = self.inspect(&container).await?;
            if info
                .as_ref()
                .is_some_and(|i| i.state == crate::engine::ContainerState::Running)
            {
                return Ok(());
            }
            self.start_and_gate(&record.spec, &container, true, &|_| {})
                .await
        })
        .await?;
        self.get(name)
    }

    /// Stops an instance's container (SIGTERM, then SIGKILL after the grace period).
    pub async fn stop(&self, name: &InstanceName) -> Result<Instance, Error> {
        self.with_lease(name, "stop", async || {
            let record = self.record(name)?;
            self.store.set_desired(name, DesiredState::Stopped)?;
            if let Some(container) = &record.container_id {
                match self
                    .engine
                    .stop_container(container, self.config.stop_grace)
                    .await
                {
                    Ok(()) | Err(EngineError::NotFound { .. }) => {}
                    Err(source) => {
                        return Err(engine_error(EngineOperation::StopContainer, container)(
                            source,
                        ));
                    }
                }
            }
            self.store
                .record_event(Some(name.as_str()), EventKind::Stopped, "container stopped")
        })
        .await?;
        self.get(name)
    }

    /// Stops and starts an instance.
    pub async fn restart(&self, name: &InstanceName) -> Result<Instance, Error> {
        self.stop(name).await?;
        self.start(name).await
    }

    /// Removes an instance: its containers, its ports and its store row. The data
    /// directory is kept, unless `purge` is given and returns `true` when asked about it
    /// (the caller confirms; this library never prompts). Returns whether data was purged.
    ///
    /// Only fleet's own data directory is ever deleted: the default location under the
    /// state directory, or one fleet created at `create`; and never one another
    /// instance uses. Otherwise nothing is removed and the error is
    /// [`Error::PurgeRefused`].
    pub async fn remove(
        &self,
        name: &InstanceName,
        purge: Option<&(dyn Fn(&Path) -> bool + Sync)>,
    ) -> Result<bool, Error> {
        self.with_lease(name, "remove", async || {
            let record = self.record(name)?;
            let data_dir = self.data_dir(&record.spec);
            let purge = match purge {
                Some(confirm) if data_dir.exists() => {
                    // Refuse before anything is removed: the operator can decide again.
                    self.check_purge(&record, &data_dir)?;
                    if !confirm(&data_dir) {
                        return Err(Error::ConfirmationRequired {
                            instance: name.to_string(),
                            path: data_dir,
                        });
                    }
                    true
                }
                _ => false,
            };
            // Out of the proxy first: its requests drain before the container goes.
            self.unroute(name).await?;
            for container in self.instance_containers(name).await? {
                self.remove_container(&container.id).await?;
            }
            if let Some(id) = &record.container_id {
                self.remove_container(id).await?;
            }
            self.store.delete_instance(name)?;
            if purge {
                std::fs::remove_dir_all(&data_dir).map_err(|source| Error::Io {
                    path: data_dir.clone(),
                    source,
                })?;
                // The default layout keeps data under <state>/instances/<name>/: drop it too.
                let default = self.dirs.default_data_dir(name);
                if data_dir == default
                    && let Some(parent) = default.parent()
                {
                    let _ = std::fs::remove_dir(parent);
                }
            }
            let what = if purge {
                "removed with its data"
            } else {
                "removed; data kept"
            };
            self.store
                .record_event(Some(name.as_str()), EventKind::Removed, what)?;
            Ok(purge)
        })
        .await
    }

    /// Refuses to delete `data_dir` unless it is fleet's own and no other instance uses
    /// it (see [`data_dir::purge_refusal`]).
    pub(super) fn check_purge(
        &self,
        record: &InstanceRecord,
        data_dir: &Path,
    ) -> Result<(), Error> {
        let name = &record.spec.name;
        let others: Vec<(InstanceName, PathBuf)> = self
            .store
            .instances()?
            .into_iter()
            .filter(|other| other.spec.name != *name)
            .map(|other| (other.spec.name.clone(), self.data_dir(&other.spec)))
            .collect();
        let default = self.dirs.default_data_dir(name);
        match data_dir::purge_refusal(name, data_dir, &default, record.data_dir_created, &others) {
            None => Ok(()),
            Some(reason) => Err(Error::PurgeRefused {
                instance: name.to_string(),
                path: data_dir.to_owned(),
                reason,
            }),
        }
    }
}
