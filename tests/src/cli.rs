//! A bed for tests that drive the built `fleet` binary: a registry holding the test
//! app, a state directory whose `config.toml` gives the test its own port range,
//! network, container names and labels (so [`TestDocker`] removes what fleet created),
//! and helpers to run `fleet` and read its JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker::TestDocker;
use crate::image::TestImage;
use crate::registry::TestRegistry;

/// A fast probe policy for `fleet create`, so a version that never becomes healthy
/// fails in seconds.
pub const FAST_HEALTH: [&str; 6] = [
    "--health-start-period",
    "3s",
    "--health-interval",
    "500ms",
    "--health-deadline",
    "20s",
];

/// One test's fleet: its registry (the test app as `app:v1.0.0` and `app:v1`), its
/// engine resources and its state directory, all removed when dropped.
pub struct CliBed {
    /// The `fleet` binary (`env!("CARGO_BIN_EXE_fleet")` in fleet-cli's tests).
    pub binary: PathBuf,
    /// The registry.
    pub registry: TestRegistry,
    /// The engine, cleaning up after the test.
    pub docker: TestDocker,
    /// The state directory.
    pub state: tempfile::TempDir,
    /// The first host port of the test's range (20 ports unless [`with_ports`]).
    ///
    /// [`with_ports`]: CliBed::with_ports
    pub first_port: u16,
}

impl CliBed {
    /// A bed whose instances get host ports `first_port..first_port + 20`.
    pub async fn new(binary: &Path, first_port: u16) -> anyhow::Result<CliBed> {
        Self::with_ports(binary, first_port, 20).await
    }

    /// A bed whose instances get `ports` host ports from `first_port` on.
    pub async fn with_ports(binary: &Path, first_port: u16, ports: u16) -> anyhow::Result<CliBed> {
        let registry = TestRegistry::start()?;
        let docker = TestDocker::new().await?;
        let image = TestImage::new("1.0.0").build(&docker).await?;
        image
            .push(&docker, &registry, "app", &["v1.0.0", "v1"])
            .await?;
        docker.track_registry(&registry.docker_host());
        let state = tempfile::tempdir()?;
        std::fs::write(
            state.path().join("config.toml"),
            docker.fleet_config(&docker.name(""), first_port, first_port + ports - 1),
        )?;
        Ok(CliBed {
            binary: binary.to_owned(),
            registry,
            docker,
            state,
            first_port,
        })
    }

    /// Builds the test app at `version` behaving as `behaviour` and pushes it to the
    /// bed's registry as `app:<tag>` for each of `tags`.
    pub async fn push(
        &self,
        version: &str,
        behaviour: crate::image::Behaviour,
        tags: &[&str],
    ) -> anyhow::Result<()> {
        let image = TestImage::new(version)
            .behaviour(behaviour)
            .build(&self.docker)
            .await?;
        image
            .push(&self.docker, &self.registry, "app", tags)
            .await?;
        Ok(())
    }

    /// Pushes the releases update tests go through: v1.1.0 (healthy), v2.0.0 (never
    /// healthy) and v3.0.0 (crashes at start), each under its own tag.
    pub async fn push_releases(&self) -> anyhow::Result<()> {
        use crate::image::Behaviour;
        self.push("1.1.0", Behaviour::Healthy, &["v1.1.0"]).await?;
        self.push("2.0.0", Behaviour::NeverHealthy, &["v2.0.0"])
            .await?;
        self.push("3.0.0", Behaviour::Crash, &["v3.0.0"]).await
    }

    /// `fleet update ARGS --json` for one instance: the exit code and its report.
    pub fn update(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        all.push("--json");
        let (code, stdout, stderr) = self.run(&all);
        let reports: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
        (code, reports[0].clone())
    }

    /// The test app's image on the bed's registry, following `channel`.
    pub fn image(&self, channel: &str) -> String {
        format!("{}/app:{channel}", self.registry.docker_host())
    }

    /// Runs `fleet` on the bed's state directory: exit code, stdout, stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(args, &[])
    }

    /// Runs `fleet` with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let output = Command::new(&self.binary)
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env("FLEET_LOG", "off")
            .env("FLEET_STATE_DIR", self.state.path())
            .env("DOCKER_CONFIG", self.state.path().join("docker"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs `fleet`, which must succeed, and parses its stdout as one JSON document.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "fleet {args:?}: {stderr}");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
    }

    /// Creates a healthy instance of `app:v1` on container port 8080 with `extra`
    /// arguments; returns its host port.
    pub fn create(&self, name: &str, extra: &[&str]) -> u16 {
        self.create_on(name, "v1", extra)
    }

    /// [`create`](Self::create) following `channel` (`v1.0`, `latest`).
    pub fn create_on(&self, name: &str, channel: &str, extra: &[&str]) -> u16 {
        let image = self.image(channel);
        let mut args = vec![
            "create",
            name,
            "--image",
            &image,
            "--port",
            "8080",
            "--health-path",
            "/api/health",
            "--json",
        ];
        args.extend_from_slice(extra);
        let created = self.json(&args);
        let port = created["ports"][0]["host"]
            .as_u64()
            .unwrap_or_else(|| panic!("no host port in {created:#}"));
        u16::try_from(port).unwrap_or_else(|_| panic!("{port} is not a port"))
    }

    /// An instance's data directory (the default location).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.state.path().join("instances").join(name).join("data")
    }

    /// Where an instance's backups go.
    pub fn backups_dir(&self, name: &str) -> PathBuf {
        self.state.path().join("backups").join(name)
    }
}

/// A `fleet serve` process on a state directory, stopped (SIGTERM, then SIGKILL after
/// 10 s) when dropped.
pub struct ServeProcess {
    child: Option<std::process::Child>,
}

impl ServeProcess {
    /// Starts `binary serve` on `state` and waits until its control socket exists.
    pub fn start(binary: &Path, state: &Path) -> anyhow::Result<ServeProcess> {
        let child = Command::new(binary)
            .arg("serve")
            .env("FLEET_STATE_DIR", state)
            .env("DOCKER_CONFIG", state.join("docker"))
            .env("FLEET_LOG", "off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let mut serve = ServeProcess { child: Some(child) };
        let socket = state.join("serve.sock");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !socket.exists() {
            if let Some(child) = serve.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!("fleet serve exited at start ({status})");
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("fleet serve did not start within 20s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(serve)
    }

    /// Sends SIGTERM and waits (at most `timeout`) until it drained and exited: its exit
    /// code and what it printed on stderr.
    pub fn stop(mut self, timeout: std::time::Duration) -> anyhow::Result<(i32, String)> {
        let mut child = self.child.take().expect("a running serve");
        terminate(&child);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read as _;
                    pipe.read_to_string(&mut stderr)?;
                }
                return Ok((status.code().unwrap_or(-1), stderr));
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("fleet serve did not stop within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

fn terminate(child: &std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a child this process started and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
