//! Backup names and the archive file names built from them.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::Error;

/// What a backup is of, usually the instance name: the first part of every archive file name.
///
/// 1 to 100 ASCII letters, digits, `.`, `_` or `-`, starting with a letter or digit, so
/// that it is safe in a file name and archives of one name are easy to pick out.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BackupName(String);

impl BackupName {
    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() || name.len() > 100 {
            return Err(invalid("must be 1 to 100 characters long"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(invalid(
                "only ASCII letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(invalid("must start with a letter or a digit"));
        }
        Ok(BackupName(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BackupName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        BackupName::new(s)
    }
}

impl TryFrom<String> for BackupName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        BackupName::new(&s)
    }
}

impl From<BackupName> for String {
    fn from(name: BackupName) -> String {
        name.0
    }
}

/// The file name of an archive: `NAME-YYYYMMDD-HHMMSS.tar.zst` in UTC, with `_N` before
/// `.tar.zst` for the N+1-th archive of one name within one second.
///
/// Ordering is by time, then sequence number, then name: the order they were taken in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchiveName {
    name: BackupName,
    time: Timestamp,
    seq: u32,
}

const SUFFIX: &str = ".tar.zst";
const TIME_FORMAT: &str = "%Y%m%d-%H%M%S";

impl ArchiveName {
    /// The archive name for a backup of `name` taken at `time` (truncated to the second).
    pub fn new(name: BackupName, time: Timestamp, seq: u32) -> Self {
        let time = Timestamp::from_second(time.as_second()).expect("a whole second in range");
        ArchiveName { name, time, seq }
    }

    /// Parses a file name; `None` when it is not an archive name.
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name.strip_suffix(SUFFIX)?;
        let (stem, seq) = match stem.rsplit_once('_') {
            Some((rest, seq))
                if !seq.is_empty()
                    && seq.bytes().all(|b| b.is_ascii_digit())
                    && !seq.starts_with('0') =>
            {
                (rest, seq.parse().ok()?)
            }
            _ => (stem, 0),
        };
        // "-YYYYMMDD-HHMMSS" is 16 ASCII bytes.
        let split = stem.len().checked_sub(16)?;
        let (name, time) = (stem.get(..split)?, stem.get(split..)?);
        let time = time.strip_prefix('-')?;
        if time.len() != 15
            || !time.bytes().enumerate().all(|(i, b)| {
                if i == 8 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
        {
            return None;
        }
        let time = TimeZone::UTC
            .to_timestamp(DateTime::strptime(TIME_FORMAT, time).ok()?)
            .ok()?;
        Some(ArchiveName {
            name: BackupName::new(name).ok()?,
            time,
            seq,
        })
    }

    /// The backup name.
    pub fn name(&self) -> &BackupName {
        &self.name
    }

    /// When the backup was taken, to the second.
    pub fn time(&self) -> Timestamp {
        self.time
    }

    /// 0 for the first archive of this name in its second, 1 for the second, and so on.
    pub fn seq(&self) -> u32 {
        self.seq
    }
}

impl fmt::Display for ArchiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.name, self.time.strftime(TIME_FORMAT))?;
        if self.seq > 0 {
            write!(f, "_{}", self.seq)?;
        }
        f.write_str(SUFFIX)
    }
}

impl PartialOrd for ArchiveName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ArchiveName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq, &self.name).cmp(&(other.time, other.seq, &other.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_name(name: &str) -> String {
        match BackupName::new(name) {
            Ok(name) => format!("ok {name}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn backup_names() {
        insta::assert_snapshot!(check_name("shop-1"), @"ok shop-1");
        insta::assert_snapshot!(check_name("a.b_c"), @"ok a.b_c");
        insta::assert_snapshot!(check_name(""), @r#"invalid backup name "": must be 1 to 100 characters long"#);
        insta::assert_snapshot!(check_name("-x"), @r#"invalid backup name "-x": must start with a letter or a digit"#);
        insta::assert_snapshot!(check_name("a/b"), @r#"invalid backup name "a/b": only ASCII letters, digits, '.', '_' and '-' are allowed"#);
        insta::assert_snapshot!(check_name(".hidden"), @r#"invalid backup name ".hidden": must start with a letter or a digit"#);
    }

    fn check_parse(file_name: &str) -> String {
        match ArchiveName::parse(file_name) {
            Some(n) => format!("{} {} seq={} -> {n}", n.name(), n.time(), n.seq()),
            None => "not an archive".to_owned(),
        }
    }

    #[test]
    fn archive_names() {
        insta::assert_snapshot!(check_parse("shop-20261123-125825.tar.zst"), @"shop 2026-11-23T12:58:25Z seq=0 -> shop-20261123-125825.tar.zst");
        insta::assert_snapshot!(check_parse("shop-20261123-125825_2.tar.zst"), @"shop 2026-11-23T12:58:25Z seq=2 -> shop-20261123-125825_2.tar.zst");
        insta::assert_snapshot!(check_parse("a-b_1-20260101-000000.tar.zst"), @"a-b_1 2026-01-01T00:00:00Z seq=0 -> a-b_1-20260101-000000.tar.zst");
        insta::assert_snapshot!(check_parse("shop-20261123-125825_02.tar.zst"), @"not an archive");
        insta::assert_snapshot!(check_parse("shop-20261323-125825.tar.zst"), @"not an archive");
        insta::assert_snapshot!(check_parse("-20261123-125825.tar.zst"), @"not an archive");
        insta::assert_snapshot!(check_parse("shop-20261123-125825.tar.gz"), @"not an archive");
        insta::assert_snapshot!(check_parse(".shop-20261123-125825.tar.zst.tmp"), @"not an archive");
    }

    #[test]
    fn names_order_by_time_then_sequence() {
        let names = [
            "b-20260101-000001.tar.zst",
            "a-20260101-000000_1.tar.zst",
            "a-20260101-000000.tar.zst",
        ];
        let mut parsed: Vec<_> = names
            .iter()
            .map(|n| ArchiveName::parse(n).unwrap())
            .collect();
        parsed.sort();
        let sorted: Vec<_> = parsed.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(sorted.join(" "), @"a-20260101-000000.tar.zst a-20260101-000000_1.tar.zst b-20260101-000001.tar.zst");
    }
}
