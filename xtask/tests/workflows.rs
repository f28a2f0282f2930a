//! The GitHub Actions workflows (`.github/workflows/*.yml`) are valid workflows, by the
//! GitHub workflow schema `check-jsonschema` vendors (no network), and the release
//! workflow does what issue 13 asks: it runs on `v*` tags and runs
//! `cargo xtask release … --push`, where the logic lives and is tested.
//!
//! `cargo xtask test` installs `check-jsonschema` from PyPI (`xtask/src/workflows.rs`);
//! without it this test fails saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn workflows() -> Vec<PathBuf> {
    let dir = workspace_root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    files
}

/// `check-jsonschema`, on the `PATH` or in `~/.local/bin`.
fn check_jsonschema() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let user_bin = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| Path::new(&home).join(".local/bin"));
    std::env::split_paths(&path)
        .chain(user_bin)
        .map(|dir| dir.join("check-jsonschema"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`check-jsonschema` is not installed, and this test validates the workflows \
                 with it: run `cargo xtask test` (which installs it from PyPI), or \
                 `python3 -m pip install check-jsonschema`"
            )
        })
}

/// Runs `check-jsonschema ARGS FILES`: whether they passed, and what it said.
fn validate(args: &[&str], files: &[PathBuf]) -> (bool, String) {
    let output = Command::new(check_jsonschema())
        .args(args)
        .args(files)
        .env("NO_COLOR", "1")
        .output()
        .expect("check-jsonschema runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_workflow_is_valid_by_the_github_workflow_schema() {
    let files = workflows();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in ["ci.yml", "docker-build.yml", "release.yml"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "no {wanted} in {names:?}"
        );
    }
    let (ok, output) = validate(&["--builtin-schema", "vendor.github-workflows"], &files);
    assert!(ok, "invalid workflows:\n{output}");
}

/// What issue 13 asks of the release workflow, as a JSON schema: on a push of tags
/// `v*`, some job has a step running `cargo xtask release` with `--push`.
const RELEASE_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["on", "jobs"],
  "properties": {
    "on": {
      "type": "object",
      "required": ["push"],
      "properties": {
        "push": {
          "type": "object",
          "required": ["tags"],
          "properties": { "tags": { "type": "array", "contains": { "const": "v*" } } }
        }
      }
    },
    "jobs": {
      "type": "object",
      "not": {
        "additionalProperties": {
          "not": {
            "type": "object",
            "required": ["steps"],
            "properties": {
              "steps": {
                "type": "array",
                "contains": {
                  "type": "object",
                  "required": ["run"],
                  "properties": {
                    "run": { "type": "string", "pattern": "cargo xtask release\\s[\\s\\S]*--push\\b" }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}"#;

fn check_release(workflow: &Path) -> (bool, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let schema = dir.join(format!("release-workflow-{}.json", std::process::id()));
    std::fs::write(&schema, RELEASE_SCHEMA).unwrap();
    let result = validate(
        &["--schemafile", schema.to_str().unwrap()],
        &[workflow.to_owned()],
    );
    let _ = std::fs::remove_file(&schema);
    result
}

#[test]
fn the_release_workflow_runs_cargo_xtask_release_with_push_on_v_tags() {
    let release = workspace_root().join(".github/workflows/release.yml");
    let (ok, output) = check_release(&release);
    assert!(ok, "release.yml does not do what issue 13 asks:\n{output}");

    // The schema above tells a workflow without --push, or on other tags, apart.
    let text = std::fs::read_to_string(&release).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (name, changed) in [
        ("no-push", text.replace("--push", "--dry-run")),
        ("other-tags", text.replace("\"v*\"", "\"release-*\"")),
    ] {
        assert_ne!(changed, text, "{name}: nothing to change in release.yml");
        let file = dir.join(format!("release-{name}-{}.yml", std::process::id()));
        std::fs::write(&file, changed).unwrap();
        let (ok, output) = check_release(&file);
        let _ = std::fs::remove_file(&file);
        assert!(!ok, "{name}: a changed release.yml still passes:\n{output}");
    }
}
