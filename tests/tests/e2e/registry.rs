//! End-to-end scenarios for fleet-registry against Debian's `docker-registry`
//! (distribution 2.8), cross-checked with `skopeo`, an independent client.
//!
//! Images here are pushed by fleet-registry itself (an empty layer and a config naming
//! the platform), which also exercises pushing; one scenario resolves an image built and
//! pushed by the Docker Engine instead, and one has the Docker Engine pull and run an
//! image assembled by fleet-registry.

use std::collections::HashMap;
use std::process::Command;

use anyhow::Context as _;
use fleet_registry::oci::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use fleet_registry::{
    ChannelRef, Client, ClientConfig, CredentialSource, Credentials, Digest, Error, Healthcheck,
    ImageBuilder, ImageRef, Index, LayerBuilder, Platform, ResolveOptions,
};
use fleet_tests::docker::{RunSpec, TestDocker};
use fleet_tests::image::{Behaviour, TestImage};
use fleet_tests::registry::TestRegistry;
use fleet_tests::tools::require;
use futures::StreamExt as _;
use serde_json::json;

/// 2,500 distinct version tags, `v0.0.0` … `v4.19.24`; the newest `v1` is `v1.19.24`.
fn many_tags() -> Vec<String> {
    (0..2500)
        .map(|i| format!("v{}.{}.{}", i / 500, (i / 25) % 20, i % 25))
        .collect()
}

fn anonymous() -> anyhow::Result<Client> {
    Ok(Client::new(
        ClientConfig::default().credentials(CredentialSource::Anonymous),
    )?)
}

fn image(registry: &TestRegistry, rest: &str) -> ImageRef {
    format!("{}/{rest}", registry.host())
        .parse()
        .expect("a valid reference")
}

/// Pushes a minimal image for `os/arch` whose config carries `label` (so different
/// labels give different digests), under `image`'s tag, or by digest without one.
/// Returns the manifest digest and bytes.
async fn push_image(
    client: &Client,
    image: &ImageRef,
    arch: &str,
    label: &str,
) -> anyhow::Result<(Digest, Vec<u8>)> {
    // 1024 zero bytes: an empty tar archive.
    let layer = vec![0u8; 1024];
    let layer_digest = client.push_blob(image, layer.clone()).await?;
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": { "Labels": { "fleet.test": label } },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let config_digest = client.push_blob(image, config.clone()).await?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": { "mediaType": IMAGE_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": IMAGE_LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len() }],
    }))?;
    let digest = client
        .push_manifest(image, OCI_IMAGE_MEDIA_TYPE, manifest.clone())
        .await?;
    Ok((digest, manifest))
}

/// `skopeo inspect [flags…] docker://<registry>/<reference>`, parsed.
fn skopeo_json(
    registry: &TestRegistry,
    reference: &str,
    flags: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let skopeo = require("skopeo", "skopeo")?;
    let mut command = Command::new(skopeo);
    command.args(["inspect", "--tls-verify=false"]).args(flags);
    if let Some(credentials) = registry.credentials() {
        command
            .arg("--creds")
            .arg(format!("{}:{}", credentials.username, credentials.password));
    }
    let output = command
        .arg(format!("docker://{}/{reference}", registry.host()))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The manifest digest `skopeo inspect` reports (an index's own digest for an index).
fn skopeo_digest(registry: &TestRegistry, reference: &str) -> anyhow::Result<String> {
    let inspected = skopeo_json(registry, reference, &[])?;
    Ok(inspected["Digest"]
        .as_str()
        .context("skopeo printed no Digest")?
        .to_owned())
}

#[tokio::test]
async fn a_channel_over_2500_tags_resolves_to_the_digest_skopeo_reports() -> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let client = anonymous()?;
    let repository = image(&registry, "many");

    // One image under 2,500 tags: pushed once, then its manifest PUT under every tag.
    let (old_digest, manifest) =
        push_image(&client, &repository.with_tag("v0.0.0")?, "amd64", "old").await?;
    let tags = many_tags();
    let puts = futures::stream::iter(tags.iter().skip(1).cloned())
        .map(|tag| {
            let (client, manifest, target) =
                (client.clone(), manifest.clone(), repository.with_tag(&tag));
            async move {
                client
                    .push_manifest(&target?, OCI_IMAGE_MEDIA_TYPE, manifest)
                    .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for put in puts {
        assert_eq!(put?, old_digest);
    }
    // The newest 1.x gets an image of its own.
    let (new_digest, _) =
        push_image(&client, &repository.with_tag("v1.19.24")?, "amd64", "new").await?;
    assert_ne!(new_digest, old_digest);

    // distribution 2.8 sends all 2,500 unsorted in one page, ignoring n=1000.
    let listed = client.fetch_tags(&repository).await?;
    assert_eq!(listed.len(), 2500);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_ne!(
        listed, sorted,
        "this registry lists tags unsorted; nothing may assume an order"
    );

    let tracked: ChannelRef = format!("{}/many:v1", registry.host()).parse()?;
    let before = client.request_count();
    let resolved = client.resolve(&tracked, ResolveOptions::default()).await?;
    assert_eq!(resolved.tag.as_deref(), Some("v1.19.24"));
    assert_eq!(resolved.digest, new_digest);
    assert_eq!(
        resolved.digest.to_string(),
        skopeo_digest(&registry, "many:v1.19.24")?
    );
    assert_eq!(
        client.request_count() - before,
        2,
        "cold: one page of tags + one HEAD"
    );

    let minor: ChannelRef = format!("{}/many:^1.3, <1.4", registry.host()).parse()?;
    let before = client.request_count();
    let resolved = client.resolve(&minor, ResolveOptions::default()).await?;
    assert_eq!(resolved.tag.as_deref(), Some("v1.3.24"));
    assert_eq!(
        resolved.digest.to_string(),
        skopeo_digest(&registry, "many:v1.3.24")?
    );
    assert_eq!(resolved.digest, old_digest);
    assert_eq!(client.request_count() - before, 1, "cached tags: one HEAD");
    Ok(())
}

#[tokio::test]
async fn an_image_pushed_by_docker_resolves_to_the_digest_docker_pushed() -> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    let built = TestImage::new("1.2.0")
        .behaviour(Behaviour::Healthy)
        .build(&docker)
        .await?;
    let pushed = built
        .push(
            &docker,
            &registry,
            "app",
            &["v1.2.0", "v1.2", "v1", "latest"],
        )
        .await?;
    let client = anonymous()?;
    for channel in ["v1", "v1.2", "latest", "^1", "v1.2.0"] {
        let tracked: ChannelRef = format!("{}/app:{channel}", registry.host()).parse()?;
        let resolved = client.resolve(&tracked, ResolveOptions::default()).await?;
        assert_eq!(resolved.digest.to_string(), pushed, "channel {channel}");
    }
    assert_eq!(skopeo_digest(&registry, "app:v1")?, pushed);
    // The Docker-built image is single-platform: its configuration says which.
    let pinned = image(&registry, &format!("app@{pushed}"));
    let host = Platform::new("linux", std::env::consts::ARCH, None);
    assert_eq!(
        client.platform_digest(&pinned, &host).await?.to_string(),
        pushed
    );
    docker.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_multi_platform_index_resolves_per_platform() -> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let client = anonymous()?;
    let repository = image(&registry, "multi");
    let (amd64, amd64_manifest) = push_image(&client, &repository, "amd64", "x").await?;
    let (arm64, arm64_manifest) = push_image(&client, &repository, "arm64", "x").await?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
        "manifests": [
            { "mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": amd64, "size": amd64_manifest.len(),
              "platform": { "os": "linux", "architecture": "amd64" } },
            { "mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": arm64, "size": arm64_manifest.len(),
              "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } },
        ],
    }))?;
    let index_digest = client
        .push_manifest(
            &repository.with_tag("v2.0.0")?,
            OCI_IMAGE_INDEX_MEDIA_TYPE,
            index,
        )
        .await?;

    let tracked: ChannelRef = format!("{}/multi:v2", registry.host()).parse()?;
    let resolved = client.resolve(&tracked, ResolveOptions::default()).await?;
    assert_eq!(resolved.digest, index_digest);
    assert_eq!(
        resolved.media_type.as_deref(),
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE)
    );
    let pinned = resolved.pinned();
    assert_eq!(
        client
            .platform_digest(&pinned, &"linux/arm64".parse()?)
            .await?,
        arm64
    );
    assert_eq!(
        client
            .platform_digest(&pinned, &"linux/amd64".parse()?)
            .await?,
        amd64
    );
    // skopeo reports the index's digest, and the index it fetches lists the same entries.
    assert_eq!(
        skopeo_digest(&registry, "multi:v2.0.0")?,
        index_digest.to_string()
    );
    let raw = skopeo_json(&registry, "multi:v2.0.0", &["--raw"])?;
    let entry = |arch: &str| {
        raw["manifests"].as_array().and_then(|entries| {
            entries
                .iter()
                .find(|entry| entry["platform"]["architecture"] == arch)
                .map(|entry| entry["digest"].clone())
        })
    };
    assert_eq!(entry("arm64"), Some(json!(arm64)));
    assert_eq!(entry("amd64"), Some(json!(amd64)));
    let error = client
        .platform_digest(&pinned, &"linux/riscv64".parse()?)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{pinned} has no manifest for platform linux/riscv64 (available: linux/amd64, linux/arm64)"
        )
    );
    Ok(())
}

#[tokio::test]
async fn an_htpasswd_registry_works_with_config_file_credentials_and_fails_clearly_without()
-> anyhow::Result<()> {
    let registry = TestRegistry::start_with_auth("fleet", "s3cret-pw")?;
    let credentials = HashMap::from([(registry.host(), Credentials::basic("fleet", "s3cret-pw"))]);
    let pusher =
        Client::new(ClientConfig::default().credentials(CredentialSource::Static(credentials)))?;
    let (digest, _) =
        push_image(&pusher, &image(&registry, "private:v1.0.0"), "amd64", "p").await?;

    let config_dir = tempfile::tempdir()?;
    registry.write_docker_config(config_dir.path())?;
    let client = Client::new(ClientConfig::default().credentials(
        CredentialSource::DockerConfigDir(config_dir.path().to_owned()),
    ))?;
    let tracked: ChannelRef = format!("{}/private:v1", registry.host()).parse()?;
    let resolved = client.resolve(&tracked, ResolveOptions::default()).await?;
    assert_eq!(resolved.digest, digest);
    assert_eq!(
        resolved.digest.to_string(),
        skopeo_digest(&registry, "private:v1.0.0")?
    );

    let empty = tempfile::tempdir()?;
    let without = Client::new(
        ClientConfig::default()
            .credentials(CredentialSource::DockerConfigDir(empty.path().to_owned())),
    )?;
    let error = without
        .resolve(&tracked, ResolveOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "unauthorized to access {}/private (HTTP 401): the registry wants credentials and none were found in {}",
            registry.host(),
            empty.path().join("config.json").display()
        )
    );

    let wrong_dir = tempfile::tempdir()?;
    std::fs::write(
        wrong_dir.path().join("config.json"),
        json!({ "auths": { registry.host(): { "username": "fleet", "password": "wrong" } } })
            .to_string(),
    )?;
    let wrong = Client::new(ClientConfig::default().credentials(
        CredentialSource::DockerConfigDir(wrong_dir.path().to_owned()),
    ))?;
    let error = wrong
        .resolve(&tracked, ResolveOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
    assert!(
        !format!("{error:?} {error}").contains("wrong"),
        "secrets never appear in errors"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_repository_and_a_missing_tag_are_distinct_errors() -> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let client = anonymous()?;
    push_image(&client, &image(&registry, "present:v1.0.0"), "amd64", "x").await?;
    let host = registry.host();

    let missing_tag: ChannelRef = format!("{host}/present:v1.0.1").parse()?;
    let error = client
        .resolve(&missing_tag, ResolveOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoMatchingTag { .. }), "{error:?}");
    let missing_tag: ChannelRef = format!("{host}/present:main").parse()?;
    let error = client
        .resolve(&missing_tag, ResolveOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::ManifestNotFound { status: 404, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("manifest {host}/present:main not found: no such tag or digest (HTTP 404)")
    );

    for channel in ["main", "v1"] {
        let missing_repository: ChannelRef = format!("{host}/absent:{channel}").parse()?;
        let error = client
            .resolve(&missing_repository, ResolveOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::RepositoryNotFound { status: 404, .. }),
            "{channel}: {error:?}"
        );
    }
    let error = client
        .get_manifest(&image(&registry, "absent:main"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("repository {host}/absent:main not found (HTTP 404)")
    );
    Ok(())
}

/// Regression guard for the daemonless release path: an image assembled by
/// fleet-registry (no Docker build) must be pulled and run by the Docker Engine.
#[tokio::test]
async fn an_assembled_multi_platform_image_is_pulled_and_run_by_docker() -> anyhow::Result<()> {
    let registry = TestRegistry::start()?;
    let docker = TestDocker::new().await?;
    let client = anonymous()?;
    let binary = std::fs::read(fleet_tests::testapp::binary()?)?;
    let app = LayerBuilder::new()
        .file("fleet-testapp", binary, 0o755)
        .directory("data", 0o777)
        .build()?;
    let image_for = |platform: &str| -> anyhow::Result<_> {
        let mut check = Healthcheck::new(&["/fleet-testapp", "healthcheck"]);
        check.interval = std::time::Duration::from_secs(1);
        Ok(ImageBuilder::new(platform.parse()?)
            .layer(app.clone())
            .entrypoint(&["/fleet-testapp"])
            .env("TESTAPP_VERSION", "3.1.0")
            .env("TESTAPP_BEHAVIOUR", "healthy")
            .env("PORT", "8080")
            .env("DATA_DIR", "/data")
            .label("org.opencontainers.image.version", "3.1.0")
            .expose(8080)
            .healthcheck(check)
            .build()?)
    };
    // The arm64 image holds the amd64 binary: it is pushed and listed, never run.
    let images = [image_for("linux/amd64")?, image_for("linux/arm64")?];
    let index = Index::new(&images)?;
    let target = image(&registry, "assembled:v3.1.0");
    let pushed = client.push_index(&target, &index, &images).await?;
    assert_eq!(&pushed, index.digest());
    assert_eq!(
        skopeo_digest(&registry, "assembled:v3.1.0")?,
        pushed.to_string()
    );

    let tracked: ChannelRef = format!("{}/assembled:v3", registry.host()).parse()?;
    let resolved = client.resolve(&tracked, ResolveOptions::default()).await?;
    assert_eq!(resolved.digest, pushed);
    let arm64 = client
        .platform_digest(&resolved.pinned(), &"linux/arm64".parse()?)
        .await?;
    assert_eq!(&arm64, images[1].digest());

    let reference = format!("{}/assembled@{pushed}", registry.docker_host());
    docker.pull(&registry, &reference).await?;
    let container = docker.run(RunSpec::new(reference, "assembled")).await?;
    let body = fleet_tests::net::wait_http_ok(
        &format!("{}/api/version", container.url()),
        std::time::Duration::from_secs(20),
    )
    .await?;
    let version: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(version["version"], "3.1.0");
    let inspected = docker
        .docker()
        .inspect_container(&container.id, None)
        .await?;
    let config = inspected.config.context("container config")?;
    assert_eq!(
        config
            .labels
            .unwrap_or_default()
            .get("org.opencontainers.image.version")
            .map(String::as_str),
        Some("3.1.0")
    );
    assert!(
        config.healthcheck.is_some(),
        "Docker read the image's health check"
    );
    docker.cleanup().await?;
    Ok(())
}
