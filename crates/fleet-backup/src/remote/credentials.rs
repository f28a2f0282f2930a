//! Where the credentials, region and endpoint of an S3-compatible store come from: the
//! settings, the environment, and the `~/.aws/credentials` and `~/.aws/config` files, read
//! as the AWS CLI reads them. object_store reads the environment only, so the files are
//! parsed here (with `rust-ini`).
//!
//! Order, first found wins:
//! - credentials: with a profile or a credentials file named in the settings, the files
//!   first (an explicit choice beats the environment, as `aws --profile` does); otherwise
//!   `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), then the
//!   profile (`AWS_PROFILE`, else `default`) in the credentials file, then in the config
//!   file;
//! - region: the settings, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`,
//!   else `us-east-1`;
//! - endpoint: the settings, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
//!   `endpoint_url`, else AWS itself.
//!
//! `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` move the files; a
//! `credentials_file` in the settings beats `AWS_SHARED_CREDENTIALS_FILE`. Instance roles
//! (IMDS), assumed roles (`role_arn`), SSO and `credential_process` are not supported:
//! static keys (with a session token, if any) only, and fleet never probes a metadata
//! address it was not given.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::Error;

/// The environment variables and home directory credentials are read from; a value, so
/// tests can give their own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    pub(crate) vars: BTreeMap<String, String>,
    pub(crate) home: Option<PathBuf>,
}

const VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
];

impl Environment {
    /// This process's environment and home directory.
    pub(crate) fn current() -> Self {
        let vars = VARIABLES
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), std::env::var(name).ok()?)))
            .collect();
        let home = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from);
        Self { vars, home }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn file(&self, variable: &str, default: &str) -> Option<PathBuf> {
        match self.var(variable) {
            Some(path) => Some(PathBuf::from(path)),
            None => Some(self.home.as_ref()?.join(".aws").join(default)),
        }
    }
}

/// Where a set of credentials was found, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// A profile of a credentials or config file.
    File {
        /// The file.
        path: PathBuf,
        /// The profile (section) in it.
        profile: String,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Environment => {
                f.write_str("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
            }
            CredentialSource::File { path, profile } => {
                write!(f, "profile {profile:?} in {}", path.display())
            }
        }
    }
}

/// An access key, its secret (never shown by `Debug`) and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
    pub(crate) source: CredentialSource,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What the settings, environment and files add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) credentials: Credentials,
    pub(crate) region: String,
    pub(crate) endpoint: Option<String>,
}

/// What the settings say explicitly.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Explicit<'a> {
    pub(crate) profile: Option<&'a str>,
    pub(crate) region: Option<&'a str>,
    pub(crate) endpoint: Option<&'a str>,
    pub(crate) credentials_file: Option<&'a Path>,
}

/// One profile's keys, read from the credentials file and the config file.
#[derive(Debug, Default)]
struct Profile {
    credentials: Option<(Credentials, PathBuf)>,
    region: Option<String>,
    endpoint: Option<String>,
}

/// Resolves credentials, region and endpoint for `bucket` (named in errors).
pub(crate) fn resolve(
    explicit: Explicit<'_>,
    env: &Environment,
    bucket: &str,
) -> Result<Resolved, Error> {
    let profile_name = explicit
        .profile
        .or_else(|| env.var("AWS_PROFILE"))
        .unwrap_or("default")
        .to_owned();
    let credentials_file = match explicit.credentials_file {
        Some(file) => Some(file.to_owned()),
        None => env.file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    };
    let config_file = env.file("AWS_CONFIG_FILE", "config");
    let profile = read_profile(
        &profile_name,
        credentials_file.as_deref(),
        config_file.as_deref(),
    )?;
    let from_env = match (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Some(Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: env.var("AWS_SESSION_TOKEN").map(str::to_owned),
            source: CredentialSource::Environment,
        }),
        _ => None,
    };
    let from_files = profile.credentials.map(|(credentials, _)| credentials);
    let credentials = if explicit.profile.is_some() || explicit.credentials_file.is_some() {
        from_files.or(from_env)
    } else {
        from_env.or(from_files)
    };
    let Some(credentials) = credentials else {
        let mut searched =
            vec!["AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment".to_owned()];
        for file in [&credentials_file, &config_file].into_iter().flatten() {
            searched.push(format!("profile {profile_name:?} in {}", file.display()));
        }
        return Err(Error::NoCredentials {
            bucket: bucket.to_owned(),
            searched,
        });
    };
    let region = explicit
        .region
        .map(str::to_owned)
        .or_else(|| env.var("AWS_REGION").map(str::to_owned))
        .or_else(|| env.var("AWS_DEFAULT_REGION").map(str::to_owned))
        .or(profile.region)
        .unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint = explicit
        .endpoint
        .map(str::to_owned)
        .or_else(|| env.var("AWS_ENDPOINT_URL_S3").map(str::to_owned))
        .or_else(|| env.var("AWS_ENDPOINT_URL").map(str::to_owned))
        .or(profile.endpoint);
    Ok(Resolved {
        credentials,
        region,
        endpoint,
    })
}

/// Reads `profile` from the credentials file (`[NAME]`) and the config file
/// (`[profile NAME]`, or `[default]`); a missing file is no error. Keys in the
/// credentials file win.
fn read_profile(
    profile: &str,
    credentials_file: Option<&Path>,
    config_file: Option<&Path>,
) -> Result<Profile, Error> {
    let mut found = Profile::default();
    let config_section = if profile == "default" {
        vec!["default".to_owned(), "profile default".to_owned()]
    } else {
        vec![format!("profile {profile}")]
    };
    let files = [
        (credentials_file, vec![profile.to_owned()]),
        (config_file, config_section),
    ];
    for (file, sections) in files {
        let Some(file) = file else { continue };
        let Some(ini) = load(file)? else { continue };
        let Some(section) = sections
            .iter()
            .find_map(|name| ini.section(Some(name.as_str())))
        else {
            continue;
        };
        let get = |key: &str| section.get(key).map(str::trim).filter(|v| !v.is_empty());
        if found.credentials.is_none()
            && let (Some(id), Some(secret)) =
                (get("aws_access_key_id"), get("aws_secret_access_key"))
        {
            found.credentials = Some((
                Credentials {
                    access_key_id: id.to_owned(),
                    secret_access_key: secret.to_owned(),
                    session_token: get("aws_session_token").map(str::to_owned),
                    source: CredentialSource::File {
                        path: file.to_owned(),
                        profile: profile.to_owned(),
                    },
                },
                file.to_owned(),
            ));
        }
        found.region = found.region.or_else(|| get("region").map(str::to_owned));
        found.endpoint = found
            .endpoint
            .or_else(|| get("endpoint_url").map(str::to_owned));
    }
    Ok(found)
}

/// Parses an AWS ini file; `None` when it does not exist.
fn load(path: &Path) -> Result<Option<ini::Ini>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    // Secrets are taken verbatim (no quotes or escapes), and the nested `s3 =` blocks of
    // the config file parse as multi-line values.
    let options = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    };
    ini::Ini::load_from_str_opt(&text, options)
        .map(Some)
        .map_err(|source| Error::AwsFile {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves with `vars` and files written into a temporary home, and shows the
    /// result on one line (or the error), with the temporary directory as `~`.
    fn check(
        explicit: Explicit<'_>,
        vars: &[(&str, &str)],
        credentials: &str,
        config: &str,
    ) -> String {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir(&aws).unwrap();
        if !credentials.is_empty() {
            std::fs::write(aws.join("credentials"), credentials).unwrap();
        }
        if !config.is_empty() {
            std::fs::write(aws.join("config"), config).unwrap();
        }
        let env = Environment {
            vars: vars
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        v.replace('~', &home.path().display().to_string()),
                    )
                })
                .collect(),
            home: Some(home.path().to_owned()),
        };
        let shown = match resolve(explicit, &env, "bucket") {
            Ok(r) => format!(
                "{}:{}:{} from {}; region {}; endpoint {}",
                r.credentials.access_key_id,
                r.credentials.secret_access_key,
                r.credentials.session_token.as_deref().unwrap_or("-"),
                r.credentials.source,
                r.region,
                r.endpoint.as_deref().unwrap_or("-"),
            ),
            Err(e) => e.to_string(),
        };
        shown.replace(&home.path().display().to_string(), "~")
    }

    const NONE: Explicit<'static> = Explicit {
        profile: None,
        region: None,
        endpoint: None,
        credentials_file: None,
    };
    const FILES: &str = "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = s/e+c=\n\n\
                         [work]\naws_access_key_id=AKWORK\naws_secret_access_key=w\naws_session_token=tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n\n[profile work]\nregion = eu-central-1\n\
                          endpoint_url = http://minio:9000\ns3 =\n  addressing_style = path\n";

    #[test]
    fn environment_keys_come_first() {
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ];
        assert_eq!(
            check(NONE, &env, FILES, CONFIG),
            "AKENV:envsecret:t from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the \
             environment; region ap-south-1; endpoint http://127.0.0.1:9000"
        );
    }

    #[test]
    fn the_default_profile_of_the_files() {
        assert_eq!(
            check(NONE, &[], FILES, CONFIG),
            "AKDEF:s/e+c=:- from profile \"default\" in ~/.aws/credentials; region eu-west-1; \
             endpoint -"
        );
        // Only the access key in the environment: not a pair, the files are used.
        assert!(check(NONE, &[("AWS_ACCESS_KEY_ID", "AK")], FILES, "").starts_with("AKDEF:"));
    }

    #[test]
    fn a_named_profile_reads_region_and_endpoint_from_config() {
        assert_eq!(
            check(NONE, &[("AWS_PROFILE", "work")], FILES, CONFIG),
            "AKWORK:w:tok from profile \"work\" in ~/.aws/credentials; region eu-central-1; \
             endpoint http://minio:9000"
        );
    }

    #[test]
    fn a_profile_in_the_settings_beats_environment_keys() {
        let explicit = Explicit {
            profile: Some("work"),
            region: Some("us-west-2"),
            endpoint: Some("http://garage:3900"),
            credentials_file: None,
        };
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "e"),
        ];
        assert_eq!(
            check(explicit, &env, FILES, CONFIG),
            "AKWORK:w:tok from profile \"work\" in ~/.aws/credentials; region us-west-2; \
             endpoint http://garage:3900"
        );
    }

    #[test]
    fn credentials_in_the_config_file_and_moved_files() {
        let config = "[profile ci]\naws_access_key_id = AKCFG\naws_secret_access_key = c\n";
        assert_eq!(
            check(NONE, &[("AWS_PROFILE", "ci")], "", config),
            "AKCFG:c:- from profile \"ci\" in ~/.aws/config; region us-east-1; endpoint -"
        );
        let moved = [
            ("AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere"),
            ("AWS_CONFIG_FILE", "~/.aws/credentials"),
        ];
        assert_eq!(
            check(NONE, &moved, "[default]\nregion = r\n", ""),
            "no AWS credentials found for bucket bucket: looked for AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY in the environment, profile \"default\" in ~/elsewhere, \
             profile \"default\" in ~/.aws/credentials; set them in one of these places (or \
             name another profile)"
        );
    }

    #[test]
    fn nothing_found_names_every_place_looked() {
        assert_eq!(
            check(NONE, &[("AWS_PROFILE", "nope")], FILES, CONFIG),
            "no AWS credentials found for bucket bucket: looked for AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY in the environment, profile \"nope\" in ~/.aws/credentials, \
             profile \"nope\" in ~/.aws/config; set them in one of these places (or name \
             another profile)"
        );
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_it() {
        let shown = check(NONE, &[], "[default\naws_access_key_id = x\n", "");
        assert!(
            shown.starts_with("cannot parse ~/.aws/credentials"),
            "{shown}"
        );
    }
}
