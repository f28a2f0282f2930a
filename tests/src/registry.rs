//! A real OCI registry on loopback: Debian's `docker-registry` (distribution 2.8).
//!
//! Each [`TestRegistry`] gets a free port, its own generated config, temporary storage
//! and, optionally, an htpasswd file; it is stopped and its storage removed on drop.
//! Docker pulls and pushes to it as `localhost:<port>` without TLS (Docker treats
//! loopback registries as insecure by default).
//!
//! Distribution 2.8 ignores `n` in tag listings, sends no `Link` header and returns tags
//! unsorted: nothing may assume tag order.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;

use crate::net::free_port;
use crate::tools::require;

/// Credentials of an htpasswd-protected [`TestRegistry`].
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (never printed by `Debug`).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A running registry, stopped on drop.
#[derive(Debug)]
pub struct TestRegistry {
    port: u16,
    credentials: Option<Credentials>,
    dir: tempfile::TempDir,
    stop: Option<mpsc::Sender<()>>,
    keeper: Option<std::thread::JoinHandle<()>>,
}

impl TestRegistry {
    /// Starts a registry that anyone may push to and pull from.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(None)
    }

    /// Starts a registry that requires these credentials (htpasswd, bcrypt) for every request.
    pub fn start_with_auth(username: &str, password: &str) -> anyhow::Result<Self> {
        Self::start_inner(Some(Credentials {
            username: username.into(),
            password: password.into(),
        }))
    }

    fn start_inner(credentials: Option<Credentials>) -> anyhow::Result<Self> {
        let binary = require("docker-registry", "docker-registry")?;
        let dir = tempfile::Builder::new()
            .prefix("fleet-test-registry-")
            .tempdir()?;
        if let Some(credentials) = &credentials {
            // Cost 5 keeps each authenticated request fast; the registry accepts any cost.
            let hash = bcrypt::hash_with_result(&credentials.password, 5)?
                .format_for_version(bcrypt::Version::TwoY);
            std::fs::write(
                dir.path().join("htpasswd"),
                format!("{}:{hash}\n", credentials.username),
            )?;
        }
        // The port can be taken between choosing and binding it: retry with a new one.
        for attempt in 1.. {
            let port = free_port()?;
            write_config(dir.path(), port, credentials.is_some())?;
            let (stop, keeper) = Keeper::spawn(&binary, dir.path())?;
            match wait_ready(port, &keeper, Duration::from_secs(15)) {
                Ok(()) => {
                    return Ok(Self {
                        port,
                        credentials,
                        dir,
                        stop: Some(stop),
                        keeper: Some(keeper),
                    });
                }
                Err(e) => {
                    let _ = stop.send(());
                    let _ = keeper.join();
                    let log = std::fs::read_to_string(dir.path().join("registry.log"))
                        .unwrap_or_default();
                    if !(log.contains("address already in use") && attempt < 5) {
                        return Err(
                            e.context(format!("docker-registry did not start; its log:\n{log}"))
                        );
                    }
                }
            }
        }
        unreachable!("the retry loop returns")
    }

    /// The port it listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`: the registry host for HTTP clients.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `localhost:<port>`: the registry host as Docker image references name it.
    pub fn docker_host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The credentials it requires, if started with [`TestRegistry::start_with_auth`].
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The value of an `Authorization` header for this registry, if it needs one.
    pub fn basic_auth_header(&self) -> Option<String> {
        self.credentials.as_ref().map(|c| {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password));
            format!("Basic {token}")
        })
    }

    /// Writes a Docker `config.json` with this registry's credentials (under both host
    /// names) into `dir`, for clients that read `DOCKER_CONFIG`; returns its path.
    pub fn write_docker_config(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let credentials = self
            .credentials
            .as_ref()
            .context("this registry has no credentials")?;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.username, credentials.password));
        let config = serde_json::json!({
            "auths": {
                self.host(): { "auth": auth },
                self.docker_host(): { "auth": auth },
            }
        });
        std::fs::create_dir_all(dir)?;
        let path = dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        Ok(path)
    }

    /// The registry's own log (warnings and errors), for test failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn wait_ready(
    port: u16,
    keeper: &std::thread::JoinHandle<()>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        // 401 is the answer of a ready registry that wants credentials.
        if let Ok(200 | 401) = get_status(port, "/v2/") {
            return Ok(());
        }
        if keeper.is_finished() {
            bail!("docker-registry exited during start-up");
        }
        if Instant::now() > deadline {
            bail!("docker-registry did not answer on 127.0.0.1:{port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get_status(port: u16, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(std::str::from_utf8(&head)?[9..12].parse()?)
}

fn write_config(dir: &Path, port: u16, with_auth: bool) -> anyhow::Result<()> {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage)?;
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: fleet-test-{secret}\n",
        storage = storage.display(),
        secret = crate::unique_suffix(),
    );
    if with_auth {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: fleet-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    std::fs::write(dir.join("config.yml"), config)?;
    Ok(())
}

/// Owns the registry process from a dedicated thread.
///
/// The child gets `PR_SET_PDEATHSIG`, which fires when the *thread* that spawned it ends:
/// spawning from a thread that lives exactly as long as the [`TestRegistry`] means a test
/// process that dies (even by SIGKILL) never leaves a registry behind.
struct Keeper;

impl Keeper {
    fn spawn(
        binary: &Path,
        dir: &Path,
    ) -> anyhow::Result<(mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<anyhow::Result<()>>();
        let binary = binary.to_owned();
        let dir = dir.to_owned();
        let keeper = std::thread::Builder::new()
            .name("test-registry".into())
            .spawn(move || {
                let child = spawn_registry(&binary, &dir);
                let mut child: Child = match child {
                    Ok(child) => {
                        let _ = started_tx.send(Ok(()));
                        child
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                // Wait for the stop signal (or the owner disappearing), checking the child.
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(Duration::from_millis(200))
                {
                    if matches!(child.try_wait(), Ok(Some(_))) {
                        return;
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
            })?;
        started_rx
            .recv()
            .context("the registry keeper thread died")??;
        Ok((stop_tx, keeper))
    }
}

fn spawn_registry(binary: &Path, dir: &Path) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt as _;
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg(dir.join("config.yml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}
