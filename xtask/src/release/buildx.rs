//! The `buildx` builder: one `docker buildx build` of the Dockerfile for every platform
//! with all the release's tags, as GitHub Actions' `docker/build-push-action` runs it.
//!
//! The images carry the labels the daemonless builder writes ([`image::labels`]), and
//! `SOURCE_DATE_EPOCH` goes to BuildKit as a build argument, which dates the images from
//! it. Attestations are off, so that the index holds the platforms' images alone, as the
//! daemonless builder's does.

use std::process::{Command, Stdio};

use fleet_registry::ImageRef;

use super::image::{self, ImageInputs};

/// Whether `docker buildx` works here (Debian's `docker.io` has no buildx plugin).
pub(crate) fn available() -> bool {
    Command::new("docker")
        .args(["buildx", "version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The one `docker buildx build` of a release: every platform of `inputs`, the Dockerfile
/// at the root of `inputs.root`, each of `tags` on `repository`; pushed with `push`
/// (without it the images stay in BuildKit's cache: the Docker Engine's image store
/// cannot hold a multi-platform image).
pub(crate) fn command(
    inputs: &ImageInputs,
    repository: &ImageRef,
    tags: &[String],
    push: bool,
) -> anyhow::Result<Command> {
    let platforms: Vec<String> = inputs.platforms.iter().map(ToString::to_string).collect();
    let repository = repository.without_tag_or_digest();
    let mut command = Command::new("docker");
    command
        .current_dir(&inputs.root)
        .args(["buildx", "build", "--platform"])
        .arg(platforms.join(","))
        .arg("--file")
        .arg(inputs.root.join("Dockerfile"));
    for tag in tags {
        command.arg("--tag").arg(format!("{repository}:{tag}"));
    }
    for (key, value) in image::labels(inputs)? {
        command.arg("--label").arg(format!("{key}={value}"));
    }
    // The Dockerfile's own labels come from these; the --label values above win anyway.
    let labels = image::labels(inputs)?;
    command
        .arg("--build-arg")
        .arg(format!("FLEET_VERSION={}", inputs.version))
        .arg("--build-arg")
        .arg(format!("FLEET_REVISION={}", inputs.revision))
        .arg("--build-arg")
        .arg(format!(
            "FLEET_CREATED={}",
            labels["org.opencontainers.image.created"]
        ))
        .arg("--build-arg")
        .arg(format!("SOURCE_DATE_EPOCH={}", inputs.source_date_epoch))
        .args(["--provenance=false", "--sbom=false"]);
    if push {
        command.arg("--push");
    }
    command.arg(&inputs.root);
    Ok(command)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn inputs() -> ImageInputs {
        ImageInputs {
            root: PathBuf::from("/src/fleet"),
            package: "fleet-cli".to_owned(),
            bin: "fleet".to_owned(),
            cargo_profile: "release".to_owned(),
            version: semver::Version::new(1, 4, 2),
            revision: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            source: "https://github.com/fleet-rs/fleet".to_owned(),
            source_date_epoch: 1_700_000_000,
            platforms: vec![
                "linux/amd64".parse().unwrap(),
                "linux/arm64".parse().unwrap(),
            ],
            binaries: Vec::new(),
            allow_missing_platform: false,
        }
    }

    fn check(push: bool) -> String {
        let repository: ImageRef = "ghcr.io/fleet-rs/fleet".parse().unwrap();
        let tags = ["v1.4.2", "v1.4", "v1", "latest"].map(str::to_owned);
        let command = command(&inputs(), &repository, &tags, push).unwrap();
        crate::describe(&command).replace(" --", "\n  --")
    }

    #[test]
    fn one_multi_platform_build_with_every_tag_and_the_labels() {
        insta::assert_snapshot!(check(true), @r"
        docker buildx build
          --platform linux/amd64,linux/arm64
          --file /src/fleet/Dockerfile
          --tag ghcr.io/fleet-rs/fleet:v1.4.2
          --tag ghcr.io/fleet-rs/fleet:v1.4
          --tag ghcr.io/fleet-rs/fleet:v1
          --tag ghcr.io/fleet-rs/fleet:latest
          --label org.opencontainers.image.created=2023-11-14T22:13:20Z
          --label org.opencontainers.image.description=Runs many isolated instances of one container image on a host, updated by version channel
          --label org.opencontainers.image.licenses=MIT OR Apache-2.0
          --label org.opencontainers.image.revision=0123456789abcdef0123456789abcdef01234567
          --label org.opencontainers.image.source=https://github.com/fleet-rs/fleet
          --label org.opencontainers.image.title=fleet
          --label org.opencontainers.image.url=https://github.com/fleet-rs/fleet
          --label org.opencontainers.image.version=1.4.2
          --build-arg FLEET_VERSION=1.4.2
          --build-arg FLEET_REVISION=0123456789abcdef0123456789abcdef01234567
          --build-arg FLEET_CREATED=2023-11-14T22:13:20Z
          --build-arg SOURCE_DATE_EPOCH=1700000000
          --provenance=false
          --sbom=false
          --push /src/fleet
        ");
    }

    #[test]
    fn without_push_nothing_leaves_the_machine() {
        let command = check(false);
        assert!(!command.contains("--push"), "{command}");
        assert!(command.ends_with("--sbom=false /src/fleet"), "{command}");
    }
}
