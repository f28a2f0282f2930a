//! `fleet resolve` and `fleet tags --existing-from` against a real registry (Debian's
//! `docker-registry` from the test bed), through the built binary: output shapes,
//! digests, errors, hints and exit codes.

use std::path::Path;
use std::process::Command;

use fleet_registry::oci::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use fleet_registry::{Client, ClientConfig, CredentialSource, Credentials, Digest, ImageRef};
use fleet_tests::registry::TestRegistry;
use serde_json::json;

/// Runs `fleet` with a Docker config directory of the test's own (never the user's).
fn fleet(docker_config: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("FLEET_LOG", "off")
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("FLEET_INSECURE_REGISTRIES")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Everything `fleet` did, with the registry's port, digests and temporary paths masked.
fn shown(docker_config: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = fleet(docker_config, args);
    let text = format!("exit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}");
    let text = text.replace(&docker_config.display().to_string(), "[config dir]");
    mask(&text)
}

fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("sha256:") {
        out.push_str(&rest[..start]);
        let hex_end = rest[start + 7..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .map_or(rest.len(), |end| start + 7 + end);
        out.push_str("sha256:[digest]");
        rest = &rest[hex_end..];
    }
    out.push_str(rest);
    let mut masked = String::new();
    let mut rest = out.as_str();
    while let Some(start) = rest.find("127.0.0.1:") {
        masked.push_str(&rest[..start]);
        let port_end = rest[start + 10..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len(), |end| start + 10 + end);
        masked.push_str("[registry]");
        rest = &rest[port_end..];
    }
    masked.push_str(rest);
    masked
}

async fn push_image(client: &Client, image: &ImageRef, arch: &str, label: &str) -> (Digest, usize) {
    let layer = vec![0u8; 1024];
    let layer_digest = client.push_blob(image, layer.clone()).await.unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": { "Labels": { "fleet.test": label } },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))
    .unwrap();
    let config_digest = client.push_blob(image, config.clone()).await.unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": { "mediaType": IMAGE_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": IMAGE_LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len() }],
    }))
    .unwrap();
    let size = manifest.len();
    (
        client
            .push_manifest(image, OCI_IMAGE_MEDIA_TYPE, manifest)
            .await
            .unwrap(),
        size,
    )
}

/// `app`: v1.0.0, v1.1.0 (another image), v1 and latest (on v1.1.0), v3.0.0-rc.1, and
/// v2.0.0, a two-platform index. Returns the digests by tag.
async fn populate(
    registry: &TestRegistry,
    credentials: Option<(&str, &str)>,
) -> std::collections::HashMap<&'static str, Digest> {
    let source = match credentials {
        Some((user, pass)) => {
            CredentialSource::Static([(registry.host(), Credentials::basic(user, pass))].into())
        }
        None => CredentialSource::Anonymous,
    };
    let client = Client::new(ClientConfig::default().credentials(source)).unwrap();
    let at = |rest: &str| -> ImageRef { format!("{}/{rest}", registry.host()).parse().unwrap() };
    let mut digests = std::collections::HashMap::new();
    digests.insert(
        "v1.0.0",
        push_image(&client, &at("app:v1.0.0"), "amd64", "1.0.0")
            .await
            .0,
    );
    for tag in ["v1.1.0", "v1", "latest"] {
        digests.insert(
            tag,
            push_image(&client, &at(&format!("app:{tag}")), "amd64", "1.1.0")
                .await
                .0,
        );
    }
    digests.insert(
        "v3.0.0-rc.1",
        push_image(&client, &at("app:v3.0.0-rc.1"), "amd64", "3.0.0-rc.1")
            .await
            .0,
    );
    let (amd64, amd64_size) = push_image(&client, &at("app"), "amd64", "2.0.0").await;
    let (arm64, arm64_size) = push_image(&client, &at("app"), "arm64", "2.0.0").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
        "manifests": [
            { "mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": amd64, "size": amd64_size, "platform": { "os": "linux", "architecture": "amd64" } },
            { "mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": arm64, "size": arm64_size, "platform": { "os": "linux", "architecture": "arm64" } },
        ],
    }))
    .unwrap();
    digests.insert(
        "v2.0.0",
        client
            .push_manifest(&at("app:v2.0.0"), OCI_IMAGE_INDEX_MEDIA_TYPE, index)
            .await
            .unwrap(),
    );
    digests.insert("arm64", arm64);
    digests
}

#[tokio::test]
async fn resolve_prints_the_channel_tag_and_digest() {
    let registry = TestRegistry::start().unwrap();
    let digests = populate(&registry, None).await;
    let config = tempfile::tempdir().unwrap();
    let host = registry.host();

    insta::assert_snapshot!(shown(config.path(), &["resolve", &format!("{host}/app:v1")]), @r"
    exit: 0
    --- stdout
    reference  [registry]/app
    channel    v1 (the newest stable 1.x.y)
    tag        v1.1.0
    digest     sha256:[digest]
    --- stderr
    ");
    let (code, stdout, stderr) = fleet(
        config.path(),
        &["resolve", &format!("{host}/app:v1"), "--json"],
    );
    assert_eq!((code, stderr.as_str()), (0, ""));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json,
        json!({ "reference": format!("{host}/app"), "channel": "v1", "tag": "v1.1.0", "digest": digests["v1.1.0"] })
    );
    insta::assert_snapshot!(mask(&stdout), @r#"
    {
      "reference": "[registry]/app",
      "channel": "v1",
      "tag": "v1.1.0",
      "digest": "sha256:[digest]"
    }
    "#);

    // Channels of every kind.
    let resolve = |reference: String, extra: &[&str]| {
        let mut args = vec!["resolve", "--json", reference.as_str()];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = fleet(config.path(), &args);
        assert_eq!(code, 0, "{reference}: {stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    assert_eq!(
        resolve(format!("{host}/app:1.0"), &[])["digest"],
        json!(digests["v1.0.0"])
    );
    assert_eq!(
        resolve(format!("{host}/app:~1.0.0"), &[])["tag"],
        json!("v1.0.0")
    );
    assert_eq!(resolve(format!("{host}/app"), &[])["tag"], json!("latest"));
    assert_eq!(
        resolve(format!("{host}/app:latest"), &[])["digest"],
        json!(digests["latest"])
    );
    assert_eq!(
        resolve(format!("{host}/app:*"), &[])["tag"],
        json!("v2.0.0")
    );
    assert_eq!(
        resolve(format!("{host}/app:v3"), &["--prereleases"])["tag"],
        json!("v3.0.0-rc.1")
    );
    let pinned = resolve(format!("{host}/app@{}", digests["v1.0.0"]), &[]);
    assert_eq!(
        pinned,
        json!({ "reference": format!("{host}/app"), "channel": digests["v1.0.0"], "tag": null, "digest": digests["v1.0.0"] })
    );

    // A platform inside an index.
    let arm = resolve(format!("{host}/app:v2"), &["--platform", "linux/arm64/v8"]);
    assert_eq!(
        arm,
        json!({
            "reference": format!("{host}/app"), "channel": "v2", "tag": "v2.0.0", "digest": digests["v2.0.0"],
            "platform": "linux/arm64", "platform_digest": digests["arm64"],
        })
    );
    insta::assert_snapshot!(shown(config.path(), &["resolve", &format!("{host}/app:v2"), "--platform", "linux/arm64"]), @r"
    exit: 0
    --- stdout
    reference        [registry]/app
    channel          v2 (the newest stable 2.x.y)
    tag              v2.0.0
    digest           sha256:[digest]
    platform         linux/arm64
    platform digest  sha256:[digest]
    --- stderr
    ");
}

#[tokio::test]
async fn resolve_failures_exit_1_with_a_hint() {
    let registry = TestRegistry::start().unwrap();
    populate(&registry, None).await;
    let config = tempfile::tempdir().unwrap();
    let host = registry.host();

    insta::assert_snapshot!(shown(config.path(), &["resolve", &format!("{host}/absent:v1")]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: repository [registry]/absent not found (HTTP 404)
    hint: check the registry and repository name; `fleet ref REF` shows how a reference is read
    ");
    insta::assert_snapshot!(shown(config.path(), &["resolve", "--json", &format!("{host}/app:main")]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: manifest [registry]/app:main not found: no such tag or digest (HTTP 404)
    hint: the repository exists, but not this tag or digest
    ");
    insta::assert_snapshot!(shown(config.path(), &["resolve", &format!("{host}/app:v3")]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: no tag of [registry]/app matches channel v3 (6 tags listed)
    hint: version channels pick stable versions only; `--prereleases` includes release candidates
    ");
    insta::assert_snapshot!(shown(config.path(), &["resolve", &format!("{host}/app:v1"), "--platform", "linux/s390x"]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: [registry]/app:v1.1.0@sha256:[digest] has no manifest for platform linux/s390x (available: linux/amd64)
    ");
}

#[tokio::test]
async fn credentials_come_from_docker_config() {
    let registry = TestRegistry::start_with_auth("fleet", "cli-s3cret").unwrap();
    let digests = populate(&registry, Some(("fleet", "cli-s3cret"))).await;
    let host = registry.host();

    let with = tempfile::tempdir().unwrap();
    registry.write_docker_config(with.path()).unwrap();
    let (code, stdout, stderr) = fleet(
        with.path(),
        &["resolve", "--json", &format!("{host}/app:v1")],
    );
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["digest"],
        json!(digests["v1.1.0"])
    );

    let without = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(shown(without.path(), &["resolve", &format!("{host}/app:v1")]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: unauthorized to access [registry]/app (HTTP 401): the registry wants credentials and none were found in [config dir]/config.json
    hint: log in with `docker login [registry]`, or set DOCKER_CONFIG to a directory whose config.json has credentials for it
    hint: some registries also answer this way for repositories that do not exist
    ");
}

#[tokio::test]
async fn tags_existing_from_keeps_newer_releases_on_their_tags() {
    let registry = TestRegistry::start().unwrap();
    populate(&registry, None).await;
    let config = tempfile::tempdir().unwrap();
    let host = registry.host();

    insta::assert_snapshot!(shown(config.path(), &["tags", "1.0.5", "--sha", "abcdef1", "--existing-from", &format!("{host}/app"), "--json"]), @r#"
    exit: 0
    --- stdout
    [
      "v1.0.5",
      "v1.0",
      "sha-abcdef1"
    ]
    --- stderr
    note: v1 stays on v1.1.0, a newer release
    note: latest stays on v2.0.0, a newer release
    "#);
    insta::assert_snapshot!(shown(config.path(), &["tags", "2.1.0", "--existing-from", &format!("{host}/app")]), @r"
    exit: 0
    --- stdout
    v2.1.0
    v2.1
    v2
    latest
    --- stderr
    ");
    insta::assert_snapshot!(shown(config.path(), &["tags", "0.1.0", "--existing-from", &format!("{host}/new")]), @r"
    exit: 0
    --- stdout
    v0.1.0
    v0.1
    v0
    latest
    --- stderr
    note: [registry]/new does not exist yet: no tags to keep
    ");
}
