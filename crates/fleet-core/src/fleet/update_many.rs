//! `Fleet::update_many`: many instances with bounded parallelism, an optional canary
//! first; `Fleet::promote`: one group to exactly the digest another runs.

use std::num::NonZeroUsize;
use std::time::Instant;

use futures::StreamExt as _;

use super::Fleet;
use crate::deployment::{Outcome, Release, UpdateOptions, UpdateReport, UpdateTarget};
use crate::error::{Error, error_chain};
use crate::name::InstanceName;
use crate::view::Progress;

/// What `update_many` reports progress to: the instance, and its step.
pub type OnInstanceProgress<'a> = dyn Fn(&InstanceName, Progress) + Send + Sync + 'a;

impl Fleet {
    /// Updates `names`, at most `parallel` at a time. With a `canary`, it is updated
    /// first, alone; if it does not end on its target, nothing else is touched (their
    /// outcome is [`Outcome::Skipped`]). Every instance gets a report, in the order
    /// given; an update that could not start (busy, unresolvable) is
    /// [`Outcome::Failed`] with the reason.
    pub async fn update_many(
        &self,
        names: &[InstanceName],
        options: &UpdateOptions,
        parallel: NonZeroUsize,
        canary: Option<&InstanceName>,
        progress: &OnInstanceProgress<'_>,
    ) -> Vec<UpdateReport> {
        let mut reports: Vec<Option<UpdateReport>> = vec![None; names.len()];
        let mut rest: Vec<usize> = (0..names.len()).collect();
        if let Some(canary) = canary {
            let report = self.update_one(canary, options, progress).await;
            let passed = report.outcome.is_success();
            let reason = report.reason.clone().unwrap_or_default();
            if let Some(index) = names.iter().position(|n| n == canary) {
                reports[index] = Some(report.clone());
                rest.retain(|&i| i != index);
            }
            if !passed {
                for index in rest {
                    reports[index] = Some(skipped(
                        &names[index],
                        format!("not attempted: the canary {canary} did not update ({reason})"),
                    ));
                }
                let mut all: Vec<UpdateReport> = reports.into_iter().flatten().collect();
                if !names.contains(canary) {
                    all.insert(0, report);
                }
                return all;
            }
            if !names.contains(canary) {
                reports.insert(0, Some(report));
                rest.iter_mut().for_each(|i| *i += 1);
            }
        }
        let names_with_canary: Vec<InstanceName> = match canary {
            Some(canary) if !names.contains(canary) => std::iter::once(canary.clone())
                .chain(names.iter().cloned())
                .collect(),
            _ => names.to_vec(),
        };
        let done: Vec<(usize, UpdateReport)> = futures::stream::iter(rest)
            .map(|index| {
                let name = &names_with_canary[index];
                async move { (index, self.update_one(name, options, progress).await) }
            })
            .buffer_unordered(parallel.get())
            .collect()
            .await;
        for (index, report) in done {
            reports[index] = Some(report);
        }
        reports.into_iter().flatten().collect()
    }

    /// The instances of `group`, by name.
    pub fn group(&self, group: &str) -> Result<Vec<InstanceName>, Error> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| i.group.as_deref() == Some(group))
            .map(|i| i.name)
            .collect())
    }

    /// Deploys to every instance of group `to` exactly the digest the instances of group
    /// `from` run (they must all run the same one), with `update_many`'s rules.
    pub async fn promote(
        &self,
        from: &str,
        to: &str,
        options: &UpdateOptions,
        parallel: NonZeroUsize,
        progress: &OnInstanceProgress<'_>,
    ) -> Result<Vec<UpdateReport>, Error> {
        let sources = self.group(from)?;
        let mut digests: Vec<(InstanceName, Option<fleet_registry::Digest>)> = Vec::new();
        for name in &sources {
            digests.push((name.clone(), self.get(name)?.digest));
        }
        let first = digests.first().and_then(|(_, d)| d.clone());
        let Some(digest) = first else {
            return Err(Error::Promote {
                reason: format!("group {from} has no instance that runs a digest"),
            });
        };
        if let Some((other, theirs)) = digests.iter().find(|(_, d)| d.as_ref() != Some(&digest)) {
            return Err(Error::Promote {
                reason: format!(
                    "group {from} does not run one digest: {} runs {digest}, {other} runs {}; update it first",
                    digests[0].0,
                    theirs.as_ref().map_or("nothing", |d| d.as_str())
                ),
            });
        }
        let targets = self.group(to)?;
        if targets.is_empty() {
            return Err(Error::Promote {
                reason: format!("group {to} has no instances"),
            });
        }
        let options = options.clone().to(UpdateTarget::Digest(digest));
        Ok(self
            .update_many(&targets, &options, parallel, None, progress)
            .await)
    }

    async fn update_one(
        &self,
        name: &InstanceName,
        options: &UpdateOptions,
        progress: &OnInstanceProgress<'_>,
    ) -> UpdateReport {
        let started = Instant::now();
        match self
            .update(name, options, &|step| progress(name, step))
            .await
        {
            Ok(report) => report,
            Err(error) => {
                let mut report = skipped(
                    name,
                    format!("{}; nothing was changed", error_chain(&error)),
                );
                report.outcome = Outcome::Failed;
                if let Ok(instance) = self.get(name) {
                    report.from.tag = instance.tag;
                    report.from.digest = instance.digest;
                }
                report.duration_ms = super::backup::millis(started.elapsed());
                report
            }
        }
    }
}

fn skipped(name: &InstanceName, reason: String) -> UpdateReport {
    UpdateReport {
        instance: name.clone(),
        from: Release {
            tag: None,
            digest: None,
            version: None,
        },
        to: Release {
            tag: None,
            digest: None,
            version: None,
        },
        outcome: Outcome::Skipped,
        step: None,
        reason: Some(reason),
        backup: None,
        downtime_ms: None,
        duration_ms: 0,
        deployment: None,
    }
}
