//! How an instance is backed up: what makes its data consistent first (a command run in
//! the container, or stopping it), and how many of its backups are kept.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The instance's backup settings (`backup.*`). The default needs neither a command nor a
/// stop: fleet-backup snapshots SQLite databases consistently while the app writes, and
/// copies every other file as it finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BackupSettings {
    /// A command run inside the running container before the copy, for what fleet cannot
    /// snapshot by itself (`["sh", "-c", "pg_dump app > /data/dump.sql"]`). A non-zero
    /// exit fails the backup; its output is kept inside the archive's metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// How long the command may run (default 10 minutes).
    #[serde(
        with = "optional_duration",
        skip_serializing_if = "Option::is_none",
        rename = "exec_timeout"
    )]
    pub exec_timeout: Option<Duration>,
    /// Stop the container for the copy and start it again afterwards; the downtime is
    /// measured and reported.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
    /// Keep this many of the instance's backups instead of `[backup] keep_last`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<NonZeroUsize>,
    /// Delete the instance's backups older than this instead of `[backup] keep_within`.
    #[serde(with = "optional_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Duration>,
}

/// The time a consistency command may take unless the instance says otherwise.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(600);

impl BackupSettings {
    /// Whether these are the defaults (stored specs omit them then).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The time the consistency command may take.
    pub fn exec_timeout(&self) -> Duration {
        self.exec_timeout.unwrap_or(DEFAULT_EXEC_TIMEOUT)
    }

    /// Why these settings cannot work, if they cannot.
    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(command) = &self.exec {
            if command
                .first()
                .is_none_or(|program| program.trim().is_empty())
            {
                return Err("backup.exec is empty; give the command and its arguments, \
                            like [\"sh\", \"-c\", \"pg_dump app > /data/dump.sql\"]"
                    .into());
            }
            if command.iter().any(|arg| arg.contains('\0')) {
                return Err("backup.exec contains a NUL byte".into());
            }
            if self.stop {
                return Err(
                    "backup.exec runs inside the running container and backup.stop \
                            stops it: choose one"
                        .into(),
                );
            }
        }
        if self.exec_timeout == Some(Duration::ZERO) {
            return Err("backup.exec_timeout must be more than 0s".into());
        }
        Ok(())
    }
}

/// An optional duration as humantime text (`"7d"`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_settings_as_written_in_toml() {
        let settings: BackupSettings = toml::from_str(
            "exec = [\"sh\", \"-c\", \"pg_dump > /data/dump.sql\"]\nexec_timeout = \"2m\"\nkeep_last = 3\nkeep_within = \"7d\"\n",
        )
        .unwrap();
        assert_eq!(settings.exec.as_ref().unwrap()[0], "sh");
        assert_eq!(settings.exec_timeout(), Duration::from_secs(120));
        assert_eq!(settings.keep_last.unwrap().get(), 3);
        assert_eq!(settings.keep_within, Some(Duration::from_secs(7 * 86_400)));
        assert!(settings.check().is_ok());
        let back: BackupSettings = toml::from_str(&toml::to_string(&settings).unwrap()).unwrap();
        assert_eq!(back, settings);
        assert!(BackupSettings::default().is_default());
        assert_eq!(toml::to_string(&BackupSettings::default()).unwrap(), "");
    }

    #[test]
    fn refuses_settings_that_cannot_work() {
        let with = |text: &str| toml::from_str::<BackupSettings>(text).unwrap().check();
        assert!(with("exec = []").unwrap_err().contains("empty"));
        assert!(with("exec = [\" \"]").unwrap_err().contains("empty"));
        assert!(
            with("exec = [\"dump\"]\nstop = true")
                .unwrap_err()
                .contains("choose one")
        );
        assert!(with("exec_timeout = \"0s\"").unwrap_err().contains("0s"));
        assert!(toml::from_str::<BackupSettings>("keep_last = 0").is_err());
        assert!(toml::from_str::<BackupSettings>("stpo = true").is_err());
    }
}
