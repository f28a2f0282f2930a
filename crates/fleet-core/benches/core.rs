//! `cargo xtask bench core`: how fleet-core's instance operations compare with what an
//! operator scripts by hand.
//!
//! 1. create + healthy, per instance: `Fleet::create` (resolve, allocate, pull if needed,
//!    data dir, container, start, health gate) vs `docker run -d -p ... -v ...` followed
//!    by a `curl` poll loop in shell, on the same image, same run.
//! 2. `list` and `status` on 100 running instances: the store read, and the parallel
//!    health probes of every instance.
//!
//! Medians of several runs; the ratio fleet / shell is printed. Containers, networks and
//! the registry are removed at the end.

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_core::engine::DockerEngine;
use fleet_core::{
    CreateOptions, Fleet, FleetConfig, InstanceSpec, PortRange, PortSpec, RegistryResolver,
    http_health,
};
use fleet_tests::docker::TestDocker;
use fleet_tests::image::TestImage;
use fleet_tests::registry::TestRegistry;

const CREATE_RUNS: usize = 7;
const FLEET_SIZE: usize = 100;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    let image = TestImage::new("1.0.0").build(&docker).await?;
    image
        .push(&docker, &registry, "app", &["v1.0.0", "v1"])
        .await?;
    let reference = format!("{}/app:v1", registry.docker_host());
    docker.pull(&registry, &reference).await?;
    let state = tempfile::tempdir()?;
    let mut config = FleetConfig::default();
    config.ports = PortRange::new(23000, 23999, 1).map_err(anyhow::Error::msg)?;
    config.bind_address = "127.0.0.1".parse()?;
    config.network = docker.name("net");
    config.container_prefix = docker.name("");
    config.labels = docker.labels().into_iter().collect();
    let fleet = Fleet::builder(state.path())
        .config(config)
        .engine(Arc::new(DockerEngine::connect().await?))
        .resolver(Arc::new(RegistryResolver::new()?))
        .open()
        .await?;
    let spec = |name: String| {
        let mut health = http_health("/api/health");
        health.policy.start_interval = Duration::from_millis(100);
        InstanceSpec::new(
            name.parse().expect("name"),
            reference.parse().expect("reference"),
        )
        .with_port(PortSpec::auto(8080))
        .with_health(health)
    };

    // 1. create + healthy, fleet vs shell.
    let mut fleet_times = Vec::new();
    for i in 0..CREATE_RUNS {
        let started = Instant::now();
        fleet
            .create(
                spec(format!("bench-{i}")),
                CreateOptions::default(),
                &|_| {},
            )
            .await?;
        fleet_times.push(started.elapsed());
    }
    let mut shell_times = Vec::new();
    let pinned = format!("{}/app:v1", registry.docker_host());
    for i in 0..CREATE_RUNS {
        let data = state.path().join(format!("shell-{i}"));
        std::fs::create_dir_all(&data)?;
        let port = 24000 + i;
        let name = docker.name(&format!("shell-{i}"));
        let script = format!(
            "chown 10001:10001 {data} && docker run -d --name {name} --label fleet.test.run={run} -p 127.0.0.1:{port}:8080 -v {data}:/data {pinned} >/dev/null \
             && until curl -fsS -o /dev/null http://127.0.0.1:{port}/api/health 2>/dev/null; do sleep 0.1; done",
            data = data.display(),
            run = docker.run_id(),
        );
        let started = Instant::now();
        let status = Command::new("sh").arg("-c").arg(&script).status()?;
        shell_times.push(started.elapsed());
        anyhow::ensure!(status.success(), "the shell baseline failed: {script}");
    }
    let (fleet_median, shell_median) = (median(fleet_times), median(shell_times));
    println!("create + healthy, per instance ({CREATE_RUNS} runs, medians):");
    println!("  fleet create           {}", ms(fleet_median));
    println!("  docker run + curl loop {}", ms(shell_median));
    println!(
        "  ratio fleet / shell    {:.2}",
        fleet_median.as_secs_f64() / shell_median.as_secs_f64()
    );

    // 2. list and status on FLEET_SIZE instances.
    for i in CREATE_RUNS..FLEET_SIZE {
        fleet
            .create(
                spec(format!("bench-{i}")),
                CreateOptions::default(),
                &|_| {},
            )
            .await?;
    }
    let mut list_times = Vec::new();
    let mut status_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let listed = fleet.list()?;
        list_times.push(started.elapsed());
        assert_eq!(listed.len(), FLEET_SIZE);
        let started = Instant::now();
        let status = fleet.status(&[]).await?;
        status_times.push(started.elapsed());
        let healthy = status
            .instances
            .iter()
            .filter(|i| i.health == fleet_core::Health::Healthy)
            .count();
        anyhow::ensure!(
            healthy == FLEET_SIZE,
            "only {healthy} of {FLEET_SIZE} healthy"
        );
    }
    println!("{FLEET_SIZE} running instances (5 runs, medians):");
    println!("  list (store)                 {}", ms(median(list_times)));
    println!(
        "  status (engine + probes)     {}",
        ms(median(status_times))
    );
    eprintln!("bench: removing {FLEET_SIZE} containers");
    docker.cleanup().await?;
    Ok(())
}
