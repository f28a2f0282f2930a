//! Fast tests of fleet's own logic on the fake engine and a static resolver: what a
//! failed create leaves behind, allocation rules, removal, drift and reconciliation.
//! The same behaviours are tested against the real Docker Engine in `tests/`.

mod apply;
mod backups;
mod templates;
mod updates;

use std::path::Path;
use std::sync::Arc;

use crate::engine::fake::FakeEngine;
use crate::engine::{ContainerInfo, ContainerState, LABEL_DIGEST, LABEL_INSTANCE, LABEL_SCOPE};
use crate::store::Store;
use crate::{
    CreateOptions, Error, Fleet, FleetConfig, InstanceName, InstanceSpec, PortHolder, PortRange,
    PortSpec, StaticResolver,
};

const IMAGE: &str = "localhost:5000/app:v1";
const DIGEST_1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

struct Bed {
    /// Held for the whole test: fake-engine tests that create instances run one at a
    /// time, so their host ports (checked by binding them) never race each other.
    _serial: tokio::sync::MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    engine: Arc<FakeEngine>,
    resolver: Arc<StaticResolver>,
    fleet: Fleet,
}

/// One fake-engine test at a time (see `Bed::_serial`).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// A fleet on the fake engine, with ports from a range nothing else on this host uses
/// (below the ephemeral ports the test bed's registries and servers get).
async fn bed() -> Bed {
    let serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let engine = Arc::new(FakeEngine::new());
    engine.add_image(
        &format!("localhost:5000/app@{DIGEST_1}"),
        Some("10001:10001"),
    );
    engine.add_image(
        &format!("localhost:5000/app@{DIGEST_2}"),
        Some("10001:10001"),
    );
    let resolver = Arc::new(StaticResolver::new());
    resolver.set(IMAGE, Some("v1.0.0"), &DIGEST_1.parse().unwrap());
    let config = FleetConfig {
        ports: PortRange::new(30000, 30999, 1).unwrap(),
        ..FleetConfig::default()
    };
    let fleet = Fleet::builder(&root)
        .config(config)
        .engine(engine.clone())
        .resolver(resolver.clone())
        .open()
        .await
        .unwrap();
    Bed {
        _serial: serial,
        _dir: dir,
        root,
        engine,
        resolver,
        fleet,
    }
}

fn spec(name: &str) -> InstanceSpec {
    InstanceSpec::new(name.parse().unwrap(), IMAGE.parse().unwrap()).with_port(PortSpec::auto(8080))
}

/// A running container made behind fleet's back, labelled with `scope` and `instance`.
fn running(id: &str, container: &str, scope: &str, instance: &str) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: container.into(),
        image: "x".into(),
        labels: [
            (LABEL_SCOPE.to_owned(), scope.to_owned()),
            (LABEL_INSTANCE.to_owned(), instance.to_owned()),
        ]
        .into(),
        state: ContainerState::Running,
        exit_code: None,
        docker_health: None,
        ips: Default::default(),
        ports: vec![],
    }
}

/// Another process (`otherhost:42:abc`) takes the lease on `instance` for an update.
fn hold_lease_elsewhere(bed: &Bed, instance: &str) {
    let other = Store::open(&bed.root.join("fleet.db")).unwrap();
    other
        .acquire_lease(
            &name(instance),
            "otherhost:42:abc",
            "update",
            std::time::Duration::from_secs(60),
        )
        .unwrap();
}

fn name(text: &str) -> InstanceName {
    text.parse().unwrap()
}

async fn create(bed: &Bed, spec: InstanceSpec) -> Result<crate::Instance, Error> {
    bed.fleet
        .create(spec, CreateOptions::default(), &|_| {})
        .await
}

fn assert_nothing_left(bed: &Bed, instance: &str) {
    assert!(
        bed.fleet.store.instance(&name(instance)).unwrap().is_none(),
        "store row left"
    );
    assert!(
        bed.fleet
            .ports()
            .unwrap()
            .iter()
            .all(|p| p.instance.as_str() != instance),
        "port left"
    );
    assert!(
        bed.engine
            .containers()
            .iter()
            .all(|c| c.labels.get(LABEL_INSTANCE).map(String::as_str) != Some(instance)),
        "container left"
    );
    assert!(
        !bed.root.join("instances").join(instance).exists(),
        "data dir left"
    );
}

#[tokio::test]
async fn create_allocates_ports_labels_the_container_and_records_events() {
    let bed = bed().await;
    let alice = create(&bed, spec("alice")).await.unwrap();
    let bob = create(&bed, spec("bob").with_group("prod")).await.unwrap();
    assert_eq!(
        (alice.ports[0].container, alice.ports[0].host),
        (8080, 30000)
    );
    assert_eq!(bob.ports[0].host, 30001);
    assert_eq!(
        (
            alice.tag.as_deref(),
            alice.digest.as_ref().map(fleet_registry::Digest::as_str),
            alice.generation
        ),
        (Some("v1.0.0"), Some(DIGEST_1), 1)
    );
    assert_eq!(alice.channel, "v1");
    assert!(alice.data_dir.is_dir() && alice.data_dir.starts_with(&bed.root));
    let container = bed
        .engine
        .containers()
        .into_iter()
        .find(|c| c.name == "fleet-alice.1")
        .unwrap();
    assert_eq!(container.state, ContainerState::Running);
    assert_eq!(container.image, format!("localhost:5000/app@{DIGEST_1}"));
    assert_eq!(container.labels[LABEL_DIGEST], DIGEST_1);
    assert_eq!(container.labels[LABEL_SCOPE], bed.fleet.store.scope());
    let kinds: Vec<String> = bed
        .fleet
        .events(Some(&name("alice")), 10)
        .unwrap()
        .iter()
        .map(|e| format!("{:?}", e.kind))
        .collect();
    assert_eq!(kinds, ["Created", "Started"]);
    let error = create(&bed, spec("alice")).await.unwrap_err();
    assert_eq!(error.to_string(), "instance alice already exists");
}

#[tokio::test]
async fn a_failed_create_leaves_nothing_behind() {
    let bed = bed().await;
    bed.engine.fail("create_container", "disk full");
    let error = create(&bed, spec("alice")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "container engine: create container fleet-alice.1"
    );
    assert_nothing_left(&bed, "alice");

    bed.engine.fail("start_container", "exec format error");
    create(&bed, spec("alice")).await.unwrap_err();
    assert_nothing_left(&bed, "alice");

    // An unknown image is a registry error naming it.
    let unknown = InstanceSpec::new(name("carol"), "localhost:5000/nope:v1".parse().unwrap());
    let error = create(&bed, unknown).await.unwrap_err();
    assert_eq!(error.to_string(), "image localhost:5000/nope:v1");
    assert_nothing_left(&bed, "carol");

    // The port is free again for the next instance.
    assert_eq!(
        create(&bed, spec("alice")).await.unwrap().ports[0].host,
        30000
    );
    // A failure is recorded.
    let events = bed.fleet.events(Some(&name("alice")), 20).unwrap();
    assert!(
        events.iter().any(|e| e
            .message
            .starts_with("create failed: container engine: start container")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_bad_env_file_or_data_dir_fails_before_anything_exists() {
    let bed = bed().await;
    let env_file = bed.root.join("alice.env");
    std::fs::write(&env_file, "GOOD=1\nnot a pair\n").unwrap();
    let mut bad_env = spec("alice");
    bad_env.env_file = Some(env_file.clone());
    let error = create(&bed, bad_env).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "environment file {}: line 2: expected KEY=value",
            env_file.display()
        )
    );
    assert_nothing_left(&bed, "alice");

    let file = bed.root.join("a-file");
    std::fs::write(&file, "").unwrap();
    let error = create(&bed, spec("bob").with_data_dir(&file))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::DataDir { .. }), "{error:?}");
    assert_nothing_left(&bed, "bob");
}

#[tokio::test]
async fn fixed_ports_held_by_others_are_refused_and_automatic_ones_skip_them() {
    let bed = bed().await;
    bed.engine.add_foreign_port(30000, "someone-elses-nginx");
    let error = create(&bed, spec("alice").with_port(PortSpec::fixed(9090, 30000)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::PortTaken { port: 30000, holder: PortHolder::Container { name } } if name == "someone-elses-nginx"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "host port 30000 is already in use by container someone-elses-nginx"
    );
    assert_nothing_left(&bed, "alice");
    // An automatic port skips it.
    assert_eq!(
        create(&bed, spec("alice")).await.unwrap().ports[0].host,
        30001
    );
    let error = create(&bed, spec("bob").with_port(PortSpec::fixed(9090, 30001)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "host port 30001 is already in use by fleet instance alice"
    );
}

#[tokio::test]
async fn remove_releases_ports_and_purges_data_only_when_confirmed() {
    let bed = bed().await;
    let alice = create(&bed, spec("alice")).await.unwrap();
    std::fs::write(alice.data_dir.join("precious"), "data").unwrap();
    let refuse = |_: &Path| false;
    let error = bed
        .fleet
        .remove(&name("alice"), Some(&refuse))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::ConfirmationRequired { .. }),
        "{error:?}"
    );
    assert!(
        alice.data_dir.join("precious").exists(),
        "nothing happens without confirmation"
    );
    assert_eq!(bed.engine.containers().len(), 1);

    assert!(!bed.fleet.remove(&name("alice"), None).await.unwrap());
    assert!(bed.engine.containers().is_empty());
    assert!(bed.fleet.ports().unwrap().is_empty());
    assert!(
        alice.data_dir.join("precious").exists(),
        "data is kept by default"
    );

    let bob = create(&bed, spec("bob")).await.unwrap();
    let seen = std::sync::Mutex::new(None);
    let confirm = |path: &Path| {
        *seen.lock().unwrap() = Some(path.to_owned());
        true
    };
    assert!(
        bed.fleet
            .remove(&name("bob"), Some(&confirm))
            .await
            .unwrap()
    );
    assert_eq!(
        seen.lock().unwrap().as_deref(),
        Some(bob.data_dir.as_path())
    );
    assert!(!bob.data_dir.exists());
    assert!(matches!(
        bed.fleet.get(&name("bob")),
        Err(Error::NoSuchInstance { .. })
    ));
}

#[tokio::test]
async fn status_reports_drift_and_reconcile_repairs_it() {
    let bed = bed().await;
    let alice = create(&bed, spec("alice")).await.unwrap();
    create(&bed, spec("bob")).await.unwrap();
    create(&bed, spec("carol")).await.unwrap();
    // Behind fleet's back: alice's container vanishes, a stray appears, bob runs another
    // digest, carol's container stops.
    bed.engine
        .delete_behind_the_back(alice.container.as_deref().unwrap());
    let scope = bed.fleet.store.scope().to_owned();
    bed.engine
        .insert_container(running("stray1", "fleet-ghost.1", &scope, "ghost"));
    // A container of another fleet (another scope) is none of our business.
    bed.engine
        .insert_container(running("other1", "fleet-other.1", "someoneelse", "other"));
    let bob_container = bed.fleet.get(&name("bob")).unwrap().container.unwrap();
    bed.engine.delete_behind_the_back(&bob_container);
    let mut bob_on_digest_2 = running(&bob_container, "fleet-bob.1", &scope, "bob");
    bob_on_digest_2.image = format!("localhost:5000/app@{DIGEST_2}");
    bob_on_digest_2
        .labels
        .insert(LABEL_DIGEST.to_owned(), DIGEST_2.to_owned());
    bed.engine.insert_container(bob_on_digest_2);
    let carol_container = bed.fleet.get(&name("carol")).unwrap().container.unwrap();
    bed.engine
        .set_state(&carol_container, ContainerState::Exited);

    let status = bed.fleet.status(&[]).await.unwrap();
    let mut drift: Vec<String> = status.drift().map(ToString::to_string).collect();
    drift.sort();
    insta::assert_debug_snapshot!(drift, @r#"
    [
        "alice: container missing",
        "bob: runs sha256:2222222222222222222222222222222222222222222222222222222222222222, expected sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "carol: container exited, expected running",
        "stray container fleet-ghost.1 (labelled for ghost)",
    ]
    "#);
    assert_eq!(status.instances[0].health, crate::Health::Missing);

    let report = bed.fleet.reconcile().await.unwrap();
    let mut actions: Vec<String> = report
        .repaired
        .iter()
        .map(|r| format!("{} => {}", r.drift, r.action))
        .collect();
    actions.sort();
    insta::assert_debug_snapshot!(actions, @r#"
    [
        "alice: container missing => recreated container fleet-alice.2, started it",
        "bob: runs sha256:2222222222222222222222222222222222222222222222222222222222222222, expected sha256:1111111111111111111111111111111111111111111111111111111111111111 => recreated container fleet-bob.2, started it",
        "carol: container exited, expected running => started it",
        "stray container fleet-ghost.1 (labelled for ghost) => removed container fleet-ghost.1",
    ]
    "#);
    let status = bed.fleet.status(&[]).await.unwrap();
    assert_eq!(
        status.drift().count(),
        0,
        "{:?}",
        status.drift().collect::<Vec<_>>()
    );
    assert!(
        bed.engine.containers().iter().any(|c| c.id == "other1"),
        "another fleet's container is left alone"
    );
    let bob = bed
        .engine
        .containers()
        .into_iter()
        .find(|c| c.name == "fleet-bob.2")
        .unwrap();
    assert_eq!(
        (bob.labels[LABEL_DIGEST].as_str(), bob.state),
        (DIGEST_1, ContainerState::Running)
    );
    let _ = &bed.resolver;
}

#[tokio::test]
async fn stop_and_start_follow_the_desired_state() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    let stopped = bed.fleet.stop(&name("alice")).await.unwrap();
    assert_eq!(stopped.desired, crate::DesiredState::Stopped);
    let status = bed.fleet.status(&[name("alice")]).await.unwrap();
    assert_eq!(
        (status.instances[0].health, status.drift().count()),
        (crate::Health::Stopped, 0)
    );
    // Start recreates a container that vanished meanwhile.
    bed.engine
        .delete_behind_the_back(stopped.container.as_deref().unwrap());
    let started = bed.fleet.start(&name("alice")).await.unwrap();
    assert_eq!(started.generation, 2);
    let status = bed.fleet.status(&[name("alice")]).await.unwrap();
    assert_eq!(status.instances[0].state, Some(ContainerState::Running));
    assert!(matches!(
        bed.fleet.start(&name("nobody")).await,
        Err(Error::NoSuchInstance { .. })
    ));
}

#[tokio::test]
async fn a_busy_instance_is_refused_with_its_holder() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    hold_lease_elsewhere(&bed, "alice");
    let error = bed.fleet.stop(&name("alice")).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("instance alice is busy: update by otherhost:42:abc"),
        "{error}"
    );
}

#[test]
fn concurrent_allocations_from_four_threads_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    let range = PortRange::new(42000, 42999, 1).unwrap();
    Store::open(&path).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Each thread has its own connection, as a separate process would.
                let store = Store::open(&path).unwrap();
                let mut ports = Vec::new();
                for i in 0..5 {
                    let spec = InstanceSpec::new(
                        format!("t{t}-{i}").parse().unwrap(),
                        IMAGE.parse().unwrap(),
                    )
                    .with_port(PortSpec::auto(80));
                    store
                        .insert_instance(&spec, crate::DesiredState::Running)
                        .unwrap();
                    let allocated = store
                        .allocate_ports(&spec.name, &spec.ports, &range, &|_| Ok(()))
                        .unwrap();
                    ports.push(allocated[0].host);
                }
                ports
            })
        })
        .collect();
    let mut all: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (20, 20));
    assert_eq!(all, (42000..42020).collect::<Vec<_>>());
}

#[tokio::test]
async fn reconcile_leaves_an_instance_another_operation_holds_alone() {
    let bed = bed().await;
    let alice = create(&bed, spec("alice")).await.unwrap();
    create(&bed, spec("bob")).await.unwrap();
    // Another process is updating alice: its candidate container is not alice's current one.
    hold_lease_elsewhere(&bed, "alice");
    let scope = bed.fleet.store.scope().to_owned();
    bed.engine
        .insert_container(running("candidate", "fleet-alice.2", &scope, "alice"));
    bed.engine
        .set_state(alice.container.as_deref().unwrap(), ContainerState::Exited);
    let bob = bed.fleet.get(&name("bob")).unwrap();
    bed.engine
        .set_state(bob.container.as_deref().unwrap(), ContainerState::Exited);

    let report = bed.fleet.reconcile().await.unwrap();
    let repaired: Vec<String> = report
        .repaired
        .iter()
        .map(|r| format!("{} => {}", r.drift, r.action))
        .collect();
    let mut skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|r| format!("{} => {}", r.drift, r.action))
        .collect();
    skipped.sort();
    assert_eq!(
        repaired,
        ["bob: container exited, expected running => started it"]
    );
    insta::assert_debug_snapshot!(skipped, @r#"
    [
        "alice: container exited, expected running => left alone: alice is busy (update by otherhost:42:abc)",
        "stray container fleet-alice.2 (labelled for alice) => left alone: alice is busy (update by otherhost:42:abc)",
    ]
    "#);
    assert!(
        bed.engine.containers().iter().any(|c| c.id == "candidate"),
        "the candidate stays"
    );
}

/// Regression (issue 14, item 1): `remove` with purge deleted any directory given as
/// the data directory, one the operator made and one another instance used included.
#[tokio::test]
async fn purge_deletes_only_a_data_directory_fleet_made_and_nobody_else_uses() {
    let bed = bed().await;
    let always = |_: &Path| true;
    let theirs = bed.root.join("operator/precious");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("f"), "important").unwrap();
    create(&bed, spec("alice").with_data_dir(&theirs))
        .await
        .unwrap();
    let error = bed
        .fleet
        .remove(&name("alice"), Some(&always))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PurgeRefused { .. }), "{error:?}");
    assert!(error.is_invalid_input());
    assert_eq!(
        error.to_string(),
        format!(
            "will not delete data directory {} of instance alice: fleet did not create it: it was given as the data directory of alice and belongs to whoever made it",
            theirs.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("f")).unwrap(),
        "important"
    );
    assert!(
        bed.fleet.get(&name("alice")).is_ok() && bed.engine.containers().len() == 1,
        "a refused purge removes nothing"
    );
    assert!(!bed.fleet.remove(&name("alice"), None).await.unwrap());
    assert!(theirs.join("f").exists());

    // A directory fleet created is fleet's to delete, unless another instance uses it.
    let made = bed.root.join("made/by/fleet");
    create(&bed, spec("bob").with_data_dir(&made))
        .await
        .unwrap();
    create(&bed, spec("carol").with_data_dir(&made))
        .await
        .unwrap();
    let error = bed
        .fleet
        .remove(&name("bob"), Some(&always))
        .await
        .unwrap_err();
    assert!(
        error.to_string().ends_with("instance carol uses it too"),
        "{error}"
    );
    assert!(!bed.fleet.remove(&name("carol"), None).await.unwrap());
    assert!(bed.fleet.remove(&name("bob"), Some(&always)).await.unwrap());
    assert!(!made.exists(), "fleet's own directory is purged");

    // The default location is fleet's own even when an earlier instance left it.
    let dave = create(&bed, spec("dave")).await.unwrap();
    assert!(!bed.fleet.remove(&name("dave"), None).await.unwrap());
    create(&bed, spec("dave")).await.unwrap();
    assert!(
        bed.fleet
            .remove(&name("dave"), Some(&always))
            .await
            .unwrap()
    );
    assert!(!dave.data_dir.exists());
}

/// Regression (issue 14, item 1): `/`, system directories and the state directory were
/// accepted as data directories.
#[tokio::test]
async fn create_refuses_system_directories_and_the_state_directory() {
    let bed = bed().await;
    for dir in [
        Path::new("/"),
        Path::new("/etc"),
        Path::new("/usr/lib"),
        Path::new("/var/lib/docker"),
        bed.root.as_path(),
        bed.root.parent().unwrap(),
    ] {
        let error = create(&bed, spec("alice").with_data_dir(dir))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::DataDirRefused { path, .. } if path == dir),
            "{}: {error:?}",
            dir.display()
        );
        assert!(error.is_invalid_input());
        assert_nothing_left(&bed, "alice");
    }
}

/// Regression (issue 14, item 4): reconcile stopped at the first instance it could not
/// repair, leaving the others unrepaired, and the error did not name the instance.
#[tokio::test]
async fn reconcile_repairs_what_it_can_and_reports_each_failure() {
    let bed = bed().await;
    let env_file = bed.root.join("alice.env");
    std::fs::write(&env_file, "A=1\n").unwrap();
    let mut with_env_file = spec("alice");
    with_env_file.env_file = Some(env_file.clone());
    let alice = create(&bed, with_env_file).await.unwrap();
    let bob = create(&bed, spec("bob")).await.unwrap();
    bed.engine
        .delete_behind_the_back(alice.container.as_deref().unwrap());
    bed.engine
        .delete_behind_the_back(bob.container.as_deref().unwrap());
    std::fs::remove_file(&env_file).unwrap();

    let report = bed.fleet.reconcile().await.unwrap();
    let repaired: Vec<String> = report
        .repaired
        .iter()
        .map(|r| format!("{} => {}", r.drift, r.action))
        .collect();
    assert_eq!(
        repaired,
        ["bob: container missing => recreated container fleet-bob.2, started it"]
    );
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].drift.instance(), Some("alice"));
    assert!(
        report.failed[0].error.starts_with(&format!(
            "environment file {}: cannot read it",
            env_file.display()
        )),
        "{}",
        report.failed[0].error
    );
    assert!(!report.is_clean());
    let events = bed.fleet.events(Some(&name("alice")), 10).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.message.starts_with("reconcile failed: environment file")),
        "{events:?}"
    );
}

/// Regression (issue 14, items 12 and 19): `ls` showed the health recorded for a
/// container that had stopped or vanished, or from before a recreate.
#[tokio::test]
async fn overview_shows_health_only_for_the_running_current_container() {
    let bed = bed().await;
    create(&bed, spec("alice")).await.unwrap();
    bed.fleet
        .store
        .set_health(&name("alice"), crate::Health::Healthy)
        .unwrap();
    let overview = bed.fleet.overview().await.unwrap();
    assert_eq!(overview[0].health, Some(crate::Health::Healthy));
    let container = bed.fleet.get(&name("alice")).unwrap().container.unwrap();
    bed.engine.set_state(&container, ContainerState::Exited);
    let overview = bed.fleet.overview().await.unwrap();
    assert_eq!(overview[0].health, None, "exited: its health is unknown");
    bed.engine.delete_behind_the_back(&container);
    let overview = bed.fleet.overview().await.unwrap();
    assert_eq!(overview[0].health, None, "missing: its health is unknown");
    bed.fleet
        .store
        .set_health(&name("alice"), crate::Health::Missing)
        .unwrap();
    let record = bed.fleet.record(&name("alice")).unwrap();
    bed.fleet.recreate(&record, &|_| {}).await.unwrap();
    assert_eq!(
        bed.fleet.record(&name("alice")).unwrap().last_health,
        None,
        "a recreate forgets the old container's health"
    );
}

/// Regression (issue 14, item 12): two fleets with overlapping port ranges raced on
/// Docker's "port is already allocated" and the create failed.
#[tokio::test]
async fn a_port_taken_between_allocation_and_start_is_given_up_for_the_next() {
    let bed = bed().await;
    bed.engine.fail_with(
        "start_container",
        crate::EngineError::PortAllocated {
            port: Some(30000),
            message: "Bind for 0.0.0.0:30000 failed: port is already allocated".into(),
        },
    );
    let alice = create(&bed, spec("alice")).await.unwrap();
    assert_eq!(alice.ports[0].host, 30001);
    let containers = bed.engine.containers();
    assert_eq!(containers.len(), 1, "the first container is gone");
    assert_eq!(containers[0].state, ContainerState::Running);
    // A fixed port is the operator's choice: no other port is taken instead.
    bed.engine.fail_with(
        "start_container",
        crate::EngineError::PortAllocated {
            port: Some(30005),
            message: "Bind for 0.0.0.0:30005 failed: port is already allocated".into(),
        },
    );
    let error = create(&bed, spec("bob").with_port(PortSpec::fixed(9090, 30005)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Engine {
                source: crate::EngineError::PortAllocated { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert_nothing_left(&bed, "bob");
}

/// Regression (issue 9): a failure while undoing a failed create was dropped silently,
/// so the operator was told nothing was left behind when a container was.
#[tokio::test]
async fn a_create_whose_undo_fails_says_what_is_left() {
    let bed = bed().await;
    bed.engine.fail("start_container", "exec format error");
    bed.engine
        .fail("remove_container", "device or resource busy");
    let error = create(&bed, spec("alice")).await.unwrap_err();
    let Error::UndoIncomplete { left, source, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        left,
        &["container fleet-alice.1 is left: device or resource busy"]
    );
    assert!(
        source
            .to_string()
            .starts_with("container engine: start container"),
        "{source}"
    );
    insta::assert_snapshot!(error, @"instance alice was not created, and not everything it made could be removed (container fleet-alice.1 is left: device or resource busy)");
    assert!(
        bed.fleet.store.instance(&name("alice")).unwrap().is_none(),
        "the rest was undone"
    );
}
