//! Instance rows: the spec and what fleet last deployed for it.

use rusqlite::{OptionalExtension as _, Row, params};
use serde::{Deserialize, Serialize};

use super::{Store, now_ms, timestamp};
use fleet_registry::Digest;

use crate::error::Error;
use crate::health::Health;
use crate::name::InstanceName;
use crate::spec::InstanceSpec;

/// Whether the operator wants the instance running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// It should run (after `create`, `start`).
    Running,
    /// It should not run (after `create --no-start`, `stop`).
    Stopped,
}

impl DesiredState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }
}

/// One instance as the store knows it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InstanceRecord {
    /// The spec it was created with.
    pub spec: InstanceSpec,
    /// Incremented each time a new container is made for it.
    pub generation: u64,
    /// The tag its channel resolved to when it was last deployed.
    pub tag: Option<String>,
    /// The digest it should be running.
    pub digest: Option<Digest>,
    /// The container running it.
    pub container_id: Option<String>,
    /// Whether it should run.
    pub desired: DesiredState,
    /// The health last recorded for its current container (`healthy`, `unhealthy`, ...);
    /// cleared when a new container is deployed.
    pub last_health: Option<Health>,
    /// Whether fleet created its data directory at `create` (and so may delete it).
    pub data_dir_created: bool,
    /// When it was created.
    pub created_at: jiff::Timestamp,
    /// When its row last changed.
    pub updated_at: jiff::Timestamp,
}

/// What recording a health verdict did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthRecorded {
    /// The store already had this verdict (or is read-only).
    Unchanged,
    /// The verdict changed from `previous` (`None`: none was recorded).
    Changed {
        /// The verdict recorded before.
        previous: Option<Health>,
    },
}

const COLUMNS: &str = "spec, generation, tag, digest, container_id, desired, last_health, created_at, updated_at, data_dir_created";

fn from_row(row: &Row<'_>) -> rusqlite::Result<InstanceRecord> {
    let spec: String = row.get(0)?;
    let spec = serde_json::from_str(&spec).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let desired: String = row.get(5)?;
    Ok(InstanceRecord {
        spec,
        generation: row.get::<_, i64>(1)? as u64,
        tag: row.get(2)?,
        digest: row
            .get::<_, Option<String>>(3)?
            .map(|text| text.parse::<Digest>())
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        container_id: row.get(4)?,
        desired: if desired == "stopped" {
            DesiredState::Stopped
        } else {
            DesiredState::Running
        },
        // A word this build does not know (written by a newer fleet) says nothing.
        last_health: row
            .get::<_, Option<String>>(6)?
            .and_then(|text| text.parse().ok()),
        created_at: timestamp(row.get(7)?),
        updated_at: timestamp(row.get(8)?),
        data_dir_created: row.get(9)?,
    })
}

fn spec_json(spec: &InstanceSpec) -> String {
    // An InstanceSpec always serialises: it holds only strings, numbers and maps.
    serde_json::to_string(spec).unwrap_or_default()
}

impl Store {
    /// Inserts a new instance; fails with [`Error::InstanceExists`] if the name is taken.
    pub(crate) fn insert_instance(
        &self,
        spec: &InstanceSpec,
        desired: DesiredState,
    ) -> Result<(), Error> {
        self.write("insert instance", |tx| {
            let now = now_ms();
            let inserted = tx
                .execute(
                    "INSERT INTO instances (name, spec, created_at, updated_at, desired) VALUES (?1, ?2, ?3, ?3, ?4)
                     ON CONFLICT (name) DO NOTHING",
                    params![spec.name.as_str(), spec_json(spec), now, desired.as_str()],
                )
                .map_err(|e| self.error("insert instance", e))?;
            if inserted == 0 {
                return Err(Error::InstanceExists { name: spec.name.to_string() });
            }
            Ok(())
        })
    }

    /// The instance named `name`, if any.
    pub(crate) fn instance(&self, name: &InstanceName) -> Result<Option<InstanceRecord>, Error> {
        self.read("read instance", |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM instances WHERE name = ?1"),
                [name.as_str()],
                from_row,
            )
            .optional()
        })
    }

    /// Every instance, by name.
    pub(crate) fn instances(&self) -> Result<Vec<InstanceRecord>, Error> {
        self.read("list instances", |c| {
            let mut statement =
                c.prepare(&format!("SELECT {COLUMNS} FROM instances ORDER BY name"))?;
            statement.query_map([], from_row)?.collect()
        })
    }

    /// Records a new deployment of the instance: its generation, tag, digest and container.
    /// The health recorded for the previous container no longer says anything: it is
    /// cleared.
    pub(crate) fn set_deployed(
        &self,
        name: &InstanceName,
        generation: u64,
        tag: Option<&str>,
        digest: &Digest,
        container_id: &str,
    ) -> Result<(), Error> {
        self.update(name, "record deployment", |tx| {
            tx.execute(
                "UPDATE instances SET generation = ?2, tag = ?3, digest = ?4, container_id = ?5, last_health = NULL, updated_at = ?6 WHERE name = ?1",
                params![name.as_str(), generation as i64, tag, digest.as_str(), container_id, now_ms()],
            )
        })
    }

    /// Replaces the instance's stored spec (after a deployment of it succeeded).
    pub(crate) fn set_spec(&self, spec: &InstanceSpec) -> Result<(), Error> {
        self.update(&spec.name, "record spec", |tx| {
            tx.execute(
                "UPDATE instances SET spec = ?2, updated_at = ?3 WHERE name = ?1",
                params![spec.name.as_str(), spec_json(spec), now_ms()],
            )
        })
    }

    /// Records that fleet created the instance's data directory.
    pub(crate) fn set_data_dir_created(&self, name: &InstanceName) -> Result<(), Error> {
        self.update(name, "record data directory", |tx| {
            tx.execute(
                "UPDATE instances SET data_dir_created = 1, updated_at = ?2 WHERE name = ?1",
                params![name.as_str(), now_ms()],
            )
        })
    }

    /// Sets whether the instance should run.
    pub(crate) fn set_desired(
        &self,
        name: &InstanceName,
        desired: DesiredState,
    ) -> Result<(), Error> {
        self.update(name, "set desired state", |tx| {
            tx.execute(
                "UPDATE instances SET desired = ?2, updated_at = ?3 WHERE name = ?1",
                params![name.as_str(), desired.as_str(), now_ms()],
            )
        })
    }

    /// Records the health last seen; returns the previous value when it changed.
    ///
    /// A read-only store records nothing and reports no change: the health last seen is
    /// a note, and reading a fleet's status must work where its store cannot be written.
    pub(crate) fn set_health(
        &self,
        name: &InstanceName,
        health: Health,
    ) -> Result<HealthRecorded, Error> {
        if self.read_only {
            return Ok(HealthRecorded::Unchanged);
        }
        self.write("record health", |tx| {
            let previous: Option<Option<String>> = tx
                .query_row(
                    "SELECT last_health FROM instances WHERE name = ?1",
                    [name.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.error("record health", e))?;
            let Some(previous) = previous else {
                return Err(Error::NoSuchInstance {
                    name: name.to_string(),
                });
            };
            let previous: Option<Health> = previous.and_then(|text| text.parse().ok());
            if previous == Some(health) {
                return Ok(HealthRecorded::Unchanged);
            }
            tx.execute(
                "UPDATE instances SET last_health = ?2 WHERE name = ?1",
                params![name.as_str(), health.to_string()],
            )
            .map_err(|e| self.error("record health", e))?;
            Ok(HealthRecorded::Changed { previous })
        })
    }

    /// Deletes the instance, its port allocations and its lease.
    pub(crate) fn delete_instance(&self, name: &InstanceName) -> Result<(), Error> {
        self.write("delete instance", |tx| {
            let run = |sql: &str| {
                tx.execute(sql, [name.as_str()])
                    .map_err(|e| self.error("delete instance", e))
            };
            run("DELETE FROM ports WHERE instance = ?1")?;
            run("DELETE FROM leases WHERE instance = ?1")?;
            run("DELETE FROM routes WHERE instance = ?1")?;
            if run("DELETE FROM instances WHERE name = ?1")? == 0 {
                return Err(Error::NoSuchInstance {
                    name: name.to_string(),
                });
            }
            Ok(())
        })
    }

    fn update(
        &self,
        name: &InstanceName,
        context: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<usize>,
    ) -> Result<(), Error> {
        self.write(context, |tx| {
            match f(tx).map_err(|e| self.error(context, e))? {
                0 => Err(Error::NoSuchInstance {
                    name: name.to_string(),
                }),
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("fleet.db")).unwrap();
        (dir, store)
    }

    fn spec(name: &str) -> InstanceSpec {
        InstanceSpec::new(
            name.parse().unwrap(),
            "localhost:5000/app:v1".parse().unwrap(),
        )
    }

    #[test]
    fn instances_round_trip_and_names_are_unique() {
        let (_dir, store) = store();
        store
            .insert_instance(&spec("bob"), DesiredState::Running)
            .unwrap();
        store
            .insert_instance(&spec("alice"), DesiredState::Stopped)
            .unwrap();
        let error = store
            .insert_instance(&spec("alice"), DesiredState::Running)
            .unwrap_err();
        assert_eq!(error.to_string(), "instance alice already exists");
        let names: Vec<String> = store
            .instances()
            .unwrap()
            .iter()
            .map(|r| r.spec.name.to_string())
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        let alice = "alice".parse().unwrap();
        store
            .set_deployed(
                &alice,
                1,
                Some("v1.4.2"),
                &"sha256:abababababababababababababababababababababababababababababababab"
                    .parse()
                    .unwrap(),
                "c0ffee",
            )
            .unwrap();
        let record = store.instance(&alice).unwrap().unwrap();
        assert_eq!(
            (
                record.generation,
                record.tag.as_deref(),
                record.digest.as_ref().map(fleet_registry::Digest::as_str),
                record.container_id.as_deref()
            ),
            (
                1,
                Some("v1.4.2"),
                Some("sha256:abababababababababababababababababababababababababababababababab"),
                Some("c0ffee")
            )
        );
        assert_eq!(record.desired, DesiredState::Stopped);
        store.delete_instance(&alice).unwrap();
        assert!(store.instance(&alice).unwrap().is_none());
        assert!(matches!(
            store.delete_instance(&alice),
            Err(Error::NoSuchInstance { .. })
        ));
        assert!(matches!(
            store.set_desired(&alice, DesiredState::Running),
            Err(Error::NoSuchInstance { .. })
        ));
    }

    #[test]
    fn health_changes_are_reported_once() {
        let (_dir, store) = store();
        store
            .insert_instance(&spec("a"), DesiredState::Running)
            .unwrap();
        let a = "a".parse().unwrap();
        let changed = |previous| HealthRecorded::Changed { previous };
        assert_eq!(
            store.set_health(&a, Health::Healthy).unwrap(),
            changed(None)
        );
        assert_eq!(
            store.set_health(&a, Health::Healthy).unwrap(),
            HealthRecorded::Unchanged
        );
        assert_eq!(
            store.set_health(&a, Health::Unhealthy).unwrap(),
            changed(Some(Health::Healthy))
        );
        assert_eq!(
            store.instance(&a).unwrap().unwrap().last_health,
            Some(Health::Unhealthy)
        );
    }
}
