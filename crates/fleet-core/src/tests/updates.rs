//! Updates, rollbacks and crash recovery on the fake engine: the deploy state machine.
//! The real daemon runs the same paths (under load) in `crates/fleet-cli/tests/`.

use super::{DIGEST_1, DIGEST_2, IMAGE, bed, create, name, spec};
use crate::deployment::{DeploymentKind, Outcome, Release, Step, Strategy, UpdateOptions};
use crate::engine::{ContainerInfo, ContainerState};
use crate::store::NewDeployment;
use crate::{BackupReason, Error};

fn containers(bed: &super::Bed) -> Vec<(String, ContainerState)> {
    let mut all: Vec<(String, ContainerState)> = bed
        .engine
        .containers()
        .into_iter()
        .map(|c| (c.name, c.state))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

async fn update(bed: &super::Bed) -> crate::UpdateReport {
    bed.fleet
        .update(&name("alice"), &UpdateOptions::default(), &|_| {})
        .await
        .unwrap()
}

#[tokio::test]
async fn an_update_backs_up_replaces_the_container_and_records_the_deployment() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());

    let report = update(&bed).await;

    assert_eq!(report.outcome, Outcome::Updated, "{report:?}");
    assert_eq!(report.from.digest.as_ref().unwrap().as_str(), DIGEST_1);
    assert_eq!(report.to.digest.as_ref().unwrap().as_str(), DIGEST_2);
    assert_eq!(report.to.tag.as_deref(), Some("v1.1.0"));
    assert!(
        report.downtime_ms.is_some(),
        "recreate measures its downtime"
    );
    assert_eq!(
        containers(&bed),
        [("fleet-alice.2".to_owned(), ContainerState::Running)]
    );
    let instance = bed.fleet.get(&name("alice")).unwrap();
    assert_eq!(instance.generation, 2);
    assert_eq!(instance.digest.unwrap().as_str(), DIGEST_2);
    let backups = bed.fleet.backups(&name("alice")).unwrap();
    assert_eq!(backups[0].reason, BackupReason::PreUpdate);
    assert_eq!(report.backup, Some(backups[0].id));
    let history = bed.fleet.history(&name("alice")).unwrap();
    assert_eq!(history.len(), 1);
    let deployment = &history[0];
    assert_eq!(deployment.outcome, Outcome::Updated);
    assert_eq!(deployment.strategy, Strategy::Recreate);
    assert_eq!(deployment.step, Step::Record);
    let steps: Vec<Step> = deployment.steps.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        [
            Step::Backup,
            Step::Pull,
            Step::StopOld,
            Step::Start,
            Step::Gate,
            Step::Retire,
            Step::Record
        ]
    );

    // The same digest again: nothing to do, nothing recorded.
    let again = update(&bed).await;
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(bed.fleet.history(&name("alice")).unwrap().len(), 1);
}

#[tokio::test]
async fn a_candidate_that_fails_to_start_is_removed_and_the_old_container_runs_again() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());
    bed.engine.fail("start_container", "exec format error");

    let report = update(&bed).await;

    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert_eq!(report.step, Some(Step::Start));
    let reason = report.reason.unwrap();
    assert!(reason.contains("exec format error"), "{reason}");
    assert!(reason.contains("the old version runs again"), "{reason}");
    assert_eq!(
        containers(&bed),
        [("fleet-alice.1".to_owned(), ContainerState::Running)]
    );
    let instance = bed.fleet.get(&name("alice")).unwrap();
    assert_eq!(
        (instance.generation, instance.digest.unwrap().as_str()),
        (1, DIGEST_1)
    );
    let deployment = &bed.fleet.history(&name("alice")).unwrap()[0];
    assert_eq!(deployment.outcome, Outcome::RolledBack);
}

#[tokio::test]
async fn a_pull_that_fails_never_touches_the_old_container() {
    let bed = bed().await;
    let instance = create(&bed, spec("alice")).await.unwrap();
    let missing = format!("sha256:{}", "3".repeat(64));
    bed.resolver
        .set(IMAGE, Some("v1.2.0"), &missing.parse().unwrap());

    let report = update(&bed).await;

    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(report.step, Some(Step::Pull));
    assert!(
        report
            .reason
            .unwrap()
            .contains("the old version still serves"),
        "the reason says the old version serves"
    );
    assert_eq!(
        bed.engine.containers()[0].id,
        instance.container.unwrap(),
        "the same container"
    );
    assert_eq!(containers(&bed)[0].1, ContainerState::Running);
}

#[tokio::test]
async fn rollback_returns_to_the_previous_deployment_and_back() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    let alice = name("alice");
    let error = bed
        .fleet
        .rollback(&alice, &crate::RollbackOptions::default(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoRollbackTarget { .. }), "{error}");

    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());
    update(&bed).await;
    let back = bed
        .fleet
        .rollback(&alice, &crate::RollbackOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(back.outcome, Outcome::Updated, "{back:?}");
    assert_eq!(back.to.digest.unwrap().as_str(), DIGEST_1);
    assert_eq!(back.to.tag.as_deref(), Some("v1.0.0"));
    assert_eq!(bed.fleet.get(&alice).unwrap().generation, 3);
    let forth = bed
        .fleet
        .rollback(&alice, &crate::RollbackOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(forth.to.digest.unwrap().as_str(), DIGEST_2);
    let kinds: Vec<DeploymentKind> = bed
        .fleet
        .history(&alice)
        .unwrap()
        .iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            DeploymentKind::Rollback,
            DeploymentKind::Rollback,
            DeploymentKind::Update
        ]
    );
}

#[tokio::test]
async fn blue_green_without_the_proxy_is_refused_before_anything_changes() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());
    let error = bed
        .fleet
        .update(
            &name("alice"),
            &UpdateOptions::default().strategy(Strategy::BlueGreen),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(error.is_invalid_input(), "{error}");
    assert!(error.to_string().contains("fleet serve"), "{error}");
    assert!(bed.fleet.history(&name("alice")).unwrap().is_empty());
}

/// An update of alice killed at `step`: the journal says so, the old container is
/// stopped, and a candidate of generation 2 runs (from `Start` on).
async fn interrupted_at(bed: &super::Bed, step: Step) -> (String, Option<String>) {
    let instance = create(bed, spec("alice")).await.unwrap();
    let old = instance.container.unwrap();
    let alice = name("alice");
    let from = Release {
        tag: Some("v1.0.0".into()),
        digest: Some(DIGEST_1.parse().unwrap()),
        version: None,
    };
    let to = Release {
        tag: Some("v1.1.0".into()),
        digest: Some(DIGEST_2.parse().unwrap()),
        version: None,
    };
    let id = bed
        .fleet
        .store
        .insert_deployment(
            &NewDeployment {
                instance: &alice,
                kind: DeploymentKind::Update,
                strategy: Strategy::Recreate,
                from: &from,
                from_generation: 1,
                from_container: Some(&old),
                to: &to,
                to_generation: 2,
                restores_backup: None,
                spec: None,
            },
            step,
        )
        .unwrap();
    if step < Step::StopOld {
        return (old, None);
    }
    bed.engine.set_state(&old, ContainerState::Exited);
    if step < Step::Start {
        return (old, None);
    }
    let candidate = "fake-candidate".to_owned();
    bed.engine.insert_container(ContainerInfo {
        id: candidate.clone(),
        name: "fleet-alice.2".into(),
        image: format!("localhost:5000/app@{DIGEST_2}"),
        labels: Default::default(),
        state: ContainerState::Running,
        exit_code: None,
        docker_health: None,
        ips: Default::default(),
        ports: vec![],
    });
    bed.fleet
        .store
        .set_deployment_candidate(id, &candidate)
        .unwrap();
    if step >= Step::Retire {
        bed.engine.delete_behind_the_back(&old);
    }
    (old, Some(candidate))
}

#[tokio::test]
async fn the_next_command_undoes_a_deployment_killed_before_its_gate_passed() {
    for step in [
        Step::Backup,
        Step::Pull,
        Step::StopOld,
        Step::Start,
        Step::Gate,
    ] {
        let bed = bed().await;
        let (old, _) = interrupted_at(&bed, step).await;

        // Any command that takes the instance's lease recovers first.
        bed.fleet.start(&name("alice")).await.unwrap();

        assert_eq!(
            containers(&bed),
            [("fleet-alice.1".to_owned(), ContainerState::Running)],
            "{step}"
        );
        let instance = bed.fleet.get(&name("alice")).unwrap();
        assert_eq!(instance.container.as_deref(), Some(old.as_str()), "{step}");
        let deployment = &bed.fleet.history(&name("alice")).unwrap()[0];
        assert_eq!(deployment.outcome, Outcome::RolledBack, "{step}");
        assert!(
            deployment
                .reason
                .as_deref()
                .unwrap()
                .starts_with(&format!("interrupted at step {step}")),
            "{step}: {:?}",
            deployment.reason
        );
    }
}

#[tokio::test]
async fn the_next_command_finishes_a_deployment_killed_after_its_gate_passed() {
    for step in [Step::Retire, Step::Record] {
        let bed = bed().await;
        let (_, candidate) = interrupted_at(&bed, step).await;

        bed.fleet
            .backup(&name("alice"), BackupReason::Manual)
            .await
            .unwrap();

        assert_eq!(
            containers(&bed),
            [("fleet-alice.2".to_owned(), ContainerState::Running)],
            "{step}"
        );
        let instance = bed.fleet.get(&name("alice")).unwrap();
        assert_eq!(instance.container, candidate, "{step}");
        assert_eq!(instance.digest.unwrap().as_str(), DIGEST_2, "{step}");
        assert_eq!(instance.generation, 2);
        let deployment = &bed.fleet.history(&name("alice")).unwrap()[0];
        assert_eq!(deployment.outcome, Outcome::Updated, "{step}");
    }
}

#[tokio::test]
async fn many_instances_update_in_parallel_after_their_canary() {
    let bed = bed().await;
    let names: Vec<crate::InstanceName> = (0..6).map(|i| name(&format!("i{i}"))).collect();
    for name in &names {
        create(&bed, spec(name.as_str())).await.unwrap();
    }
    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());
    let parallel = std::num::NonZeroUsize::new(4).unwrap();

    // A canary that fails: nothing else is touched.
    bed.engine
        .fail("start_container", "the canary's candidate crashed");
    let reports = bed
        .fleet
        .update_many(
            &names,
            &UpdateOptions::default(),
            parallel,
            Some(&names[2]),
            &|_, _| {},
        )
        .await;
    let outcomes: Vec<Outcome> = reports.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Skipped,
            Outcome::Skipped,
            Outcome::RolledBack,
            Outcome::Skipped,
            Outcome::Skipped,
            Outcome::Skipped
        ]
    );
    assert!(
        reports[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("the canary i2 did not update"),
        "{:?}",
        reports[0].reason
    );
    for name in &names {
        assert_eq!(bed.fleet.get(name).unwrap().generation, 1, "{name}");
    }

    // A canary that passes: every instance is updated, reported in the order given.
    let reports = bed
        .fleet
        .update_many(
            &names,
            &UpdateOptions::default(),
            parallel,
            Some(&names[2]),
            &|_, _| {},
        )
        .await;
    let order: Vec<&str> = reports.iter().map(|r| r.instance.as_str()).collect();
    assert_eq!(order, ["i0", "i1", "i2", "i3", "i4", "i5"]);
    assert!(
        reports.iter().all(|r| r.outcome == Outcome::Updated),
        "{reports:?}"
    );
    for name in &names {
        assert_eq!(
            bed.fleet.get(name).unwrap().digest.unwrap().as_str(),
            DIGEST_2
        );
    }
}

#[tokio::test]
async fn promote_deploys_exactly_the_digest_the_other_group_runs() {
    let bed = bed().await;
    create(&bed, spec("s1").with_group("staging"))
        .await
        .unwrap();
    create(&bed, spec("p1").with_group("prod")).await.unwrap();
    create(&bed, spec("p2").with_group("prod")).await.unwrap();
    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());
    update_named(&bed, "s1").await;
    // The channel moves on; promote deploys what staging runs, not the channel's newest.
    let newest = format!("sha256:{}", "4".repeat(64));
    bed.resolver
        .set(IMAGE, Some("v1.2.0"), &newest.parse().unwrap());

    let reports = bed
        .fleet
        .promote(
            "staging",
            "prod",
            &UpdateOptions::default(),
            std::num::NonZeroUsize::new(2).unwrap(),
            &|_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    for name in ["p1", "p2"] {
        assert_eq!(
            bed.fleet
                .get(&super::name(name))
                .unwrap()
                .digest
                .unwrap()
                .as_str(),
            DIGEST_2,
            "{name}"
        );
    }
    let error = bed
        .fleet
        .promote(
            "nobody",
            "prod",
            &UpdateOptions::default(),
            std::num::NonZeroUsize::MIN,
            &|_, _| {},
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("group nobody"), "{error}");
}

async fn update_named(bed: &super::Bed, instance: &str) -> crate::UpdateReport {
    bed.fleet
        .update(&name(instance), &UpdateOptions::default(), &|_| {})
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cancelled_update_rolls_back_before_its_next_step() {
    let bed = bed().await;
    let instance = create(&bed, spec("alice")).await.unwrap();
    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());
    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();

    let report = bed
        .fleet
        .update(
            &name("alice"),
            &UpdateOptions::default().cancel_on(cancel),
            &|_| {},
        )
        .await
        .unwrap();

    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    let reason = report.reason.unwrap();
    assert!(reason.starts_with("cancelled at step"), "{reason}");
    assert!(reason.contains("the old version still serves"), "{reason}");
    assert_eq!(
        bed.engine.containers()[0].id,
        instance.container.unwrap(),
        "the old container was never touched"
    );
    assert_eq!(containers(&bed)[0].1, ContainerState::Running);
}

#[tokio::test]
async fn rollback_with_restore_data_puts_back_the_data_of_before_the_update() {
    let bed = bed().await;
    let instance = create(&bed, spec("alice")).await.unwrap();
    let data = instance.data_dir.join("app.db");
    std::fs::write(&data, "schema 1").unwrap();
    bed.resolver
        .set(IMAGE, Some("v1.1.0"), &DIGEST_2.parse().unwrap());
    let updated = update(&bed).await;
    // v1.1.0 migrates the data.
    std::fs::write(&data, "schema 2").unwrap();
    let alice = name("alice");
    let options = crate::RollbackOptions::default().restore_data();

    // The rolled-back version does not start: the migrated data comes back with v1.1.0.
    bed.engine
        .fail("start_container", "v1.0.0 refuses to start");
    let failed = bed.fleet.rollback(&alice, &options, &|_| {}).await.unwrap();
    assert_eq!(failed.outcome, Outcome::RolledBack, "{failed:?}");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "schema 2");
    assert_eq!(
        bed.fleet.get(&alice).unwrap().digest.unwrap().as_str(),
        DIGEST_2
    );

    let back = bed.fleet.rollback(&alice, &options, &|_| {}).await.unwrap();
    assert_eq!(back.outcome, Outcome::Updated, "{back:?}");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "schema 1");
    let deployment = &bed.fleet.history(&alice).unwrap()[0];
    assert_eq!(deployment.restored, updated.backup);
    assert_eq!(deployment.strategy, Strategy::Recreate);
    // Nothing is left beside the data directory.
    let beside: Vec<_> = std::fs::read_dir(instance.data_dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["data"]);
}

#[tokio::test]
async fn a_changed_spec_goes_through_the_update_path_and_is_recorded_once_it_serves() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    let alice = name("alice");
    let changed = spec("alice").with_env("TZ", "Europe/Paris");

    // A candidate that fails: the old container and the old spec stay.
    bed.engine.fail("start_container", "bad setting");
    let failed = bed
        .fleet
        .reconfigure(changed.clone(), &UpdateOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(failed.outcome, Outcome::RolledBack, "{failed:?}");
    assert!(bed.fleet.get(&alice).unwrap().spec.env.is_empty());

    let report = bed
        .fleet
        .reconfigure(changed.clone(), &UpdateOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Updated, "{report:?}");
    let instance = bed.fleet.get(&alice).unwrap();
    assert_eq!(instance.spec.env["TZ"], "Europe/Paris");
    assert_eq!(
        instance.digest.unwrap().as_str(),
        DIGEST_1,
        "the same version"
    );
    assert_eq!(
        containers(&bed),
        [(
            format!("fleet-alice.{}", instance.generation),
            ContainerState::Running
        )]
    );
    assert_eq!(
        bed.fleet.history(&alice).unwrap()[0].kind,
        DeploymentKind::Reconfigure
    );

    // The same spec again: nothing to do.
    let again = bed
        .fleet
        .reconfigure(changed.clone(), &UpdateOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Unchanged);
    // Ports cannot change this way.
    let error = bed
        .fleet
        .reconfigure(
            changed.with_port(crate::PortSpec::auto(9090)),
            &UpdateOptions::default(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("ports or data directory"),
        "{error}"
    );
    // A rollback does not count a reconfigure as a version to go back from.
    let error = bed
        .fleet
        .rollback(&alice, &crate::RollbackOptions::default(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoRollbackTarget { .. }), "{error}");
}
