//! The crates.io step of `cargo xtask release`: which library crates a release publishes,
//! in which order, which of them are already on the registry at that version, and the
//! `cargo publish` of the others.
//!
//! The order is the dependency order (a crate after every workspace crate it depends on),
//! ties broken by the order in which the root `Cargo.toml` lists the crates under
//! `[workspace.dependencies]` (crates it does not list, such as the `fleet` binary's
//! package, come after those it does, by name). For fleet that is fleet-registry,
//! fleet-health, fleet-backup, fleet-proxy, fleet-core, fleet-cli.
//!
//! Whether a version is published is read from the registry's sparse index (one file per
//! crate, one JSON line per version): a crate whose file is missing is not published yet.
//! A release that stopped half-way is re-run as is: the crates already published are
//! skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// One crate of a release and what the release does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CrateRelease {
    pub(crate) name: String,
    pub(crate) version: semver::Version,
    pub(crate) action: PublishAction,
}

/// What a release does with one crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishAction {
    /// The registry does not have this version yet: `cargo publish` it.
    Publish,
    /// The registry has this version already (an earlier run published it): skip it.
    AlreadyPublished,
}

impl fmt::Display for CrateRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            PublishAction::Publish => "publish",
            PublishAction::AlreadyPublished => "already published, skip",
        };
        write!(f, "{} {}: {action}", self.name, self.version)
    }
}

/// A workspace member as `cargo metadata` describes it, with what ordering needs.
struct Member {
    name: String,
    version: String,
    publishable: bool,
    /// The names of the packages it depends on (normal, build and dev dependencies).
    dependencies: BTreeSet<String>,
}

/// Publishable workspace members (`publish` not `false`) in dependency order, dependencies
/// first, read with `cargo metadata --format-version 1 --no-deps` run in `root` (a
/// workspace root).
pub(crate) fn publish_order(root: &Path) -> anyhow::Result<Vec<String>> {
    let members = workspace_members(root)?;
    let listed = listed_workspace_dependencies(root)?;
    order(&members, &listed)
}

/// The plan of a release of `version`: for each crate [`publish_order`] gives, whether the
/// registry whose sparse index is at `index` (crates.io's is `https://index.crates.io/`) has that version
/// already.
pub(crate) fn plan(
    root: &Path,
    version: &semver::Version,
    index: &str,
) -> anyhow::Result<Vec<CrateRelease>> {
    plan_with(&IndexClient::new(true)?, root, version, index)
}

fn plan_with(
    agent: &IndexClient,
    root: &Path,
    version: &semver::Version,
    index: &str,
) -> anyhow::Result<Vec<CrateRelease>> {
    publish_order(root)?
        .into_iter()
        .map(|name| {
            let action = if is_published(agent, index, &name, version)? {
                PublishAction::AlreadyPublished
            } else {
                PublishAction::Publish
            };
            Ok(CrateRelease {
                name,
                version: version.clone(),
                action,
            })
        })
        .collect()
}

/// Runs `cargo publish -p NAME` (in `root`, to `registry` when given, crates.io otherwise)
/// for each crate to publish, in the order given, and skips the others, saying what it
/// does on stderr. Fails before publishing anything when a crate's manifest is not at the
/// planned version, and stops at the first crate that does not publish.
///
/// `cargo publish` waits until the registry serves the crate it published, so the next
/// crate, which may depend on it, finds it.
pub(crate) fn publish(
    root: &Path,
    crates: &[CrateRelease],
    registry: Option<&str>,
) -> anyhow::Result<()> {
    let members = workspace_members(root)?;
    for release in crates {
        let Some(member) = members.iter().find(|member| member.name == release.name) else {
            bail!(
                "{} is not a package of the workspace at {}",
                release.name,
                root.display()
            );
        };
        if member.version != release.version.to_string() {
            bail!(
                "{} is at version {} in its Cargo.toml, not {}: set the version before publishing",
                release.name,
                member.version,
                release.version
            );
        }
    }
    for release in crates {
        match release.action {
            PublishAction::AlreadyPublished => {
                eprintln!(
                    "xtask: {} {} is already published: skipped",
                    release.name, release.version
                );
            }
            PublishAction::Publish => {
                let mut command =
                    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
                command
                    .current_dir(root)
                    .args(["publish", "--package", &release.name]);
                if let Some(registry) = registry {
                    command.args(["--registry", registry]);
                }
                eprintln!("xtask: $ {}", crate::describe(&command));
                let status = command
                    .status()
                    .with_context(|| format!("cannot run {}", crate::describe(&command)))?;
                if !status.success() {
                    bail!(
                        "cannot publish {} {} (`{}` failed: {status}); the crates before it \
                         are published, so run the release again once this is fixed",
                        release.name,
                        release.version,
                        crate::describe(&command)
                    );
                }
            }
        }
    }
    Ok(())
}

/// The workspace members, from `cargo metadata --no-deps` in `root`.
fn workspace_members(root: &Path) -> anyhow::Result<Vec<Member>> {
    let metadata = crate::artifacts::metadata(root)?;
    members_from_metadata(&metadata)
}

fn members_from_metadata(metadata: &serde_json::Value) -> anyhow::Result<Vec<Member>> {
    let ids: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata has no workspace_members")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?;
    packages
        .iter()
        .filter(|package| package["id"].as_str().is_some_and(|id| ids.contains(id)))
        .map(|package| {
            let name = package["name"]
                .as_str()
                .context("a package without a name in cargo metadata")?;
            Ok(Member {
                name: name.to_owned(),
                version: package["version"].as_str().unwrap_or_default().to_owned(),
                // `publish` is null (anywhere), a list of registries, or `[]` for `publish = false`.
                publishable: package["publish"]
                    .as_array()
                    .is_none_or(|registries| !registries.is_empty()),
                dependencies: package["dependencies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|dependency| dependency["name"].as_str())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// The keys of the root manifest's `[workspace.dependencies]` table, in the order it lists
/// them: the tie-break of [`order`]. A line scan, not a TOML parser, is enough for the
/// `name = ...` lines the table holds.
fn listed_workspace_dependencies(root: &Path) -> anyhow::Result<Vec<String>> {
    let path = root.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(manifest
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "[workspace.dependencies]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, _)| key.trim().trim_matches('"').to_owned())
        .collect())
}

/// The publishable members, each after the publishable members it depends on; among those
/// whose dependencies are all placed, the one `listed` names first goes first, then the
/// unlisted ones by name. Fails on a dependency cycle.
fn order(members: &[Member], listed: &[String]) -> anyhow::Result<Vec<String>> {
    let publishable: BTreeMap<&str, &Member> = members
        .iter()
        .filter(|member| member.publishable)
        .map(|member| (member.name.as_str(), member))
        .collect();
    let rank = |name: &str| {
        let position = listed.iter().position(|listed| listed == name);
        (position.unwrap_or(usize::MAX), name.to_owned())
    };
    let mut waiting: BTreeMap<&str, BTreeSet<&str>> = publishable
        .iter()
        .map(|(&name, member)| {
            let dependencies = member
                .dependencies
                .iter()
                .map(String::as_str)
                .filter(|dependency| *dependency != name && publishable.contains_key(dependency))
                .collect();
            (name, dependencies)
        })
        .collect();
    let mut order = Vec::with_capacity(waiting.len());
    while !waiting.is_empty() {
        let Some(next) = waiting
            .iter()
            .filter(|(_, dependencies)| dependencies.is_empty())
            .map(|(&name, _)| name)
            .min_by_key(|name| rank(name))
        else {
            let cycle: Vec<&str> = waiting.keys().copied().collect();
            bail!(
                "the publishable crates {} depend on each other in a cycle: no publish order exists",
                cycle.join(", ")
            );
        };
        waiting.remove(next);
        for dependencies in waiting.values_mut() {
            dependencies.remove(next);
        }
        order.push(next.to_owned());
    }
    Ok(order)
}

/// The path of a crate's file in a sparse index: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`,
/// lowercase.
fn index_path(name: &str) -> String {
    let name = name.to_lowercase();
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// The HTTP client of the index requests: reqwest, as fleet-registry uses it (rustls
/// trusting the system's roots, as cargo does, so a TLS-inspecting proxy the system
/// trusts works too), on a runtime of its own.
struct IndexClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl IndexClient {
    /// A client; with `env_proxy`, through the proxies the environment names.
    fn new(env_proxy: bool) -> anyhow::Result<IndexClient> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if !env_proxy {
            builder = builder.no_proxy();
        }
        Ok(IndexClient {
            client: builder
                .build()
                .context("cannot set up an HTTP client for the crates index")?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// The status and body of a GET of `url`.
    fn get(&self, url: &str) -> anyhow::Result<(u16, String)> {
        self.runtime.block_on(async {
            let response = self.client.get(url).send().await?;
            let status = response.status().as_u16();
            Ok((status, response.text().await?))
        })
    }
}

/// Whether the sparse index at `index` lists `version` of `name`. A missing file (404, or
/// 410 and 451, which cargo reads the same way) means the crate was never published.
fn is_published(
    agent: &IndexClient,
    index: &str,
    name: &str,
    version: &semver::Version,
) -> anyhow::Result<bool> {
    let url = format!("{}/{}", index.trim_end_matches('/'), index_path(name));
    let (status, body) = agent
        .get(&url)
        .with_context(|| format!("cannot read the index file of {name} at {url}"))?;
    match status {
        200 => {}
        404 | 410 | 451 => return Ok(false),
        status => bail!("the index file of {name} at {url} answered HTTP {status}"),
    }
    versions_listed(&body)
        .with_context(|| format!("the index file of {name} at {url} is not a sparse index file"))
        .map(|versions| versions.contains(version))
}

/// The versions an index file lists: one JSON object a line, the version in `vers`.
fn versions_listed(file: &str) -> anyhow::Result<Vec<semver::Version>> {
    file.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line)?;
            let vers = entry["vers"].as_str().context("a line without `vers`")?;
            Ok(vers.parse()?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    #[test]
    fn the_workspace_publishes_in_the_order_of_the_issue() {
        let order = publish_order(&crate::workspace_root()).expect("cargo metadata works");
        assert_eq!(
            order,
            [
                "fleet-registry",
                "fleet-health",
                "fleet-backup",
                "fleet-proxy",
                "fleet-core",
                "fleet-cli"
            ]
        );
    }

    fn member(name: &str, dependencies: &[&str]) -> Member {
        Member {
            name: name.to_owned(),
            version: "0.1.0".to_owned(),
            publishable: true,
            dependencies: dependencies.iter().map(|&name| name.to_owned()).collect(),
        }
    }

    fn check_order(members: &[Member], listed: &[&str]) -> String {
        let listed: Vec<String> = listed.iter().map(|&name| name.to_owned()).collect();
        match order(members, &listed) {
            Ok(order) => order.join(" "),
            Err(error) => format!("error: {error:#}"),
        }
    }

    #[test]
    fn dependencies_come_first_then_the_listed_order_then_names() {
        let members = [
            member("app", &["core", "serde"]),
            member("core", &["zeta", "alpha"]),
            member("alpha", &[]),
            member("zeta", &[]),
        ];
        assert_eq!(
            check_order(&members, &["zeta", "alpha"]),
            "zeta alpha core app"
        );
        assert_eq!(check_order(&members, &[]), "alpha zeta core app");
        assert_eq!(check_order(&members, &["core"]), "alpha zeta core app");
    }

    #[test]
    fn unpublishable_members_are_left_out() {
        let mut tests = member("tests", &["core"]);
        tests.publishable = false;
        let members = [tests, member("core", &["tests"])];
        assert_eq!(check_order(&members, &[]), "core");
    }

    #[test]
    fn a_cycle_is_an_error() {
        let members = [member("a", &["b"]), member("b", &["a"]), member("c", &[])];
        assert_eq!(
            check_order(&members, &[]),
            "error: the publishable crates a, b depend on each other in a cycle: no publish order exists"
        );
    }

    #[test]
    fn index_paths_follow_the_sparse_index_layout() {
        let paths: Vec<String> = ["a", "AB", "abc", "Fleet-Core", "serde"]
            .into_iter()
            .map(index_path)
            .collect();
        assert_eq!(
            paths,
            ["1/a", "2/ab", "3/a/abc", "fl/ee/fleet-core", "se/rd/serde"]
        );
    }

    /// A sparse index on 127.0.0.1 for the length of a test: `files` maps request paths to
    /// bodies; other paths are 404, and every path is `status` when it is given.
    struct Index {
        url: String,
    }

    impl Index {
        fn serve(files: &[(&str, &str)], status: Option<u16>) -> Index {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
            let url = format!("http://{}/", listener.local_addr().expect("an address"));
            let files: BTreeMap<String, String> = files
                .iter()
                .map(|&(path, body)| (format!("/{path}"), body.to_owned()))
                .collect();
            // Answers until the test process ends; each test has its own listener.
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = BufReader::new(&stream);
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        continue;
                    }
                    // The rest of the head, up to the empty line.
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                        line.clear();
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
                    let (code, body) = match (status, files.get(path)) {
                        (Some(status), _) => (status, String::new()),
                        (None, Some(body)) => (200, body.clone()),
                        (None, None) => (404, String::new()),
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            Index { url }
        }
    }

    /// The index file of fleet-registry with 1.1.0 and 1.2.0 published.
    const FLEET_REGISTRY_FILE: &str = concat!(
        r#"{"name":"fleet-registry","vers":"1.1.0","deps":[],"cksum":"00","features":{},"yanked":false}"#,
        "\n",
        r#"{"name":"fleet-registry","vers":"1.2.0","deps":[],"cksum":"01","features":{},"yanked":false}"#,
        "\n",
    );

    fn plan_against(index: &Index, version: &str) -> anyhow::Result<Vec<CrateRelease>> {
        // No proxy from the environment: the index is on 127.0.0.1.
        let version = version.parse().expect("a version");
        plan_with(
            &IndexClient::new(false).expect("a client"),
            &crate::workspace_root(),
            &version,
            &index.url,
        )
    }

    fn lines(plan: &[CrateRelease]) -> String {
        plan.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_version_on_the_index_is_skipped_and_the_others_are_published() {
        let index = Index::serve(&[("fl/ee/fleet-registry", FLEET_REGISTRY_FILE)], None);
        let plan = plan_against(&index, "1.2.0").expect("the index answers");
        assert_eq!(
            lines(&plan),
            "fleet-registry 1.2.0: already published, skip\n\
             fleet-health 1.2.0: publish\n\
             fleet-backup 1.2.0: publish\n\
             fleet-proxy 1.2.0: publish\n\
             fleet-core 1.2.0: publish\n\
             fleet-cli 1.2.0: publish"
        );
        let next = plan_against(&index, "1.3.0").expect("the index answers");
        assert!(
            next.iter()
                .all(|release| release.action == PublishAction::Publish)
        );
    }

    #[test]
    fn an_index_that_fails_is_an_error_naming_the_url() {
        let index = Index::serve(&[], Some(500));
        let error = plan_against(&index, "1.2.0").expect_err("a 500 is an error");
        assert_eq!(
            format!("{error:#}"),
            format!(
                "the index file of fleet-registry at {}fl/ee/fleet-registry answered HTTP 500",
                index.url
            )
        );
    }

    #[test]
    fn an_index_file_that_is_not_json_is_an_error_naming_the_url() {
        let index = Index::serve(&[("fl/ee/fleet-registry", "<html>\n")], None);
        let error = plan_against(&index, "1.2.0").expect_err("HTML is not an index file");
        assert!(
            format!("{error:#}").starts_with(&format!(
                "the index file of fleet-registry at {}fl/ee/fleet-registry is not a sparse index file: ",
                index.url
            )),
            "{error:#}"
        );
    }
}
