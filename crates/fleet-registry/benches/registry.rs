//! `cargo xtask bench registry`: resolving a channel on a 2,500-tag repository.
//!
//! Starts Debian's `docker-registry` (distribution 2.8) from the test bed, pushes one
//! image and PUTs its manifest under 2,500 version tags (the newest `v1.x` gets an image
//! of its own), then, over several runs, reports medians of:
//!
//! 1. fleet-registry resolving `:v1` cold (a new client: no tag cache, no connection):
//!    list the tags, choose, `HEAD` the manifest;
//! 2. the same resolution warm (tags cached, connection open): one `HEAD`;
//! 3. what a user would do with skopeo: `skopeo list-tags`, choose the newest `v1.x.y`
//!    (done here, in-process, for free), then `skopeo inspect --format {{.Digest}}`.
//!
//! It prints the ratio and the HTTP requests per resolution, and checks that both
//! tools found the same digest.

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

use fleet_registry::oci::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use fleet_registry::{
    Channel, ChannelRef, Client, ClientConfig, CredentialSource, Digest, ImageRef, ResolveOptions,
};
use fleet_tests::registry::TestRegistry;
use fleet_tests::tools::require;
use futures::StreamExt as _;
use serde_json::json;

const TAGS: usize = 2500;
const RUNS: usize = 9;

fn main() {
    let registry = TestRegistry::start().expect("the test registry");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let repository: ImageRef = format!("{}/many", registry.host())
        .parse()
        .expect("a reference");
    let expected = runtime.block_on(populate(&repository));
    let skopeo = require("skopeo", "skopeo").expect("skopeo");
    let tracked: ChannelRef = format!("{}/many:v1", registry.host())
        .parse()
        .expect("a channel reference");

    println!(
        "fleet-registry bench: resolve `v1` on a {TAGS}-tag repository, docker-registry (distribution 2.8) on loopback, {RUNS} runs, medians"
    );
    println!();

    let mut cold = Vec::new();
    let mut cold_requests = Vec::new();
    let mut warm = Vec::new();
    let mut warm_requests = Vec::new();
    for _ in 0..RUNS {
        let client = client();
        let began = Instant::now();
        let resolved = runtime
            .block_on(client.resolve(&tracked, ResolveOptions::default()))
            .expect("resolve");
        cold.push(began.elapsed());
        cold_requests.push(client.request_count());
        assert_eq!(resolved.digest, expected);

        let before = client.request_count();
        let began = Instant::now();
        let resolved = runtime
            .block_on(client.resolve(&tracked, ResolveOptions::default()))
            .expect("resolve");
        warm.push(began.elapsed());
        warm_requests.push(client.request_count() - before);
        assert_eq!(resolved.digest, expected);
    }

    let mut with_skopeo = Vec::new();
    let mut list_share = Vec::new();
    for _ in 0..RUNS {
        let began = Instant::now();
        let listed = run(Command::new(&skopeo)
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}", repository.name())));
        let listed_at = began.elapsed();
        let listed: serde_json::Value =
            serde_json::from_str(&listed).expect("skopeo list-tags JSON");
        let tags: Vec<&str> = listed["Tags"]
            .as_array()
            .expect("Tags")
            .iter()
            .filter_map(|tag| tag.as_str())
            .collect();
        assert_eq!(tags.len(), TAGS);
        let tag = Channel::resolve(tracked.channel(), &tags).expect("a v1 tag");
        let digest = run(Command::new(&skopeo)
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{}:{tag}", repository.name())));
        with_skopeo.push(began.elapsed());
        list_share.push(listed_at);
        assert_eq!(digest.trim(), expected.as_str());
    }

    let (cold, warm, with_skopeo, list_share) = (
        median(&mut cold),
        median(&mut warm),
        median(&mut with_skopeo),
        median(&mut list_share),
    );
    println!(
        "resolve v1, cold  (new client)   fleet-registry {:>8.2} ms   {} requests (tag pages + 1 HEAD)",
        ms(cold),
        summary(&cold_requests)
    );
    println!(
        "resolve v1, warm  (tags cached)  fleet-registry {:>8.2} ms   {} request  (1 HEAD)",
        ms(warm),
        summary(&warm_requests)
    );
    println!(
        "skopeo list-tags + skopeo inspect                {:>8.2} ms   (list-tags alone {:.2} ms)",
        ms(with_skopeo),
        ms(list_share)
    );
    println!();
    println!(
        "skopeo / fleet-registry: cold {:.1}x, warm {:.1}x",
        ratio(with_skopeo, cold),
        ratio(with_skopeo, warm)
    );
}

fn client() -> Client {
    Client::new(ClientConfig::default().credentials(CredentialSource::Anonymous)).expect("a client")
}

/// One image under 2,500 tags, and the newest 1.x on an image of its own, whose digest
/// is returned.
async fn populate(repository: &ImageRef) -> Digest {
    let client = client();
    let old = push_image(&client, &repository.with_tag("v0.0.0").unwrap(), "old").await;
    let tags: Vec<String> = (1..TAGS)
        .map(|i| format!("v{}.{}.{}", i / 500, (i / 25) % 20, i % 25))
        .collect();
    let puts = futures::stream::iter(tags)
        .map(|tag| {
            let (client, manifest, image) = (
                client.clone(),
                old.1.clone(),
                repository.with_tag(&tag).unwrap(),
            );
            async move {
                client
                    .push_manifest(&image, OCI_IMAGE_MEDIA_TYPE, manifest)
                    .await
                    .expect("push")
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(puts.len(), TAGS - 1);
    push_image(&client, &repository.with_tag("v1.19.24").unwrap(), "new")
        .await
        .0
}

async fn push_image(client: &Client, image: &ImageRef, label: &str) -> (Digest, Vec<u8>) {
    let layer = vec![0u8; 1024];
    let layer_digest = client.push_blob(image, layer.clone()).await.expect("layer");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Labels": { "fleet.bench": label } },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))
    .unwrap();
    let config_digest = client
        .push_blob(image, config.clone())
        .await
        .expect("config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": { "mediaType": IMAGE_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": IMAGE_LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len() }],
    }))
    .unwrap();
    let digest = client
        .push_manifest(image, OCI_IMAGE_MEDIA_TYPE, manifest.clone())
        .await
        .expect("manifest");
    (digest, manifest)
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("skopeo runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn ratio(slow: Duration, fast: Duration) -> f64 {
    slow.as_secs_f64() / fast.as_secs_f64()
}

/// `2` when every run took 2 requests, `2–3` otherwise.
fn summary(counts: &[u64]) -> String {
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    if min == max {
        min.to_string()
    } else {
        format!("{min}–{max}")
    }
}
