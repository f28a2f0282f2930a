//! Instance specs: everything fleet needs to run one instance, and the checks that
//! need neither the host nor the engine (ports, labels, user, health, paths, group).
//!
//! The parts with rules of their own have their own modules: `env` (env files and the
//! variables fleet reserves), `resources` (memory sizes and CPU limits), `restart`
//! (restart policies), `volume` (bind mounts), `health` (fleet's default probe
//! policy), `backup` (consistency hooks and retention) and `template` (settings
//! templated from the instance's allocation: `{{name}}`, `{{port}}`, vars).

mod backup;
mod env;
mod health;
mod resources;
mod restart;
pub mod template;
mod volume;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use fleet_health::{HealthSpec, ProbeKind};
use fleet_registry::ChannelRef;
use serde::{Deserialize, Serialize};

pub use self::backup::{BackupSettings, DEFAULT_EXEC_TIMEOUT};
pub use self::env::read_env_file;
pub use self::health::{default_policy, http_health, tcp_health};
pub use self::resources::{Resources, memory_text, parse_memory};
pub use self::restart::RestartPolicy;
use self::template::TemplateContext;
pub use self::volume::VolumeSpec;
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
    /// Environment variables set inline; they override the env file's. Values (these
    /// and the env file's) are templates: see [`template`].
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A `.env` file read each time the container is created.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// The host directory mounted at `/data` (default: `<state dir>/instances/<name>/data`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Extra bind mounts. Their host paths are templates (`{{data_dir}}/logs`).
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
    /// How the instance is backed up (consistency hook, retention).
    #[serde(default, skip_serializing_if = "BackupSettings::is_default")]
    pub backup: BackupSettings,
    /// This instance's template vars (`{{key}}`), over its group's and the fleet's
    /// (`[vars]` in `config.toml`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
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
            backup: BackupSettings::default(),
            vars: BTreeMap::new(),
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

    /// Sets a template var of this instance.
    pub fn with_var(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.to_owned(), value.to_owned());
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

    /// Sets the backup settings.
    pub fn with_backup(mut self, backup: BackupSettings) -> Self {
        self.backup = backup;
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
            env::check_key(key).map_err(invalid)?;
            env::check_value(key, value).map_err(invalid)?;
            template::check(value).map_err(self.template_error(&format!("env {key}")))?;
        }
        for key in self.vars.keys() {
            template::check_var_key(key).map_err(invalid)?;
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
            if template::is_templated(&volume.host) {
                // A templated source (`{{data_dir}}/logs`) is checked once rendered.
                let host = volume.host.to_string_lossy();
                template::check(&host).map_err(self.template_error(&format!("volume {host}")))?;
                let rendered = VolumeSpec {
                    host: PathBuf::from("/"),
                    ..volume.clone()
                };
                rendered.check().map_err(invalid)?;
            } else {
                volume.check().map_err(invalid)?;
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
        self.resources.check().map_err(invalid)?;
        self.backup.check().map_err(invalid)?;
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
        self.resources
            .check_host(host_cpus)
            .map_err(|reason| Error::InvalidSpec {
                instance: self.name.to_string(),
                reason,
            })
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

    /// The environment for the container, [`resolved`](Self::resolved_env) and each
    /// value rendered with `context`.
    pub fn rendered_env(
        &self,
        context: &TemplateContext,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut env = self.resolved_env()?;
        for (key, value) in &mut env {
            let setting = format!("env {key}");
            *value = template::render(value, context).map_err(self.template_error(&setting))?;
            env::check_value(key, value).map_err(|reason| Error::InvalidSpec {
                instance: self.name.to_string(),
                reason,
            })?;
        }
        Ok(env)
    }

    /// The extra bind mounts, each host path rendered with `context` (and then checked
    /// to be absolute).
    pub fn rendered_volumes(&self, context: &TemplateContext) -> Result<Vec<VolumeSpec>, Error> {
        self.volumes
            .iter()
            .map(|volume| {
                let Some(host) = volume
                    .host
                    .to_str()
                    .filter(|_| template::is_templated(&volume.host))
                else {
                    return Ok(volume.clone());
                };
                let rendered = VolumeSpec {
                    host: PathBuf::from(
                        template::render(host, context)
                            .map_err(self.template_error(&format!("volume {host}")))?,
                    ),
                    ..volume.clone()
                };
                rendered.check().map_err(|reason| Error::InvalidSpec {
                    instance: self.name.to_string(),
                    reason: format!("volume {host}: {reason}"),
                })?;
                Ok(rendered)
            })
            .collect()
    }

    fn template_error(&self, setting: &str) -> impl FnOnce(template::TemplateError) -> Error {
        let instance = self.name.to_string();
        let setting = setting.to_owned();
        move |problem| Error::Template {
            instance,
            setting,
            problem,
        }
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
        let redacted = |map: &BTreeMap<String, String>| -> BTreeMap<String, &str> {
            map.keys().map(|k| (k.clone(), "<redacted>")).collect()
        };
        f.debug_struct("InstanceSpec")
            .field("name", &self.name)
            .field("image", &self.image.to_string())
            .field("ports", &self.ports)
            .field("env", &redacted(&self.env))
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
            .field("backup", &self.backup)
            .field("vars", &redacted(&self.vars))
            .finish()
    }
}

/// Container labels fleet sets itself (`fleet.scope`, `fleet.instance`, ...): users
/// cannot set them, so no container can pass for another fleet's or another instance's.
const RESERVED_LABEL_PREFIX: &str = "fleet.";

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid spec to change one thing of (shared with the submodules' tests).
    pub(super) fn spec() -> InstanceSpec {
        InstanceSpec::new(
            "alice".parse().unwrap(),
            "localhost:5000/app:v1".parse().unwrap(),
        )
    }

    /// `ok`, or why `spec` is refused.
    pub(super) fn check(spec: InstanceSpec) -> String {
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
        insta::assert_snapshot!(check(spec().with_data_dir(Path::new("relative/dir"))), @"invalid spec for instance alice: data directory relative/dir must be an absolute path");
        insta::assert_snapshot!(check(spec().with_group("Prod")), @r#"invalid spec for instance alice: group "Prod" must be a short lower-case name like staging or prod"#);
    }

    fn with_label(key: &str) -> InstanceSpec {
        let mut spec = spec();
        spec.labels.insert(key.to_owned(), "x".to_owned());
        spec
    }

    /// Regression (issue 14): a user label could forge `fleet.scope`; every `fleet.*`
    /// label is fleet's own. (`FLEET_*` env keys: `env.rs`.)
    #[test]
    fn reserved_labels_are_refused() {
        insta::assert_snapshot!(check(with_label("fleet.scope")), @r#"invalid spec for instance alice: label "fleet.scope" is reserved: fleet.* labels are set by fleet; choose another key"#);
        insta::assert_snapshot!(check(with_label("fleet.anything")), @r#"invalid spec for instance alice: label "fleet.anything" is reserved: fleet.* labels are set by fleet; choose another key"#);
        insta::assert_snapshot!(check(with_label("")), @"invalid spec for instance alice: a label has an empty key");
        insta::assert_snapshot!(check(with_label("com.acme.fleet.tier")), @"ok");
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

    #[test]
    fn debug_never_shows_env_values() {
        let text = format!("{:?}", spec().with_env("PASSWORD", "hunter2"));
        assert!(
            text.contains("PASSWORD") && !text.contains("hunter2"),
            "{text}"
        );
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
