//! Opening the database file: making a new one, telling a fleet's store from a file that
//! holds none, and connecting read-only.
//!
//! A new store is built under a temporary name and linked into place only once it holds
//! the schema and its scope, so `fleet.db` never exists empty: a zero-byte `fleet.db` (or
//! one without fleet's schema) was not made by fleet and is refused, rather than silently
//! becoming a new fleet with a new scope that orphans the old fleet's containers.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{migrations, private};
use crate::error::Error;

/// The store's companion files in WAL mode.
pub(super) fn wal_files(path: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

pub(super) fn store_error(
    path: &Path,
    context: &str,
) -> impl FnOnce(rusqlite::Error) -> Error + use<> {
    let path = path.to_owned();
    let context = context.to_owned();
    move |source| Error::Store {
        path,
        context,
        source,
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::Io { path, source }
}

/// Makes a new store at `path` (0600, migrated, with its scope) unless one exists; two
/// processes doing this at once end up sharing one of theirs.
pub(super) fn create(path: &Path) -> Result<(), Error> {
    let name = path
        .file_name()
        .map_or_else(|| "fleet.db".into(), |n| n.to_string_lossy());
    let temporary = path.with_file_name(format!(
        ".{name}.new-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let built = build(&temporary, path);
    let linked = built.and_then(|()| match std::fs::hard_link(&temporary, path) {
        // Another process linked its new store first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A file system without hard links: renaming may, in a rare race, replace the
        // new store another process made a moment before.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::Unsupported
            ) && !path.exists() =>
        {
            std::fs::rename(&temporary, path).map_err(io_error(path))
        }
        linked => linked.map_err(io_error(path)),
    });
    let _ = std::fs::remove_file(&temporary);
    linked
}

/// Writes the schema into the new file `temporary` (errors name `path`, the store).
fn build(temporary: &Path, path: &Path) -> Result<(), Error> {
    drop(private::create_new_file(temporary).map_err(io_error(path))?);
    let mut connection = Connection::open_with_flags(
        temporary,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(store_error(path, "create"))?;
    migrations::migrate(&mut connection, path)?;
    connection
        .close()
        .map_err(|(_, e)| store_error(path, "create")(e))
}

/// Refuses to open for writing a store that cannot be written (a read-only file system,
/// or the permissions of another user), which SQLite would open read-only, failing later.
pub(super) fn check_writable(path: &Path) -> Result<(), Error> {
    use nix::errno::Errno;
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty());
    for target in std::iter::once(path).chain(directory) {
        if let Err(Errno::EROFS | Errno::EACCES | Errno::EPERM) =
            nix::unistd::access(target, nix::unistd::AccessFlags::W_OK)
        {
            return Err(Error::StoreReadOnly {
                path: path.to_owned(),
                context: "open it for writing".to_owned(),
            });
        }
    }
    Ok(())
}

/// Refuses a file that holds no fleet: empty, or without fleet's schema. Returns the
/// schema version. Reads only, so it is safe before anything writes.
pub(super) fn check_fleet(connection: &Connection, path: &Path) -> Result<u32, Error> {
    let not_a_fleet = |reason: &str| Error::StoreNotAFleet {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if std::fs::metadata(path).map_err(io_error(path))?.len() == 0 {
        return Err(not_a_fleet("the file is empty"));
    }
    let version: u32 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(store_error(path, "read the schema version"))?;
    if version == 0 {
        return Err(not_a_fleet("it has no fleet schema"));
    }
    Ok(version)
}

/// Reads the scope id, refusing a store that has lost it.
pub(super) fn scope(connection: &Connection, path: &Path) -> Result<String, Error> {
    match migrations::scope(connection) {
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(Error::StoreNotAFleet {
            path: path.to_owned(),
            reason: "it has no scope id".to_owned(),
        }),
        scope => scope.map_err(store_error(path, "read the scope id")),
    }
}

/// Connects to the existing store at `path` without writing anything: no file is created
/// or changed by fleet, the journal mode stays as it is.
pub(super) fn read_only(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(path, flags).map_err(store_error(path, "open read-only"))?;
    match connection.query_row("PRAGMA user_version", [], |_| Ok(())) {
        Ok(()) => Ok(connection),
        // A WAL database whose -wal and -shm files do not exist and cannot be created
        // (a read-only directory or file system): nothing is in flight in a WAL, so the
        // file alone is the whole database, which `immutable` reads without a WAL index.
        // A writer that starts while it is read could be missed; none can write here.
        // SQLite says "cannot open" on a read-only file system, and "read-only
        // directory" when permissions forbid it.
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
            ) && !wal_files(path)[0].exists() =>
        {
            drop(connection);
            Connection::open_with_flags(format!("{}?immutable=1", file_uri(path)), flags)
                .map_err(store_error(path, "open read-only"))
        }
        Err(e) => Err(store_error(path, "open read-only")(e)),
    }
}

/// `path` as an SQLite `file:` URI.
fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    for &byte in absolute.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::store::Store;
    use crate::store::private::mode;

    fn contents(path: &Path) -> (Vec<u8>, SystemTime) {
        (
            std::fs::read(path).unwrap(),
            std::fs::metadata(path).unwrap().modified().unwrap(),
        )
    }

    /// Regression: a zero-byte fleet.db silently became a new fleet with a new scope,
    /// orphaning the containers labelled with the old one.
    #[test]
    fn a_file_that_holds_no_fleet_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.db");
        std::fs::write(&path, b"").unwrap();
        for error in [
            Store::open(&path).unwrap_err(),
            Store::open_read_only(&path).unwrap_err(),
        ] {
            assert_eq!(
                error.to_string(),
                format!(
                    "state store {} holds no fleet (the file is empty); restore it from a backup, or remove it to start a new fleet, leaving the old fleet's containers (labelled with its scope) as strays",
                    path.display()
                )
            );
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(!wal_files(&path)[0].exists());

        // An SQLite file of something else.
        std::fs::remove_file(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE notes (text TEXT)")
            .unwrap();
        let error = Store::open(&path).unwrap_err();
        assert!(
            matches!(&error, Error::StoreNotAFleet { reason, .. } if reason == "it has no fleet schema"),
            "{error}"
        );

        // A store that lost its scope.
        std::fs::remove_file(&path).unwrap();
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("DELETE FROM meta")
            .unwrap();
        let error = Store::open(&path).unwrap_err();
        assert!(
            matches!(&error, Error::StoreNotAFleet { reason, .. } if reason == "it has no scope id"),
            "{error}"
        );
    }

    #[test]
    fn a_new_store_is_private_and_appears_complete_even_to_racing_openers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/fleet.db");
        let scopes: Vec<String> = std::thread::scope(|s| {
            let openers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Store::open(&path).unwrap().scope().to_owned()))
                .collect();
            openers.into_iter().map(|o| o.join().unwrap()).collect()
        });
        assert!(scopes.iter().all(|s| *s == scopes[0]), "{scopes:?}");
        let store = Store::open(&path).unwrap();
        store
            .record_event(None, crate::store::EventKind::Error, "x")
            .unwrap();
        assert_eq!(mode(dir.path().join("state").as_path()), 0o700);
        for file in [
            path.clone(),
            wal_files(&path)[0].clone(),
            wal_files(&path)[1].clone(),
        ] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with("fleet.db"))
            .collect();
        assert_eq!(leftovers, Vec::<String>::new());
    }

    /// Regression: the store was world-readable (0644), with the environment values of
    /// every instance in it.
    #[test]
    fn existing_store_files_are_tightened_at_open() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.db");
        drop(Store::open(&path).unwrap());
        let files = [
            path.clone(),
            wal_files(&path)[0].clone(),
            wal_files(&path)[1].clone(),
        ];
        for open in [Store::open, Store::open_read_only] {
            for file in &files {
                if !file.exists() {
                    std::fs::write(file, b"").unwrap();
                }
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o666)).unwrap();
            }
            drop(open(&path).unwrap());
            for file in files.iter().filter(|f| f.exists()) {
                assert_eq!(mode(file), 0o600, "{}", file.display());
            }
        }
    }

    /// Regression: `fleet ls` on a mistyped state directory created it, and an empty fleet.
    #[test]
    fn a_read_only_open_of_a_missing_store_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("typo");
        let error = Store::open_read_only(&state.join("fleet.db")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("no fleet at {}", state.display())
        );
        assert!(!state.exists());
        std::fs::create_dir(&state).unwrap();
        let error = Store::open_read_only(&state.join("fleet.db")).unwrap_err();
        assert!(matches!(error, Error::NoFleet { .. }), "{error}");
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
    }

    /// Regression: reading needed a writable store (opening switched on WAL), so read
    /// commands failed on a read-only state directory.
    #[test]
    fn a_read_only_open_writes_nothing_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .insert_instance(
                    &crate::spec::InstanceSpec::new(
                        "alice".parse().unwrap(),
                        "nginx".parse().unwrap(),
                    ),
                    crate::store::DesiredState::Running,
                )
                .unwrap();
        }
        // A journal mode a read-write open would change.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "journal_mode", "DELETE")
            .unwrap();
        let before = contents(&path);
        let store = Store::open_read_only(&path).unwrap();
        assert!(store.is_read_only());
        assert_eq!(store.instances().unwrap().len(), 1);
        let name = "alice".parse().unwrap();
        assert_eq!(
            store.set_health(&name, crate::Health::Healthy).unwrap(),
            crate::store::HealthRecorded::Unchanged
        );
        let error = store.delete_instance(&name).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "state store {} is read-only: cannot delete instance",
                path.display()
            )
        );
        drop(store);
        assert!(
            contents(&path) == before,
            "the read-only open changed the file"
        );
        assert!(!wal_files(&path)[0].exists());
        let journal_mode: String = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal_mode, "delete");
    }

    #[test]
    fn file_uris_escape_what_sqlite_would_read_as_syntax() {
        assert_eq!(
            file_uri(Path::new("/a b/f?x#y%.db")),
            "file:/a%20b/f%3Fx%23y%25.db"
        );
    }
}
