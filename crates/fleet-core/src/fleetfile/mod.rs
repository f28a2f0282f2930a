//! A fleet described in one file, `fleet.toml`, and the plan that converges the fleet to
//! it (`fleet apply`).
//!
//! ```toml
//! [defaults]                      # every instance's settings, as `fleet create` names them
//! image = "ghcr.io/acme/app:v1"
//! ports = [8080]
//! health_path = "/api/health"
//! env = { TZ = "UTC" }
//!
//! [groups.prod]                   # the settings of a group's instances, over the defaults
//! memory = "1g"
//!
//! [instances.alice]               # one instance, over its group's and the defaults
//! group = "prod"
//! env = { APP_URL = "https://alice.example.com" }
//! ```
//!
//! Unknown keys are errors, with the file, line and column.

mod plan;
mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use plan::{ApplyPlan, Change, KeyChange};
pub use settings::InstanceSettings;

use crate::error::Error;
use crate::name::InstanceName;
use crate::spec::InstanceSpec;

/// A fleet file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FleetFile {
    /// Every instance's settings.
    #[serde(skip_serializing_if = "is_empty")]
    pub defaults: InstanceSettings,
    /// The settings of each group's instances.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, InstanceSettings>,
    /// The instances, by name.
    pub instances: BTreeMap<String, InstanceSettings>,
}

fn is_empty(settings: &InstanceSettings) -> bool {
    *settings == InstanceSettings::default()
}

/// One instance the file describes: its spec and how to change it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Desired {
    /// The spec.
    pub spec: InstanceSpec,
    /// The update strategy for a change (`strategy`), if the file sets one.
    pub strategy: Option<crate::deployment::Strategy>,
}

impl FleetFile {
    /// Reads and checks `path`. Syntax errors, wrong types and unknown keys name the file,
    /// line and column.
    pub fn load(path: &Path) -> Result<FleetFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Reads `text` (from `path`, for messages).
    pub fn parse(text: &str, path: &Path) -> Result<FleetFile, Error> {
        toml::from_str(text).map_err(|error| Error::FleetFile {
            path: path.to_owned(),
            reason: error.to_string().trim_end().to_owned(),
        })
    }

    /// Every instance's spec, relative paths taken from `base_dir` (the file's
    /// directory). Everything that can be checked without the host is checked here:
    /// names, specs, groups that no instance uses, fixed host ports used twice.
    pub fn desired(&self, path: &Path) -> Result<Vec<Desired>, Error> {
        let base_dir: PathBuf = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
        let invalid = |reason: String| Error::FleetFile {
            path: path.to_owned(),
            reason,
        };
        let mut used_groups = BTreeSet::new();
        let mut fixed_ports: BTreeMap<u16, String> = BTreeMap::new();
        let mut desired = Vec::new();
        for (name, settings) in &self.instances {
            let name: InstanceName = name
                .parse()
                .map_err(|e| invalid(format!("[instances.{name}]: {e}")))?;
            let group = settings.group.as_ref().or(self.defaults.group.as_ref());
            let mut merged = settings.over(&self.defaults);
            if let Some(group) = group {
                used_groups.insert(group.clone());
                if let Some(group_settings) = self.groups.get(group) {
                    merged = settings.over(&group_settings.over(&self.defaults));
                }
            }
            let spec = merged.to_spec(&name, &base_dir)?;
            for port in spec.ports.iter().filter_map(|p| p.host) {
                if let Some(other) = fixed_ports.insert(port, name.to_string()) {
                    return Err(invalid(format!(
                        "instances {other} and {name} both publish host port {port}; give one another host_port, or none to get one from the range"
                    )));
                }
            }
            desired.push(Desired {
                spec,
                strategy: merged.strategy,
            });
        }
        if let Some(unused) = self.groups.keys().find(|g| !used_groups.contains(*g)) {
            return Err(invalid(format!(
                "[groups.{unused}] sets defaults for a group no instance is in; check the group names"
            )));
        }
        Ok(desired)
    }
}

#[cfg(test)]
mod tests;
