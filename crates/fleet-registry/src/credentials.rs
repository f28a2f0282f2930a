//! Registry credentials: from `~/.docker/config.json` (`auths`, `credHelpers`,
//! `credsStore` through the `docker-credential-<name>` protocol) or given directly.
//!
//! Secrets live in [`Secret`], whose `Debug` never shows them, and nothing here logs one.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;

use crate::error::Error;

/// Docker Hub's key in `config.json` and for credential helpers.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// The host names Docker Hub goes by.
const DOCKER_HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// A password or token. `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How to authenticate to one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// A username and a password or personal access token (sent as Basic auth, to the
    /// registry or to its token service).
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: Secret,
    },
    /// An OAuth refresh token (`identitytoken`), exchanged at the token service.
    IdentityToken(Secret),
    /// A bearer token sent to the registry as is (`registrytoken`).
    RegistryToken(Secret),
}

impl Credentials {
    /// A username and password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }
}

/// Where a [`Client`](crate::Client) finds credentials.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum CredentialSource {
    /// `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json` (the default).
    #[default]
    DockerConfig,
    /// The `config.json` in this directory (what `DOCKER_CONFIG` would name).
    DockerConfigDir(PathBuf),
    /// These credentials, by registry (`ghcr.io`, `docker.io`, `127.0.0.1:5000`).
    Static(HashMap<String, Credentials>),
    /// None: anonymous access only.
    Anonymous,
}

impl CredentialSource {
    /// Finds the credentials for `registry` (as in [`ImageRef::registry`](crate::ImageRef::registry)).
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        match self {
            CredentialSource::Anonymous => Ok(None),
            CredentialSource::Static(map) => Ok(map
                .iter()
                .find(|(key, _)| same_registry(&hostname(key), registry))
                .map(|(_, credentials)| credentials.clone())),
            CredentialSource::DockerConfig => {
                let Some(dir) = default_config_dir() else {
                    return Ok(None);
                };
                DockerConfig::load(&dir)?.lookup(registry, None).await
            }
            CredentialSource::DockerConfigDir(dir) => {
                DockerConfig::load(dir)?.lookup(registry, None).await
            }
        }
    }

    /// The file credentials come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Anonymous => "anonymous access".to_owned(),
            CredentialSource::Static(_) => "the credentials given to the client".to_owned(),
            CredentialSource::DockerConfig => match default_config_dir() {
                Some(dir) => dir.join("config.json").display().to_string(),
                None => "~/.docker/config.json (no home directory)".to_owned(),
            },
            CredentialSource::DockerConfigDir(dir) => dir.join("config.json").display().to_string(),
        }
    }
}

fn default_config_dir() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::home_dir().map(|home| home.join(".docker")),
    }
}

/// `https://ghcr.io/v2/` → `ghcr.io`, like the Docker CLI's `ConvertToHostname`.
fn hostname(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key).to_owned()
}

fn same_registry(host: &str, registry: &str) -> bool {
    host == registry || (DOCKER_HUB_HOSTS.contains(&host) && DOCKER_HUB_HOSTS.contains(&registry))
}

/// The parts of `config.json` that hold credentials. No `Debug`: it holds secrets.
#[derive(serde::Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

/// What a credential helper prints for `get`.
#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

impl DockerConfig {
    /// Reads `dir/config.json`; a missing file is an empty configuration.
    fn load(dir: &Path) -> Result<DockerConfig, Error> {
        let path = dir.join("config.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig::default());
            }
            Err(source) => return Err(Error::DockerConfig { path, source }),
        };
        serde_json::from_str(&text).map_err(|error| Error::DockerConfig {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
        })
    }

    /// Docker's order: a `credHelpers` entry for the registry, else `credsStore`, else
    /// `auths`. (Docker stops at an empty `credsStore` answer; falling back to `auths`
    /// is kinder and changes nothing when the store has the entry.) `helper_dir` is
    /// where to find `docker-credential-*` instead of `PATH` (tests).
    async fn lookup(
        &self,
        registry: &str,
        helper_dir: Option<&Path>,
    ) -> Result<Option<Credentials>, Error> {
        let server = if DOCKER_HUB_HOSTS.contains(&registry) {
            DOCKER_HUB_SERVER
        } else {
            registry
        };
        if let Some((_, helper)) = self
            .cred_helpers
            .iter()
            .find(|(key, _)| same_registry(&hostname(key), registry))
        {
            return run_helper(helper, server, registry, helper_dir).await;
        }
        if let Some(store) = self
            .creds_store
            .as_deref()
            .filter(|store| !store.is_empty())
            && let Some(credentials) = run_helper(store, server, registry, helper_dir).await?
        {
            return Ok(Some(credentials));
        }
        let entry = self
            .auths
            .iter()
            .find(|(key, _)| same_registry(&hostname(key), registry));
        Ok(entry.and_then(|(_, entry)| entry.credentials()))
    }
}

impl AuthEntry {
    fn credentials(&self) -> Option<Credentials> {
        if let Some(token) = self.registrytoken.as_deref().filter(|t| !t.is_empty()) {
            return Some(Credentials::RegistryToken(Secret::new(token)));
        }
        if let Some(token) = self.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Some(Credentials::IdentityToken(Secret::new(token)));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (username, password) = decoded.split_once(':')?;
            return Some(Credentials::basic(username, password));
        }
        match (&self.username, &self.password) {
            (Some(username), Some(password)) if !username.is_empty() => {
                Some(Credentials::basic(username, password.as_str()))
            }
            _ => None,
        }
    }
}

/// Runs `docker-credential-<helper> get` with the server on stdin.
async fn run_helper(
    helper: &str,
    server: &str,
    registry: &str,
    helper_dir: Option<&Path>,
) -> Result<Option<Credentials>, Error> {
    let failed = |message: String| Error::CredentialHelper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        message,
    };
    let program = format!("docker-credential-{helper}");
    let program = match helper_dir {
        Some(dir) => dir.join(program),
        None => PathBuf::from(program),
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => failed(format!("{} is not on PATH", program.display())),
            _ => failed(format!("cannot run {}: {error}", program.display())),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading (nothing stored, say): its exit status and
        // output tell what happened, not the broken pipe. Dropping stdin closes it.
        match stdin.write_all(server.as_bytes()).await {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(failed(format!("cannot write to it: {error}")));
            }
            _ => {}
        }
    }
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("no answer within {}s", HELPER_TIMEOUT.as_secs())))?
        .map_err(|error| failed(format!("cannot wait for it: {error}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // The protocol's answer for "no entry"; anything else is a failure.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = if stdout.trim().is_empty() {
            stderr.trim()
        } else {
            stdout.trim()
        };
        return Err(failed(format!("{}: {said}", output.status)));
    }
    let answer: HelperAnswer = serde_json::from_str(&stdout)
        .map_err(|error| failed(format!("unreadable answer: {error}")))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == "<token>" {
        Credentials::IdentityToken(Secret::new(answer.secret))
    } else {
        Credentials::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn config(json: &str) -> DockerConfig {
        serde_json::from_str(json).unwrap()
    }

    async fn check(json: &str, registry: &str, helper_dir: Option<&Path>) -> String {
        match config(json).lookup(registry, helper_dir).await {
            Ok(Some(Credentials::Basic { username, password })) => {
                format!("basic {username}:{}", password.expose())
            }
            Ok(Some(Credentials::IdentityToken(token))) => format!("identity {}", token.expose()),
            Ok(Some(Credentials::RegistryToken(token))) => format!("registry {}", token.expose()),
            Ok(None) => "none".to_owned(),
            Err(error) => format!("error: {error}"),
        }
    }

    #[tokio::test]
    async fn auths_entries() {
        // "user:pa:ss" in base64: the password may hold colons.
        let json = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
            "http://127.0.0.1:5000": {"username": "alice", "password": "s3cret"},
            "ghcr.io": {"identitytoken": "refresh"},
            "quay.io": {"registrytoken": "bearer"},
            "empty.example": {}
        }}"#;
        assert_eq!(check(json, "docker.io", None).await, "basic user:pa:ss");
        assert_eq!(
            check(json, "127.0.0.1:5000", None).await,
            "basic alice:s3cret"
        );
        assert_eq!(check(json, "ghcr.io", None).await, "identity refresh");
        assert_eq!(check(json, "quay.io", None).await, "registry bearer");
        assert_eq!(check(json, "empty.example", None).await, "none");
        assert_eq!(check(json, "127.0.0.1:5001", None).await, "none");
        assert_eq!(check("{}", "docker.io", None).await, "none");
    }

    fn fake_helper(dir: &Path, name: &str, script: &str) {
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Regression test: a helper that exits without reading its stdin made the write
    /// fail with a broken pipe, which was reported instead of the helper's answer.
    #[tokio::test]
    async fn credential_helpers() {
        let dir = tempfile::tempdir().unwrap();
        // Echoes the server it was asked about, so the test sees the protocol's input.
        fake_helper(
            dir.path(),
            "echo",
            r#"read server; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"p"}' "$server" "$server""#,
        );
        fake_helper(
            dir.path(),
            "token",
            r#"printf '{"ServerURL":"x","Username":"<token>","Secret":"t"}'"#,
        );
        fake_helper(
            dir.path(),
            "missing",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        fake_helper(dir.path(), "broken", "echo 'boom' >&2; exit 3");
        let helpers = Some(dir.path());

        let json = r#"{"credHelpers": {"ghcr.io": "echo", "docker.io": "echo", "tok.example": "token", "gone.example": "missing", "bad.example": "broken", "nope.example": "absent"},
                       "auths": {"gone.example": {"auth": "dTpw"}}}"#;
        assert_eq!(check(json, "ghcr.io", helpers).await, "basic u-ghcr.io:p");
        assert_eq!(
            check(json, "docker.io", helpers).await,
            "basic u-https://index.docker.io/v1/:p"
        );
        assert_eq!(check(json, "tok.example", helpers).await, "identity t");
        // A helper entry wins over auths, as in Docker, even when it has nothing.
        assert_eq!(check(json, "gone.example", helpers).await, "none");
        assert_eq!(
            check(json, "bad.example", helpers).await,
            "error: credential helper docker-credential-broken failed for bad.example: exit status: 3: boom"
        );
        assert!(
            check(json, "nope.example", helpers)
                .await
                .ends_with("docker-credential-absent is not on PATH")
        );

        // credsStore for everything else, falling back to auths when it has no entry.
        let json = r#"{"credsStore": "missing", "auths": {"a.example": {"auth": "dTpw"}}}"#;
        assert_eq!(check(json, "a.example", helpers).await, "basic u:p");
        let json = r#"{"credsStore": "echo", "auths": {"a.example": {"auth": "dTpw"}}}"#;
        assert_eq!(
            check(json, "a.example", helpers).await,
            "basic u-a.example:p"
        );
    }

    #[tokio::test]
    async fn config_files() {
        let dir = tempfile::tempdir().unwrap();
        let source = CredentialSource::DockerConfigDir(dir.path().to_owned());
        assert_eq!(source.lookup("ghcr.io").await.unwrap(), None);
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {"ghcr.io": {"auth": "dTpw"}}}"#,
        )
        .unwrap();
        assert_eq!(
            source.lookup("ghcr.io").await.unwrap(),
            Some(Credentials::basic("u", "p"))
        );
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let error = source.lookup("ghcr.io").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read Docker credentials from {}",
                dir.path().join("config.json").display()
            )
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let credentials = Credentials::basic("alice", "hunter2");
        let debug = format!("{credentials:?}");
        assert_eq!(
            debug,
            r#"Basic { username: "alice", password: <redacted> }"#
        );
        let source = CredentialSource::Static(HashMap::from([(
            "x".to_owned(),
            Credentials::IdentityToken(Secret::new("tok")),
        )]));
        assert!(!format!("{source:?}").contains("tok"));
    }
}
