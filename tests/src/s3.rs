//! A real S3-compatible server on loopback: moto's standalone server (`moto_server`, from
//! PyPI: `pip install 'moto[server]'`).
//!
//! Each [`TestS3`] gets a free port and a bucket of its own. Start-up creates an IAM user
//! with an access key and a policy allowing `s3:*`, and the bucket.
//! [`TestS3::start_enforcing_auth`] then switches moto's authentication on
//! (`POST /moto-api/reset-auth`): from then on requests must be signed (SigV4) with that
//! key, and other keys are refused as AWS refuses them (`InvalidAccessKeyId`,
//! `SignatureDoesNotMatch`, HTTP 403). [`TestS3::start`] leaves it off, so moto accepts
//! any key: moto 5.2 recomputes the signature of a request whose query holds a `/` wrongly
//! (listing under a prefix such as `a/b/` is refused even to boto3), so only tests of
//! refused credentials, which list nothing under such a prefix with valid keys, enforce
//! it. The server is killed on drop.
//!
//! moto does not check the `x-amz-checksum-*` headers it is sent; it does enforce S3's
//! 5 MiB minimum part size.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::net::free_port;

/// The region the test server's requests are signed for.
pub const REGION: &str = "us-east-1";

/// A running moto server with one bucket and one authorised access key; killed on drop.
#[derive(Debug)]
pub struct TestS3 {
    port: u16,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl TestS3 {
    /// Starts moto on `127.0.0.1:<free port>` and creates a bucket and an access key
    /// allowed to use it; moto accepts any key.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(false).await
    }

    /// [`start`](Self::start), then enforces authentication: only the access key created
    /// is accepted.
    pub async fn start_enforcing_auth() -> anyhow::Result<Self> {
        Self::start_inner(true).await
    }

    async fn start_inner(enforce_auth: bool) -> anyhow::Result<Self> {
        let binary = require_moto()?;
        let dir = tempfile::Builder::new()
            .prefix("fleet-test-s3-")
            .tempdir()?;
        // The port can be taken between choosing and binding it: retry with a new one.
        for attempt in 1.. {
            let port = free_port()?;
            let mut child = spawn(&binary, port, dir.path())?;
            match wait_ready(port, &mut child, Duration::from_secs(30)).await {
                Ok(()) => {
                    let mut s3 = Self {
                        port,
                        bucket: format!("fleet-test-{}", crate::unique_suffix()),
                        access_key_id: String::new(),
                        secret_access_key: String::new(),
                        child,
                        dir,
                    };
                    s3.set_up(enforce_auth).await.with_context(|| {
                        format!("cannot set up moto_server; its log:\n{}", s3.log())
                    })?;
                    return Ok(s3);
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log =
                        std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default();
                    if !(log.contains("Address already in use") && attempt < 5) {
                        return Err(
                            e.context(format!("moto_server did not start; its log:\n{log}"))
                        );
                    }
                }
            }
        }
        unreachable!("the retry loop returns")
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket created for this server.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://<bucket>/<prefix>` (or `s3://<bucket>` for an empty prefix).
    pub fn url(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{prefix}", self.bucket)
        }
    }

    /// The authorised access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The authorised secret access key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// Writes an AWS credentials file holding the authorised key as profile `profile`
    /// into `dir`; returns its path.
    pub fn write_credentials_file(&self, dir: &Path, profile: &str) -> anyhow::Result<PathBuf> {
        self.write_credentials_with(dir, profile, &self.access_key_id, &self.secret_access_key)
    }

    /// Writes an AWS credentials file with the given key (to test refusals) as profile
    /// `profile` into `dir`; returns its path.
    pub fn write_credentials_with(
        &self,
        dir: &Path,
        profile: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("credentials-{profile}"));
        std::fs::write(
            &path,
            format!(
                "[{profile}]\naws_access_key_id = {access_key_id}\n\
                 aws_secret_access_key = {secret_access_key}\n"
            ),
        )?;
        Ok(path)
    }

    /// moto's own log, for test failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Creates the IAM user, its key and policy, and the bucket, then, with
    /// `enforce_auth`, enforces authentication. Until then moto checks no signature: the
    /// requests only need an `Authorization` header naming the service, which moto routes
    /// by.
    async fn set_up(&mut self, enforce_auth: bool) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let endpoint = self.endpoint();
        let unsigned = |service: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20250101/{REGION}/{service}/aws4_request, \
                 SignedHeaders=host, Signature=0"
            )
        };
        let iam = async |form: &[(&str, &str)]| -> anyhow::Result<String> {
            let response = client
                .post(&endpoint)
                .header("Authorization", unsigned("iam"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_body(form))
                .send()
                .await?;
            let status = response.status();
            let body = response.text().await?;
            if !status.is_success() {
                bail!("IAM {form:?}: {status}: {body}");
            }
            Ok(body)
        };
        let user = "fleet-test";
        iam(&[
            ("Action", "CreateUser"),
            ("UserName", user),
            ("Version", "2010-05-08"),
        ])
        .await?;
        let key = iam(&[
            ("Action", "CreateAccessKey"),
            ("UserName", user),
            ("Version", "2010-05-08"),
        ])
        .await?;
        self.access_key_id = xml_text(&key, "AccessKeyId")?;
        self.secret_access_key = xml_text(&key, "SecretAccessKey")?;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", user),
            ("PolicyName", "s3"),
            ("PolicyDocument", policy),
            ("Version", "2010-05-08"),
        ])
        .await?;
        let response = client
            .put(format!("{endpoint}/{}", self.bucket))
            .header("Authorization", unsigned("s3"))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "cannot create bucket {}: {}",
                self.bucket,
                response.text().await?
            );
        }
        if !enforce_auth {
            return Ok(());
        }
        let response = client
            .post(format!("{endpoint}/moto-api/reset-auth"))
            .header("Content-Type", "text/plain")
            .body("0")
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("cannot enforce authentication: {}", response.text().await?);
        }
        Ok(())
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `moto_server` on the `PATH` or in `~/.local/bin` (where `pip install --user`
/// puts it), or fails naming how to install it.
fn require_moto() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let user_bin = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".local/bin"));
    for dir in std::env::split_paths(&path).chain(user_bin) {
        let candidate = dir.join("moto_server");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "`moto_server` is not installed, and the S3 tests need it: install it with \
         `python3 -m pip install 'moto[server]'`, or run `cargo xtask test`, which installs it"
    )
}

fn spawn(binary: &Path, port: u16, dir: &Path) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt as _;
    let log = std::fs::File::create(dir.join("moto.log"))?;
    let mut command = Command::new(binary);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // A test process that dies, even by SIGKILL, takes the server with it. (The signal is
    // sent when the spawning *thread* ends; the server is killed on drop long before the
    // runtime's threads end, and a killed test process ends them all.)
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

async fn wait_ready(port: u16, child: &mut Child, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("http://127.0.0.1:{port}/moto-api/");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if child.try_wait()?.is_some() {
            bail!("moto_server exited during start-up");
        }
        if Instant::now() > deadline {
            bail!("moto_server did not answer on 127.0.0.1:{port} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `application/x-www-form-urlencoded` text.
fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The text of the first `<tag>` in an XML answer.
fn xml_text(xml: &str, tag: &str) -> anyhow::Result<String> {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .with_context(|| format!("no <{tag}> in {xml}"))?
        + open.len();
    let end = start + xml[start..].find('<').context("unterminated element")?;
    Ok(xml[start..end].to_owned())
}
