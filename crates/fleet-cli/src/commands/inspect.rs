//! `fleet inspect NAME`: everything fleet knows about one instance: its stored spec, its
//! container, ports, health (probed now, as `fleet status` does) and last deployment.
//!
//! The spec is shown as stored (templates as written), and the environment and volumes
//! as the container gets them: the env file read, templates rendered with the
//! instance's allocation.
//!
//! Environment values, template vars and health-check header values can be secrets:
//! they show as `<redacted>` (null in `--json`) unless `--show-secrets`, as logs and
//! `--json` listings never carry them.

use std::collections::BTreeMap;
use std::process::ExitCode;

use fleet_core::Deployment;
use fleet_core::engine::ContainerState;
use fleet_core::{Drift, Health, Instance, InstanceName, PortMapping, VolumeSpec};

use crate::cli::RegistryArgs;
use crate::commands::{Context, open_existing_fleet, ports_text, runtime, short_digest};
use crate::output::usage;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The instance.
    name: String,

    /// Show environment values, template vars and health-check header values instead of
    /// `<redacted>`.
    #[arg(long)]
    show_secrets: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// `--json`: the contract of `docs/cli.md`.
#[derive(serde::Serialize)]
struct Json<'a> {
    name: &'a str,
    group: Option<&'a str>,
    image: &'a str,
    channel: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
    desired: fleet_core::DesiredState,
    generation: u64,
    created_at: String,
    data_dir: &'a std::path::Path,
    ports: &'a [PortMapping],
    container: Option<ContainerJson>,
    health: Health,
    reason: Option<&'a str>,
    version: Option<&'a str>,
    latency_ms: Option<u128>,
    running_digest: Option<&'a str>,
    docker_health: Option<&'a str>,
    drift: &'a [Drift],
    last_deployment: Option<&'a Deployment>,
    /// The environment the container gets (env file, then `env`, templates rendered).
    env: Option<BTreeMap<&'a str, Option<&'a str>>>,
    /// The extra bind mounts, templates rendered.
    volumes: Option<&'a [VolumeSpec]>,
    /// Why `env` and `volumes` are null: the env file cannot be read, a template has no
    /// value.
    render_error: Option<String>,
    secrets_shown: bool,
    spec: serde_json::Value,
}

/// What the container gets: the environment and the volumes, rendered.
struct Rendered {
    env: BTreeMap<String, String>,
    volumes: Vec<VolumeSpec>,
}

#[derive(serde::Serialize)]
struct ContainerJson {
    id: String,
    name: String,
    /// Null when the engine has no such container.
    state: Option<ContainerState>,
}

pub(crate) fn run(context: &Context, args: &Args) -> anyhow::Result<ExitCode> {
    let name: InstanceName = args.name.parse().map_err(usage)?;
    let (status, container_name, last_deployment, rendered) = runtime()?.block_on(async {
        let fleet = open_existing_fleet(context, &args.registry).await?;
        // The store first: an unknown name fails before the engine is asked.
        let instance = fleet.get(&name)?;
        let container_name = fleet.container_name(&name, instance.generation);
        let rendered = fleet
            .template_context(&instance.spec)
            .and_then(|context| {
                Ok(Rendered {
                    env: instance.spec.rendered_env(&context)?,
                    volumes: instance.spec.rendered_volumes(&context)?,
                })
            })
            .map_err(|error| format!("{:#}", anyhow::Error::new(error)));
        let status = fleet.status(std::slice::from_ref(&name)).await?;
        let last = fleet.history(&name)?.into_iter().next();
        anyhow::Ok((status, container_name, last, rendered))
    })?;
    let Some(status) = status.instances.into_iter().next() else {
        anyhow::bail!("fleet status returned nothing for {name}");
    };
    let instance = &status.instance;
    let redacted = if context.out.is_json() {
        serde_json::Value::Null
    } else {
        serde_json::Value::String("<redacted>".to_owned())
    };
    let spec = spec_json(instance, args.show_secrets, &redacted)?;
    let probe = status.probe.as_ref();
    let container = instance.container.as_ref().map(|id| ContainerJson {
        id: id.clone(),
        name: container_name.clone(),
        state: status.state,
    });
    let show = |value: &str| -> Option<String> { args.show_secrets.then(|| value.to_owned()) };
    if context.out.is_json() {
        let ok = rendered.as_ref().ok();
        context.out.json(&Json {
            name: instance.name.as_str(),
            group: instance.group.as_deref(),
            image: &instance.image,
            channel: &instance.channel,
            tag: instance.tag.as_deref(),
            digest: instance.digest.as_ref().map(fleet_registry::Digest::as_str),
            desired: instance.desired,
            generation: instance.generation,
            created_at: instance.created_at.to_string(),
            data_dir: &instance.data_dir,
            ports: &instance.ports,
            container,
            health: status.health,
            reason: probe.and_then(|p| p.reason.as_deref()),
            version: probe.and_then(|p| p.version.as_deref()),
            latency_ms: probe.map(|p| p.latency.as_millis()),
            running_digest: status
                .running_digest
                .as_ref()
                .map(fleet_registry::Digest::as_str),
            docker_health: status.docker_health.as_deref(),
            drift: &status.drift,
            last_deployment: last_deployment.as_ref(),
            env: ok.map(|r| {
                r.env
                    .iter()
                    .map(|(k, v)| (k.as_str(), args.show_secrets.then_some(v.as_str())))
                    .collect()
            }),
            volumes: ok.map(|r| r.volumes.as_slice()),
            render_error: rendered.as_ref().err().cloned(),
            secrets_shown: args.show_secrets,
            spec,
        })?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut fields: Vec<(&str, Option<String>)> = vec![
        ("name", Some(instance.name.to_string())),
        ("group", instance.group.clone()),
        ("image", Some(instance.spec.image.to_string())),
        ("tag", instance.tag.clone()),
        (
            "digest",
            instance.digest.as_ref().map(|d| d.as_str().to_owned()),
        ),
        ("desired", Some(word(&instance.desired))),
        ("generation", Some(instance.generation.to_string())),
        ("created", Some(instance.created_at.to_string())),
        (
            "container",
            container
                .as_ref()
                .map(|c| format!("{} ({})", c.name, &c.id[..c.id.len().min(12)])),
        ),
        (
            "state",
            Some(
                status
                    .state
                    .map_or_else(|| "missing".to_owned(), |s| s.to_string()),
            ),
        ),
        ("health", Some(health_text(&status))),
        ("ports", Some(ports_text(&instance.ports))),
        ("data dir", Some(instance.data_dir.display().to_string())),
    ];
    match &rendered {
        Ok(rendered) => {
            let env = rendered.env.iter().map(|(k, v)| {
                let value = show(v).unwrap_or_else(|| "<redacted>".to_owned());
                format!("{k}={value}")
            });
            push_lines(&mut fields, "env", env);
            let volumes = rendered.volumes.iter().map(|v| {
                let mode = if v.read_only { ":ro" } else { "" };
                format!("{}:{}{mode}", v.host.display(), v.container)
            });
            push_lines(&mut fields, "volumes", volumes);
        }
        Err(error) => fields.push(("env", Some(format!("cannot render: {error}")))),
    }
    fields.extend(spec_fields(&spec));
    fields.push(("deployment", last_deployment.as_ref().map(deployment_text)));
    for drift in &status.drift {
        fields.push(("drift", Some(drift.to_string())));
    }
    context.out.fields(&fields)?;
    Ok(ExitCode::SUCCESS)
}

/// `label  first`, then one field with an empty label per further line; `-` for none.
fn push_lines(
    fields: &mut Vec<(&'static str, Option<String>)>,
    label: &'static str,
    lines: impl Iterator<Item = String>,
) {
    let start = fields.len();
    fields.extend(lines.map(|line| ("", Some(line))));
    match fields.get_mut(start) {
        Some(first) => first.0 = label,
        None => fields.push((label, None)),
    }
}

/// The stored spec as JSON, its secrets replaced by `redacted` unless `show`.
fn spec_json(
    instance: &Instance,
    show: bool,
    redacted: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut spec = serde_json::to_value(&instance.spec)?;
    if !show {
        let redact = |map: Option<&mut serde_json::Value>| {
            if let Some(serde_json::Value::Object(map)) = map {
                map.values_mut()
                    .for_each(|value| value.clone_from(redacted));
            }
        };
        redact(spec.get_mut("env"));
        redact(spec.get_mut("vars"));
        redact(spec.pointer_mut("/health/headers"));
    }
    Ok(spec)
}

/// A serialised enum as its word (`running`, `http`).
fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

/// `healthy (1.0.0, 3ms)`, or `unhealthy: HTTP 503`.
fn health_text(status: &fleet_core::InstanceStatus) -> String {
    let Some(probe) = &status.probe else {
        return status.health.to_string();
    };
    let mut about = Vec::new();
    about.extend(probe.version.clone());
    about.push(format!("{}ms", probe.latency.as_millis()));
    let reason = probe
        .reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!("{} ({}){reason}", status.health, about.join(", "))
}

/// `update v1.0.0 (sha256:…) -> v1.0.1 (sha256:…): updated, 2026-…`.
fn deployment_text(d: &Deployment) -> String {
    let release = |r: &fleet_core::Release| {
        let digest = r
            .digest
            .as_ref()
            .map_or("nothing", |d| short_digest(d.as_str()));
        match &r.tag {
            Some(tag) => format!("{tag} ({digest})"),
            None => digest.to_owned(),
        }
    };
    format!(
        "#{} {} {} -> {}: {}, {}",
        d.id,
        word(&d.kind),
        release(&d.from),
        release(&d.to),
        d.outcome,
        d.started_at
    )
}

/// The spec's settings beyond what the instance view shows, one field per line; maps
/// and lists take a line per entry.
fn spec_fields(spec: &serde_json::Value) -> Vec<(&'static str, Option<String>)> {
    // Shown above (the data directory as resolved), or rendered: the env and volumes the
    // container gets.
    const SHOWN: [&str; 7] = [
        "name", "image", "group", "ports", "data_dir", "env", "volumes",
    ];
    let mut fields = Vec::new();
    let Some(map) = spec.as_object() else {
        return fields;
    };
    for (key, value) in map {
        if SHOWN.contains(&key.as_str()) {
            continue;
        }
        let label = label(key);
        let lines: Vec<String> = match value {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Object(entries) if key == "vars" || key == "labels" => entries
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar(v)))
                .collect(),
            serde_json::Value::Object(_) => {
                let text = scalar(value);
                if text.is_empty() {
                    Vec::new()
                } else {
                    vec![text]
                }
            }
            serde_json::Value::Array(items) => items.iter().map(scalar).collect(),
            other => vec![scalar(other)],
        };
        if lines.is_empty() {
            fields.push((label, None));
        }
        for (index, line) in lines.into_iter().enumerate() {
            fields.push((if index == 0 { label } else { "" }, Some(line)));
        }
    }
    fields
}

/// The text label of a spec key (`env_file` → `env file`).
fn label(key: &str) -> &'static str {
    match key {
        "env_file" => "env file",
        "vars" => "vars",
        "health" => "health check",
        "docker_healthcheck" => "docker healthcheck",
        "resources" => "resources",
        "restart" => "restart",
        "user" => "user",
        "labels" => "labels",
        "backup" => "backup",
        // A key added to the spec later still shows, under a generic label.
        _ => "setting",
    }
}

/// A JSON value as text: strings bare, objects as `key=value` words (absent values
/// left out), the rest as compact JSON.
fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Object(entries) => {
            let words = entries
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    serde_json::Value::Object(_) => format!("{k}={{{}}}", scalar(v)),
                    _ => format!("{k}={}", scalar(v)),
                })
                .collect::<Vec<_>>();
            words.join(" ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: serde_json::Value) -> String {
        spec_fields(&spec)
            .into_iter()
            .map(|(k, v)| format!("{k:>12}  {}", v.as_deref().unwrap_or("-")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn spec_settings_read_as_lines() {
        insta::assert_snapshot!(check(serde_json::json!({
            "name": "alice", "image": "app:v1", "ports": [],
            "env": {"A": "<redacted>", "B": "2"},
            "env_file": null,
            "volumes": [{"host": "/srv/a", "container": "/a", "read_only": true}],
            "health": {"kind": "http", "path": "/h", "port": null, "headers": {"X-Token": "<redacted>"}},
            "resources": {"memory_bytes": null, "cpus": null},
            "restart": "unless-stopped",
            "labels": {},
            "vars": {"domain": "<redacted>", "region": "eu"},
        })), @r"
            env file  -
        health check  headers={X-Token=<redacted>} kind=http path=/h
              labels  -
           resources  -
             restart  unless-stopped
                vars  domain=<redacted>
                      region=eu
        ");
    }
}
