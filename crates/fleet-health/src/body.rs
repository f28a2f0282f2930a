//! Reading what a health endpoint's body says.
//!
//! Two JSON shapes are understood, and mixtures of them:
//!
//! - the simple shape many apps use: `{"status": "ok", "version": "1.4.2", "checks":
//!   {"db": "up", "cache": {"status": "warn", "output": "slow"}}}`, including Spring
//!   Boot's `components` and MicroProfile's `checks` array of `{"name", "status"}`;
//! - the `application/health+json` draft: `{"status": "pass"|"warn"|"fail", "version",
//!   "releaseId", "output", "checks": {"db:responseTime": [{"status": "pass", …}]}}`.
//!
//! The rules, decided once here:
//!
//! - An empty body, or a body that is not JSON, says nothing: the HTTP status decides.
//! - A body whose `Content-Type` is JSON (`application/json`, `…+json`) must parse; if it
//!   does not, the probe is unhealthy ("invalid JSON health body"): an app that means to
//!   report its health and cannot is not one to route traffic to.
//! - A body without a JSON `Content-Type` that starts with `{` and parses as a JSON
//!   object is read as JSON too (many frameworks send JSON as `text/plain`); if it does
//!   not parse it is plain text.
//! - The top-level `status` decides. Without one, the worst status among the checks
//!   decides. A status word this crate does not know counts as degraded (up, but
//!   flagged), so an unfamiliar vocabulary neither blocks a deployment nor goes unseen.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Health;

/// What a health response body said, as far as this crate understands it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthBody {
    /// How the body was read.
    pub format: BodyFormat,
    /// The top-level `status`, as the app wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The version the app reported (`version`, else `releaseId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The top-level `output` (or `message`, `error`, `reason`): why the app says it is
    /// not well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The individual checks: sorted by name when the body keys them by name, in the
    /// body's order when it lists them in an array.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Why a body that claims to be JSON could not be parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_json: Option<String>,
}

/// How a body was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BodyFormat {
    /// No body, or a body of white space.
    #[default]
    Empty,
    /// A body that is not JSON: it says nothing about health.
    Text,
    /// A JSON body.
    Json,
}

/// One check an app reports on (a database, a cache, a disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Its name: the key in `checks` (`db`, `db:responseTime`), with the
    /// `componentId` when a `health+json` check lists several components.
    pub name: String,
    /// Its status, as the app wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What that status means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Its `output` (or `message`, `error`, `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl HealthBody {
    /// Reads `body`, sent with `content_type` (the `Content-Type` header, if any).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Self {
        let claims_json = content_type.is_some_and(is_json_media_type);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Self::default();
        }
        let looks_like_object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if !claims_json && !looks_like_object {
            return Self::text();
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(value) if claims_json || value.is_object() => Self::from_json(&value),
            Ok(_) => Self::text(),
            Err(_) if !claims_json => Self::text(),
            Err(e) => Self {
                format: BodyFormat::Json,
                invalid_json: Some(e.to_string()),
                ..Self::default()
            },
        }
    }

    fn text() -> Self {
        Self {
            format: BodyFormat::Text,
            ..Self::default()
        }
    }

    fn from_json(value: &Value) -> Self {
        let mut body = Self {
            format: BodyFormat::Json,
            ..Self::default()
        };
        let object = match value {
            Value::Object(object) => object,
            // A bare JSON string or boolean is the status itself.
            Value::String(_) | Value::Bool(_) => {
                body.status = scalar(value);
                return body;
            }
            _ => return body,
        };
        body.status = object.get("status").and_then(scalar);
        body.version = object
            .get("version")
            .and_then(scalar)
            .or_else(|| object.get("releaseId").and_then(scalar));
        body.output = output(object);
        if let Some(checks) = object.get("checks").or_else(|| object.get("components")) {
            body.checks = parse_checks(checks);
        }
        body
    }

    /// What the body says about health: `None` when it says nothing (no status, no
    /// checks with a status, or not JSON), so the HTTP status decides.
    ///
    /// A body that claims to be JSON and does not parse says nothing here; the probe
    /// treats it as unhealthy through [`HealthBody::invalid_json`].
    pub fn health(&self) -> Option<Health> {
        match &self.status {
            Some(status) => Some(vocabulary(status).unwrap_or(Health::Degraded)),
            None => self.checks.iter().filter_map(|check| check.health).max(),
        }
    }

    /// A one-line explanation of a body that is not plainly healthy, naming the status,
    /// the checks that are not healthy and the output; `None` when there is nothing to
    /// explain.
    pub fn explain(&self) -> Option<String> {
        if let Some(error) = &self.invalid_json {
            return Some(format!("invalid JSON health body: {error}"));
        }
        let health = self.health()?;
        if health == Health::Healthy {
            return None;
        }
        let mut parts = Vec::new();
        match &self.status {
            Some(status) if vocabulary(status).is_none() => {
                parts.push(format!("unrecognised status {status:?}"));
            }
            Some(status) => parts.push(format!("reported status {status:?}")),
            None => {}
        }
        let unwell: Vec<String> = self
            .checks
            .iter()
            .filter(|check| check.health != Some(Health::Healthy))
            .map(|check| {
                let status = check.status.as_deref().unwrap_or("no status");
                match &check.output {
                    Some(output) => format!("{} {status} ({output})", check.name),
                    None => format!("{} {status}", check.name),
                }
            })
            .collect();
        if !unwell.is_empty() {
            parts.push(format!("checks: {}", unwell.join(", ")));
        }
        if let Some(output) = &self.output {
            parts.push(format!("output: {output}"));
        }
        Some(parts.join("; "))
    }
}

/// Whether a `Content-Type` names JSON: `application/json`, `application/health+json`,
/// any other `…+json`, or `text/json`.
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// The health a status word means, or `None` for a word this crate does not know.
fn vocabulary(status: &str) -> Option<Health> {
    let word = status.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    match word.as_str() {
        "healthy" | "ok" | "up" | "pass" | "passed" | "passing" | "green" | "ready" | "alive"
        | "serving" | "true" => Some(Health::Healthy),
        "warn" | "warning" | "degraded" | "yellow" | "partial" => Some(Health::Degraded),
        "unhealthy" | "fail" | "failed" | "failing" | "failure" | "down" | "error" | "critical"
        | "red" | "out_of_service" | "not_ready" | "not_serving" | "unavailable"
        | "maintenance" | "false" | "starting" | "initializing" | "initialising" | "pending"
        | "stopping" => Some(Health::Unhealthy),
        _ => None,
    }
}

/// A string, number or boolean as text; `None` for anything else.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn output(object: &Map<String, Value>) -> Option<String> {
    ["output", "message", "error", "reason"]
        .iter()
        .find_map(|key| object.get(*key).and_then(scalar))
        .filter(|output| !output.is_empty())
}

fn parse_checks(checks: &Value) -> Vec<Check> {
    match checks {
        // {"db": "up", "cache": {"status": "warn"}, "db:responseTime": [{…}, {…}]}
        Value::Object(checks) => checks
            .iter()
            .flat_map(|(name, value)| match value {
                Value::Array(components) => components
                    .iter()
                    .map(|component| {
                        let id = component.get("componentId").and_then(scalar);
                        let name = match id {
                            Some(id) if components.len() > 1 => format!("{name}[{id}]"),
                            _ => name.clone(),
                        };
                        check(name, component)
                    })
                    .collect(),
                value => vec![check(name.clone(), value)],
            })
            .collect(),
        // MicroProfile: [{"name": "db", "status": "UP"}]
        Value::Array(checks) => checks
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let name = value
                    .get("name")
                    .and_then(scalar)
                    .unwrap_or_else(|| format!("#{}", i + 1));
                check(name, value)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn check(name: String, value: &Value) -> Check {
    let (status, output) = match value {
        Value::Object(object) => (object.get("status").and_then(scalar), output(object)),
        value => (scalar(value), None),
    };
    let health = status
        .as_deref()
        .map(|status| vocabulary(status).unwrap_or(Health::Degraded));
    Check {
        name,
        status,
        health,
        output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `body` sent with `content_type` ("-" for none) and says what it meant.
    fn check(content_type: &str, body: &str) -> String {
        let content_type = (content_type != "-").then_some(content_type);
        let parsed = HealthBody::parse(content_type, body.as_bytes());
        let mut out = format!("{:?}", parsed.format).to_lowercase();
        match parsed.health() {
            Some(health) => out.push_str(&format!(" {health}")),
            None if parsed.invalid_json.is_some() => out.push_str(" invalid"),
            None => out.push_str(" silent"),
        }
        if let Some(version) = &parsed.version {
            out.push_str(&format!(" v={version}"));
        }
        for check in &parsed.checks {
            let health = check.health.map_or("-".to_owned(), |h| h.to_string());
            out.push_str(&format!(" [{}={health}]", check.name));
        }
        if let Some(why) = parsed.explain() {
            out.push_str(&format!(" | {why}"));
        }
        out
    }

    const JSON: &str = "application/json";
    const HEALTH_JSON: &str = "application/health+json; charset=utf-8";

    #[test]
    fn empty_and_text_bodies_say_nothing() {
        insta::assert_snapshot!(check("-", ""), @"empty silent");
        insta::assert_snapshot!(check(JSON, " \n"), @"empty silent");
        insta::assert_snapshot!(check("text/plain", "OK"), @"text silent");
        insta::assert_snapshot!(check("text/plain", "fail"), @"text silent");
        insta::assert_snapshot!(check("text/html", "<h1>up</h1>"), @"text silent");
        insta::assert_snapshot!(check("-", "{not json"), @"text silent");
        insta::assert_snapshot!(check("text/plain", "[1, 2]"), @"text silent");
    }

    #[test]
    fn simple_shape() {
        insta::assert_snapshot!(check(JSON, r#"{"status":"ok"}"#), @"json healthy");
        insta::assert_snapshot!(check(JSON, r#"{"status":"UP","version":"1.4.2"}"#), @"json healthy v=1.4.2");
        insta::assert_snapshot!(check(JSON, r#"{"status":"healthy","version":7}"#), @"json healthy v=7");
        insta::assert_snapshot!(check(JSON, r#"{"status":"warn"}"#), @r#"json degraded | reported status "warn""#);
        insta::assert_snapshot!(check(JSON, r#"{"status":"degraded","checks":{"db":"up","cache":"degraded"}}"#), @r#"json degraded [cache=degraded] [db=healthy] | reported status "degraded"; checks: cache degraded"#);
        insta::assert_snapshot!(check(JSON, r#"{"status":"fail"}"#), @r#"json unhealthy | reported status "fail""#);
        insta::assert_snapshot!(check(JSON, r#"{"status":"down","message":"disk full"}"#), @r#"json unhealthy | reported status "down"; output: disk full"#);
        insta::assert_snapshot!(check(JSON, r#"{"status":"starting","checks":{"app":{"status":"starting","reason":"slow start"}}}"#), @r#"json unhealthy [app=unhealthy] | reported status "starting"; checks: app starting (slow start)"#);
        insta::assert_snapshot!(check(JSON, r#"{"status":"unhealthy","checks":{"db":{"status":"fail","error":"refused"}}}"#), @r#"json unhealthy [db=unhealthy] | reported status "unhealthy"; checks: db fail (refused)"#);
        insta::assert_snapshot!(check(JSON, r#"{"status":"OUT_OF_SERVICE"}"#), @r#"json unhealthy | reported status "OUT_OF_SERVICE""#);
        insta::assert_snapshot!(check(JSON, r#"{"status":true}"#), @"json healthy");
        // Not ready yet is not up.
        insta::assert_snapshot!(check(JSON, r#"{"status":"starting"}"#), @r#"json unhealthy | reported status "starting""#);
        insta::assert_snapshot!(check(JSON, r#""fail""#), @r#"json unhealthy | reported status "fail""#);
    }

    #[test]
    fn unknown_words_are_degraded() {
        insta::assert_snapshot!(check(JSON, r#"{"status":"UNKNOWN"}"#), @r#"json degraded | unrecognised status "UNKNOWN""#);
        insta::assert_snapshot!(check(JSON, r#"{"checks":{"db":"meh"}}"#), @"json degraded [db=degraded] | checks: db meh");
    }

    #[test]
    fn without_a_status_the_worst_check_decides() {
        insta::assert_snapshot!(check(JSON, r#"{"checks":{"a":"ok","b":"ok"}}"#), @"json healthy [a=healthy] [b=healthy]");
        insta::assert_snapshot!(check(JSON, r#"{"checks":{"a":"ok","b":"fail","c":"warn"}}"#), @"json unhealthy [a=healthy] [b=unhealthy] [c=degraded] | checks: b fail, c warn");
        insta::assert_snapshot!(check(JSON, r#"{"checks":{"a":{"latency":3}}}"#), @"json silent [a=-]");
        insta::assert_snapshot!(check(JSON, r#"{"version":"2"}"#), @"json silent v=2");
        insta::assert_snapshot!(check(JSON, r#"[1]"#), @"json silent");
    }

    #[test]
    fn health_json_draft() {
        let body = r#"{
          "status": "warn", "version": "1", "releaseId": "1.2.2",
          "checks": {
            "uptime": [{"componentType": "system", "observedValue": 1209600.245, "status": "pass"}],
            "cassandra:responseTime": [
              {"componentId": "dfd6cf2b", "status": "pass"},
              {"componentId": "6fd416e0", "status": "warn", "output": "slow"}
            ]
          }
        }"#;
        insta::assert_snapshot!(check(HEALTH_JSON, body), @r#"json degraded v=1 [cassandra:responseTime[dfd6cf2b]=healthy] [cassandra:responseTime[6fd416e0]=degraded] [uptime=healthy] | reported status "warn"; checks: cassandra:responseTime[6fd416e0] warn (slow)"#);
        insta::assert_snapshot!(check(HEALTH_JSON, r#"{"status":"fail","releaseId":"9","output":"db down"}"#), @r#"json unhealthy v=9 | reported status "fail"; output: db down"#);
        insta::assert_snapshot!(check(HEALTH_JSON, r#"{"status":"pass"}"#), @"json healthy");
    }

    #[test]
    fn other_frameworks() {
        // Spring Boot Actuator.
        insta::assert_snapshot!(check("application/vnd.spring-boot.actuator.v3+json", r#"{"status":"UP","components":{"db":{"status":"UP"},"diskSpace":{"status":"UP"}}}"#), @"json healthy [db=healthy] [diskSpace=healthy]");
        // MicroProfile Health.
        insta::assert_snapshot!(check(JSON, r#"{"status":"DOWN","checks":[{"name":"db","status":"DOWN"},{"status":"UP"}]}"#), @r#"json unhealthy [db=unhealthy] [#2=healthy] | reported status "DOWN"; checks: db DOWN"#);
    }

    #[test]
    fn json_sent_as_text_is_read() {
        insta::assert_snapshot!(check("text/plain", r#"{"status":"fail"}"#), @r#"json unhealthy | reported status "fail""#);
        insta::assert_snapshot!(check("-", r#" {"status":"ok","version":"3"}"#), @"json healthy v=3");
    }

    #[test]
    fn json_that_does_not_parse() {
        insta::assert_snapshot!(check(JSON, r#"{"status":"#), @"json invalid | invalid JSON health body: EOF while parsing a value at line 1 column 10");
        insta::assert_snapshot!(check(HEALTH_JSON, "OK"), @"json invalid | invalid JSON health body: expected value at line 1 column 1");
    }
}
