//! `cargo xtask bench update`: what an update costs the users of an instance, blue-green
//! through fleet's proxy (`fleet serve`) against a recreate (stop, then start: what a
//! compose-style `up -d` does), and how long updating 20 instances takes four at a time
//! against one at a time.
//!
//! Each round updates an instance of the test app (v1.0.0 and v1.1.0 in turn) under a
//! load of four workers requesting it back to back (two over keep-alive connections, two
//! on a new connection each time), and counts the failed requests and the latency of
//! the answered ones while the update runs. Blue-green and recreate rounds alternate.
//! Then 20 instances (behind the proxy) are updated with `--parallel 4` and with
//! `--parallel 1`, alternately, and the wall times compared.
//!
//! `FLEET_BENCH_RUNS` (default 5) sets the rounds of the first part, `FLEET_BENCH_FLEET`
//! (default 20) the instances of the second, `FLEET_BENCH_FLEET_RUNS` (default 2) its
//! rounds. Medians with their range; ratios printed.

// A benchmark reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use fleet_tests::cli::{CliBed, ServeProcess};
use fleet_tests::image::Behaviour;
use fleet_tests::load::Load;

/// The benchmark's port range (no test or other benchmark uses it).
const FIRST_PORT: u16 = 11600;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A probe policy that does not make the updates wait longer than they must.
const HEALTH: [&str; 4] = ["--health-start-period", "10s", "--health-interval", "500ms"];

struct Round {
    failed: u64,
    ok: u64,
    p50: Duration,
    p99: Duration,
    update: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = env_number("FLEET_BENCH_RUNS", 5).max(1);
    let fleet_size = env_number("FLEET_BENCH_FLEET", 20).max(2);
    let fleet_runs = env_number("FLEET_BENCH_FLEET_RUNS", 2).max(1);
    let binary = Path::new(env!("CARGO_BIN_EXE_fleet"));
    // Two beds: one without fleet serve (recreate), one with it (blue-green).
    let plain = CliBed::new(binary, FIRST_PORT).await?;
    let proxied = CliBed::with_ports(binary, FIRST_PORT + 100, 100).await?;
    for bed in [&plain, &proxied] {
        bed.push("1.1.0", Behaviour::Healthy, &["v1.1.0"]).await?;
    }
    let serve = ServeProcess::start(binary, proxied.state.path())?;
    let recreate_port = plain.create_on("app", "v1.0", &HEALTH);
    let blue_green_port = proxied.create_on("app", "v1.0", &HEALTH);

    let mut recreate = Vec::new();
    let mut blue_green = Vec::new();
    for round in 0..runs {
        let target = if round % 2 == 0 { "v1.1.0" } else { "v1.0.0" };
        // Alternate which goes first, so neither always runs on a warmer machine.
        if round % 2 == 0 {
            recreate.push(measure(&plain, recreate_port, target, "recreate").await?);
            blue_green.push(measure(&proxied, blue_green_port, target, "blue-green").await?);
        } else {
            blue_green.push(measure(&proxied, blue_green_port, target, "blue-green").await?);
            recreate.push(measure(&plain, recreate_port, target, "recreate").await?);
        }
        eprintln!("round {}/{runs} done", round + 1);
    }
    println!("\n## one update under load ({runs} rounds; medians, range in brackets)\n");
    println!("| strategy | failed requests | answered | p50 | p99 | update wall time |");
    println!("|---|---|---|---|---|---|");
    for (name, rounds) in [
        ("blue-green (fleet serve)", &blue_green),
        ("recreate", &recreate),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            spread(rounds.iter().map(|r| r.failed as f64).collect(), ""),
            spread(rounds.iter().map(|r| r.ok as f64).collect(), ""),
            spread(rounds.iter().map(|r| ms(r.p50)).collect(), " ms"),
            spread(rounds.iter().map(|r| ms(r.p99)).collect(), " ms"),
            spread(
                rounds.iter().map(|r| r.update.as_secs_f64()).collect(),
                " s"
            ),
        );
    }
    let median_p99 = |rounds: &[Round]| median(rounds.iter().map(|r| ms(r.p99)).collect());
    println!(
        "\np99 ratio blue-green / recreate: {:.2}",
        median_p99(&blue_green) / median_p99(&recreate).max(0.001)
    );

    // Many instances: four at a time against one at a time.
    let names: Vec<String> = (0..fleet_size).map(|i| format!("f{i}")).collect();
    for name in &names {
        proxied.create_on(name, "v1.0", &HEALTH);
    }
    let mut parallel = Vec::new();
    let mut sequential = Vec::new();
    let mut target = "v1.1.0";
    for round in 0..fleet_runs {
        for (width, times) in if round % 2 == 0 {
            [("4", &mut parallel), ("1", &mut sequential)]
        } else {
            [("1", &mut sequential), ("4", &mut parallel)]
        } {
            let mut args = vec!["update", "--to", target, "--parallel", width];
            args.extend(names.iter().map(String::as_str));
            let started = Instant::now();
            let (code, _, stderr) = proxied.run(&args);
            anyhow::ensure!(code == 0, "fleet {args:?} failed: {stderr}");
            times.push(started.elapsed().as_secs_f64());
            target = if target == "v1.1.0" {
                "v1.0.0"
            } else {
                "v1.1.0"
            };
        }
        eprintln!("fleet round {}/{fleet_runs} done", round + 1);
    }
    println!("\n## {fleet_size} instances ({fleet_runs} rounds; medians, range in brackets)\n");
    println!("| --parallel | wall time |");
    println!("|---|---|");
    println!("| 4 | {} |", spread(parallel.clone(), " s"));
    println!("| 1 | {} |", spread(sequential.clone(), " s"));
    println!(
        "\nspeed-up of --parallel 4: {:.2}x",
        median(sequential) / median(parallel).max(0.001)
    );
    let (code, stderr) = serve.stop(Duration::from_secs(60))?;
    anyhow::ensure!(code == 0, "fleet serve exited with {code}: {stderr}");
    Ok(())
}

/// One update of the bed's `app` to `target` under load.
async fn measure(bed: &CliBed, port: u16, target: &str, strategy: &str) -> anyhow::Result<Round> {
    let load = Load::start(&format!("http://127.0.0.1:{port}/api/version"), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (code, _, stderr) = bed.run(&["update", "app", "--to", target, "--strategy", strategy]);
    let update = started.elapsed();
    // Requests sent right after the update ended count too: recreate's new container
    // may still be warming up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.stop().await;
    anyhow::ensure!(
        code == 0,
        "the {strategy} update to {target} failed: {stderr}"
    );
    Ok(Round {
        failed: seen.failed,
        ok: seen.ok,
        p50: seen.percentile(50.0),
        p99: seen.percentile(99.0),
        update,
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// `12.3 ms [10.1-15.0]`.
fn spread(values: Vec<f64>, unit: &str) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let precision = if unit.is_empty() { 0 } else { 1 };
    format!(
        "{:.precision$}{unit} [{low:.precision$}-{high:.precision$}]",
        median(values)
    )
}
