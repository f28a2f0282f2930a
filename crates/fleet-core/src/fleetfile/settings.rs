//! One instance's settings as `fleet.toml` writes them: every setting `fleet create`
//! takes, by the same names (snake_case), all optional so defaults and groups can fill
//! them in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deployment::Strategy;
use crate::error::Error;
use crate::name::InstanceName;
use crate::spec::{
    BackupSettings, InstanceSpec, PortSpec, RestartPolicy, VolumeSpec, http_health, parse_memory,
    tcp_health,
};

/// An instance's settings in `fleet.toml` (`[defaults]`, `[groups.NAME]`,
/// `[instances.NAME]`). Unknown keys are errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct InstanceSettings {
    /// The image and the channel it follows (`ghcr.io/acme/app:v1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Container ports, each published on a host port from the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// The host port of the first container port, instead of one from the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Environment variables; a group's and an instance's add to the defaults'.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A `.env` file (relative to the fleet file's directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<PathBuf>,
    /// Values for the `{{key}}` templates of env values and volume paths; a group's and
    /// an instance's add to the defaults'.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The group (`staging`, `prod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Probe this HTTP path for health (otherwise TCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// The container port to probe (default: the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_port: Option<u16>,
    /// No health check at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_health: Option<bool>,
    /// Failed probes do not count while the app starts, for this long.
    #[serde(with = "optional_duration", skip_serializing_if = "Option::is_none")]
    pub health_start_period: Option<Duration>,
    /// Time between probes once started.
    #[serde(with = "optional_duration", skip_serializing_if = "Option::is_none")]
    pub health_interval: Option<Duration>,
    /// Give up waiting for healthy after this long.
    #[serde(with = "optional_duration", skip_serializing_if = "Option::is_none")]
    pub health_deadline: Option<Duration>,
    /// The host directory mounted at /data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Extra bind mounts, `HOST:CONTAINER[:ro]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<String>>,
    /// Memory limit (`512m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// CPU limit (`1.5`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Restart policy (`unless-stopped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// The user to run as (`uid[:gid]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Container labels; a group's and an instance's add to the defaults'.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Backup consistency and retention (`backup.exec`, `backup.stop`, `keep_last`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSettings>,
    /// How `fleet apply` replaces a container whose settings changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

/// `mine` if set, else `theirs`.
fn pick<T: Clone>(mine: &Option<T>, theirs: &Option<T>) -> Option<T> {
    mine.clone().or_else(|| theirs.clone())
}

impl InstanceSettings {
    /// These settings over `base`: a value set here wins; maps add up.
    pub fn over(&self, base: &InstanceSettings) -> InstanceSettings {
        let mut env = base.env.clone();
        env.extend(self.env.clone());
        let mut labels = base.labels.clone();
        labels.extend(self.labels.clone());
        let mut vars = base.vars.clone();
        vars.extend(self.vars.clone());
        InstanceSettings {
            image: pick(&self.image, &base.image),
            ports: pick(&self.ports, &base.ports),
            host_port: self.host_port.or(base.host_port),
            env,
            env_file: pick(&self.env_file, &base.env_file),
            vars,
            group: pick(&self.group, &base.group),
            health_path: pick(&self.health_path, &base.health_path),
            health_port: self.health_port.or(base.health_port),
            no_health: self.no_health.or(base.no_health),
            health_start_period: self.health_start_period.or(base.health_start_period),
            health_interval: self.health_interval.or(base.health_interval),
            health_deadline: self.health_deadline.or(base.health_deadline),
            data_dir: pick(&self.data_dir, &base.data_dir),
            volumes: pick(&self.volumes, &base.volumes),
            memory: pick(&self.memory, &base.memory),
            cpus: self.cpus.or(base.cpus),
            restart: pick(&self.restart, &base.restart),
            user: pick(&self.user, &base.user),
            labels,
            backup: pick(&self.backup, &base.backup),
            strategy: self.strategy.or(base.strategy),
        }
    }

    /// The instance spec these settings describe, as `fleet create` with the same flags
    /// would make it; relative paths are taken from `base_dir`.
    pub fn to_spec(&self, name: &InstanceName, base_dir: &Path) -> Result<InstanceSpec, Error> {
        let invalid = |reason: String| Error::InvalidSpec {
            instance: name.to_string(),
            reason,
        };
        let image = self
            .image
            .as_deref()
            .ok_or_else(|| invalid("it has no image; set `image` in it or in [defaults]".into()))?
            .parse()
            .map_err(|e: fleet_registry::Error| invalid(format!("image: {e}")))?;
        let mut spec = InstanceSpec::new(name.clone(), image);
        let ports = self.ports.clone().unwrap_or_default();
        for (index, port) in ports.iter().enumerate() {
            let host = if index == 0 { self.host_port } else { None };
            spec = spec.with_port(PortSpec {
                container: *port,
                host,
            });
        }
        if self.host_port.is_some() && ports.is_empty() {
            return Err(invalid(
                "host_port needs ports: it publishes the first one".into(),
            ));
        }
        spec.env = self.env.clone();
        spec.vars = self.vars.clone();
        spec.labels = self.labels.clone();
        let absolute = |path: &Path| {
            if path.is_absolute() {
                path.to_owned()
            } else {
                base_dir.join(path)
            }
        };
        spec.env_file = self.env_file.as_deref().map(absolute);
        spec.data_dir = self.data_dir.as_deref().map(absolute);
        spec.group.clone_from(&self.group);
        spec.user.clone_from(&self.user);
        for volume in self.volumes.iter().flatten() {
            let mut volume: VolumeSpec = volume.parse()?;
            volume.host = absolute(&volume.host);
            spec.volumes.push(volume);
        }
        if let Some(restart) = &self.restart {
            spec.restart = restart.parse::<RestartPolicy>()?;
        }
        spec.resources.memory_bytes = self.memory.as_deref().map(parse_memory).transpose()?;
        spec.resources.cpus = self.cpus;
        spec.backup = self.backup.clone().unwrap_or_default();
        let health_asked = self.health_path.is_some() || self.health_port.is_some();
        if !self.no_health.unwrap_or(false) && (!ports.is_empty() || health_asked) {
            let mut health = match &self.health_path {
                Some(path) => http_health(path),
                None => tcp_health(),
            };
            health.port = self.health_port;
            if let Some(start_period) = self.health_start_period {
                health.policy.start_period = start_period;
            }
            if let Some(interval) = self.health_interval {
                health.policy.interval = interval;
            }
            if let Some(deadline) = self.health_deadline {
                health.policy.deadline = deadline;
            }
            spec.health = Some(health);
        }
        spec.validate()?;
        Ok(spec)
    }
}

impl InstanceSettings {
    /// The settings that describe `spec`, as `fleet create`'s flags would say it: only
    /// what differs from its defaults (what `fleet edit` changes, `fleet export --format
    /// toml` writes, and what `to_spec` turns back into the same spec).
    pub fn from_spec(spec: &InstanceSpec) -> InstanceSettings {
        let defaults = crate::spec::default_policy();
        let health = spec.health.as_ref();
        let policy = |pick: fn(&fleet_health::ProbePolicy) -> Duration| {
            health
                .map(|h| pick(&h.policy))
                .filter(|d| *d != pick(&defaults))
        };
        InstanceSettings {
            image: Some(spec.image.to_string()),
            ports: (!spec.ports.is_empty())
                .then(|| spec.ports.iter().map(|p| p.container).collect()),
            host_port: spec.ports.first().and_then(|p| p.host),
            env: spec.env.clone(),
            env_file: spec.env_file.clone(),
            vars: spec.vars.clone(),
            group: spec.group.clone(),
            health_path: health
                .filter(|h| h.kind != fleet_health::ProbeKind::Tcp)
                .map(|h| h.path.clone()),
            health_port: health.and_then(|h| h.port),
            // With ports, `fleet create` probes TCP unless told otherwise.
            no_health: (health.is_none() && !spec.ports.is_empty()).then_some(true),
            health_start_period: policy(|p| p.start_period),
            health_interval: policy(|p| p.interval),
            health_deadline: policy(|p| p.deadline),
            data_dir: spec.data_dir.clone(),
            volumes: (!spec.volumes.is_empty()).then(|| {
                spec.volumes
                    .iter()
                    .map(|v| {
                        let mode = if v.read_only { ":ro" } else { "" };
                        format!("{}:{}{mode}", v.host.display(), v.container)
                    })
                    .collect()
            }),
            memory: spec.resources.memory_bytes.map(crate::spec::memory_text),
            cpus: spec.resources.cpus,
            restart: (spec.restart != RestartPolicy::default()).then(|| spec.restart.to_string()),
            user: spec.user.clone(),
            labels: spec.labels.clone(),
            backup: (!spec.backup.is_default()).then(|| spec.backup.clone()),
            strategy: None,
        }
    }

    /// These settings with `set` (`KEY=VALUE`: a TOML value, or else text; dotted keys
    /// reach into tables, `env.TZ=UTC`) and `unset` (keys removed) applied. Unknown keys
    /// and wrong types are errors naming them.
    pub fn edit(
        &self,
        set: &[(String, String)],
        unset: &[String],
    ) -> Result<InstanceSettings, Error> {
        let invalid = |reason: String| Error::InvalidSetting { reason };
        let mut table = toml::Table::try_from(self)
            .map_err(|e| invalid(format!("cannot edit these settings: {e}")))?;
        for key in unset {
            let (parent, last) = walk(&mut table, key, false).map_err(invalid)?;
            if parent.remove(last).is_none() {
                return Err(invalid(format!("{key} is not set")));
            }
        }
        for (key, text) in set {
            let value = text
                .parse::<toml::Value>()
                .or_else(|_| {
                    format!("v = {text}")
                        .parse::<toml::Table>()
                        .map(|t| t["v"].clone())
                })
                .unwrap_or_else(|_| toml::Value::String(text.clone()));
            let (parent, last) = walk(&mut table, key, true).map_err(invalid)?;
            parent.insert(last.to_owned(), value);
        }
        table.try_into().map_err(|e: toml::de::Error| {
            let keys: Vec<&str> = set
                .iter()
                .map(|(k, _)| k.as_str())
                .chain(unset.iter().map(String::as_str))
                .collect();
            invalid(format!("cannot set {}: {}", keys.join(", "), e.message()))
        })
    }
}

/// The table holding the last part of a dotted key, and that part.
fn walk<'t, 'k>(
    table: &'t mut toml::Table,
    key: &'k str,
    create: bool,
) -> Result<(&'t mut toml::Table, &'k str), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("{key:?} is not a key"))?;
    let mut current = table;
    for part in parts {
        if create && !current.contains_key(part) {
            current.insert(part.to_owned(), toml::Value::Table(toml::Table::new()));
        }
        current = current
            .get_mut(part)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| format!("{key}: {part} is not a table of settings"))?;
    }
    Ok((current, last))
}

/// An optional duration as humantime text (`"30s"`).
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Text(#[serde(with = "fleet_health::human_duration")] Duration);

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(Text).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Text>::deserialize(deserializer)?.map(|Text(d)| d))
    }
}
