//! Backups and restores on the fake engine: consistency hooks, retention, and a restore
//! that verifies first and undoes itself. The real daemon runs the same paths in
//! `crates/fleet-cli/tests/`.

use std::fs;
use std::num::NonZeroUsize;

use super::{bed, create, name, spec};
use crate::engine::ContainerState;
use crate::{BackupReason, BackupSettings, Error, RestoreSource};

fn with_backup(settings: impl FnOnce(&mut BackupSettings)) -> crate::InstanceSpec {
    let mut backup = BackupSettings::default();
    settings(&mut backup);
    spec("alice").with_backup(backup)
}

fn archives(bed: &super::Bed) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(bed.root.join("backups/alice"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn backup_exec_runs_in_the_container_first_and_its_output_goes_into_the_archive() {
    let bed = bed().await;
    let spec = with_backup(|b| b.exec = Some(vec!["dump".into(), "/data/dump.sql".into()]));
    create(&bed, spec).await.unwrap();
    bed.engine.set_exec_result(0, "dumped 3 tables\n");

    let run = bed
        .fleet
        .backup(&name("alice"), BackupReason::Manual)
        .await
        .unwrap();

    let exec = run.exec.expect("the command ran");
    assert_eq!(exec.command, ["dump", "/data/dump.sql"]);
    assert_eq!(exec.exit_code, Some(0));
    assert_eq!(
        bed.engine.execs(),
        [(
            "fleet-alice.1".to_owned(),
            vec!["dump".to_owned(), "/data/dump.sql".to_owned()]
        )]
    );
    let manifest = fleet_backup::verify(&run.backup.path, &mut |_| {})
        .unwrap()
        .manifest;
    assert_eq!(manifest.metadata["exec.output"], "dumped 3 tables\n");
    assert_eq!(manifest.metadata["exec.exit_code"], "0");
    assert_eq!(run.downtime_ms, None);
}

#[tokio::test]
async fn a_failing_backup_exec_fails_the_backup_and_leaves_nothing() {
    let bed = bed().await;
    create(&bed, with_backup(|b| b.exec = Some(vec!["dump".into()])))
        .await
        .unwrap();
    bed.engine
        .set_exec_result(3, "pg_dump: connection refused\n");

    let error = bed
        .fleet
        .backup(&name("alice"), BackupReason::Manual)
        .await
        .unwrap_err();

    assert!(matches!(error, Error::BackupExec { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("`dump`"), "{text}");
    assert!(text.contains("exited with 3"), "{text}");
    assert!(text.contains("pg_dump: connection refused"), "{text}");
    assert!(bed.fleet.backups(&name("alice")).unwrap().is_empty());
    assert!(archives(&bed).is_empty(), "{:?}", archives(&bed));
}

#[tokio::test]
async fn backup_stop_stops_for_the_copy_and_starts_again_even_when_archiving_fails() {
    let bed = bed().await;
    let instance = create(&bed, with_backup(|b| b.stop = true)).await.unwrap();
    let container = instance.container.unwrap();

    let run = bed
        .fleet
        .backup(&name("alice"), BackupReason::Manual)
        .await
        .unwrap();
    assert!(run.downtime_ms.is_some());
    assert!(run.exec.is_none());
    let state = |bed: &super::Bed| {
        bed.engine
            .containers()
            .into_iter()
            .find(|c| c.id == container)
            .unwrap()
            .state
    };
    assert_eq!(state(&bed), ContainerState::Running);

    // The archive cannot be written (a file where its directory goes): the backup fails,
    // and the instance runs again all the same.
    fs::remove_dir_all(bed.root.join("backups/alice")).unwrap();
    fs::write(bed.root.join("backups/alice"), "in the way").unwrap();
    bed.fleet
        .backup(&name("alice"), BackupReason::Manual)
        .await
        .unwrap_err();
    assert_eq!(state(&bed), ContainerState::Running);
}

#[tokio::test]
async fn an_instance_keeps_its_own_number_of_backups_and_the_rollback_one() {
    let bed = bed().await;
    create(
        &bed,
        with_backup(|b| b.keep_last = Some(NonZeroUsize::new(2).unwrap())),
    )
    .await
    .unwrap();
    let alice = name("alice");
    let pre_update = bed
        .fleet
        .backup(&alice, BackupReason::PreUpdate)
        .await
        .unwrap()
        .backup;
    let mut manual = Vec::new();
    for _ in 0..4 {
        // Archive names carry the second: a second apart, retention orders them.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        manual.push(
            bed.fleet
                .backup(&alice, BackupReason::Manual)
                .await
                .unwrap()
                .backup,
        );
    }
    let kept: Vec<i64> = bed
        .fleet
        .backups(&alice)
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    // The newest two (its own keep_last, not the fleet's 10), and the pre-update backup
    // a rollback would restore.
    assert_eq!(kept, [manual[3].id, manual[2].id, pre_update.id]);
    assert!(pre_update.path.exists());
    assert!(!manual[0].path.exists());
    assert_eq!(archives(&bed).len(), 3);
}

/// alice, running, with `app.txt` = `before` in a backup and `after` in her data now.
async fn restorable(bed: &super::Bed) -> (crate::Backup, std::path::PathBuf) {
    let instance = create(bed, spec("alice")).await.unwrap();
    fs::write(instance.data_dir.join("app.txt"), "before").unwrap();
    let backup = bed
        .fleet
        .backup(&name("alice"), BackupReason::Manual)
        .await
        .unwrap()
        .backup;
    fs::write(instance.data_dir.join("app.txt"), "after").unwrap();
    (backup, instance.data_dir)
}

#[tokio::test]
async fn restore_swaps_the_data_in_and_keeps_the_replaced_data_as_a_backup() {
    let bed = bed().await;
    let (backup, data) = restorable(&bed).await;
    let steps = std::sync::Mutex::new(Vec::new());

    let restored = bed
        .fleet
        .restore(&name("alice"), &RestoreSource::Latest, &|step| {
            steps.lock().unwrap().push(step)
        })
        .await
        .unwrap();

    assert_eq!(fs::read_to_string(data.join("app.txt")).unwrap(), "before");
    assert_eq!(restored.backup.as_ref().unwrap().id, backup.id);
    assert!(restored.restarted);
    assert_eq!(restored.pre_restore.reason, BackupReason::PreRestore);
    // Nothing is left beside the data directory: the replaced data is in the backup.
    let beside: Vec<_> = fs::read_dir(data.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["data"]);
    let steps = steps.into_inner().unwrap();
    let names: Vec<String> = steps
        .iter()
        .map(|s| {
            serde_json::to_value(s).unwrap()["step"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let at = |step: &str| names.iter().position(|n| n == step).unwrap_or(usize::MAX);
    assert!(at("verifying") < at("stopping"), "{names:?}");
    assert!(at("stopping") < at("archiving"), "{names:?}");
    assert!(at("archiving") < at("restoring"), "{names:?}");
    assert!(at("restoring") < at("starting"), "{names:?}");

    // Restoring the pre-restore backup undoes the restore.
    bed.fleet
        .restore(
            &name("alice"),
            &RestoreSource::Id(restored.pre_restore.id),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(fs::read_to_string(data.join("app.txt")).unwrap(), "after");
}

#[tokio::test]
async fn restore_refuses_a_changed_or_unknown_archive_before_touching_anything() {
    let bed = bed().await;
    let (backup, data) = restorable(&bed).await;
    let mut bytes = fs::read(&backup.path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&backup.path, bytes).unwrap();
    let alice = name("alice");

    let error = bed
        .fleet
        .restore(&alice, &RestoreSource::Id(backup.id), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ArchiveChanged { .. }), "{error:?}");
    // The same file given by its path is still the recorded backup.
    let error = bed
        .fleet
        .restore(&alice, &RestoreSource::Path(backup.path.clone()), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ArchiveChanged { .. }), "{error:?}");
    // A copy fleet never recorded, cut short: fleet-backup's own checks find it.
    let outside = bed.root.join("copy.tar.zst");
    let bytes = fs::read(&backup.path).unwrap();
    fs::write(&outside, &bytes[..bytes.len() - 16]).unwrap();
    let error = bed
        .fleet
        .restore(&alice, &RestoreSource::Path(outside), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Restore { .. }), "{error:?}");
    assert!(error.to_string().contains("untouched"), "{error}");
    let error = bed
        .fleet
        .restore(&alice, &RestoreSource::Id(999), &|_| {})
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("has no backup with id 999"),
        "{error}"
    );

    assert_eq!(fs::read_to_string(data.join("app.txt")).unwrap(), "after");
    // No pre-restore backup was taken, the container was never stopped.
    assert_eq!(bed.fleet.backups(&alice).unwrap().len(), 1);
    assert!(
        bed.engine
            .containers()
            .iter()
            .all(|c| c.state == ContainerState::Running)
    );
}

#[tokio::test]
async fn a_restored_instance_that_does_not_start_gets_its_previous_data_back() {
    let bed = bed().await;
    let (_, data) = restorable(&bed).await;
    bed.engine
        .fail("start_container", "the app refused the restored data");

    let error = bed
        .fleet
        .restore(&name("alice"), &RestoreSource::Latest, &|_| {})
        .await
        .unwrap_err();

    assert!(matches!(error, Error::RestoreFailed { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("the app refused the restored data"), "{text}");
    assert!(
        text.contains("its previous data is back and it runs as before"),
        "{text}"
    );
    assert_eq!(fs::read_to_string(data.join("app.txt")).unwrap(), "after");
    let beside: Vec<_> = fs::read_dir(data.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["data"]);
    assert!(
        bed.engine
            .containers()
            .iter()
            .all(|c| c.state == ContainerState::Running)
    );
}

#[tokio::test]
async fn retention_keeps_the_backup_a_rollback_would_restore() {
    let bed = bed().await;
    create(
        &bed,
        with_backup(|b| b.keep_last = Some(NonZeroUsize::new(1).unwrap())),
    )
    .await
    .unwrap();
    let alice = name("alice");
    bed.resolver.set(
        super::IMAGE,
        Some("v1.1.0"),
        &super::DIGEST_2.parse().unwrap(),
    );
    let updated = bed
        .fleet
        .update(&alice, &crate::UpdateOptions::default(), &|_| {})
        .await
        .unwrap();
    let kept = updated.backup.unwrap();
    // A later update that fails (its image cannot be pulled) takes a newer pre-update
    // backup, and manual ones follow.
    let missing = format!("sha256:{}", "5".repeat(64));
    bed.resolver
        .set(super::IMAGE, Some("v1.2.0"), &missing.parse().unwrap());
    let failed = bed
        .fleet
        .update(&alice, &crate::UpdateOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(failed.outcome, crate::Outcome::RolledBack);
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        bed.fleet
            .backup(&alice, BackupReason::Manual)
            .await
            .unwrap();
    }
    let ids: Vec<i64> = bed
        .fleet
        .backups(&alice)
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    // keep_last = 1 keeps the newest; the backup of the deployment that runs (what
    // `rollback --restore-data` restores) and the newest pre-update one stay too.
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&kept), "{ids:?}");
    assert!(ids.contains(&failed.backup.unwrap()), "{ids:?}");
}

#[tokio::test]
async fn backups_of_different_instances_run_at_once_and_of_one_instance_never() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    create(&bed, spec("bob")).await.unwrap();
    let (alice, bob) = (name("alice"), name("bob"));
    let (alice, bob) = tokio::join!(
        bed.fleet.backup(&alice, BackupReason::Manual),
        bed.fleet.backup(&bob, BackupReason::Manual),
    );
    alice.unwrap();
    bob.unwrap();
    // The same instance, while another operation holds it: refused as busy.
    super::hold_lease_elsewhere(&bed, "alice");
    let error = bed
        .fleet
        .backup(&name("alice"), BackupReason::Manual)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Busy { .. }), "{error:?}");
}
