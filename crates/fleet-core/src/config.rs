//! Fleet settings and the state directory layout.
//!
//! Settings live in `<state dir>/config.toml`; every key is optional:
//!
//! ```toml
//! bind_address = "0.0.0.0"     # where published ports listen
//! network = "fleet"            # the user-defined bridge instances join
//! container_prefix = "fleet-"  # containers are named <prefix><instance>.<generation>
//! stop_grace = "10s"           # SIGTERM, then SIGKILL after this long
//! drain_timeout = "30s"        # fleet serve: requests in flight on the old container
//!
//! [engine]                     # how long fleet waits for the Docker Engine
//! connect_timeout = "5s"
//! request_timeout = "30s"       # one control call; stopping adds stop_grace
//!
//! [labels]                     # added to every container and network fleet creates
//! "com.example.team" = "web"
//!
//! [backup]                    # retention: keep_last = 10, keep_within = "7d"
//! [backup.remote]             # off-host copies in any S3-compatible store
//! url = "s3://bucket/fleet"   # bucket and key prefix
//! endpoint = "http://127.0.0.1:9000"  # MinIO, Backblaze, Garage…; AWS without it
//! profile = "backups"         # of ~/.aws/credentials; else the environment, AWS_PROFILE
//!
//! [serve]                     # fleet serve: every instance also at NAME.DOMAIN:PORT
//! shared_port = 80
//! domain = "example.lan"
//! api = "127.0.0.1:8090"       # GET /api/health there (off without it)
//!
//! [ports]
//! first = 5001
//! last = 5999
//! step = 1                     # the old scripts' "step 2" convention is step = 2
//!
//! [vars]                       # template vars of every instance: {{domain}} in env
//! domain = "example.com"       # values and volume paths (see `template`)
//!
//! [vars.group.staging]         # an instance of group staging sees these over [vars];
//! domain = "staging.example.com"  # its own (`fleet create --var`) win over both
//! ```
//!
//! Var names are letters, digits, `_`, `.` and `-`; `name`, `group`, `port`, `data_dir`
//! and `state_dir` are filled in by fleet and refused as vars.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::EngineTimeouts;
use crate::error::Error;
use crate::name::InstanceName;
use crate::ports::PortRange;
use crate::spec::template::FleetVars;

/// The settings of one fleet (one state directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FleetConfig {
    /// The host ports instances get.
    pub ports: PortRange,
    /// The host address published ports listen on.
    pub bind_address: IpAddr,
    /// The Docker network instances join (a user-defined bridge). `host`, `none` and
    /// `container:…` are refused: fleet publishes each instance's ports on host ports of
    /// its own and probes it on its address.
    #[serde(deserialize_with = "bridge_network")]
    pub network: String,
    /// Container names are `<prefix><instance>.<generation>`.
    pub container_prefix: String,
    /// How long a container gets to stop before it is killed.
    #[serde(with = "fleet_health::human_duration")]
    pub stop_grace: Duration,
    /// With `fleet serve`: how long the proxy waits for requests in flight on the old
    /// container after a switch (upgraded connections are closed then) before fleet
    /// stops it.
    #[serde(with = "fleet_health::human_duration")]
    pub drain_timeout: Duration,
    /// Labels added to every container and network fleet creates (to find them with
    /// other tools, or to tell several fleets apart).
    pub labels: BTreeMap<String, String>,
    /// How long fleet waits for the container engine (`[engine]`).
    pub engine: EngineTimeouts,
    /// How many backups of each instance fleet keeps (`[backup]`).
    pub backup: BackupRetention,
    /// What `fleet serve`'s proxy serves besides each instance's host ports (`[serve]`).
    pub serve: ServeSettings,
    /// Template vars of every instance and of each group (`[vars]`,
    /// `[vars.group.NAME]`).
    #[serde(skip_serializing_if = "FleetVars::is_empty")]
    pub vars: FleetVars,
}

/// What `fleet serve` serves besides each instance's host ports: host-name routing
/// (with both `shared_port` and `domain` set, every instance behind the proxy also
/// answers at `http://NAME.DOMAIN:SHARED_PORT/`, its first port, so many instances
/// share one port) and its HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServeSettings {
    /// The port every instance shares (outside `[ports]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_port: Option<u16>,
    /// The domain instances' host names end in (`example.lan`: `alice.example.lan`).
    #[serde(
        deserialize_with = "host_domain",
        skip_serializing_if = "Option::is_none"
    )]
    pub domain: Option<String>,
    /// Where `fleet serve` answers `GET /api/health` (`fleet serve --api` and
    /// `FLEET_SERVE_API` win over it); off when none is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<std::net::SocketAddr>,
}

/// How many backups of each instance fleet keeps; applied after each backup and by
/// `Fleet::prune_backups`. The newest backup is always kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BackupRetention {
    /// Keep the newest this many (default 10, as the scripts fleet replaces do).
    pub keep_last: std::num::NonZeroUsize,
    /// Also delete backups older than this (`7d`); none by default.
    #[serde(with = "optional_duration", skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Duration>,
    /// Where off-host copies of every backup go (`[backup.remote]`): an S3-compatible
    /// store, pruned by the same retention. None by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<fleet_backup::remote::RemoteSettings>,
}

impl Default for BackupRetention {
    fn default() -> Self {
        Self {
            keep_last: std::num::NonZeroUsize::new(10).expect("10 is not zero"),
            keep_within: None,
            remote: None,
        }
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
        Ok(Option::<Text>::deserialize(deserializer)?.map(|text| text.0))
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            ports: PortRange::default(),
            bind_address: IpAddr::from([0, 0, 0, 0]),
            network: "fleet".into(),
            container_prefix: "fleet-".into(),
            stop_grace: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            labels: BTreeMap::new(),
            engine: EngineTimeouts::default(),
            backup: BackupRetention::default(),
            serve: ServeSettings::default(),
            vars: FleetVars::default(),
        }
    }
}

impl FleetConfig {
    /// Reads `<state_dir>/config.toml`, or the defaults when there is none.
    pub fn load(state_dir: &Path) -> Result<Self, Error> {
        let path = state_dir.join("config.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let config: Self = toml::from_str(&text).map_err(|source| Error::Config {
                    path: path.clone(),
                    source,
                })?;
                config
                    .check()
                    .map_err(|reason| Error::InvalidConfig { path, reason })?;
                Ok(config)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(Error::Io { path, source }),
        }
    }
}

impl FleetConfig {
    /// What the types alone cannot say is wrong.
    fn check(&self) -> Result<(), String> {
        self.vars.check()?;
        match (self.serve.shared_port, &self.serve.domain) {
            (Some(port), Some(_)) if port >= self.ports.first() && port <= self.ports.last() => {
                Err(format!(
                    "[serve] shared_port {port} is inside [ports] ({}-{}), where instances get theirs; choose a port outside it",
                    self.ports.first(),
                    self.ports.last()
                ))
            }
            (Some(_), None) | (None, Some(_)) => {
                Err("[serve] needs both shared_port and domain for host-name routing".to_owned())
            }
            _ => Ok(()),
        }
    }
}

fn host_domain<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let domain = String::deserialize(deserializer)?;
    let probe = format!("instance.{domain}");
    fleet_proxy::HostName::new(&probe).map_err(|e| {
        serde::de::Error::custom(format!(
            "domain {domain:?} cannot end a host name ({e}); write one like \"example.lan\""
        ))
    })?;
    Ok(Some(domain.trim_end_matches('.').to_ascii_lowercase()))
}

fn bridge_network<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    if name == "host" || name == "none" || name.starts_with("container:") || name.is_empty() {
        return Err(serde::de::Error::custom(format!(
            "network {name:?} is not supported: fleet publishes each instance's ports on host \
             ports of its own, which needs a bridge network; name one (the default is \"fleet\")"
        )));
    }
    Ok(name)
}

/// The state directory: `$FLEET_STATE_DIR`, else `/var/lib/fleet` for root, else the XDG
/// data directory (`$XDG_DATA_HOME/fleet`, `~/.local/share/fleet`).
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLEET_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/fleet");
    }
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("fleet")
}

/// Where things live inside a state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The state directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite store.
    pub fn database(&self) -> PathBuf {
        self.root.join("fleet.db")
    }

    /// An instance's default data directory.
    pub fn default_data_dir(&self, name: &InstanceName) -> PathBuf {
        self.root.join("instances").join(name.as_str()).join("data")
    }

    /// Where an instance's backups go.
    pub fn backups(&self, name: &InstanceName) -> PathBuf {
        self.root.join("backups").join(name.as_str())
    }

    /// Makes the state directory private, as it holds secrets (instances' environment
    /// values): creates it (0700) if needed, then [`tightens`](Self::tighten) it.
    pub fn create(&self) -> Result<(), Error> {
        crate::store::private::create_dir_all(&self.root).map_err(|source| Error::Io {
            path: self.root.clone(),
            source,
        })?;
        self.tighten()
    }

    /// Creates `dir` (inside the state directory) and its missing ancestors, 0700
    /// whatever the umask.
    pub fn create_dir(&self, dir: &Path) -> Result<(), Error> {
        crate::store::private::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })
    }

    /// Removes every group and other permission from what exists of the state
    /// directory: the directory, `config.toml`, `instances/` and each
    /// `instances/<name>/` (but not the data directories inside, which belong to the
    /// containers' users), and everything under `backups/`. The store's own files are
    /// tightened when the store is opened. Bits are only ever removed: a
    /// file an operator made read-only stays so.
    pub fn tighten(&self) -> Result<(), Error> {
        use crate::store::private::{restrict, restrict_tree};
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        restrict(&self.root).map_err(io(&self.root))?;
        let config = self.root.join("config.toml");
        restrict(&config).map_err(io(&config))?;
        let backups = self.root.join("backups");
        restrict_tree(&backups).map_err(io(&backups))?;
        let instances = self.root.join("instances");
        restrict(&instances).map_err(io(&instances))?;
        match std::fs::read_dir(&instances) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(io(&instances))?;
                    restrict(&entry.path()).map_err(io(&entry.path()))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: instances,
                    source,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::store::private::mode;

    #[test]
    fn tightening_makes_the_state_directory_private_but_not_data_directories() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(&dir.path().join("state"));
        let root = state.root();
        let name: InstanceName = "alice".parse().unwrap();
        for path in [state.default_data_dir(&name), state.backups(&name)] {
            std::fs::create_dir_all(&path).unwrap();
        }
        let archive = state.backups(&name).join("1.tar.zst");
        for file in [&root.join("config.toml"), &archive] {
            std::fs::write(file, b"").unwrap();
        }
        let all: Vec<PathBuf> = walk(root);
        for path in &all {
            let mode = if path.is_dir() { 0o777 } else { 0o666 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        state.create().unwrap();
        let shown: Vec<String> = all
            .iter()
            .map(|p| {
                let relative = p.strip_prefix(root).unwrap().display();
                format!("{:o} {relative}", mode(p))
            })
            .collect();
        assert_eq!(
            shown,
            [
                "700 ",
                "700 backups",
                "700 backups/alice",
                "600 backups/alice/1.tar.zst",
                "600 config.toml",
                "700 instances",
                "700 instances/alice",
                "777 instances/alice/data",
            ]
        );
        // A new state directory is 0700.
        let new = StateDir::new(&dir.path().join("new/state"));
        new.create().unwrap();
        assert_eq!(mode(new.root()), 0o700);
    }

    fn walk(path: &Path) -> Vec<PathBuf> {
        let mut all = vec![path.to_owned()];
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for entry in entries {
                all.extend(walk(&entry));
            }
        }
        all
    }

    #[test]
    fn config_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            FleetConfig::load(dir.path()).unwrap(),
            FleetConfig::default()
        );
        std::fs::write(
            dir.path().join("config.toml"),
            "bind_address = \"127.0.0.1\"\nstop_grace = \"3s\"\n[ports]\nfirst = 6000\nlast = 6100\nstep = 2\n",
        )
        .unwrap();
        let config = FleetConfig::load(dir.path()).unwrap();
        assert_eq!(config.ports, PortRange::new(6000, 6100, 2).unwrap());
        assert_eq!(config.stop_grace, Duration::from_secs(3));
        assert_eq!(config.bind_address.to_string(), "127.0.0.1");
        std::fs::write(
            dir.path().join("config.toml"),
            "[ports]\nfirst = 6000\nlast = 5000\n",
        )
        .unwrap();
        let error = FleetConfig::load(dir.path()).unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(
            chain.contains("invalid configuration in")
                && chain.contains(
                    "invalid port range 6000-5000 step 1: the first port is after the last"
                ),
            "{chain}"
        );
        std::fs::write(dir.path().join("config.toml"), "network = \"host\"\n").unwrap();
        let error = FleetConfig::load(dir.path()).unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(
            chain.contains("network \"host\" is not supported") && chain.contains("line 1"),
            "host networking is refused at load, with the line: {chain}"
        );
        std::fs::write(
            dir.path().join("config.toml"),
            "[engine]\nconnect_timeout = \"2s\"\nrequest_timeout = \"7s\"\n",
        )
        .unwrap();
        let config = FleetConfig::load(dir.path()).unwrap();
        assert_eq!(config.engine.connect, Duration::from_secs(2));
        assert_eq!(config.engine.request, Duration::from_secs(7));
        std::fs::write(dir.path().join("config.toml"), "netwrok = \"x\"\n").unwrap();
        assert!(
            FleetConfig::load(dir.path()).is_err(),
            "unknown keys are refused"
        );
    }

    /// The durations of `config.toml` read as they did when fleet-core had an adapter of
    /// its own (`stop_grace = "10s"`, `[engine] connect_timeout = "5s"`), and are written
    /// back the same way.
    #[test]
    fn config_durations_are_humantime_text() {
        let text = "stop_grace = \"10s\"\n[engine]\nconnect_timeout = \"5s\"\nrequest_timeout = \"1m 30s\"\n";
        let config: FleetConfig = toml::from_str(text).unwrap();
        assert_eq!(config.stop_grace, Duration::from_secs(10));
        assert_eq!(config.engine.connect, Duration::from_secs(5));
        assert_eq!(config.engine.request, Duration::from_secs(90));
        let written = toml::to_string(&config).unwrap();
        for line in [
            "stop_grace = \"10s\"",
            "connect_timeout = \"5s\"",
            "request_timeout = \"1m 30s\"",
        ] {
            assert!(written.lines().any(|l| l == line), "{line} in {written}");
        }
        assert_eq!(toml::from_str::<FleetConfig>(&written).unwrap(), config);
        let error = toml::from_str::<FleetConfig>("stop_grace = \"10\"\n").unwrap_err();
        assert!(
            error.message().starts_with("invalid duration \"10\""),
            "{error}"
        );
    }

    #[test]
    fn backup_retention_reads_a_count_and_an_age() {
        assert_eq!(
            FleetConfig::default().backup.keep_last.get(),
            10,
            "ten, as the scripts fleet replaces keep"
        );
        let config: FleetConfig =
            toml::from_str("[backup]\nkeep_last = 3\nkeep_within = \"7d\"\n").unwrap();
        assert_eq!(config.backup.keep_last.get(), 3);
        assert_eq!(
            config.backup.keep_within,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        let written = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<FleetConfig>(&written).unwrap(), config);
        assert!(toml::from_str::<FleetConfig>("[backup]\nkeep_last = 0\n").is_err());
    }

    #[test]
    fn host_name_routing_needs_a_shared_port_outside_the_range_and_a_domain() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            std::fs::write(dir.path().join("config.toml"), text).unwrap();
            FleetConfig::load(dir.path())
        };
        let config = load("[serve]\nshared_port = 80\ndomain = \"Example.LAN.\"\n").unwrap();
        assert_eq!(config.serve.shared_port, Some(80));
        assert_eq!(config.serve.domain.as_deref(), Some("example.lan"));
        let inside = load("[serve]\nshared_port = 5002\ndomain = \"example.lan\"\n")
            .unwrap_err()
            .to_string();
        assert!(inside.contains("inside [ports]"), "{inside}");
        let api = load("[serve]\napi = \"127.0.0.1:8090\"\n").unwrap();
        assert_eq!(api.serve.api, Some("127.0.0.1:8090".parse().unwrap()));
        assert!(load("[serve]\napi = \"localhost\"\n").is_err());
        let half = load("[serve]\nshared_port = 80\n").unwrap_err().to_string();
        assert!(half.contains("both shared_port and domain"), "{half}");
        assert!(load("[serve]\nshared_port = 80\ndomain = \"bad domain\"\n").is_err());
    }

    #[test]
    fn backup_remote_reads_an_s3_url_and_its_settings() {
        assert_eq!(FleetConfig::default().backup.remote, None);
        let config: FleetConfig = toml::from_str(
            "[backup.remote]\nurl = \"s3://backups/fleet\"\nendpoint = \"http://127.0.0.1:9000\"\nprofile = \"b\"\n",
        )
        .unwrap();
        let remote = config.backup.remote.clone().unwrap();
        assert_eq!(remote.url.bucket(), "backups");
        assert_eq!(remote.url.prefix(), "fleet");
        assert_eq!(remote.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(remote.profile.as_deref(), Some("b"));
        let written = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<FleetConfig>(&written).unwrap(), config);
        let error =
            toml::from_str::<FleetConfig>("[backup.remote]\nurl = \"https://x\"\n").unwrap_err();
        assert!(error.message().contains("not an s3:// URL"), "{error}");
    }

    #[test]
    fn vars_are_fleet_wide_or_per_group_and_not_fleet_keys() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            std::fs::write(dir.path().join("config.toml"), text).unwrap();
            FleetConfig::load(dir.path())
        };
        let config = load(
            "[vars]\ndomain = \"example.com\"\n[vars.group.staging]\ndomain = \"staging.example.com\"\n",
        )
        .unwrap();
        assert_eq!(config.vars.fleet["domain"], "example.com");
        assert_eq!(
            config.vars.group["staging"]["domain"],
            "staging.example.com"
        );
        let written = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<FleetConfig>(&written).unwrap(), config);
        assert!(
            !toml::to_string(&FleetConfig::default())
                .unwrap()
                .contains("vars")
        );
        let reserved = load("[vars]\nport = \"80\"\n").unwrap_err().to_string();
        assert!(
            reserved.contains("[vars]: var \"port\" is reserved"),
            "{reserved}"
        );
        assert!(load("[vars]\ncount = 3\n").is_err(), "vars are strings");
    }
}
