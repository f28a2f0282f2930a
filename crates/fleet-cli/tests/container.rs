//! fleet's container image (issue 13), built from the repository's Dockerfile with a
//! static `fleet` (its prebuilt path: no Rust image is pulled) and run as
//! `docs/container.md` says: host network, the Docker socket with its group, the state
//! directory mounted at its own path and owned by 65532, no CA certificates mounted. It
//! becomes `healthy` through its `HEALTHCHECK` (`fleet serve --check`), runs as non-root,
//! carries its labels, serves instances created through it (running as 65532 and as
//! root; one running as another user cannot write its data directory), and exits 0 on
//! SIGTERM; everything is removed after.
//!
//! The static binary is built once into `<target dir>/static-fleet` (dependencies
//! unoptimised: this test only needs it to run), or taken from `FLEET_STATIC_BIN`.
//! Ports: 11200-11299, used by no other test file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_tests::cli::{CliBed, FAST_HEALTH};

/// The static `fleet`: `FLEET_STATIC_BIN`, or built by the test bed into
/// `<target dir>/static-fleet` (`cargo xtask test` starts that build while the other tests
/// run; this one then waits for cargo's lock on that directory and finds it done).
fn static_fleet() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEET_STATIC_BIN") {
        return PathBuf::from(path);
    }
    fleet_tests::static_fleet::build().expect("the static build of fleet")
}

/// Runs `docker ARGS`, which must succeed; its stdout, trimmed.
fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A `docker build` that uses BuildKit: the buildx plugin where it is installed (GitHub's
/// runners), else a client with BuildKit built in (Docker 20.10's, as Debian's docker.io
/// ships it at /usr/bin/docker) with `DOCKER_BUILDKIT=1`. Newer clients without buildx
/// only have the legacy builder, which knows no `COPY --chmod` and builds every stage.
fn buildkit_build() -> Command {
    let buildx = Command::new("docker")
        .args(["buildx", "version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if buildx {
        let mut command = Command::new("docker");
        command.args(["buildx", "build", "--load"]);
        return command;
    }
    for client in ["docker", "/usr/bin/docker"] {
        let version = Command::new(client)
            .args(["version", "--format", "{{.Client.Version}}"])
            .output();
        let major = version
            .ok()
            .and_then(|out| {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.split('.').next()?.trim().parse::<u32>().ok()
            })
            .unwrap_or(u32::MAX);
        if major < 23 {
            let mut command = Command::new(client);
            command.arg("build").env("DOCKER_BUILDKIT", "1");
            return command;
        }
    }
    panic!(
        "no docker client here builds with BuildKit: install the buildx plugin \
         (`docker buildx version` must work) or Debian's docker.io (its 20.10 client)"
    );
}

/// The image this test built, removed when dropped.
struct BuiltImage {
    tag: String,
    _context: tempfile::TempDir,
}

impl BuiltImage {
    /// Builds the Dockerfile's prebuilt path with `binary`, in a context holding what it
    /// copies: `.dockerignore`, `docker/` and the binary at `dist/linux-amd64/fleet`.
    fn build(binary: &Path, tag: &str) -> (BuiltImage, String) {
        let root = fleet_tests::workspace_root();
        let context = tempfile::tempdir().unwrap();
        std::fs::copy(
            root.join(".dockerignore"),
            context.path().join(".dockerignore"),
        )
        .unwrap();
        copy_tree(&root.join("docker"), &context.path().join("docker"));
        let dist = context.path().join("dist/linux-amd64");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::copy(binary, dist.join("fleet")).unwrap();
        let image = BuiltImage {
            tag: tag.to_owned(),
            _context: context,
        };
        let output = buildkit_build()
            .args(["--progress", "plain", "--platform", "linux/amd64"])
            .arg("--file")
            .arg(root.join("Dockerfile"))
            .args(["--build-arg", "FLEET_BUILD=prebuilt"])
            .args([
                "--build-arg",
                &format!("FLEET_VERSION={}", env!("CARGO_PKG_VERSION")),
            ])
            .args(["--build-arg", &format!("FLEET_REVISION={REVISION}")])
            .args(["--build-arg", &format!("FLEET_CREATED={CREATED}")])
            .args(["--tag", tag])
            .arg(image._context.path())
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "docker build failed:\n{log}");
        (image, log)
    }
}

impl Drop for BuiltImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.tag])
            .output();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";
const CREATED: &str = "2024-01-02T03:04:05Z";

/// A container this test started, removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

/// The Docker socket on this host (`DOCKER_HOST=unix://…`, else the default).
fn docker_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        Ok(host) if !host.is_empty() => {
            panic!("this test mounts the Docker socket; DOCKER_HOST={host} is not one")
        }
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// A loopback port in this file's range that nothing listens on now.
fn api_port() -> u16 {
    (11290..=11299)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port in 11290-11299")
}

/// Hands the state directory (and what the bed wrote in it) to the image's user.
fn give_to_fleet_user(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in walk(dir) {
        std::os::unix::fs::chown(&entry, Some(65532), Some(65532)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        } else {
            all.push(path);
        }
    }
    all
}

fn wait_healthy(name: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let state = docker(&[
            "inspect",
            "--format",
            "{{.State.Health.Status}} {{.State.Running}} {{.RestartCount}}",
            name,
        ]);
        if state == "healthy true 0" {
            return;
        }
        if state != "starting true 0" || Instant::now() > deadline {
            let health = docker(&["inspect", "--format", "{{json .State.Health}}", name]);
            let logs = Command::new("docker")
                .args(["logs", name])
                .output()
                .unwrap();
            panic!(
                "the container is not healthy (health, running, restarts: {state}) after {:?}: \
                 {health}\n{}",
                timeout,
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_fleet_serve_healthy_as_non_root_and_stops_cleanly() {
    let binary = tokio::task::spawn_blocking(static_fleet).await.unwrap();
    let bed = CliBed::with_ports(Path::new(env!("CARGO_BIN_EXE_fleet")), 11200, 20)
        .await
        .unwrap();
    let tag = format!("fleet-test-image:{}", bed.docker.run_id());
    let (image, log) = BuiltImage::build(&binary, &tag);
    // BuildKit skipped the Rust build stage: nothing was pulled.
    assert!(!log.contains("library/rust"), "the build stage ran:\n{log}");

    // The image as the Dockerfile describes it.
    let config: serde_json::Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &image.tag,
    ]))
    .unwrap();
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/fleet"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    let env = config["Env"].as_array().unwrap();
    for wanted in [
        "FLEET_STATE_DIR=/var/lib/fleet",
        "FLEET_SERVE_API=127.0.0.1:8090",
    ] {
        assert!(env.iter().any(|e| e == wanted), "{wanted} not in {env:?}");
    }
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/fleet", "serve", "--check"])
    );
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "fleet");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.revision"], REVISION);
    assert_eq!(labels["org.opencontainers.image.created"], CREATED);
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        "MIT OR Apache-2.0"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/fleet-rs/fleet"
    );

    // Run it as docs/container.md says.
    let state = bed.state.path().to_str().unwrap().to_owned();
    give_to_fleet_user(bed.state.path());
    let socket = docker_socket();
    let socket_gid = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&socket).unwrap().gid()
    };
    let api = format!("127.0.0.1:{}", api_port());
    let name = bed.docker.name("serve");
    let container = Container(name.clone());
    docker(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--label",
        &format!("fleet.test.run={}", bed.docker.run_id()),
        "--restart",
        "unless-stopped",
        "--network",
        "host",
        "--volume",
        &format!("{}:/var/run/docker.sock", socket.display()),
        "--group-add",
        &socket_gid.to_string(),
        "--volume",
        &format!("{state}:{state}"),
        // No CA certificates are mounted: fleet verifies registries against the roots
        // compiled into it when the image has none.
        "--env",
        &format!("FLEET_STATE_DIR={state}"),
        "--env",
        &format!("FLEET_SERVE_API={api}"),
        &image.tag,
    ]);
    wait_healthy(&name, Duration::from_secs(90));

    // Not root: the serving process is the image's user.
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", &name]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "{uid}"
    );

    // An instance created through the container is reached through its proxy.
    let image_ref = bed.image("v1");
    let mut create = vec![
        "exec",
        &name,
        "fleet",
        "create",
        "alice",
        "--image",
        &image_ref,
        "--port",
        "8080",
        "--health-path",
        "/api/health",
        // The data directory belongs to the user fleet runs as (it cannot chown it).
        "--user",
        "65532:65532",
        "--json",
    ];
    create.extend_from_slice(&FAST_HEALTH);
    let created: serde_json::Value = serde_json::from_str(&docker(&create)).unwrap();
    let port = u16::try_from(created["ports"][0]["host"].as_u64().unwrap()).unwrap();
    let version = fleet_tests::net::app_version(port, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(version, "1.0.0");
    let health: serde_json::Value = serde_json::from_str(&docker(&[
        "exec", &name, "fleet", "serve", "--check", "--json",
    ]))
    .unwrap();
    assert_eq!(health["routes"], 1, "{health}");

    // An app that runs as root (an image with no USER) writes to the data directory
    // fleet made as 65532 under the 0700 state directory: the Engine resolves the bind
    // mount, and root in the instance's container keeps Docker's default capabilities
    // (CAP_DAC_OVERRIDE).
    fleet_tests::image::TestImage::new("1.0.0")
        .user(None)
        .build(&bed.docker)
        .await
        .unwrap()
        .push(&bed.docker, &bed.registry, "rootapp", &["v1"])
        .await
        .unwrap();
    let root_image = format!("{}/rootapp:v1", bed.registry.docker_host());
    let mut create = vec![
        "exec",
        &name,
        "fleet",
        "create",
        "bob",
        "--image",
        &root_image,
        "--port",
        "8080",
        "--health-path",
        "/api/health",
        "--json",
    ];
    create.extend_from_slice(&FAST_HEALTH);
    let created: serde_json::Value = serde_json::from_str(&docker(&create)).unwrap();
    let bob = u16::try_from(created["ports"][0]["host"].as_u64().unwrap()).unwrap();
    let version = fleet_tests::net::app_version(bob, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(version, "1.0.0");
    let data = bed.state.path().join("instances/bob/data");
    let owner = |path: &Path| {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).unwrap();
        (meta.uid(), meta.gid())
    };
    assert_eq!(owner(&data), (65532, 65532), "{}", data.display());
    assert_eq!(owner(&data.join("testapp.db")), (0, 0));

    // An app that runs as another user (the test app's image is 10001:10001) cannot:
    // fleet, not root here, cannot hand it the data directory (docs/container.md).
    let mut create = vec![
        "exec",
        &name,
        "fleet",
        "create",
        "carol",
        "--image",
        &image_ref,
        "--port",
        "8080",
        "--health-path",
        "/api/health",
    ];
    create.extend_from_slice(&FAST_HEALTH);
    let output = Command::new("docker").args(&create).output().unwrap();
    assert!(!output.status.success(), "{output:?}");
    let carol = bed.state.path().join("instances/carol/data");
    assert!(!carol.join("testapp.db").exists());

    // SIGTERM: it drains and exits 0; the instance's port is refused while it is down.
    docker(&["stop", "--time", "45", &name]);
    let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    let logs = Command::new("docker")
        .args(["logs", &name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&logs.stderr);
    assert_eq!(exit, "0", "{stderr}");
    assert!(stderr.contains("stopped after draining"), "{stderr}");
    let refused = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    drop(container);
    drop(image);
    let left = docker(&["image", "ls", "--quiet", &tag]);
    assert_eq!(left, "", "the image is left");
}
