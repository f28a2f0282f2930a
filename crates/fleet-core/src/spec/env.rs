//! Environment variables of a spec: `.env` files (reading and parsing) and the names
//! and values fleet refuses (its own `FLEET_*` names, NUL bytes).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;

/// Environment variables fleet sets itself (`FLEET_INSTANCE`): users cannot set them.
const RESERVED_ENV_PREFIX: &str = "FLEET_";

/// Reads a `.env` file: `KEY=value` lines, `#` comments, blank lines, optional `export `,
/// and values in single or double quotes (as docker compose reads them).
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::EnvFile {
        path: path.to_owned(),
        reason: format!("cannot read it: {e}"),
    })?;
    parse_env(&text).map_err(|reason| Error::EnvFile {
        path: path.to_owned(),
        reason,
    })
}

fn parse_env(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=value", index + 1));
        };
        let key = key.trim();
        let at_line = |e| format!("line {}: {e}", index + 1);
        check_key(key).map_err(at_line)?;
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some('"'), Some('"')) if value.len() >= 2 => value[1..value.len() - 1]
                .replace("\\n", "\n")
                .replace("\\\"", "\""),
            (Some('\''), Some('\'')) if value.len() >= 2 => value[1..value.len() - 1].to_owned(),
            _ => value
                .split(" #")
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_owned(),
        };
        check_value(key, &value).map_err(at_line)?;
        env.insert(key.to_owned(), value);
    }
    Ok(env)
}

/// A variable name Docker takes and fleet leaves to users.
pub(super) fn check_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && !key.as_bytes()[0].is_ascii_digit()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if !valid {
        return Err(format!("environment variable name {key:?} is not valid"));
    }
    if key.starts_with(RESERVED_ENV_PREFIX) {
        return Err(format!(
            "environment variable {key} is reserved: {RESERVED_ENV_PREFIX}* variables are set by fleet; choose another name"
        ));
    }
    Ok(())
}

/// A value no process can receive: the kernel ends each environment entry at a NUL.
/// Other control characters (newlines in a PEM key, tabs) are valid, and Docker passes
/// them on. The message never shows the value: it may be a secret.
pub(super) fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!(
            "environment variable {key} holds a NUL byte, which no process environment can carry"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::{check, spec};

    #[test]
    fn env_files() {
        let env = parse_env("# comment\n\nA=1\nexport B = two words \nC=\"quoted # not comment\"\nD='single'\nE=x # comment\nF=\n").unwrap();
        insta::assert_debug_snapshot!(env, @r#"
        {
            "A": "1",
            "B": "two words",
            "C": "quoted # not comment",
            "D": "single",
            "E": "x",
            "F": "",
        }
        "#);
        insta::assert_snapshot!(parse_env("A=1\nnot a pair\n").unwrap_err(), @"line 2: expected KEY=value");
        insta::assert_snapshot!(parse_env("9A=1\n").unwrap_err(), @r#"line 1: environment variable name "9A" is not valid"#);
    }

    #[test]
    fn inline_names_are_checked_too() {
        insta::assert_snapshot!(check(spec().with_env("1BAD", "x")), @r#"invalid spec for instance alice: environment variable name "1BAD" is not valid"#);
    }

    /// Regression (issue 14): an env key `FLEET_INSTANCE` could pass for fleet's own;
    /// every `FLEET_*` key is fleet's.
    #[test]
    fn reserved_env_keys_are_refused() {
        insta::assert_snapshot!(check(spec().with_env("FLEET_INSTANCE", "bob")), @"invalid spec for instance alice: environment variable FLEET_INSTANCE is reserved: FLEET_* variables are set by fleet; choose another name");
        insta::assert_snapshot!(check(spec().with_env("FLEET_X", "1")), @"invalid spec for instance alice: environment variable FLEET_X is reserved: FLEET_* variables are set by fleet; choose another name");
        insta::assert_snapshot!(check(spec().with_env("MY_FLEET_X", "1")), @"ok");
        insta::assert_snapshot!(parse_env("A=1\nFLEET_INSTANCE=bob\n").unwrap_err(), @"line 2: environment variable FLEET_INSTANCE is reserved: FLEET_* variables are set by fleet; choose another name");
    }

    /// Regression (issue 14): a NUL byte in an env value reached the engine, whose error
    /// then echoed the value (a secret, maybe). Refused, naming only the key.
    #[test]
    fn nul_bytes_in_env_values_are_refused_without_the_value() {
        insta::assert_snapshot!(check(spec().with_env("TOKEN", "sec\0ret")), @"invalid spec for instance alice: environment variable TOKEN holds a NUL byte, which no process environment can carry");
        insta::assert_snapshot!(parse_env("A=1\nTOKEN=sec\0ret\n").unwrap_err(), @"line 2: environment variable TOKEN holds a NUL byte, which no process environment can carry");
        // Other control characters are valid in an environment.
        insta::assert_snapshot!(check(spec().with_env("PEM", "line 1\nline 2\tend")), @"ok");
    }
}
