//! `Fleet::apply` on the fake engine: an interrupted apply leaves each instance untouched
//! or converged, and applying again finishes the job.

use std::path::Path;

use super::{bed, name};
use crate::deployment::Outcome;
use crate::fleetfile::FleetFile;
use crate::{ApplyOptions, InstanceName};

const FILE: &str = r#"
[defaults]
image = "localhost:5000/app:v1"
ports = [8080]
no_health = true

[instances.a]
[instances.b]
[instances.c]
"#;

#[tokio::test]
async fn an_interrupted_apply_leaves_each_instance_untouched_or_converged() {
    let bed = bed().await;
    let path = Path::new("/fleet/fleet.toml");
    let file = FleetFile::parse(FILE, path).unwrap();
    let plan = bed.fleet.plan_apply(&file, path).unwrap();
    assert_eq!(plan.create.len(), 3);
    let cancel = tokio_util::sync::CancellationToken::new();
    let options = ApplyOptions {
        cancel: Some(cancel.clone()),
        ..ApplyOptions::default()
    };

    // Ctrl-C while the first instance is being created.
    let applied = bed
        .fleet
        .apply(&plan, &options, &|instance: &InstanceName, _| {
            if instance.as_str() == "a" {
                cancel.cancel();
            }
        })
        .await;
    let outcomes: Vec<(&str, Outcome)> = applied
        .iter()
        .map(|a| (a.instance.as_str(), a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("a", Outcome::Updated),
            ("b", Outcome::Skipped),
            ("c", Outcome::Skipped)
        ]
    );
    // a is whole (container, ports, record); b and c were never begun.
    let a = bed.fleet.get(&name("a")).unwrap();
    assert!(a.container.is_some() && !a.ports.is_empty());
    assert!(bed.fleet.get(&name("b")).is_err());
    assert_eq!(bed.engine.containers().len(), 1);

    // Applying again finishes the job, and once more changes nothing.
    let plan = bed.fleet.plan_apply(&file, path).unwrap();
    assert_eq!(plan.create.len(), 2);
    let applied = bed
        .fleet
        .apply(&plan, &ApplyOptions::default(), &|_, _| {})
        .await;
    assert!(applied.iter().all(|a| a.outcome == Outcome::Updated));
    assert_eq!(bed.engine.containers().len(), 3);
    let plan = bed.fleet.plan_apply(&file, path).unwrap();
    assert!(plan.is_empty(true));
}
