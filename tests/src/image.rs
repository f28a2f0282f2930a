//! Images of the test app, built by the local Docker Engine and pushed to test registries.
//!
//! An image is the static test app binary in a `FROM scratch` image, with its version
//! and [`Behaviour`] baked in as environment variables, so every kind of release an
//! update must survive exists: healthy, crashing, never healthy, slow, flapping.
//! The binary is built once per test process; images of the same options are built once
//! per process and then reused (Docker also caches the layers across processes).
//!
//! A test run leaves no images behind. Each image is tagged for its run
//! (`fleet-testapp:<options>-<run>`) and labelled [`RUN_LABEL`]`=<run>`, and a process
//! removes the tags it built when it exits, so concurrent runs never remove each other's
//! images. The run is [`RUN_ENV`] when set (`cargo xtask test` sets it, and removes what a
//! killed process left with that label at the end), else one per process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex, Once};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, PushImageOptionsBuilder,
    RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt as _;

use crate::docker::TestDocker;
use crate::registry::TestRegistry;

/// The repository local test app images are tagged in.
pub const LOCAL_REPOSITORY: &str = "fleet-testapp";

/// The variable naming the test run the images built are tagged and labelled for
/// (`cargo xtask test` sets it); without it, each process is a run of its own.
pub const RUN_ENV: &str = "FLEET_TESTAPP_RUN";

/// The label carrying an image's test run.
pub const RUN_LABEL: &str = "fleet.testapp.run";

/// This process's test run: [`RUN_ENV`], or a fresh id.
static RUN: LazyLock<String> = LazyLock::new(|| {
    std::env::var(RUN_ENV)
        .ok()
        .filter(|run| {
            !run.is_empty()
                && run.len() <= 32
                && run
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
        .unwrap_or_else(|| format!("p{}", crate::unique_suffix()))
});

/// The test run the images this process builds belong to.
pub fn run() -> &'static str {
    &RUN
}

/// The port the test app listens on inside its container.
pub const APP_PORT: u16 = 8080;

/// How the test app behaves (its `TESTAPP_BEHAVIOUR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Serves and reports healthy.
    Healthy,
    /// Exits with status 1 right after start.
    Crash,
    /// Serves, then exits with status 1 after this many seconds.
    CrashAfter(u32),
    /// Serves, but `/api/health` always answers 503.
    NeverHealthy,
    /// `/api/health` answers 503 `starting` for this many seconds after start.
    SlowStart(u32),
    /// `/api/health` alternates healthy and unhealthy on every request.
    Flap,
    /// Serves and reports healthy, but its Docker `HEALTHCHECK` command fails (with
    /// [`TestImage::healthcheck`]).
    DockerUnhealthy,
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Healthy => f.write_str("healthy"),
            Self::Crash => f.write_str("crash"),
            Self::CrashAfter(secs) => write!(f, "crash-after:{secs}"),
            Self::NeverHealthy => f.write_str("never-healthy"),
            Self::SlowStart(secs) => write!(f, "slow-start:{secs}"),
            Self::Flap => f.write_str("flap"),
            Self::DockerUnhealthy => f.write_str("docker-unhealthy"),
        }
    }
}

/// What image to build: a version, a behaviour and a few image options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TestImage {
    version: String,
    behaviour: Behaviour,
    user: Option<String>,
    healthcheck: bool,
    nonce: Option<String>,
}

/// An image built by [`TestImage::build`], present in the local engine.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Its local tag, `fleet-testapp:<version>-<behaviour>[...]-<run>`.
    pub local_tag: String,
    /// Its image id (`sha256:...`, the config digest).
    pub id: String,
    /// The options it was built from.
    pub spec: TestImage,
}

static BUILT: Mutex<Option<HashMap<TestImage, BuiltImage>>> = Mutex::new(None);

impl TestImage {
    /// A healthy image of `version`, running as user `10001:10001`.
    pub fn new(version: &str) -> Self {
        Self {
            version: version.into(),
            behaviour: Behaviour::Healthy,
            user: Some("10001:10001".into()),
            healthcheck: false,
            nonce: None,
        }
    }

    /// Sets the behaviour.
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// Sets the image's `USER` (`None`: root).
    pub fn user(mut self, user: Option<&str>) -> Self {
        self.user = user.map(Into::into);
        self
    }

    /// Adds a Docker `HEALTHCHECK` (the app probing itself; interval 1 s).
    pub fn healthcheck(mut self, on: bool) -> Self {
        self.healthcheck = on;
        self
    }

    /// Makes the image differ (another digest) from one built with the same options.
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// The version baked into the image.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The local tag the image gets: its options, then this process's [`run`].
    pub fn local_tag(&self) -> String {
        let mut tag = format!(
            "{LOCAL_REPOSITORY}:{}-{}",
            self.version,
            self.behaviour.to_string().replace(':', "-")
        );
        if self.healthcheck {
            tag.push_str("-hc");
        }
        match self.user.as_deref() {
            Some("10001:10001") => {}
            Some(user) => tag.push_str(&format!("-u{}", user.replace(':', "-"))),
            None => tag.push_str("-root"),
        }
        if let Some(nonce) = &self.nonce {
            tag.push('-');
            tag.push_str(nonce);
        }
        tag.push('-');
        tag.push_str(run());
        tag
    }

    /// The Dockerfile of this image.
    pub fn dockerfile(&self) -> String {
        let mut dockerfile = String::from("FROM scratch\nCOPY fleet-testapp /fleet-testapp\n");
        let owner = self.user.as_deref().unwrap_or("0:0");
        dockerfile.push_str(&format!("COPY --chown={owner} data /data\n"));
        dockerfile.push_str(&format!(
            "ENV TESTAPP_VERSION={} TESTAPP_BEHAVIOUR={} PORT={APP_PORT} DATA_DIR=/data\n",
            self.version, self.behaviour
        ));
        if let Some(nonce) = &self.nonce {
            dockerfile.push_str(&format!("ENV TESTAPP_NONCE={nonce}\n"));
        }
        dockerfile.push_str(&format!(
            "LABEL org.opencontainers.image.version={} org.opencontainers.image.title=fleet-testapp {RUN_LABEL}={}\n",
            self.version,
            run()
        ));
        if let Some(user) = &self.user {
            dockerfile.push_str(&format!("USER {user}\n"));
        }
        if self.healthcheck {
            dockerfile.push_str(
                "HEALTHCHECK --interval=1s --timeout=2s --start-period=1s --retries=2 CMD [\"/fleet-testapp\", \"healthcheck\"]\n",
            );
        }
        dockerfile.push_str(&format!(
            "EXPOSE {APP_PORT}\nENTRYPOINT [\"/fleet-testapp\"]\n"
        ));
        dockerfile
    }

    /// Builds the image with the test's engine (once per process for the same options).
    pub async fn build(&self, docker: &TestDocker) -> anyhow::Result<BuiltImage> {
        self.build_with(docker.docker()).await
    }

    /// Builds the image with any bollard client.
    pub async fn build_with(&self, docker: &Docker) -> anyhow::Result<BuiltImage> {
        if let Some(built) = BUILT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_default()
            .get(self)
        {
            return Ok(built.clone());
        }
        let binary = tokio::task::spawn_blocking(crate::testapp::binary).await??;
        let context = self.context_tar(&binary)?;
        let tag = self.local_tag();
        remove_built_images_at_exit();
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut output = String::new();
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("docker build of {tag} failed:\n{output}"))?;
            if let Some(text) = info.stream {
                output.push_str(&text);
            }
            if let Some(error) = info.error_detail.and_then(|e| e.message) {
                bail!("docker build of {tag} failed: {error}\n{output}");
            }
        }
        let inspect = docker
            .inspect_image(&tag)
            .await
            .with_context(|| format!("{tag} was not built:\n{output}"))?;
        let built = BuiltImage {
            local_tag: tag,
            id: inspect.id.unwrap_or_default(),
            spec: self.clone(),
        };
        BUILT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_default()
            .insert(self.clone(), built.clone());
        Ok(built)
    }

    fn context_tar(&self, binary: &std::path::Path) -> anyhow::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let dockerfile = self.dockerfile();
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
        let mut file = std::fs::File::open(binary)
            .with_context(|| format!("cannot open {}", binary.display()))?;
        tar.append_file("fleet-testapp", &mut file)?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(0);
        tar.append_data(&mut header, "data/", std::io::empty())?;
        Ok(tar.into_inner()?)
    }
}

impl BuiltImage {
    /// Pushes the image to `registry` as `<repository>:<tag>` for each tag, through the
    /// Docker Engine (`localhost:<port>`), and returns the manifest digest the registry
    /// reports. Local tags made for the push are removed again.
    pub async fn push(
        &self,
        docker: &TestDocker,
        registry: &TestRegistry,
        repository: &str,
        tags: &[&str],
    ) -> anyhow::Result<String> {
        docker.track_registry(&registry.docker_host());
        let client = docker.docker();
        let remote = format!("{}/{repository}", registry.docker_host());
        let credentials = registry.credentials().map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(registry.docker_host()),
            ..Default::default()
        });
        for tag in tags {
            client
                .tag_image(
                    &self.local_tag,
                    Some(
                        TagImageOptionsBuilder::default()
                            .repo(&remote)
                            .tag(tag)
                            .build(),
                    ),
                )
                .await
                .with_context(|| format!("cannot tag {} as {remote}:{tag}", self.local_tag))?;
            let mut stream = client.push_image(
                &remote,
                Some(PushImageOptionsBuilder::default().tag(tag).build()),
                credentials.clone(),
            );
            let mut result = Ok(());
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(error) = info.error_detail.and_then(|e| e.message) {
                            result = Err(anyhow::anyhow!("{error}"));
                        }
                    }
                    Err(e) => result = Err(e.into()),
                }
            }
            let untag = RemoveImageOptionsBuilder::default().noprune(true).build();
            client
                .remove_image(&format!("{remote}:{tag}"), Some(untag), None)
                .await
                .ok();
            result.with_context(|| {
                format!(
                    "docker push {remote}:{tag} failed; registry log:\n{}",
                    registry.log()
                )
            })?;
        }
        let tag = tags.first().context("push needs at least one tag")?;
        manifest_digest(registry, repository, tag).await
    }
}

/// Makes this process remove the images it built when it exits (registered once, before
/// the first build).
fn remove_built_images_at_exit() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        extern "C" fn at_exit() {
            // Unwinding out of an `extern "C"` function aborts: a panic must stop here.
            let _ = std::panic::catch_unwind(remove_built_images);
        }
        // SAFETY: `at_exit` is a plain function that neither unwinds nor returns early
        // into the exit path (it joins the thread it starts).
        unsafe {
            libc::atexit(at_exit);
        }
    });
}

/// Removes the local tags of every image this process built (and so the images, unless
/// another tag or a container still holds them), then the images of this run that two
/// concurrent builds of one image left untagged. Runs when the process exits.
fn remove_built_images() {
    let tags: Vec<String> = BUILT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
        .into_values()
        .map(|built| built.local_tag)
        .collect();
    if tags.is_empty() {
        return;
    }
    // At exit, or inside a runtime: a thread and a runtime of its own, like TestDocker's drop.
    let remover = std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let docker = crate::docker::connect().await?;
            let filters = HashMap::from([
                ("label".to_owned(), vec![format!("{RUN_LABEL}={}", run())]),
                ("dangling".to_owned(), vec!["true".to_owned()]),
            ]);
            let mut failures = Vec::new();
            for tag in &tags {
                if let Err(e) = remove_image(&docker, tag).await {
                    failures.push(format!("{tag}: {e:#}"));
                }
            }
            let dangling = docker
                .list_images(Some(
                    ListImagesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await?;
            for image in dangling {
                if let Err(e) = remove_image(&docker, &image.id).await {
                    failures.push(format!("{}: {e:#}", image.id));
                }
            }
            Ok(failures)
        })
    });
    let failures = match remover.join() {
        Ok(Ok(failures)) => failures,
        Ok(Err(e)) => vec![format!("{e:#}")],
        Err(_) => vec!["the clean-up thread panicked".to_owned()],
    };
    if !failures.is_empty() {
        #[allow(clippy::print_stderr)] // A leak must be visible in the test output.
        {
            eprintln!(
                "warning: test app images left behind: {}",
                failures.join("; ")
            );
        }
    }
}

/// Removes one image (tag or id) and the parents only it held; one already gone is fine.
async fn remove_image(docker: &Docker, name: &str) -> anyhow::Result<()> {
    let options = RemoveImageOptionsBuilder::default().noprune(false).build();
    match tokio::time::timeout(
        Duration::from_secs(30),
        docker.remove_image(name, Some(options), None),
    )
    .await
    .context("timed out")?
    {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The digest of `repository:tag` in `registry`, from a `HEAD` on its manifest.
pub async fn manifest_digest(
    registry: &TestRegistry,
    repository: &str,
    tag: &str,
) -> anyhow::Result<String> {
    let url = format!("{}/v2/{repository}/manifests/{tag}", registry.url());
    let mut request = reqwest::Client::new().head(&url).header(
        "accept",
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json",
    );
    if let Some(auth) = registry.basic_auth_header() {
        request = request.header("authorization", auth);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("HEAD {url}"))?;
    if !response.status().is_success() {
        bail!("HEAD {url}: {}", response.status());
    }
    let digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .with_context(|| format!("HEAD {url}: no Docker-Content-Digest header"))?;
    Ok(digest.to_owned())
}
