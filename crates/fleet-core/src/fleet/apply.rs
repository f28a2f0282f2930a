//! `Fleet::apply`: converge the fleet to a fleet file's plan: create what is missing,
//! change what differs through the update path, remove what the file no longer names
//! (with `prune`).

use std::num::NonZeroUsize;

use futures::StreamExt as _;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{CreateOptions, Fleet, OnInstanceProgress};
use crate::deployment::{Outcome, UpdateOptions, UpdateReport};
use crate::error::{Error, error_chain};
use crate::fleetfile::{ApplyPlan, FleetFile};
use crate::name::InstanceName;

/// How to apply.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// Remove the instances the file no longer names.
    pub prune: bool,
    /// With `prune`, delete their data too (fleet's own data directories only).
    pub purge_data: bool,
    /// Change at most this many instances at once.
    pub parallel: NonZeroUsize,
    /// Take no backup before changing an instance.
    pub no_backup: bool,
    /// Cancelled (Ctrl-C): no further instance is started on, and changes in flight roll
    /// back; each instance ends untouched or converged.
    pub cancel: Option<CancellationToken>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            prune: false,
            purge_data: false,
            parallel: NonZeroUsize::MIN,
            no_backup: false,
            cancel: None,
        }
    }
}

/// What applying did to one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Applied {
    /// The instance.
    pub instance: InstanceName,
    /// `create`, `change` or `remove`.
    pub action: &'static str,
    /// `updated` (done), `rolled_back` (a change undone), `failed` or `skipped`
    /// (cancelled before it started).
    pub outcome: Outcome,
    /// Why, when it was not done.
    pub reason: Option<String>,
    /// The update report of a change.
    pub update: Option<UpdateReport>,
}

impl Fleet {
    /// The plan that converges this fleet to `file` (read from `path`, for relative paths
    /// and messages): checked as far as it can be before anything changes, env files
    /// included.
    pub fn plan_apply(&self, file: &FleetFile, path: &std::path::Path) -> Result<ApplyPlan, Error> {
        let desired = file.desired(path)?;
        for wanted in &desired {
            let refused = |error: Error| Error::FleetFile {
                path: path.to_owned(),
                reason: format!("[instances.{}]: {}", wanted.spec.name, error_chain(&error)),
            };
            wanted.spec.resolved_env().map_err(refused)?;
            // Every template must have a value now: a new instance's ports are not
            // allocated yet, so they stand in as its fixed port or 0 for this check.
            let mut context = self.template_context(&wanted.spec).map_err(refused)?;
            for port in &wanted.spec.ports {
                if !context
                    .ports
                    .iter()
                    .any(|(container, _)| *container == port.container)
                {
                    context.ports.push((port.container, port.host.unwrap_or(0)));
                }
            }
            wanted.spec.rendered_env(&context).map_err(refused)?;
            wanted.spec.rendered_volumes(&context).map_err(refused)?;
        }
        let current: Vec<_> = self
            .store
            .instances()?
            .into_iter()
            .map(|record| record.spec)
            .collect();
        Ok(ApplyPlan::new(&current, desired))
    }

    /// Carries out `plan`: creates (one at a time), changes (through
    /// [`reconfigure`](Self::reconfigure), `parallel` at a time), removals (with
    /// `prune`). One instance failing does not stop the others; each gets its outcome.
    pub async fn apply(
        &self,
        plan: &ApplyPlan,
        options: &ApplyOptions,
        progress: &OnInstanceProgress<'_>,
    ) -> Vec<Applied> {
        let cancelled = || {
            options
                .cancel
                .as_ref()
                .is_some_and(CancellationToken::is_cancelled)
        };
        let skipped = |instance: &InstanceName, action| Applied {
            instance: instance.clone(),
            action,
            outcome: Outcome::Skipped,
            reason: Some("cancelled before it started".into()),
            update: None,
        };
        let mut done = Vec::new();
        for name in &plan.create {
            if cancelled() {
                done.push(skipped(name, "create"));
                continue;
            }
            let Some(wanted) = plan.desired.iter().find(|d| d.spec.name == *name) else {
                continue;
            };
            let created = self
                .create(wanted.spec.clone(), CreateOptions::default(), &|step| {
                    progress(name, step)
                })
                .await;
            done.push(finished(name, "create", created.map(drop)));
        }
        let changes: Vec<Applied> = futures::stream::iter(&plan.change)
            .map(|change| async move {
                let name = &change.instance;
                if cancelled() {
                    return skipped(name, "change");
                }
                let Some(wanted) = plan.desired.iter().find(|d| d.spec.name == *name) else {
                    return skipped(name, "change");
                };
                let update = UpdateOptions {
                    strategy: wanted.strategy,
                    no_backup: options.no_backup,
                    cancel: options.cancel.clone(),
                    ..UpdateOptions::default()
                };
                match self
                    .reconfigure(wanted.spec.clone(), &update, &|step| progress(name, step))
                    .await
                {
                    Ok(report) => Applied {
                        instance: name.clone(),
                        action: "change",
                        outcome: report.outcome,
                        reason: report.reason.clone(),
                        update: Some(report),
                    },
                    Err(error) => finished(name, "change", Err(error)),
                }
            })
            .buffered(options.parallel.get())
            .collect()
            .await;
        done.extend(changes);
        if options.prune {
            for name in &plan.remove {
                if cancelled() {
                    done.push(skipped(name, "remove"));
                    continue;
                }
                let confirm = |_: &std::path::Path| true;
                let purge: Option<&(dyn Fn(&std::path::Path) -> bool + Sync)> =
                    options.purge_data.then_some(&confirm);
                let removed = self.remove(name, purge).await;
                done.push(finished(name, "remove", removed.map(drop)));
            }
        }
        done
    }
}

fn finished(name: &InstanceName, action: &'static str, result: Result<(), Error>) -> Applied {
    match result {
        Ok(()) => Applied {
            instance: name.clone(),
            action,
            outcome: Outcome::Updated,
            reason: None,
            update: None,
        },
        Err(error) => Applied {
            instance: name.clone(),
            action,
            outcome: Outcome::Failed,
            reason: Some(error_chain(&error)),
            update: None,
        },
    }
}
