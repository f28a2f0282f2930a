//! Instance specs: everything fleet needs to run one instance.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fleet_health::{HealthSpec, ProbeKind, ProbePolicy};
use fleet_registry::ChannelRef;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::name::InstanceName;

/// Where the data directory is mounted in the container.
pub const DATA_MOUNT: &str = "/data";

/// The full description of one instance, as stored and as given to `Fleet::create`.
///
/// ```
/// use fleet_core::{InstanceSpec, PortSpec};
///
/// let spec = InstanceSpec::new("alice".parse()?, "ghcr.io/acme/app:v1".parse()?)
///     .with_port(PortSpec::auto(8080))
///     .with_env("TZ", "Europe/Paris");
/// spec.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceSpec {
    /// The instance name.
    pub name: InstanceName,
    /// The image and the channel it follows (`ghcr.io/acme/app:v1`).
    pub image: ChannelRef,
    /// Container ports and the host ports they are published on.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Environment variables set inline; they override the env file's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A `.env` file read each time the container is created.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// The host directory mounted at `/data` (default: `<state dir>/instances/<name>/data`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Extra bind mounts.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// How fleet tells that the instance is healthy.
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// A command Docker runs inside the container as its `HEALTHCHECK`, with the timings
    /// of `health`'s policy, so `docker ps` shows health too (`["/app", "healthcheck"]`).
    #[serde(default)]
    pub docker_healthcheck: Option<Vec<String>>,
    /// Memory and CPU limits.
    #[serde(default)]
    pub resources: Resources,
    /// What the engine does when the container exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The user the container runs as (`uid[:gid]`); default: the image's.
    #[serde(default)]
    pub user: Option<String>,
    /// Extra container labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A group such as `staging` or `prod`.
    #[serde(default)]
    pub group: Option<String>,
}

/// One container port and where it is published on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The port inside the container.
    pub container: u16,
    /// A fixed host port, or `None` to allocate one from the range.
    #[serde(default)]
    pub host: Option<u16>,
}

impl PortSpec {
    /// Publishes `container` on an allocated host port.
    pub fn auto(container: u16) -> Self {
        Self {
            container,
            host: None,
        }
    }

    /// Publishes `container` on host port `host`.
    pub fn fixed(container: u16, host: u16) -> Self {
        Self {
            container,
            host: Some(host),
        }
    }
}

/// An extra bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// The host path.
    pub host: PathBuf,
    /// The path in the container.
    pub container: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

impl FromStr for VolumeSpec {
    type Err = String;

    /// Parses `HOST:CONTAINER[:ro|rw]`.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [host, container] => (host, container, false),
            [host, container, "ro"] => (host, container, true),
            [host, container, "rw"] => (host, container, false),
            _ => return Err(format!("volume {text:?} is not HOST:CONTAINER[:ro]")),
        };
        Ok(Self {
            host: PathBuf::from(host),
            container: (*container).to_owned(),
            read_only,
        })
    }
}

/// The probe policy fleet uses unless a spec says otherwise: quicker than Docker's
/// defaults (30 s between probes), because fleet gates deployments on it.
///
/// Probes every 250 ms while the app starts (failures in the first 60 s do not count),
/// every 2 s after that, each cut at 2 s; 1 success makes it healthy, 3 counted failures
/// unhealthy, and the whole wait ends after 90 s.
pub fn default_policy() -> ProbePolicy {
    ProbePolicy {
        start_period: std::time::Duration::from_secs(60),
        start_interval: std::time::Duration::from_millis(250),
        interval: std::time::Duration::from_secs(2),
        timeout: std::time::Duration::from_secs(2),
        deadline: std::time::Duration::from_secs(90),
        ..ProbePolicy::default()
    }
}

/// An HTTP health check of `path` with fleet's [`default_policy`].
pub fn http_health(path: &str) -> HealthSpec {
    let mut health = HealthSpec::default();
    health.path = path.to_owned();
    health.policy = default_policy();
    health
}

/// A TCP health check (the port accepts connections) with fleet's [`default_policy`].
pub fn tcp_health() -> HealthSpec {
    let mut health = http_health("/");
    health.kind = ProbeKind::Tcp;
    health
}

/// Memory and CPU limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// CPU limit in CPUs (`1.5`).
    #[serde(default)]
    pub cpus: Option<f64>,
}

/// Parses a Docker-style memory size: `512m`, `1g`, `1.5g`, `65536` (bytes); binary units.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower.strip_suffix('b').unwrap_or(&lower);
    let (number, unit) = match trimmed
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
    {
        Some((at, _)) => trimmed.split_at(at),
        None => (trimmed, ""),
    };
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => {
            return Err(format!(
                "memory size {text:?}: unknown unit {unit:?} (use k, m, g)"
            ));
        }
    };
    let not_a_number = || format!("memory size {text:?} is not a number with a unit such as 512m");
    let too_large = || format!("memory size {text:?} is more than the 8 EiB Docker accepts");
    // Whole numbers are multiplied exactly; fractions (`1.5g`) go through f64.
    let bytes = if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
        number
            .parse::<u64>()
            .ok()
            .and_then(|value| value.checked_mul(factor))
            .ok_or_else(too_large)?
    } else {
        let value: f64 = number.parse().map_err(|_| not_a_number())?;
        if !value.is_finite() {
            return Err(not_a_number());
        }
        let bytes = value * factor as f64;
        // `i64::MAX as f64` rounds up to 2^63: anything at or above it is too large.
        if bytes >= MEMORY_MAX as f64 {
            return Err(too_large());
        }
        bytes as u64
    };
    if bytes == 0 {
        return Err(format!("memory size {text:?} must be positive"));
    }
    if bytes > MEMORY_MAX {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The largest memory limit Docker takes (its API field is a signed 64-bit number).
const MEMORY_MAX: u64 = i64::MAX as u64;

/// What the engine does when the container exits (Docker's restart policies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Always restart.
    Always,
    /// Restart unless stopped by the operator (the default).
    #[default]
    UnlessStopped,
    /// Restart after a failure, at most this many times (0: no limit).
    OnFailure(u32),
}

impl FromStr for RestartPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text.split_once(':') {
            None if text == "no" => Self::No,
            None if text == "always" => Self::Always,
            None if text == "unless-stopped" => Self::UnlessStopped,
            None if text == "on-failure" => Self::OnFailure(0),
            Some(("on-failure", n)) => Self::OnFailure(
                n.parse()
                    .map_err(|_| format!("restart policy {text:?}: {n:?} is not a count"))?,
            ),
            _ => {
                return Err(format!(
                    "restart policy {text:?} is not one of no, always, unless-stopped, on-failure[:N]"
                ));
            }
        })
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::No => f.write_str("no"),
            Self::Always => f.write_str("always"),
            Self::UnlessStopped => f.write_str("unless-stopped"),
            Self::OnFailure(0) => f.write_str("on-failure"),
            Self::OnFailure(n) => write!(f, "on-failure:{n}"),
        }
    }
}

impl InstanceSpec {
    /// A spec with defaults: no ports, no env, the default data directory, no health check.
    pub fn new(name: InstanceName, image: ChannelRef) -> Self {
        Self {
            name,
            image,
            ports: Vec::new(),
            env: BTreeMap::new(),
            env_file: None,
            data_dir: None,
            volumes: Vec::new(),
            health: None,
            docker_healthcheck: None,
            resources: Resources::default(),
            restart: RestartPolicy::default(),
            user: None,
            labels: BTreeMap::new(),
            group: None,
        }
    }

    /// Adds a port.
    pub fn with_port(mut self, port: PortSpec) -> Self {
        self.ports.push(port);
        self
    }

    /// Sets an environment variable.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the health spec.
    pub fn with_health(mut self, health: HealthSpec) -> Self {
        self.health = Some(health);
        self
    }

    /// Sets the data directory.
    pub fn with_data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Sets the group.
    pub fn with_group(mut self, group: &str) -> Self {
        self.group = Some(group.to_owned());
        self
    }

    /// Checks what can be checked without the host or the engine.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidSpec {
            instance: self.name.to_string(),
            reason,
        };
        let mut seen_container = std::collections::BTreeSet::new();
        let mut seen_host = std::collections::BTreeSet::new();
        for port in &self.ports {
            if port.container == 0 {
                return Err(invalid("container port 0 is not a port".into()));
            }
            if !seen_container.insert(port.container) {
                return Err(invalid(format!(
                    "container port {} is listed twice",
                    port.container
                )));
            }
            if let Some(host) = port.host {
                if host == 0 {
                    return Err(invalid(
                        "host port 0 is not a port (omit it to allocate one)".into(),
                    ));
                }
                if !seen_host.insert(host) {
                    return Err(invalid(format!("host port {host} is listed twice")));
                }
            }
        }
        for (key, value) in &self.env {
            check_env_key(key).map_err(invalid)?;
            check_env_value(key, value).map_err(invalid)?;
        }
        for key in self.labels.keys() {
            check_label_key(key).map_err(invalid)?;
        }
        if let Some(user) = &self.user {
            check_user(user).map_err(invalid)?;
        }
        if let Some(health) = &self.health {
            let port = health.port.or(self.ports.first().map(|p| p.container));
            match port {
                None => {
                    return Err(invalid(
                        "its health check needs a port, and it publishes none".into(),
                    ));
                }
                Some(port) if !self.ports.iter().any(|p| p.container == port) => {
                    return Err(invalid(format!(
                        "health port {port} is not one of the instance's ports"
                    )));
                }
                Some(_) => {}
            }
            if health.kind != ProbeKind::Tcp && !health.path.starts_with('/') {
                return Err(invalid(format!(
                    "health path {:?} must start with '/'",
                    health.path
                )));
            }
        }
        for volume in &self.volumes {
            if !volume.container.starts_with('/') {
                return Err(invalid(format!(
                    "volume target {:?} must be an absolute path",
                    volume.container
                )));
            }
            if volume.container == DATA_MOUNT {
                return Err(invalid(format!(
                    "{DATA_MOUNT} is where the data directory is mounted; choose the data directory instead of a volume there"
                )));
            }
            if !volume.host.is_absolute() {
                return Err(invalid(format!(
                    "volume source {} must be an absolute path",
                    volume.host.display()
                )));
            }
        }
        if let Some(dir) = &self.data_dir
            && !dir.is_absolute()
        {
            return Err(invalid(format!(
                "data directory {} must be an absolute path",
                dir.display()
            )));
        }
        if let Some(memory) = self.resources.memory_bytes {
            if memory < 6 * 1024 * 1024 {
                return Err(invalid(format!(
                    "memory limit {memory} bytes is below Docker's minimum of 6 MiB"
                )));
            }
            if memory > MEMORY_MAX {
                return Err(invalid(format!(
                    "memory limit {memory} bytes is more than the 8 EiB Docker accepts"
                )));
            }
        }
        if let Some(cpus) = self.resources.cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return Err(invalid(format!(
                    "CPU limit {cpus} must be a positive number"
                )));
            }
            if cpus < CPUS_MIN {
                return Err(invalid(format!(
                    "CPU limit {cpus} is below Docker's minimum of {CPUS_MIN}"
                )));
            }
        }
        if let Some(group) = &self.group {
            group.parse::<InstanceName>().map_err(|_| {
                invalid(format!(
                    "group {group:?} must be a short lower-case name like staging or prod"
                ))
            })?;
        }
        Ok(())
    }

    /// Checks the spec against the host it runs on, which has `host_cpus` CPUs: Docker
    /// refuses a CPU limit above them.
    pub fn check_host_limits(&self, host_cpus: usize) -> Result<(), Error> {
        if let Some(cpus) = self.resources.cpus
            && cpus > host_cpus as f64
        {
            return Err(Error::InvalidSpec {
                instance: self.name.to_string(),
                reason: format!("CPU limit {cpus} is more than the host's {host_cpus} CPUs"),
            });
        }
        Ok(())
    }

    /// The environment for the container: the env file (if any) overlaid with inline env.
    pub fn resolved_env(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut env = match &self.env_file {
            Some(path) => read_env_file(path)?,
            None => BTreeMap::new(),
        };
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(env)
    }

    /// The container port health is probed on.
    pub fn health_port(&self) -> Option<u16> {
        let health = self.health.as_ref()?;
        health.port.or(self.ports.first().map(|p| p.container))
    }
}

impl fmt::Debug for InstanceSpec {
    // Environment values can be secrets: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: BTreeMap<&str, &str> = self
            .env
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("InstanceSpec")
            .field("name", &self.name)
            .field("image", &self.image.to_string())
            .field("ports", &self.ports)
            .field("env", &env)
            .field("env_file", &self.env_file)
            .field("data_dir", &self.data_dir)
            .field("volumes", &self.volumes)
            .field("health", &self.health)
            .field("docker_healthcheck", &self.docker_healthcheck)
            .field("resources", &self.resources)
            .field("restart", &self.restart)
            .field("user", &self.user)
            .field("labels", &self.labels)
            .field("group", &self.group)
            .finish()
    }
}

/// The smallest CPU limit Docker takes.
const CPUS_MIN: f64 = 0.01;

/// Environment variables fleet sets itself (`FLEET_INSTANCE`): users cannot set them.
const RESERVED_ENV_PREFIX: &str = "FLEET_";

/// Container labels fleet sets itself (`fleet.scope`, `fleet.instance`, ...): users
/// cannot set them, so no container can pass for another fleet's or another instance's.
const RESERVED_LABEL_PREFIX: &str = "fleet.";

fn check_env_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && !key.as_bytes()[0].is_ascii_digit()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if !valid {
        return Err(format!("environment variable name {key:?} is not valid"));
    }
    if key.starts_with(RESERVED_ENV_PREFIX) {
        return Err(format!(
            "environment variable {key} is reserved: {RESERVED_ENV_PREFIX}* variables are set by fleet; choose another name"
        ));
    }
    Ok(())
}

/// A value no process can receive: the kernel ends each environment entry at a NUL.
/// Other control characters (newlines in a PEM key, tabs) are valid, and Docker passes
/// them on. The message never shows the value: it may be a secret.
fn check_env_value(key: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!(
            "environment variable {key} holds a NUL byte, which no process environment can carry"
        ));
    }
    Ok(())
}

fn check_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a label has an empty key".into());
    }
    if key.starts_with(RESERVED_LABEL_PREFIX) {
        return Err(format!(
            "label {key:?} is reserved: {RESERVED_LABEL_PREFIX}* labels are set by fleet; choose another key"
        ));
    }
    Ok(())
}

/// `user[:group]` as Docker reads it: each part a numeric id or a name looked up in
/// the image. Only numeric ids let fleet hand the data directory to the user.
fn check_user(user: &str) -> Result<(), String> {
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (user, None),
    };
    check_user_part(user, "user", uid)?;
    if let Some(gid) = gid {
        check_user_part(user, "group", gid)?;
    }
    Ok(())
}

fn check_user_part(user: &str, what: &str, part: &str) -> Result<(), String> {
    // u32::MAX is (uid_t)-1, which chown and setuid read as "no change".
    const ID_MAX: u32 = u32::MAX - 1;
    let context = if part == user {
        String::new()
    } else {
        format!("user {user:?}: ")
    };
    if part.is_empty() {
        return Err(format!(
            "user {user:?} has an empty {what}; write uid[:gid] (1000:1000) or a name"
        ));
    }
    if part.bytes().all(|b| b.is_ascii_digit()) {
        return match part.parse::<u32>() {
            Ok(id) if id <= ID_MAX => Ok(()),
            _ => Err(format!("{context}{what} id {part} is more than {ID_MAX}")),
        };
    }
    let bytes = part.as_bytes();
    let body = bytes.strip_suffix(b"$").unwrap_or(bytes);
    let name_ok = bytes.len() <= 32
        && body
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name_ok {
        Ok(())
    } else {
        Err(format!(
            "{context}{what} {part:?} is neither a numeric id nor a name"
        ))
    }
}

/// Reads a `.env` file: `KEY=value` lines, `#` comments, blank lines, optional `export `,
/// and values in single or double quotes (as docker compose reads them).
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::EnvFile {
        path: path.to_owned(),
        reason: format!("cannot read it: {e}"),
    })?;
    parse_env(&text).map_err(|reason| Error::EnvFile {
        path: path.to_owned(),
        reason,
    })
}

fn parse_env(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=value", index + 1));
        };
        let key = key.trim();
        let at_line = |e| format!("line {}: {e}", index + 1);
        check_env_key(key).map_err(at_line)?;
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some('"'), Some('"')) if value.len() >= 2 => value[1..value.len() - 1]
                .replace("\\n", "\n")
                .replace("\\\"", "\""),
            (Some('\''), Some('\'')) if value.len() >= 2 => value[1..value.len() - 1].to_owned(),
            _ => value
                .split(" #")
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_owned(),
        };
        check_env_value(key, &value).map_err(at_line)?;
        env.insert(key.to_owned(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InstanceSpec {
        InstanceSpec::new(
            "alice".parse().unwrap(),
            "localhost:5000/app:v1".parse().unwrap(),
        )
    }

    fn check(spec: InstanceSpec) -> String {
        match spec.validate() {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn validation() {
        insta::assert_snapshot!(check(spec()), @"ok");
        insta::assert_snapshot!(check(spec().with_port(PortSpec::auto(8080)).with_health(http_health("/api/health"))), @"ok");
        insta::assert_snapshot!(check(spec().with_health(http_health("/h"))), @"invalid spec for instance alice: its health check needs a port, and it publishes none");
        insta::assert_snapshot!(check(spec().with_port(PortSpec::auto(80)).with_health(http_health("h"))), @r#"invalid spec for instance alice: health path "h" must start with '/'"#);
        insta::assert_snapshot!(check(spec().with_port(PortSpec::auto(80)).with_port(PortSpec::auto(80))), @"invalid spec for instance alice: container port 80 is listed twice");
        insta::assert_snapshot!(check(spec().with_port(PortSpec::fixed(80, 5001)).with_port(PortSpec::fixed(81, 5001))), @"invalid spec for instance alice: host port 5001 is listed twice");
        insta::assert_snapshot!(check(spec().with_port(PortSpec::auto(0))), @"invalid spec for instance alice: container port 0 is not a port");
        insta::assert_snapshot!(check(spec().with_env("1BAD", "x")), @r#"invalid spec for instance alice: environment variable name "1BAD" is not valid"#);
        insta::assert_snapshot!(check(spec().with_data_dir(Path::new("relative/dir"))), @"invalid spec for instance alice: data directory relative/dir must be an absolute path");
        insta::assert_snapshot!(check(spec().with_group("Prod")), @r#"invalid spec for instance alice: group "Prod" must be a short lower-case name like staging or prod"#);
        let mut small = spec();
        small.resources.memory_bytes = Some(1024);
        insta::assert_snapshot!(check(small), @"invalid spec for instance alice: memory limit 1024 bytes is below Docker's minimum of 6 MiB");
        let mut data_volume = spec();
        data_volume.volumes.push("/srv/x:/data".parse().unwrap());
        insta::assert_snapshot!(check(data_volume), @"invalid spec for instance alice: /data is where the data directory is mounted; choose the data directory instead of a volume there");
    }

    fn with_label(key: &str) -> InstanceSpec {
        let mut spec = spec();
        spec.labels.insert(key.to_owned(), "x".to_owned());
        spec
    }

    /// Regression (issue 14): a user label could forge `fleet.scope`, and an env key
    /// `FLEET_INSTANCE`; every `fleet.*` label and `FLEET_*` key is fleet's own.
    #[test]
    fn reserved_labels_and_env_keys_are_refused() {
        insta::assert_snapshot!(check(with_label("fleet.scope")), @r#"invalid spec for instance alice: label "fleet.scope" is reserved: fleet.* labels are set by fleet; choose another key"#);
        insta::assert_snapshot!(check(with_label("fleet.anything")), @r#"invalid spec for instance alice: label "fleet.anything" is reserved: fleet.* labels are set by fleet; choose another key"#);
        insta::assert_snapshot!(check(with_label("")), @"invalid spec for instance alice: a label has an empty key");
        insta::assert_snapshot!(check(with_label("com.acme.fleet.tier")), @"ok");
        insta::assert_snapshot!(check(spec().with_env("FLEET_INSTANCE", "bob")), @"invalid spec for instance alice: environment variable FLEET_INSTANCE is reserved: FLEET_* variables are set by fleet; choose another name");
        insta::assert_snapshot!(check(spec().with_env("FLEET_X", "1")), @"invalid spec for instance alice: environment variable FLEET_X is reserved: FLEET_* variables are set by fleet; choose another name");
        insta::assert_snapshot!(check(spec().with_env("MY_FLEET_X", "1")), @"ok");
        insta::assert_snapshot!(parse_env("A=1\nFLEET_INSTANCE=bob\n").unwrap_err(), @"line 2: environment variable FLEET_INSTANCE is reserved: FLEET_* variables are set by fleet; choose another name");
    }

    /// Regression (issue 14): a NUL byte in an env value reached the engine, whose error
    /// then echoed the value (a secret, maybe). Refused, naming only the key.
    #[test]
    fn nul_bytes_in_env_values_are_refused_without_the_value() {
        insta::assert_snapshot!(check(spec().with_env("TOKEN", "sec\0ret")), @"invalid spec for instance alice: environment variable TOKEN holds a NUL byte, which no process environment can carry");
        insta::assert_snapshot!(parse_env("A=1\nTOKEN=sec\0ret\n").unwrap_err(), @"line 2: environment variable TOKEN holds a NUL byte, which no process environment can carry");
        // Other control characters are valid in an environment.
        insta::assert_snapshot!(check(spec().with_env("PEM", "line 1\nline 2\tend")), @"ok");
    }

    fn with_user(user: &str) -> String {
        let mut spec = spec();
        spec.user = Some(user.to_owned());
        check(spec)
    }

    /// Regression (issue 14): `--user` was not checked before it reached the engine.
    #[test]
    fn users_are_ids_or_names() {
        insta::assert_snapshot!(with_user("1000"), @"ok");
        insta::assert_snapshot!(with_user("1000:1000"), @"ok");
        insta::assert_snapshot!(with_user("0:0"), @"ok");
        insta::assert_snapshot!(with_user("app"), @"ok");
        insta::assert_snapshot!(with_user("abc"), @"ok");
        insta::assert_snapshot!(with_user("app:staff"), @"ok");
        insta::assert_snapshot!(with_user("1000:staff"), @"ok");
        insta::assert_snapshot!(with_user("_apt"), @"ok");
        insta::assert_snapshot!(with_user("-5"), @r#"invalid spec for instance alice: user "-5" is neither a numeric id nor a name"#);
        insta::assert_snapshot!(with_user("99999999999"), @"invalid spec for instance alice: user id 99999999999 is more than 4294967294");
        insta::assert_snapshot!(with_user("4294967295"), @"invalid spec for instance alice: user id 4294967295 is more than 4294967294");
        insta::assert_snapshot!(with_user("1000:"), @r#"invalid spec for instance alice: user "1000:" has an empty group; write uid[:gid] (1000:1000) or a name"#);
        insta::assert_snapshot!(with_user(":1000"), @r#"invalid spec for instance alice: user ":1000" has an empty user; write uid[:gid] (1000:1000) or a name"#);
        insta::assert_snapshot!(with_user(""), @r#"invalid spec for instance alice: user "" has an empty user; write uid[:gid] (1000:1000) or a name"#);
        insta::assert_snapshot!(with_user("1000:99999999999"), @r#"invalid spec for instance alice: user "1000:99999999999": group id 99999999999 is more than 4294967294"#);
        insta::assert_snapshot!(with_user("1000:1000:1000"), @r#"invalid spec for instance alice: user "1000:1000:1000": group "1000:1000" is neither a numeric id nor a name"#);
        insta::assert_snapshot!(with_user("a b"), @r#"invalid spec for instance alice: user "a b" is neither a numeric id nor a name"#);
        insta::assert_snapshot!(with_user(&"a".repeat(33)), @r#"invalid spec for instance alice: user "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" is neither a numeric id nor a name"#);
    }

    fn with_cpus(cpus: f64) -> InstanceSpec {
        let mut spec = spec();
        spec.resources.cpus = Some(cpus);
        spec
    }

    /// Regression (issue 14): `--cpus 9999` reached the engine.
    #[test]
    fn cpu_limits() {
        insta::assert_snapshot!(check(with_cpus(1.5)), @"ok");
        insta::assert_snapshot!(check(with_cpus(0.0)), @"invalid spec for instance alice: CPU limit 0 must be a positive number");
        insta::assert_snapshot!(check(with_cpus(0.001)), @"invalid spec for instance alice: CPU limit 0.001 is below Docker's minimum of 0.01");
        let host = |spec: InstanceSpec, cpus| match spec.check_host_limits(cpus) {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        insta::assert_snapshot!(host(with_cpus(2.0), 2), @"ok");
        insta::assert_snapshot!(host(spec(), 2), @"ok");
        insta::assert_snapshot!(host(with_cpus(9999.0), 2), @"invalid spec for instance alice: CPU limit 9999 is more than the host's 2 CPUs");
        insta::assert_snapshot!(host(with_cpus(2.5), 2), @"invalid spec for instance alice: CPU limit 2.5 is more than the host's 2 CPUs");
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("1g"), Ok(1 << 30));
        assert_eq!(parse_memory("1.5G"), Ok(3 << 29));
        assert_eq!(parse_memory("64kb"), Ok(64 << 10));
        assert_eq!(parse_memory("65536"), Ok(65536));
        insta::assert_snapshot!(parse_memory("12x").unwrap_err(), @r#"memory size "12x": unknown unit "x" (use k, m, g)"#);
        insta::assert_snapshot!(parse_memory("m").unwrap_err(), @r#"memory size "m" is not a number with a unit such as 512m"#);
        insta::assert_snapshot!(parse_memory("0").unwrap_err(), @r#"memory size "0" must be positive"#);
        insta::assert_snapshot!(parse_memory("-5m").unwrap_err(), @r#"memory size "-5m" must be positive"#);
    }

    /// Regression (issue 14): `9000000000g` overflowed and reached the engine as a
    /// negative number.
    #[test]
    fn memory_sizes_too_large_are_refused() {
        insta::assert_snapshot!(parse_memory("9000000000g").unwrap_err(), @r#"memory size "9000000000g" is more than the 8 EiB Docker accepts"#);
        insta::assert_snapshot!(parse_memory("8388608t").unwrap_err(), @r#"memory size "8388608t" is more than the 8 EiB Docker accepts"#);
        insta::assert_snapshot!(parse_memory("8388607.99999999999t").unwrap_err(), @r#"memory size "8388607.99999999999t" is more than the 8 EiB Docker accepts"#);
        insta::assert_snapshot!(parse_memory("99999999999999999999").unwrap_err(), @r#"memory size "99999999999999999999" is more than the 8 EiB Docker accepts"#);
        assert_eq!(parse_memory("8388607t"), Ok(8_388_607 << 40));
        assert_eq!(parse_memory("9223372036854775807"), Ok(i64::MAX as u64));
        assert_eq!(
            parse_memory("9223372036854775808").unwrap_err(),
            r#"memory size "9223372036854775808" is more than the 8 EiB Docker accepts"#
        );
        let mut huge = spec();
        huge.resources.memory_bytes = Some(u64::MAX);
        insta::assert_snapshot!(check(huge), @"invalid spec for instance alice: memory limit 18446744073709551615 bytes is more than the 8 EiB Docker accepts");
    }

    #[test]
    fn env_files() {
        let env = parse_env("# comment\n\nA=1\nexport B = two words \nC=\"quoted # not comment\"\nD='single'\nE=x # comment\nF=\n").unwrap();
        insta::assert_debug_snapshot!(env, @r#"
        {
            "A": "1",
            "B": "two words",
            "C": "quoted # not comment",
            "D": "single",
            "E": "x",
            "F": "",
        }
        "#);
        insta::assert_snapshot!(parse_env("A=1\nnot a pair\n").unwrap_err(), @"line 2: expected KEY=value");
        insta::assert_snapshot!(parse_env("9A=1\n").unwrap_err(), @r#"line 1: environment variable name "9A" is not valid"#);
    }

    #[test]
    fn debug_never_shows_env_values() {
        let text = format!("{:?}", spec().with_env("PASSWORD", "hunter2"));
        assert!(
            text.contains("PASSWORD") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn restart_policies_round_trip() {
        for text in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            assert_eq!(text.parse::<RestartPolicy>().unwrap().to_string(), text);
        }
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn specs_survive_json() {
        let spec = spec()
            .with_port(PortSpec::fixed(8080, 5005))
            .with_env("A", "b")
            .with_health(http_health("/api/health"));
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<InstanceSpec>(&json).unwrap(), spec);
    }
}
