//! What `fleet apply` would change: instances to create, to change (and which keys), to
//! remove, and those already as the file says.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Desired;
use crate::name::InstanceName;
use crate::spec::InstanceSpec;

/// The plan that converges a fleet to its file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ApplyPlan {
    /// Instances the file names and the fleet does not have.
    pub create: Vec<InstanceName>,
    /// Instances whose settings differ, with the keys that do.
    pub change: Vec<Change>,
    /// Instances the fleet has and the file does not name (removed with `--prune`).
    pub remove: Vec<InstanceName>,
    /// Instances already as the file says.
    pub unchanged: Vec<InstanceName>,
    /// The desired specs (and strategies), by instance.
    #[serde(skip)]
    pub desired: Vec<Desired>,
}

/// One instance to change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// The instance.
    pub instance: InstanceName,
    /// The keys that differ, old → new.
    pub keys: Vec<KeyChange>,
}

/// One setting that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyChange {
    /// The key, dotted (`env.TZ`, `resources.memory_bytes`).
    pub key: String,
    /// The value now (`null` when unset).
    pub old: serde_json::Value,
    /// The value the file asks for.
    pub new: serde_json::Value,
}

impl ApplyPlan {
    /// The plan from what the fleet has (`current`) to what the file asks (`desired`).
    pub fn new(current: &[InstanceSpec], desired: Vec<Desired>) -> ApplyPlan {
        let have: BTreeMap<&InstanceName, &InstanceSpec> =
            current.iter().map(|spec| (&spec.name, spec)).collect();
        let mut plan = ApplyPlan {
            create: Vec::new(),
            change: Vec::new(),
            remove: Vec::new(),
            unchanged: Vec::new(),
            desired: Vec::new(),
        };
        for wanted in &desired {
            let name = &wanted.spec.name;
            match have.get(name) {
                None => plan.create.push(name.clone()),
                Some(spec) if **spec == wanted.spec => plan.unchanged.push(name.clone()),
                Some(spec) => plan.change.push(Change {
                    instance: name.clone(),
                    keys: diff(spec, &wanted.spec),
                }),
            }
        }
        plan.remove = current
            .iter()
            .filter(|spec| !desired.iter().any(|d| d.spec.name == spec.name))
            .map(|spec| spec.name.clone())
            .collect();
        plan.desired = desired;
        plan
    }

    /// Whether applying would change anything (removals count only with `prune`).
    pub fn is_empty(&self, prune: bool) -> bool {
        self.create.is_empty() && self.change.is_empty() && (!prune || self.remove.is_empty())
    }
}

/// The keys whose values differ between two specs, dotted, in order.
pub(crate) fn diff(old: &InstanceSpec, new: &InstanceSpec) -> Vec<KeyChange> {
    let mut old_keys = BTreeMap::new();
    flatten(
        "",
        &serde_json::to_value(old).unwrap_or_default(),
        &mut old_keys,
    );
    let mut new_keys = BTreeMap::new();
    flatten(
        "",
        &serde_json::to_value(new).unwrap_or_default(),
        &mut new_keys,
    );
    let mut keys: Vec<&String> = old_keys.keys().chain(new_keys.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let old = old_keys
                .get(key)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            let new = new_keys
                .get(key)
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            (old != new).then(|| KeyChange {
                key: key.clone(),
                old,
                new,
            })
        })
        .collect()
}

/// `{"env": {"TZ": "UTC"}}` → `env.TZ = "UTC"`; arrays are values of their own.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        serde_json::Value::Null => {}
        value => {
            out.insert(prefix.to_owned(), value.clone());
        }
    }
}
