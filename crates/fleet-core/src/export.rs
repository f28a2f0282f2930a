//! `fleet export`: instances written out so they run without fleet (a
//! `docker-compose.yml`) or are described in a `fleet.toml` fragment.
//!
//! Both writers are pure functions of [`ExportedInstance`]s, which
//! [`Fleet::export`](crate::Fleet::export) gathers from the store.
//!
//! The compose file is written by a small emitter of its own rather than a YAML crate:
//! its shape is fixed, `serde_yaml` is archived and its forks are young, and no YAML
//! serializer knows what compose needs besides YAML: `$` must be written `$$` (compose
//! interpolates variables in every value), and docker-compose 1.x reads YAML 1.1, where
//! `no`, `on` and `y` are booleans. Every string is therefore written double-quoted,
//! with both escapes applied.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet_health::ProbeKind;

use crate::fleetfile::{FleetFile, InstanceSettings};
use crate::spec::{DATA_MOUNT, InstanceSpec, default_policy};
use crate::view::PortMapping;

/// One instance as `fleet export` writes it: its spec and what fleet resolved for it.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct ExportedInstance {
    /// The spec, as `fleet create` took it.
    pub spec: InstanceSpec,
    /// The image the instance runs, by digest (`ghcr.io/acme/app@sha256:…`).
    pub image: String,
    /// The tag the channel resolved to, if known (for a comment).
    pub tag: Option<String>,
    /// Its container ports and the host ports fleet allocated for them.
    pub ports: Vec<PortMapping>,
    /// The host address the ports are published on (`bind_address` of `config.toml`).
    pub bind_address: IpAddr,
    /// The environment the container gets: `FLEET_INSTANCE`, the env file as read now,
    /// and the inline env over it.
    pub env: BTreeMap<String, String>,
    /// The host directory mounted at `/data`.
    pub data_dir: PathBuf,
}

impl ExportedInstance {
    /// An exported instance from its parts.
    pub fn new(
        spec: InstanceSpec,
        image: String,
        ports: Vec<PortMapping>,
        bind_address: IpAddr,
        env: BTreeMap<String, String>,
        data_dir: PathBuf,
    ) -> Self {
        Self {
            spec,
            image,
            tag: None,
            ports,
            bind_address,
            env,
            data_dir,
        }
    }

    /// Sets the tag the channel resolved to.
    pub fn with_tag(mut self, tag: Option<String>) -> Self {
        self.tag = tag;
        self
    }
}

impl fmt::Debug for ExportedInstance {
    // Environment values can be secrets: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedInstance")
            .field("spec", &self.spec)
            .field("image", &self.image)
            .field("tag", &self.tag)
            .field("ports", &self.ports)
            .field("bind_address", &self.bind_address)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// A `docker-compose.yml` (file format 2.4, which docker-compose 1.x and the compose
/// plugin both run, limits included, without swarm) with one service per instance,
/// named after it: the image by digest, the same host ports on the same address, the
/// environment the container gets, the data directory at `/data` and the extra volumes,
/// the limits, restart policy, user, the instance's labels (never `fleet.*` ones: an
/// exported container must not pass for fleet's) and Docker's healthcheck when the
/// instance has one.
pub fn compose(instances: &[ExportedInstance]) -> String {
    let mut out = String::new();
    out.push_str(
        "# Written by `fleet export --format compose`: these instances without fleet.\n\
         # Stop them in fleet first (`fleet stop NAME`): they use the same host ports and\n\
         # data directories. Environment values are written as they are: keep this file private.\n\
         version: \"2.4\"\n",
    );
    // `services:` with nothing under it is null, which compose refuses.
    out.push_str(if instances.is_empty() {
        "services: {}\n"
    } else {
        "services:\n"
    });
    for instance in instances {
        service(&mut out, instance);
    }
    out
}

/// One service of [`compose`]. Writing to a `String` cannot fail.
fn service(out: &mut String, instance: &ExportedInstance) {
    let spec = &instance.spec;
    let _ = writeln!(out, "  {}:", spec.name);
    let _ = writeln!(
        out,
        "    # {} follows {}{}",
        spec.name,
        spec.image,
        instance
            .tag
            .as_deref()
            .map(|tag| format!(", here at tag {tag}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "    image: {}", value(&instance.image));
    if !instance.ports.is_empty() {
        out.push_str("    ports:\n");
        for port in &instance.ports {
            let address = match instance.bind_address {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let _ = writeln!(
                out,
                "      - {}",
                value(&format!("{address}:{}:{}", port.host, port.container))
            );
        }
    }
    if !instance.env.is_empty() {
        out.push_str("    environment:\n");
        for (key, env_value) in &instance.env {
            let _ = writeln!(out, "      {}: {}", key_text(key), value(env_value));
        }
    }
    out.push_str("    volumes:\n");
    volume(out, &instance.data_dir, DATA_MOUNT, false);
    for extra in &spec.volumes {
        volume(out, &extra.host, &extra.container, extra.read_only);
    }
    if let Some(bytes) = spec.resources.memory_bytes {
        let _ = writeln!(
            out,
            "    mem_limit: {}",
            value(&crate::spec::memory_text(bytes))
        );
    }
    if let Some(cpus) = spec.resources.cpus {
        let _ = writeln!(out, "    cpus: {cpus}");
    }
    let _ = writeln!(out, "    restart: {}", value(&spec.restart.to_string()));
    if let Some(user) = &spec.user {
        let _ = writeln!(out, "    user: {}", value(user));
    }
    let labels: Vec<_> = spec
        .labels
        .iter()
        .filter(|(key, _)| !key.starts_with("fleet."))
        .collect();
    if !labels.is_empty() {
        out.push_str("    labels:\n");
        for (key, label) in labels {
            let _ = writeln!(out, "      {}: {}", key_text(key), value(label));
        }
    }
    match (&spec.docker_healthcheck, &spec.health) {
        (Some(command), health) => {
            let policy = health
                .as_ref()
                .map(|h| h.policy.clone())
                .unwrap_or_else(default_policy);
            let test: Vec<String> = std::iter::once("CMD")
                .chain(command.iter().map(String::as_str))
                .map(value)
                .collect();
            out.push_str("    healthcheck:\n");
            let _ = writeln!(out, "      test: [{}]", test.join(", "));
            let _ = writeln!(out, "      interval: {}", value(&duration(policy.interval)));
            let _ = writeln!(out, "      timeout: {}", value(&duration(policy.timeout)));
            let _ = writeln!(out, "      retries: {}", policy.failure_threshold);
            let _ = writeln!(
                out,
                "      start_period: {}",
                value(&duration(policy.start_period))
            );
        }
        (None, Some(health)) => {
            let port = spec
                .health_port()
                .map_or_else(String::new, |p| p.to_string());
            // A comment ends at a line break: the path is written escaped.
            let path = health.path.escape_debug();
            let probe = match health.kind {
                ProbeKind::Tcp => format!("a TCP connect to container port {port}"),
                ProbeKind::Https => format!("HTTPS GET {path} on container port {port}"),
                _ => format!("HTTP GET {path} on container port {port}"),
            };
            let _ = writeln!(
                out,
                "    # No healthcheck: fleet probes {probe} from outside, which compose cannot;\n    \
                 # add one that runs a tool of the image (curl, wget) if it has one."
            );
        }
        (None, None) => {}
    }
}

/// A bind mount: the short syntax fleet's own binds have (a missing host directory is
/// created), or the long syntax for a path holding `:`, which the short one cannot say.
fn volume(out: &mut String, host: &Path, container: &str, read_only: bool) {
    let host = host.to_string_lossy();
    if host.contains(':') || container.contains(':') {
        let _ = writeln!(out, "      - type: bind");
        let _ = writeln!(out, "        source: {}", value(&host));
        let _ = writeln!(out, "        target: {}", value(container));
        if read_only {
            let _ = writeln!(out, "        read_only: true");
        }
    } else {
        let mode = if read_only { ":ro" } else { "" };
        let _ = writeln!(
            out,
            "      - {}",
            value(&format!("{host}:{container}{mode}"))
        );
    }
}

/// A compose value: `$` doubled (compose interpolates values), then a YAML string.
fn value(text: &str) -> String {
    yaml_string(&text.replace('$', "$$"))
}

/// A mapping key (compose does not interpolate keys): a YAML string.
fn key_text(text: &str) -> String {
    yaml_string(text)
}

/// A double-quoted YAML scalar that YAML 1.1 (PyYAML, docker-compose 1.x) and 1.2 read
/// back as `text`: quotes, backslashes and everything but printable characters escaped
/// (line breaks included, so the scalar stays on one line).
fn yaml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            // Printable in YAML 1.1, and not a line break there (as U+0085, U+2028 and
            // U+2029 are).
            '\u{a0}'..='\u{2027}' | '\u{202a}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' => {
                out.push(c);
            }
            '\u{ff00}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}' => out.push(c),
            c if u32::from(c) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// A duration as compose reads it (`90s`, `250ms`): one unit, the largest exact one.
fn duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else if duration.subsec_nanos().is_multiple_of(1_000) {
        format!("{}us", duration.as_micros())
    } else {
        format!("{}ns", duration.as_nanos())
    }
}

/// A `fleet.toml` fragment: [`FleetFile`] with one `[instances.NAME]` table per
/// instance ([`InstanceSettings`]: `fleet create`'s flags in snake_case, repeatable flags
/// plural, `[instances.NAME.backup]` for the backup settings), holding only the settings
/// that differ from `fleet create`'s defaults, so `fleet apply` of it makes the same
/// specs. It describes what the instance follows (its channel), not what it runs now:
/// host ports only when fixed, the env file by its path, the data directory only when
/// not the default one. What only the library can set and the file cannot say (a Docker
/// healthcheck, say) is named in a comment line.
pub fn toml(instances: &[ExportedInstance]) -> String {
    let file = FleetFile {
        instances: instances
            .iter()
            .map(|i| {
                (
                    i.spec.name.to_string(),
                    InstanceSettings::from_spec(&i.spec),
                )
            })
            .collect(),
        ..FleetFile::default()
    };
    let body = ::toml::to_string(&file).unwrap_or_else(|error| {
        // Every value is a string, number, boolean, array or table of them.
        unreachable!("an instance table serialises: {error}")
    });
    let mut out = "# Written by `fleet export --format toml`: the keys of fleet.toml.\n".to_owned();
    for instance in instances {
        let lost = left_out(&instance.spec);
        if !lost.is_empty() {
            let _ = writeln!(
                out,
                "# {}: left out, as fleet.toml has no key for it: {}.",
                instance.spec.name,
                lost.join(", ")
            );
        }
    }
    out.push('\n');
    out.push_str(&body);
    out
}

/// The settings of `spec` that `fleet.toml` cannot say (only the library sets them).
fn left_out(spec: &InstanceSpec) -> Vec<String> {
    let mut lost = Vec::new();
    if spec.docker_healthcheck.is_some() {
        lost.push("its Docker healthcheck".to_owned());
    }
    for port in spec.ports.iter().skip(1).filter(|p| p.host.is_some()) {
        lost.push(format!(
            "the fixed host port of container port {}",
            port.container
        ));
    }
    if let Some(health) = &spec.health {
        if health.kind == ProbeKind::Https {
            lost.push("its HTTPS probe (written as HTTP)".to_owned());
        }
        let (mine, defaults) = (&health.policy, default_policy());
        if (
            mine.start_interval,
            mine.timeout,
            mine.success_threshold,
            mine.failure_threshold,
        ) != (
            defaults.start_interval,
            defaults.timeout,
            defaults.success_threshold,
            defaults.failure_threshold,
        ) {
            lost.push("its probe timeout, start interval and thresholds".to_owned());
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::spec::{PortSpec, RestartPolicy, VolumeSpec, http_health, tcp_health};

    /// A spec with every setting `fleet create` takes, and values that need escaping.
    fn rich() -> ExportedInstance {
        let mut spec = InstanceSpec::new(
            "alice".parse().unwrap(),
            "ghcr.io/acme/app:v1".parse().unwrap(),
        )
        .with_port(PortSpec::fixed(8080, 5001))
        .with_port(PortSpec::auto(9090))
        .with_env("TZ", "Europe/Paris")
        .with_env("PASSWORD", "pa$$word \"quoted\"\nline two")
        .with_env("ANSWER", "no")
        .with_group("prod")
        .with_data_dir(Path::new("/srv/alice"));
        let mut health = http_health("/api/health");
        health.policy.interval = Duration::from_secs(5);
        spec.health = Some(health);
        spec.docker_healthcheck = Some(vec!["/app".into(), "healthcheck".into()]);
        spec.env_file = Some("/etc/fleet/alice.env".into());
        spec.volumes = vec![
            "/srv/shared:/shared:ro".parse::<VolumeSpec>().unwrap(),
            "/srv/cache:/cache".parse().unwrap(),
        ];
        spec.resources.memory_bytes = Some(512 << 20);
        spec.resources.cpus = Some(1.5);
        spec.restart = RestartPolicy::OnFailure(3);
        spec.user = Some("1000:1000".into());
        spec.labels.insert("com.acme.tier".into(), "gold".into());
        spec.backup.exec = Some(vec![
            "sh".into(),
            "-c".into(),
            "sqlite3 /data/db .dump".into(),
        ]);
        spec.backup.keep_last = NonZeroUsize::new(7);
        spec.backup.keep_within = Some(Duration::from_secs(7 * 86400));
        let mut env = spec.env.clone();
        env.insert("FROM_FILE".into(), "1".into());
        env.insert("FLEET_INSTANCE".into(), "alice".into());
        ExportedInstance::new(
            spec,
            "ghcr.io/acme/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            vec![
                PortMapping { container: 8080, host: 5001 },
                PortMapping { container: 9090, host: 5002 },
            ],
            IpAddr::from([127, 0, 0, 1]),
            env,
            "/srv/alice".into(),
        )
        .with_tag(Some("v1.4.2".into()))
    }

    /// A spec with fleet's defaults: a TCP check on its one port, the default data
    /// directory.
    fn plain() -> ExportedInstance {
        let spec = InstanceSpec::new("bob".parse().unwrap(), "app:latest".parse().unwrap())
            .with_port(PortSpec::auto(80))
            .with_health(tcp_health());
        ExportedInstance::new(
            spec,
            "docker.io/library/app@sha256:ffff".into(),
            vec![PortMapping {
                container: 80,
                host: 5003,
            }],
            IpAddr::from([0, 0, 0, 0]),
            BTreeMap::from([("FLEET_INSTANCE".to_owned(), "bob".to_owned())]),
            "/var/lib/fleet/instances/bob/data".into(),
        )
    }

    #[test]
    fn compose_files() {
        insta::assert_snapshot!(compose(&[rich(), plain()]), @r#"
        # Written by `fleet export --format compose`: these instances without fleet.
        # Stop them in fleet first (`fleet stop NAME`): they use the same host ports and
        # data directories. Environment values are written as they are: keep this file private.
        version: "2.4"
        services:
          alice:
            # alice follows ghcr.io/acme/app:v1, here at tag v1.4.2
            image: "ghcr.io/acme/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ports:
              - "127.0.0.1:5001:8080"
              - "127.0.0.1:5002:9090"
            environment:
              "ANSWER": "no"
              "FLEET_INSTANCE": "alice"
              "FROM_FILE": "1"
              "PASSWORD": "pa$$$$word \"quoted\"\nline two"
              "TZ": "Europe/Paris"
            volumes:
              - "/srv/alice:/data"
              - "/srv/shared:/shared:ro"
              - "/srv/cache:/cache"
            mem_limit: "512m"
            cpus: 1.5
            restart: "on-failure:3"
            user: "1000:1000"
            labels:
              "com.acme.tier": "gold"
            healthcheck:
              test: ["CMD", "/app", "healthcheck"]
              interval: "5s"
              timeout: "2s"
              retries: 3
              start_period: "60s"
          bob:
            # bob follows docker.io/library/app:latest
            image: "docker.io/library/app@sha256:ffff"
            ports:
              - "0.0.0.0:5003:80"
            environment:
              "FLEET_INSTANCE": "bob"
            volumes:
              - "/var/lib/fleet/instances/bob/data:/data"
            restart: "unless-stopped"
            # No healthcheck: fleet probes a TCP connect to container port 80 from outside, which compose cannot;
            # add one that runs a tool of the image (curl, wget) if it has one.
        "#);
    }

    #[test]
    fn compose_edge_cases() {
        let mut odd = plain();
        odd.bind_address = "::1".parse().unwrap();
        odd.data_dir = "/srv/a:b".into();
        odd.spec.health = Some(http_health("/h\n    evil: yes"));
        odd.spec
            .labels
            .insert("fleet.scope".into(), "forged".into());
        odd.env
            .insert("CTRL".into(), "\u{1}\u{7f}\u{85}\u{2028}é😀".into());
        insta::assert_snapshot!(compose(&[odd]), @r#"
        # Written by `fleet export --format compose`: these instances without fleet.
        # Stop them in fleet first (`fleet stop NAME`): they use the same host ports and
        # data directories. Environment values are written as they are: keep this file private.
        version: "2.4"
        services:
          bob:
            # bob follows docker.io/library/app:latest
            image: "docker.io/library/app@sha256:ffff"
            ports:
              - "[::1]:5003:80"
            environment:
              "CTRL": "\x01\x7f\x85\u2028é😀"
              "FLEET_INSTANCE": "bob"
            volumes:
              - type: bind
                source: "/srv/a:b"
                target: "/data"
            restart: "unless-stopped"
            # No healthcheck: fleet probes HTTP GET /h\n    evil: yes on container port 80 from outside, which compose cannot;
            # add one that runs a tool of the image (curl, wget) if it has one.
        "#);
    }

    #[test]
    fn durations_and_sizes() {
        let check = |d: Duration| duration(d);
        insta::assert_snapshot!(check(Duration::from_secs(90)), @"90s");
        insta::assert_snapshot!(check(Duration::from_millis(250)), @"250ms");
        insta::assert_snapshot!(check(Duration::from_micros(1500)), @"1500us");
        insta::assert_snapshot!(check(Duration::from_nanos(7)), @"7ns");
        insta::assert_snapshot!(crate::spec::memory_text(512 << 20), @"512m");
        insta::assert_snapshot!(crate::spec::memory_text(3 << 29), @"1536m");
        insta::assert_snapshot!(crate::spec::memory_text(2 << 30), @"2g");
        insta::assert_snapshot!(crate::spec::memory_text(6_000_001), @"6000001");
    }

    #[test]
    fn toml_fragments() {
        insta::assert_snapshot!(toml(&[rich(), plain()]), @r#"
        # Written by `fleet export --format toml`: the keys of fleet.toml.
        # alice: left out, as fleet.toml has no key for it: its Docker healthcheck.

        [instances.alice]
        image = "ghcr.io/acme/app:v1"
        ports = [8080, 9090]
        host_port = 5001
        env_file = "/etc/fleet/alice.env"
        group = "prod"
        health_path = "/api/health"
        health_interval = "5s"
        data_dir = "/srv/alice"
        volumes = ["/srv/shared:/shared:ro", "/srv/cache:/cache"]
        memory = "512m"
        cpus = 1.5
        restart = "on-failure:3"
        user = "1000:1000"

        [instances.alice.env]
        ANSWER = "no"
        PASSWORD = """
        pa$$word "quoted"
        line two"""
        TZ = "Europe/Paris"

        [instances.alice.labels]
        "com.acme.tier" = "gold"

        [instances.alice.backup]
        exec = ["sh", "-c", "sqlite3 /data/db .dump"]
        keep_last = 7
        keep_within = "7days"

        [instances.bob]
        image = "docker.io/library/app:latest"
        ports = [80]
        "#);
    }

    #[test]
    fn debug_never_shows_env_values() {
        let text = format!("{:?}", rich());
        assert!(
            text.contains("PASSWORD") && !text.contains("pa$$word"),
            "{text}"
        );
    }

    /// Settings only the library sets are named, not silently dropped.
    #[test]
    fn toml_fragments_name_what_they_leave_out() {
        let mut odd = rich();
        odd.spec.ports[1].host = Some(5002);
        let mut health = http_health("/h");
        health.kind = ProbeKind::Https;
        health.policy.timeout = Duration::from_secs(9);
        odd.spec.health = Some(health);
        let text = toml(&[odd]);
        insta::assert_snapshot!(text.lines().nth(1).unwrap(), @"# alice: left out, as fleet.toml has no key for it: its Docker healthcheck, the fixed host port of container port 9090, its HTTPS probe (written as HTTP), its probe timeout, start interval and thresholds.");
    }

    /// What `fleet apply` reads back from the fragment is the spec that was exported:
    /// every setting `fleet create` takes survives the trip.
    #[test]
    fn toml_fragments_read_back_as_the_same_specs() {
        let mut alice = rich();
        alice.spec.docker_healthcheck = None;
        // Ports without health: `no_health`.
        let mut carol = plain();
        carol.spec.name = "carol".parse().unwrap();
        carol.spec.health = None;
        let exported = [alice, plain(), carol];
        let path = Path::new("/etc/fleet/fleet.toml");
        let text = toml(&exported);
        let desired = FleetFile::parse(&text, path)
            .and_then(|file| file.desired(path))
            .unwrap_or_else(|e| panic!("{e}: {text}"));
        let specs: Vec<_> = desired.into_iter().map(|d| d.spec).collect();
        let expected: Vec<_> = exported.into_iter().map(|e| e.spec).collect();
        assert_eq!(specs, expected, "{text}");
    }

    /// The fragment is TOML, and a spec without health on its ports says so.
    #[test]
    fn toml_fragments_parse() {
        let mut quiet = plain();
        quiet.spec.health = None;
        let text = toml(&[rich(), quiet]);
        let value: ::toml::Table = text.parse().unwrap();
        let instances = value["instances"].as_table().unwrap();
        assert_eq!(instances["bob"]["no_health"].as_bool(), Some(true));
        assert_eq!(
            instances["alice"]["env"]["PASSWORD"].as_str(),
            Some("pa$$word \"quoted\"\nline two")
        );
    }
}
