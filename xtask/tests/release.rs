//! `cargo xtask release` end to end, on a fixture repository with a known history (a
//! workspace shaped like fleet's: six crates, `fleet-cli` building a `fleet` binary that
//! prints its version) and a real registry (Debian's docker-registry on loopback).
//!
//! Every commit date, author and `SOURCE_DATE_EPOCH` is fixed, so commit hashes, the
//! changelog and the dry-run plan are the same on every machine: they are snapshots.

#![allow(clippy::print_stderr)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use fleet_registry::{Client, ClientConfig, ImageRef};
use fleet_tests::registry::TestRegistry;

/// The fixed identity and clock of every commit and tag.
const GIT_ENV: [(&str, &str); 6] = [
    ("GIT_AUTHOR_NAME", "Fleet Maintainer"),
    ("GIT_AUTHOR_EMAIL", "maintainer@fleet.test"),
    ("GIT_COMMITTER_NAME", "Fleet Maintainer"),
    ("GIT_COMMITTER_EMAIL", "maintainer@fleet.test"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
];

/// 2026-11-30T12:00:00Z.
const EPOCH: i64 = 1_796_040_000;

/// A fixture repository.
struct Fixture {
    dir: tempfile::TempDir,
    /// The clock of the next commit.
    clock: std::cell::Cell<i64>,
}

impl Fixture {
    /// The workspace at 1.1.4, tagged v1.1.4, then six commits on main.
    fn new() -> Fixture {
        let fixture = Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: std::cell::Cell::new(EPOCH - 30 * 86_400),
        };
        fixture.write_workspace("1.1.4");
        fixture.git(&["init", "--quiet", "-b", "main"]);
        let status = Command::new(env!("CARGO"))
            .args(["generate-lockfile", "--offline", "--quiet"])
            .current_dir(fixture.root())
            .status()
            .unwrap();
        assert!(status.success(), "cargo generate-lockfile failed");
        fixture.commit_all("Initial import");
        fixture.git(&["tag", "--annotate", "v1.1.4", "-m", "fleet 1.1.4"]);
        fixture.change(
            "crates/fleet-registry/src/lib.rs",
            "feat(registry): resolve semver ranges",
            "",
        );
        fixture.change(
            "crates/fleet-backup/src/lib.rs",
            "fix(backup): keep the newest pre-update backup",
            "",
        );
        fixture.change("docs.md", "docs: how to run fleet serve in a container", "");
        fixture.change(
            "crates/fleet-core/src/lib.rs",
            "fleet-core: journal each step before it runs",
            "",
        );
        fixture.change(
            "crates/fleet-proxy/src/lib.rs",
            "perf(proxy): one allocation less per request",
            "",
        );
        fixture.change(
            "crates/fleet-core/src/lib.rs",
            "feat(core)!: rename Fleet::apply to Fleet::converge",
            "BREAKING CHANGE: embedders call Fleet::converge; Fleet::apply is gone.",
        );
        fixture
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A workspace shaped like fleet's, at `version`.
    fn write_workspace(&self, version: &str) {
        let crates = [
            ("fleet-registry", vec![]),
            ("fleet-health", vec![]),
            ("fleet-backup", vec![]),
            ("fleet-proxy", vec![]),
            (
                "fleet-core",
                vec![
                    "fleet-registry",
                    "fleet-health",
                    "fleet-backup",
                    "fleet-proxy",
                ],
            ),
            ("fleet-cli", vec!["fleet-core"]),
        ];
        let mut root = format!(
            "[workspace]\nresolver = \"3\"\nmembers = [\"crates/*\"]\n\n[workspace.package]\nversion = \"{version}\"\nedition = \"2024\"\nlicense = \"MIT OR Apache-2.0\"\nrepository = \"https://github.com/fleet-rs/fleet\"\n\n[workspace.dependencies]\n"
        );
        for (name, _) in &crates {
            root.push_str(&format!(
                "{name} = {{ path = \"crates/{name}\", version = \"{version}\" }}\n"
            ));
        }
        self.write("Cargo.toml", &root);
        for (name, dependencies) in &crates {
            let mut manifest = format!(
                "[package]\nname = \"{name}\"\ndescription = \"{name}, a fixture\"\nversion.workspace = true\nedition.workspace = true\nlicense.workspace = true\nrepository.workspace = true\n\n[dependencies]\n"
            );
            for dependency in dependencies {
                manifest.push_str(&format!("{dependency}.workspace = true\n"));
            }
            if *name == "fleet-cli" {
                manifest.push_str("\n[[bin]]\nname = \"fleet\"\npath = \"src/main.rs\"\n");
            }
            self.write(&format!("crates/{name}/Cargo.toml"), &manifest);
            if *name == "fleet-cli" {
                self.write(
                    "crates/fleet-cli/src/main.rs",
                    "fn main() {\n    if std::env::args().any(|arg| arg == \"--version\") {\n        println!(\"fleet {}\", env!(\"CARGO_PKG_VERSION\"));\n    }\n}\n",
                );
            } else {
                self.write(
                    &format!("crates/{name}/src/lib.rs"),
                    "//! A fixture crate.\n",
                );
            }
        }
        self.write(".gitignore", "/target\n");
    }

    /// Runs git in the fixture with the fixed identity and the next date.
    fn git(&self, args: &[&str]) -> String {
        let output = self.command("git").args(args).output().unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A command in the fixture with the fixed identity and clock.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let date = format!("@{} +0000", self.clock.get());
        command
            .current_dir(self.root())
            .envs(GIT_ENV)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        command
    }

    fn commit_all(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.clock.set(self.clock.get() + 86_400);
    }

    /// Appends a line to `path` and commits it.
    fn change(&self, path: &str, subject: &str, body: &str) {
        let file = self.root().join(path);
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        text.push_str(&format!("// {subject}\n"));
        self.write(path, &text);
        let message = if body.is_empty() {
            subject.to_owned()
        } else {
            format!("{subject}\n\n{body}")
        };
        self.commit_all(&message);
    }

    /// `cargo xtask release --root <fixture> ARGS...` with the fixed clock.
    fn release(&self, args: &[&str]) -> Output {
        let mut command = self.command(env!("CARGO_BIN_EXE_xtask"));
        command
            .arg("release")
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
            // The fixture's own target directory, whatever the test run uses.
            .env_remove("CARGO_TARGET_DIR");
        let output = command.output().unwrap();
        eprintln!(
            "--- cargo xtask release {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn version(&self) -> String {
        let manifest = std::fs::read_to_string(self.root().join("Cargo.toml")).unwrap();
        manifest
            .lines()
            .find_map(|line| line.strip_prefix("version = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_owned()
    }
}

/// A sparse crates index on loopback that knows one published crate version.
struct CratesIndex {
    url: String,
}

impl CratesIndex {
    /// `fleet-health 1.2.0` is published; every other crate is unknown (404).
    fn start() -> CratesIndex {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let _ = reader.read_line(&mut request);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or_default();
                let response = if path.ends_with("/fleet-health") {
                    let body = "{\"name\":\"fleet-health\",\"vers\":\"1.1.4\",\"deps\":[],\"cksum\":\"00\",\"features\":{},\"yanked\":false}\n{\"name\":\"fleet-health\",\"vers\":\"1.2.0\",\"deps\":[],\"cksum\":\"00\",\"features\":{},\"yanked\":false}\n";
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        CratesIndex { url }
    }
}

fn redact(
    text: &str,
    fixture: &Fixture,
    registry: &TestRegistry,
    extra: &[(&Path, &str)],
) -> String {
    let mut text = text.replace(&fixture.root().display().to_string(), "[REPO]");
    for (path, name) in extra {
        text = text.replace(&path.display().to_string(), name);
    }
    text.replace(&registry.host(), "[REGISTRY]")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_dry_run_prints_the_whole_plan_and_changes_nothing() {
    let fixture = Fixture::new();
    let registry = TestRegistry::start().unwrap();
    let index = CratesIndex::start();
    let arm64 = tempfile::NamedTempFile::new().unwrap();
    let head = fixture.git(&["rev-parse", "HEAD"]);
    let repository = format!("{}/fleet", registry.host());
    let output = fixture.release(&[
        "--bump",
        "minor",
        "--dry-run",
        "--skip-tests",
        "--builder",
        "daemonless",
        "--registry",
        &repository,
        "--crates-index",
        &index.url,
        "--binary",
        &format!("linux/arm64={}", arm64.path().display()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!(
        "dry_run_plan",
        redact(
            &stdout(&output),
            &fixture,
            &registry,
            &[(arm64.path(), "[ARM64 BINARY]")]
        )
    );
    // Nothing changed: no commit, no tag, no file, no image.
    assert_eq!(fixture.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(fixture.git(&["tag", "--list"]), "v1.1.4");
    assert_eq!(fixture.git(&["status", "--porcelain"]), "");
    assert_eq!(fixture.version(), "1.1.4");
    assert!(!fixture.root().join("CHANGELOG.md").exists());
    assert!(registry_tags(&registry).is_empty());
}

#[test]
fn a_release_refuses_a_dirty_tree_a_version_going_back_and_a_tag_made_before() {
    let fixture = Fixture::new();
    let registry = TestRegistry::start().unwrap();
    let repository = format!("{}/fleet", registry.host());
    let common = [
        "--dry-run",
        "--skip-tests",
        "--no-publish-crates",
        "--platforms",
        "linux/amd64",
        "--builder",
        "daemonless",
        "--registry",
        &repository,
    ];

    let backwards = fixture.release(&[&["--version", "1.0.0"], &common[..]].concat());
    assert_eq!(backwards.status.code(), Some(1));
    assert!(
        stderr(&backwards).contains("1.0.0 is not after the workspace's version 1.1.4"),
        "{}",
        stderr(&backwards)
    );

    let again = fixture.release(&[&["--version", "1.1.4"], &common[..]].concat());
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("the tag v1.1.4 already exists"),
        "{}",
        stderr(&again)
    );

    let neither = fixture.release(&common);
    assert_eq!(neither.status.code(), Some(1));
    assert!(
        stderr(&neither).contains("which version?"),
        "{}",
        stderr(&neither)
    );

    fixture.write("scratch.txt", "not committed\n");
    let dirty = fixture.release(&[&["--bump", "patch"], &common[..]].concat());
    assert_eq!(dirty.status.code(), Some(1));
    assert!(
        stderr(&dirty).contains("has changes; commit or stash them")
            && stderr(&dirty).contains("scratch.txt"),
        "{}",
        stderr(&dirty)
    );
    assert_eq!(fixture.version(), "1.1.4");
}

/// The digest each tag of the repository points at (none for a missing tag).
fn digests(registry: &TestRegistry, tags: &[&str]) -> Vec<Option<String>> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(ClientConfig::default()).unwrap();
    tags.iter()
        .map(|tag| {
            let image: ImageRef = format!("{}/fleet:{tag}", registry.host()).parse().unwrap();
            runtime
                .block_on(client.head_manifest(&image))
                .ok()
                .map(|head| head.digest.to_string())
        })
        .collect()
}

fn registry_tags(registry: &TestRegistry) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(ClientConfig::default()).unwrap();
    let image: ImageRef = format!("{}/fleet", registry.host()).parse().unwrap();
    let mut tags = runtime
        .block_on(client.fetch_tags(&image))
        .unwrap_or_default();
    tags.sort();
    tags
}

#[test]
fn releases_of_a_new_line_an_older_line_and_a_prerelease_move_the_tags_by_the_channel_rules() {
    let fixture = Fixture::new();
    let registry = TestRegistry::start().unwrap();
    let repository = format!("{}/fleet", registry.host());
    let release = |version: &str| {
        let output = fixture.release(&[
            "--version",
            version,
            "--push",
            "--skip-tests",
            "--no-publish-crates",
            "--platforms",
            "linux/amd64",
            "--builder",
            "daemonless",
            "--registry",
            &repository,
        ]);
        assert!(
            output.status.success(),
            "release {version}: {}",
            stderr(&output)
        );
        output
    };

    // 1.2.0 on main.
    release("1.2.0");
    assert_eq!(fixture.version(), "1.2.0");
    let release_commit = fixture.git(&["rev-parse", "HEAD"]);
    assert_eq!(
        fixture.git(&["rev-parse", "v1.2.0^{commit}"]),
        release_commit
    );
    assert_eq!(fixture.git(&["log", "-1", "--format=%s"]), "Release v1.2.0");
    assert_eq!(fixture.git(&["status", "--porcelain"]), "");
    let changelog = std::fs::read_to_string(fixture.root().join("CHANGELOG.md")).unwrap();
    insta::assert_snapshot!("changelog_1_2_0", changelog);
    let lock = std::fs::read_to_string(fixture.root().join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("name = \"fleet-cli\"\nversion = \"1.2.0\""),
        "{lock}"
    );
    let sha = format!("sha-{}", &release_commit[..7]);
    let [v120, v12, v1, latest, by_sha] = <[Option<String>; 5]>::try_from(digests(
        &registry,
        &["v1.2.0", "v1.2", "v1", "latest", &sha],
    ))
    .unwrap();
    assert!(v120.is_some());
    for other in [&v12, &v1, &latest, &by_sha] {
        assert_eq!(other, &v120);
    }

    // 1.1.5 on the 1.1 line's branch: v1.1 moves; v1 and latest stay on 1.2.0.
    fixture.git(&["checkout", "--quiet", "-b", "release-1.1", "v1.1.4"]);
    fixture.change(
        "crates/fleet-backup/src/lib.rs",
        "fix(backup): keep the newest pre-update backup (backport)",
        "",
    );
    let older = release("1.1.5");
    assert!(
        stdout(&older).contains("held back: v1 stays on v1.2.0")
            && stdout(&older).contains("held back: latest stays on v1.2.0"),
        "{}",
        stdout(&older)
    );
    let [v115, v11, v1_after, latest_after, v12_after] = <[Option<String>; 5]>::try_from(digests(
        &registry,
        &["v1.1.5", "v1.1", "v1", "latest", "v1.2"],
    ))
    .unwrap();
    assert!(v115.is_some());
    assert_ne!(v115, v120);
    assert_eq!(v11, v115);
    assert_eq!(v1_after, v120);
    assert_eq!(latest_after, v120);
    assert_eq!(v12_after, v120);

    // 2.0.0-rc.1 on main: its own tag only; nothing moving points at a prerelease.
    fixture.git(&["checkout", "--quiet", "main"]);
    fixture.change(
        "crates/fleet-core/src/lib.rs",
        "feat!: drop the version 1 state directory layout",
        "",
    );
    let prerelease = release("2.0.0-rc.1");
    assert!(
        stdout(&prerelease).contains("v2.0.0-rc.1"),
        "{}",
        stdout(&prerelease)
    );
    let [rc, v2, latest_rc, v1_rc] =
        <[Option<String>; 4]>::try_from(digests(&registry, &["v2.0.0-rc.1", "v2", "latest", "v1"]))
            .unwrap();
    assert!(rc.is_some());
    assert_eq!(v2, None, "a prerelease must not take v2");
    assert_eq!(latest_rc, v120);
    assert_eq!(v1_rc, v120);
    let tags = registry_tags(&registry);
    assert!(
        !tags.iter().any(|tag| tag == "v2" || tag == "v2.0"),
        "{tags:?}"
    );
}

#[test]
fn the_release_workflow_form_builds_and_pushes_a_commit_already_tagged() {
    let fixture = Fixture::new();
    let registry = TestRegistry::start().unwrap();
    let repository = format!("{}/fleet", registry.host());
    // A maintainer releases without --push (commit and tag, images built, not pushed)...
    let local = fixture.release(&[
        "--bump",
        "minor",
        "--skip-tests",
        "--no-publish-crates",
        "--platforms",
        "linux/amd64",
        "--builder",
        "daemonless",
        "--registry",
        &repository,
    ]);
    assert!(local.status.success(), "{}", stderr(&local));
    assert!(
        stderr(&local).contains("nothing was pushed"),
        "{}",
        stderr(&local)
    );
    assert!(registry_tags(&registry).is_empty());
    let head = fixture.git(&["rev-parse", "HEAD"]);
    // ...and the workflow, on the pushed tag, runs it again with --push.
    let workflow = fixture.release(&[
        "--version",
        "1.2.0",
        "--push",
        "--skip-tests",
        "--no-publish-crates",
        "--platforms",
        "linux/amd64",
        "--builder",
        "daemonless",
        "--registry",
        &repository,
    ]);
    assert!(workflow.status.success(), "{}", stderr(&workflow));
    assert!(
        stdout(&workflow).contains("is already tagged v1.2.0"),
        "{}",
        stdout(&workflow)
    );
    assert_eq!(
        fixture.git(&["rev-parse", "HEAD"]),
        head,
        "no second commit"
    );
    let sha = format!("sha-{}", &head[..7]);
    let [version, latest, by_sha] =
        <[Option<String>; 3]>::try_from(digests(&registry, &["v1.2.0", "latest", &sha])).unwrap();
    assert!(version.is_some());
    assert_eq!(latest, version);
    assert_eq!(by_sha, version);
}

#[test]
fn failing_tests_stop_the_release_before_anything_changes() {
    let fixture = Fixture::new();
    fixture.write(
        "crates/fleet-health/src/lib.rs",
        "//! A fixture crate.\n\n#[test]\nfn broken() {\n    panic!(\"this test fails\");\n}\n",
    );
    fixture.commit_all("test: a failing test");
    let head = fixture.git(&["rev-parse", "HEAD"]);
    let registry = TestRegistry::start().unwrap();
    let repository = format!("{}/fleet", registry.host());
    let output = fixture.release(&[
        "--bump",
        "patch",
        "--no-publish-crates",
        "--platforms",
        "linux/amd64",
        "--builder",
        "daemonless",
        "--registry",
        &repository,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the tests failed: nothing was released"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fixture.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(fixture.version(), "1.1.4");
    assert_eq!(fixture.git(&["tag", "--list"]), "v1.1.4");
}
