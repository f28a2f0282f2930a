//! The `fleet` binary's offline contract: output text, `--json` shapes, exit codes,
//! errors and hints, broken pipes. Commands that need a registry are in `resolve.rs`.

use std::process::{Command, Stdio};

const DIGEST: &str = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

fn fleet_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleet"));
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env("FLEET_LOG", "off")
        .env_remove("FLEET_STATE_DIR")
        .env_remove("FLEET_INSECURE_REGISTRIES");
    command
}

/// Runs `fleet` and shows everything it did: exit code, stdout, stderr.
fn fleet(args: &[&str]) -> String {
    let output = fleet_command(args).output().unwrap();
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `fleet --json …` and checks stdout is exactly one JSON document.
fn fleet_json(args: &[&str]) -> serde_json::Value {
    let output = fleet_command(args).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn ref_human() {
    insta::assert_snapshot!(fleet(&["ref", "nginx"]), @r"
    exit: 0
    --- stdout
    normalized  docker.io/library/nginx
    familiar    nginx
    registry    docker.io
    repository  library/nginx
    tag         -
    digest      -
    channel     latest (the tag `latest`)
    --- stderr
    ");
    insta::assert_snapshot!(fleet(&["ref", "ghcr.io/owner/app:v1.4"]), @r"
    exit: 0
    --- stdout
    normalized  ghcr.io/owner/app:v1.4
    familiar    ghcr.io/owner/app:v1.4
    registry    ghcr.io
    repository  owner/app
    tag         v1.4
    digest      -
    channel     v1.4 (the newest stable 1.4.x)
    --- stderr
    ");
    insta::assert_snapshot!(fleet(&["ref", &format!("localhost:5000/app:v1@{DIGEST}")]), @r"
    exit: 0
    --- stdout
    normalized  localhost:5000/app:v1@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c
    familiar    localhost:5000/app:v1@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c
    registry    localhost:5000
    repository  app
    tag         v1
    digest      sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c
    channel     sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c (exactly this manifest)
    --- stderr
    ");
}

#[test]
fn ref_json() {
    insta::assert_snapshot!(fleet(&["ref", "--json", "user/app:sha-1a2b3c4"]), @r#"
    exit: 0
    --- stdout
    {
      "registry": "docker.io",
      "repository": "user/app",
      "tag": "sha-1a2b3c4",
      "digest": null,
      "normalized": "docker.io/user/app:sha-1a2b3c4"
    }
    --- stderr
    "#);
    let json = fleet_json(&["ref", &format!("index.docker.io/redis@{DIGEST}"), "--json"]);
    insta::assert_snapshot!(serde_json::to_string(&json).unwrap(), @r#"{"digest":"sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c","normalized":"docker.io/library/redis@sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c","registry":"docker.io","repository":"library/redis","tag":null}"#);
}

#[test]
fn ref_errors_are_usage_errors_with_hints() {
    insta::assert_snapshot!(fleet(&["ref", "Nginx"]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid image reference "Nginx": repository name "Nginx" must be lowercase
    hint: repository names are lowercase: `nginx`
    "#);
    insta::assert_snapshot!(fleet(&["ref", "--json", "nginx:^1.2"]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid image reference "nginx:^1.2": tag "^1.2" must start with a letter, digit or `_` and hold at most 128 letters, digits, `_`, `.` or `-`
    hint: references look like `nginx`, `owner/app:v1`, `ghcr.io/owner/app@sha256:…`
    "#);
}

#[test]
fn tags_human_and_json() {
    insta::assert_snapshot!(fleet(&["tags", "1.4.2", "--sha", "1A2B3C4D5E6F"]), @r"
    exit: 0
    --- stdout
    v1.4.2
    v1.4
    v1
    latest
    sha-1a2b3c4
    --- stderr
    ");
    insta::assert_snapshot!(fleet(&["tags", "v2.0.0-rc.1", "--sha", "1a2b3c4", "--json"]), @r#"
    exit: 0
    --- stdout
    [
      "v2.0.0-rc.1",
      "sha-1a2b3c4"
    ]
    --- stderr
    "#);
    let json = fleet_json(&["--json", "tags", "0.3.0"]);
    assert_eq!(json, serde_json::json!(["v0.3.0", "v0.3", "v0", "latest"]));
}

#[test]
fn tags_errors() {
    insta::assert_snapshot!(fleet(&["tags", "1.4"]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid version "1.4": a release needs a full version: `1.4.2`, `v1.4.2`, `2.0.0-rc.1`
    "#);
    insta::assert_snapshot!(fleet(&["tags", "1.4.2", "--sha", "xyz"]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid commit sha "xyz": expected 7 to 64 hexadecimal digits
    "#);
}

#[test]
fn resolve_argument_errors_come_before_any_request() {
    insta::assert_snapshot!(fleet(&["resolve", "nginx:^x"]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid channel "^x": invalid version range: unexpected character 'x' while parsing major version number
    "#);
    insta::assert_snapshot!(fleet(&["resolve", "nginx", "--platform", "linux"]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid platform "linux": expected `os/architecture[/variant]`, such as `linux/arm64`
    "#);
}

#[test]
fn unreachable_registries_fail_with_exit_code_1_and_a_hint() {
    // Nothing listens on port 1; the client retries, then says so once.
    insta::assert_snapshot!(fleet(&["resolve", "127.0.0.1:1/app:v1", "--json"]), @r"
    exit: 1
    --- stdout
    --- stderr
    error: cannot reach the registry for 127.0.0.1:1/app: error sending request for url (http://127.0.0.1:1/v2/app/tags/list?n=1000): client error (Connect): tcp connect error: Connection refused (os error 111)
    hint: check that 127.0.0.1:1 is reachable; plain HTTP is used only for loopback registries and --insecure-registry hosts
    ");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    insta::assert_snapshot!(fleet(&["bogus"]), @"
    exit: 2
    --- stdout
    --- stderr
    error: unrecognized subcommand 'bogus'

      tip: a similar subcommand exists: 'logs'

    Usage: fleet [OPTIONS] <COMMAND>

    For more information, try '--help'.
    ");
    insta::assert_snapshot!(fleet(&["ref"]), @r"
    exit: 2
    --- stdout
    --- stderr
    error: the following required arguments were not provided:
      <REF>

    Usage: fleet ref <REF>

    For more information, try '--help'.
    ");
    insta::assert_snapshot!(fleet(&["--version"]), @r"
    exit: 0
    --- stdout
    fleet 0.1.0
    --- stderr
    ");
    assert!(fleet(&["--help"]).starts_with("exit: 0\n"));
}

#[test]
fn the_state_dir_flag_and_variable_are_global() {
    for args in [
        &["--state-dir", "/tmp/x", "ref", "nginx"][..],
        &["ref", "nginx", "--state-dir", "/tmp/x"],
    ] {
        assert!(fleet(args).starts_with("exit: 0\n"), "{args:?}");
    }
    let output = fleet_command(&["ref", "nginx"])
        .env("FLEET_STATE_DIR", "/tmp/x")
        .output()
        .unwrap();
    assert!(output.status.success());
}

/// Regression guard: writing to a closed pipe (`fleet … | head -0`) must not panic
/// (Rust ignores SIGPIPE, so writes fail with EPIPE instead); it is success, silently.
#[test]
fn a_closed_stdout_is_success() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = fleet_command(&["tags", "1.4.2", "--sha", "1a2b3c4"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// Regression (issue 14): `fleet ls --json | head -1` printed `error: Broken pipe` and
/// exited 1, because serde_json's error hid the io::Error from the broken-pipe check.
/// Every `--json` document goes through the same writer; these need no engine.
#[test]
fn a_closed_stdout_is_success_with_json_too() {
    for args in [
        &["--json", "tags", "1.4.2", "--sha", "1a2b3c4"][..],
        &["ref", "nginx", "--json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = fleet_command(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).as_ref()
            ),
            (Some(0), ""),
            "{args:?}"
        );
    }
}

/// The subcommands `fleet --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let output = fleet_command(&["--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let commands: Vec<String> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    assert!(commands.len() > 20, "{help}");
    commands
}

#[test]
fn completions_name_every_subcommand_and_bash_reads_its_script() {
    let commands = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let output = fleet_command(&["completions", shell]).output().unwrap();
        assert!(
            output.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.len() > 1000, "{shell}: {script}");
        for command in &commands {
            assert!(script.contains(command.as_str()), "{shell} lacks {command}");
        }
        if shell == "bash" {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &script).unwrap();
            let check = Command::new("bash")
                .arg("-n")
                .arg(file.path())
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "bash -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    insta::assert_snapshot!(fleet(&["completions", "tcsh"]), @"
    exit: 2
    --- stdout
    --- stderr
    error: invalid value 'tcsh' for '<SHELL>'
      [possible values: bash, elvish, fish, powershell, zsh]

      tip: a similar value exists: 'zsh'

    For more information, try '--help'.
    ");
}

#[test]
fn verbose_is_accepted_by_every_subcommand() {
    for command in subcommands() {
        let mut flags = vec!["--verbose", "-vv"];
        // On `create`, `-v` is `--volume`, as with `docker run`.
        if command == "create" {
            flags.pop();
        }
        for flag in flags {
            let output = fleet_command(&[&command, flag, "--help"]).output().unwrap();
            assert!(
                output.status.success(),
                "fleet {command} {flag}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn verbose_logs_debug_unless_fleet_log_says_otherwise() {
    let run = |args: &[&str], log: Option<&str>| {
        let mut command = fleet_command(args);
        command.env_remove("FLEET_LOG");
        if let Some(log) = log {
            command.env("FLEET_LOG", log);
        }
        let output = command.output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };
    // Every command logs its state directory at debug level.
    assert_eq!(run(&["ref", "nginx"], None), "");
    assert_eq!(run(&["-v", "ref", "nginx"], None), "");
    assert!(run(&["-vv", "ref", "nginx"], None).contains("state directory"));
    assert!(run(&["ref", "nginx", "--verbose", "--verbose"], None).contains("state directory"));
    assert_eq!(run(&["-vv", "ref", "nginx"], Some("off")), "");
    assert!(run(&["-q", "ref", "nginx"], Some("debug")).contains("state directory"));
}

#[test]
fn quiet_still_prints_errors() {
    insta::assert_snapshot!(fleet(&["-q", "ref"]), @"
    exit: 2
    --- stdout
    --- stderr
    error: the following required arguments were not provided:
      <REF>

    Usage: fleet ref <REF>

    For more information, try '--help'.
    ");
    // An error's hints are part of it.
    insta::assert_snapshot!(fleet(&["ref", "-q", "Nginx"]), @r#"
    exit: 2
    --- stdout
    --- stderr
    error: invalid image reference "Nginx": repository name "Nginx" must be lowercase
    hint: repository names are lowercase: `nginx`
    "#);
    insta::assert_snapshot!(fleet(&["-q", "-v", "ls"]), @"
    exit: 2
    --- stdout
    --- stderr
    error: the argument '--quiet' cannot be used with '--verbose...'

    Usage: fleet --quiet <COMMAND>

    For more information, try '--help'.
    ");
}

/// Runs `fleet` on a terminal (`script` gives it one): what the terminal shows.
fn fleet_on_a_terminal(args: &str) -> String {
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_fleet"));
    let output = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("FLEET_LOG", "off")
        .env_remove("FLEET_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn no_color_turns_colour_off_on_a_terminal() {
    assert!(fleet_on_a_terminal("ref nginx").contains('\x1b'));
    assert!(fleet_on_a_terminal("ref Nginx").contains('\x1b'));
    for args in [
        "ref nginx --no-color",
        "--no-color ref Nginx",
        "ref --no-color",
    ] {
        let shown = fleet_on_a_terminal(args);
        assert!(!shown.contains('\x1b'), "{args}: {shown:?}");
        assert!(
            shown.contains("nginx") || shown.contains("error"),
            "{args}: {shown:?}"
        );
    }
}
