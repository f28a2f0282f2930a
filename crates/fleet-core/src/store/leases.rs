//! Per-instance leases: at most one operation on an instance at a time, across processes.
//!
//! A lease is a row (instance, owner, operation, expiry). Taking one fails with
//! [`Error::Busy`] while another owner's unexpired lease exists; an expired lease (its
//! holder crashed or hung) is taken over, and so is the lease of a holder that is a dead
//! process on this host (a killed `fleet create` need not block the next for the lease's
//! lifetime). Long operations renew their lease.

use std::time::Duration;

use rusqlite::{OptionalExtension as _, params};

use super::{Store, now_ms};
use crate::error::Error;
use crate::name::InstanceName;

/// A lease held on an instance by an operation in progress (see [`FleetState::lease_holder`](crate::FleetState::lease_holder)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The instance.
    pub instance: InstanceName,
    /// Who holds it (`host:pid:nonce`).
    pub owner: String,
    /// What for (`create`, `update`, ...).
    pub operation: String,
}

impl Store {
    /// Takes the lease on `instance` for `ttl`, unless another owner holds an unexpired one.
    pub(crate) fn acquire_lease(
        &self,
        instance: &InstanceName,
        owner: &str,
        operation: &str,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        self.write("acquire lease", |tx| {
            let now = now_ms();
            let held: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT owner, operation, expires_at FROM leases WHERE instance = ?1",
                    [instance.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| self.error("acquire lease", e))?;
            if let Some((holder, held_for, expires_at)) = held
                && holder != owner
                && expires_at > now
                && !holder_is_dead(&holder)
            {
                return Err(Error::Busy {
                    instance: instance.to_string(),
                    operation: held_for,
                    owner: holder,
                    expires_in_secs: (expires_at - now + 999) / 1000,
                });
            }
            tx.execute(
                "INSERT INTO leases (instance, owner, operation, acquired_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (instance) DO UPDATE SET owner = ?2, operation = ?3, acquired_at = ?4, expires_at = ?5",
                params![instance.as_str(), owner, operation, now, now + ttl.as_millis() as i64],
            )
            .map_err(|e| self.error("acquire lease", e))?;
            Ok(Lease { instance: instance.clone(), owner: owner.to_owned(), operation: operation.to_owned() })
        })
    }

    /// The unexpired lease on `instance` whose holder may be alive, if any.
    pub(crate) fn lease_holder(&self, instance: &InstanceName) -> Result<Option<Lease>, Error> {
        let lease = self.read("read lease", |c| {
            c.query_row(
                "SELECT owner, operation FROM leases WHERE instance = ?1 AND expires_at > ?2",
                params![instance.as_str(), now_ms()],
                |r| {
                    Ok(Lease {
                        instance: instance.clone(),
                        owner: r.get(0)?,
                        operation: r.get(1)?,
                    })
                },
            )
            .optional()
        })?;
        Ok(lease.filter(|lease| !holder_is_dead(&lease.owner)))
    }

    /// Extends a lease this owner holds; `false` if it was lost (expired and taken).
    pub(crate) fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, Error> {
        self.write("renew lease", |tx| {
            let changed = tx
                .execute(
                    "UPDATE leases SET expires_at = ?3 WHERE instance = ?1 AND owner = ?2",
                    params![
                        lease.instance.as_str(),
                        lease.owner,
                        now_ms() + ttl.as_millis() as i64
                    ],
                )
                .map_err(|e| self.error("renew lease", e))?;
            Ok(changed == 1)
        })
    }

    /// Releases a lease this owner holds (a no-op if it was lost).
    pub(crate) fn release_lease(&self, lease: &Lease) -> Result<(), Error> {
        self.write("release lease", |tx| {
            tx.execute(
                "DELETE FROM leases WHERE instance = ?1 AND owner = ?2",
                params![lease.instance.as_str(), lease.owner],
            )
            .map_err(|e| self.error("release lease", e))?;
            Ok(())
        })
    }
}

/// Whether `owner` (`host:pid:nonce`) is a process of this host that no longer exists.
/// Anything else (another host, a live process, one of another user, an owner string
/// of another form) may be alive. A PID namespace that shares this host's name (a
/// container with the host's UTS namespace) sharing this store would defeat this; fleet
/// does not share a state directory that way.
fn holder_is_dead(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(_nonce), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Some(pid) = pid.parse::<i32>().ok().filter(|pid| *pid > 0) else {
        return false;
    };
    let Ok(this_host) = nix::unistd::gethostname() else {
        return false;
    };
    host == this_host.to_string_lossy()
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `host:pid:nonce` for a process of this host.
    fn local_owner(pid: u32) -> String {
        let host = nix::unistd::gethostname().unwrap();
        format!("{}:{pid}:abc123", host.to_string_lossy())
    }

    /// Regression: a killed `fleet create` held its lease for its whole lifetime (30 s),
    /// although its holder, a process of this host, was gone.
    #[test]
    fn a_lease_held_by_a_dead_local_process_is_taken_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("fleet.db")).unwrap();
        let name: InstanceName = "alice".parse().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        store
            .acquire_lease(&name, &local_owner(dead), "create", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            store.lease_holder(&name).unwrap(),
            None,
            "a dead holder holds nothing"
        );
        let taken = store
            .acquire_lease(&name, "other:1:b", "start", Duration::from_secs(60))
            .unwrap();
        assert_eq!(taken.owner, "other:1:b");

        // A live holder of this host (this test), or a holder of another host whose PID
        // is free here, still holds it.
        let alive = local_owner(std::process::id());
        let other: InstanceName = "bob".parse().unwrap();
        for holder in [alive.as_str(), &format!("elsewhere:{dead}:abc123")] {
            store
                .acquire_lease(&other, holder, "create", Duration::from_secs(60))
                .unwrap();
            let busy = store
                .acquire_lease(&other, "host:2:b", "start", Duration::from_secs(60))
                .unwrap_err();
            assert!(matches!(busy, Error::Busy { .. }), "{busy}");
            assert_eq!(store.lease_holder(&other).unwrap().unwrap().owner, holder);
            store
                .release_lease(&store.lease_holder(&other).unwrap().unwrap())
                .unwrap();
        }
    }

    #[test]
    fn owners_of_other_forms_may_be_alive() {
        for owner in ["", "x", "host:notapid:n", "h:0:n", "h:-1:n", ":1:n"] {
            assert!(!holder_is_dead(owner), "{owner}");
        }
    }

    #[test]
    fn one_owner_at_a_time_and_expired_leases_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.db");
        // Two stores on one file: as two processes would be.
        let first = Store::open(&path).unwrap();
        let second = Store::open(&path).unwrap();
        let name: InstanceName = "alice".parse().unwrap();
        let lease = first
            .acquire_lease(&name, "host:1:a", "update", Duration::from_secs(60))
            .unwrap();
        let busy = second
            .acquire_lease(&name, "host:2:b", "remove", Duration::from_secs(60))
            .unwrap_err();
        let message = busy.to_string();
        assert!(
            message.starts_with("instance alice is busy: update by host:1:a (lease expires in "),
            "{message}"
        );
        // The holder may take it again (re-entrant for the same owner).
        first
            .acquire_lease(&name, "host:1:a", "update", Duration::from_secs(60))
            .unwrap();
        first.release_lease(&lease).unwrap();
        let taken = second
            .acquire_lease(&name, "host:2:b", "remove", Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        // The crashed holder's lease expired: the next owner takes over, the old one cannot renew.
        first
            .acquire_lease(&name, "host:1:a", "start", Duration::from_secs(60))
            .unwrap();
        assert!(!second.renew_lease(&taken, Duration::from_secs(60)).unwrap());
    }
}
