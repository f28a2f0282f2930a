//! The event log: what happened to which instance, when.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Store, now_ms, timestamp};
use crate::error::Error;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The instance was created.
    Created,
    /// Its container was started.
    Started,
    /// Its container was stopped.
    Stopped,
    /// Its health changed.
    HealthChanged,
    /// It was removed.
    Removed,
    /// Reconciliation repaired something.
    Reconciled,
    /// A backup was taken.
    BackedUp,
    /// A new version was deployed (an update or a rollback).
    Deployed,
    /// Its data was restored from a backup (or a restore was undone).
    Restored,
    /// An operation on it failed.
    Error,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Started => "started",
            Self::Stopped => "stopped",
            Self::HealthChanged => "health_changed",
            Self::Removed => "removed",
            Self::Reconciled => "reconciled",
            Self::BackedUp => "backed_up",
            Self::Deployed => "deployed",
            Self::Restored => "restored",
            Self::Error => "error",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "created" => Self::Created,
            "started" => Self::Started,
            "stopped" => Self::Stopped,
            "health_changed" => Self::HealthChanged,
            "removed" => Self::Removed,
            "reconciled" => Self::Reconciled,
            "backed_up" => Self::BackedUp,
            "deployed" => Self::Deployed,
            "restored" => Self::Restored,
            _ => Self::Error,
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Its sequence number.
    pub id: i64,
    /// When it happened.
    pub at: jiff::Timestamp,
    /// The instance, if it concerns one.
    pub instance: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// A sentence for people.
    pub message: String,
}

impl Store {
    /// Records an event.
    pub(crate) fn record_event(
        &self,
        instance: Option<&str>,
        kind: EventKind,
        message: &str,
    ) -> Result<(), Error> {
        self.write("record event", |tx| {
            tx.execute(
                "INSERT INTO events (at, instance, kind, message) VALUES (?1, ?2, ?3, ?4)",
                params![now_ms(), instance, kind.as_str(), message],
            )
            .map_err(|e| self.error("record event", e))?;
            Ok(())
        })
    }

    /// The last `limit` events, oldest first, optionally of one instance.
    pub(crate) fn events(&self, instance: Option<&str>, limit: usize) -> Result<Vec<Event>, Error> {
        self.read("read events", |c| {
            let mut statement = c.prepare(
                "SELECT id, at, instance, kind, message FROM events
                 WHERE ?1 IS NULL OR instance = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let mut events: Vec<Event> = statement
                .query_map(params![instance, limit as i64], |r| {
                    Ok(Event {
                        id: r.get(0)?,
                        at: timestamp(r.get(1)?),
                        instance: r.get(2)?,
                        kind: EventKind::parse(&r.get::<_, String>(3)?),
                        message: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            events.reverse();
            Ok(events)
        })
    }
}
