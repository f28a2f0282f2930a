//! Settings templated from an instance's allocation: env values (inline and from the
//! env file) and volume host paths may hold placeholders that fleet fills in when it
//! creates the container, so one setting such as
//! `APP_URL = "https://{{name}}.example.com:{{port}}"` serves every instance.
//!
//! The syntax, all of it:
//!
//! - `{{name}}`, `{{group}}`, `{{data_dir}}`, `{{state_dir}}`: the instance's name,
//!   group, data directory (host path) and fleet's state directory.
//! - `{{port}}`: the host port of the instance's first port; `{{port:8080}}`: the host
//!   port of container port 8080.
//! - `{{key}}`: any other key is a *var*: the instance's own (`vars` of its spec), else
//!   its group's (`[vars.group.NAME]` in `config.toml`), else the fleet's (`[vars]`).
//!   A key is ASCII letters, digits, `_`, `.` and `-`, starting with a letter or `_`;
//!   nothing around it is trimmed (`{{ name }}` is refused, not guessed at).
//! - `{{key|default}}`: `default` (everything after the first `|`, as written, up to
//!   `}}`) when the key has no value: an unset var, no group, no such port.
//! - `{{{{` is a literal `{{`. A lone `}}` is literal text.
//!
//! A value is inserted as it is and never rendered again, so a var may hold `{{`. A key
//! with neither a value nor a default, a `{{` without its `}}` and a placeholder that is
//! not a key are errors.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The keys fleet fills in itself; vars cannot take these names.
const BUILTIN_KEYS: [&str; 5] = ["name", "group", "port", "data_dir", "state_dir"];

/// What templates are rendered with: one instance's allocation and vars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemplateContext {
    /// `{{name}}`.
    pub name: String,
    /// `{{group}}`, when the instance has one.
    pub group: Option<String>,
    /// Container port and its allocated host port, in the spec's order: the first is
    /// `{{port}}`, each is `{{port:CONTAINER}}`.
    pub ports: Vec<(u16, u16)>,
    /// `{{data_dir}}`: the host directory mounted at `/data`.
    pub data_dir: String,
    /// `{{state_dir}}`: fleet's state directory.
    pub state_dir: String,
    /// Every other key: the instance's vars over its group's over the fleet's.
    pub vars: BTreeMap<String, String>,
}

impl TemplateContext {
    /// A context for instance `name`, with no group, ports, paths or vars.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

/// Why a template cannot be rendered. The messages show keys and positions, never the
/// text around them: an env value may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{{` with no `}}` after it.
    #[error("`{{{{` at byte {at} has no closing `}}}}` (a literal `{{{{` is written `{{{{{{{{`)")]
    Unclosed {
        /// Where the `{{` starts.
        at: usize,
    },
    /// A placeholder whose key is not one (`{{ name }}`, `{{port:x}}`).
    #[error(
        "`{{{{{text}}}}}` is not a placeholder: write {{{{key}}}} or {{{{key|default}}}}, a key being letters, digits, `_`, `.` and `-` (or port:N), with no spaces"
    )]
    InvalidKey {
        /// What stands between the braces (before any `|`).
        text: String,
    },
    /// A key with neither a value nor a default.
    #[error("{}", missing(key))]
    Missing {
        /// The key.
        key: String,
    },
}

fn missing(key: &str) -> String {
    match key {
        "group" => "{{group}} has no value (the instance has no group) and no default: give it a group, or write {{group|default}}".to_owned(),
        "port" => "{{port}} has no value (the instance publishes no port) and no default: publish a port, or write {{port|default}}".to_owned(),
        key if key.starts_with("port:") => format!(
            "{{{{{key}}}}} has no value (the instance does not publish that container port) and no default: publish it, or write {{{{{key}|default}}}}"
        ),
        key => format!(
            "{{{{{key}}}}} has no value and no default: set var {key} for the instance (fleet create --var {key}=VALUE), its group ([vars.group.GROUP] in config.toml) or the fleet ([vars]), or write {{{{{key}|default}}}}"
        ),
    }
}

/// Renders `text` with `context`: each placeholder replaced by its value (see the
/// module documentation for the syntax).
pub fn render(text: &str, context: &TemplateContext) -> Result<String, TemplateError> {
    expand(text, |key| lookup(key, context))
}

/// Checks the syntax of `text` without a context: every `{{` closed, every placeholder
/// a key. Whether the keys have values is known only when rendering.
pub fn check(text: &str) -> Result<(), TemplateError> {
    expand(text, |key| {
        lookup(key, &TemplateContext::default()).map(|_| Some("".into()))
    })
    .map(drop)
}

/// `text` written so that it renders to itself: each `{{` doubled.
pub fn escape(text: &str) -> String {
    text.replace("{{", "{{{{")
}

/// Whether a path holds a placeholder (or an escaped `{{`).
pub(crate) fn is_templated(path: &Path) -> bool {
    path.to_str().is_some_and(|text| text.contains("{{"))
}

/// A var name a template can use: a key, and not one fleet fills in itself.
pub(crate) fn check_var_key(key: &str) -> Result<(), String> {
    if !is_key(key) {
        return Err(format!(
            "var {key:?} is not a valid key: letters, digits, `_`, `.` and `-`, starting with a letter or `_`"
        ));
    }
    if BUILTIN_KEYS.contains(&key) {
        return Err(format!(
            "var {key:?} is reserved: {{{{{key}}}}} is filled in by fleet; choose another name"
        ));
    }
    Ok(())
}

/// The one parser: text is copied, `{{{{` becomes `{{`, and each `{{key|default}}` is
/// replaced by what `value` says for `key`, or `default`.
fn expand<'c>(
    text: &str,
    value: impl Fn(&str) -> Result<Option<Cow<'c, str>>, TemplateError>,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        if let Some(after_escape) = after.strip_prefix("{{") {
            out.push_str("{{");
            rest = after_escape;
            continue;
        }
        let at = text.len() - rest.len() + start;
        let end = after.find("}}").ok_or(TemplateError::Unclosed { at })?;
        let inner = &after[..end];
        let (key, default) = match inner.split_once('|') {
            Some((key, default)) => (key, Some(default)),
            None => (inner, None),
        };
        match (value(key)?, default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(TemplateError::Missing {
                    key: key.to_owned(),
                });
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of `key` in `context`: `None` when it has none, an error when it is not a key.
fn lookup<'c>(
    key: &str,
    context: &'c TemplateContext,
) -> Result<Option<Cow<'c, str>>, TemplateError> {
    let host = |(_, host): &(u16, u16)| Cow::Owned(host.to_string());
    Ok(match key {
        "name" => Some(Cow::Borrowed(context.name.as_str())),
        "group" => context.group.as_deref().map(Cow::Borrowed),
        "port" => context.ports.first().map(host),
        "data_dir" => Some(Cow::Borrowed(context.data_dir.as_str())),
        "state_dir" => Some(Cow::Borrowed(context.state_dir.as_str())),
        key => match key.strip_prefix("port:") {
            Some(port) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| invalid_key(key))?;
                context.ports.iter().find(|(c, _)| *c == port).map(host)
            }
            None if is_key(key) => context.vars.get(key).map(|v| Cow::Borrowed(v.as_str())),
            None => return Err(invalid_key(key)),
        },
    })
}

fn invalid_key(key: &str) -> TemplateError {
    const MAX: usize = 40;
    let text = match key.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &key[..cut]),
        None => key.to_owned(),
    };
    TemplateError::InvalidKey { text }
}

fn is_key(key: &str) -> bool {
    key.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Template vars of the whole fleet (`[vars]` in `config.toml`) and of each group
/// (`[vars.group.NAME]`); an instance's own vars win over its group's, which win over
/// the fleet's.
///
/// ```toml
/// [vars]
/// domain = "example.com"
///
/// [vars.group.staging]
/// domain = "staging.example.com"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FleetVars {
    /// Every instance's (`[vars]`). (`group` is a key fleet fills in, never a var, so
    /// the table below cannot clash with one.)
    #[serde(flatten)]
    pub fleet: BTreeMap<String, String>,
    /// Each group's, by group name (`[vars.group.NAME]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group: BTreeMap<String, BTreeMap<String, String>>,
}

impl FleetVars {
    /// The vars an instance of `group` with its own `vars` sees.
    pub fn for_instance(
        &self,
        group: Option<&str>,
        vars: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut all = self.fleet.clone();
        if let Some(group) = group.and_then(|g| self.group.get(g)) {
            all.extend(group.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        all.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// Whether there are no vars at all.
    pub fn is_empty(&self) -> bool {
        self.fleet.is_empty() && self.group.is_empty()
    }

    /// Every key a valid var name.
    pub(crate) fn check(&self) -> Result<(), String> {
        let groups = self.group.iter().map(|(group, vars)| (Some(group), vars));
        for (group, vars) in std::iter::once((None, &self.fleet)).chain(groups) {
            for key in vars.keys() {
                check_var_key(key).map_err(|reason| match group {
                    Some(group) => format!("[vars.group.{group}]: {reason}"),
                    None => format!("[vars]: {reason}"),
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn context() -> TemplateContext {
        TemplateContext {
            name: "alice".into(),
            group: Some("prod".into()),
            ports: vec![(8080, 5001), (9090, 5002)],
            data_dir: "/var/lib/fleet/instances/alice/data".into(),
            state_dir: "/var/lib/fleet".into(),
            vars: BTreeMap::from([
                ("domain".to_owned(), "example.com".to_owned()),
                ("braces".to_owned(), "{{name}}".to_owned()),
                ("empty".to_owned(), String::new()),
            ]),
        }
    }

    /// The rendered text, or the error.
    fn check_render(text: &str) -> String {
        match render(text, &context()) {
            Ok(text) => text,
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn builtins() {
        insta::assert_snapshot!(check_render("https://{{name}}.example.com:{{port}}"), @"https://alice.example.com:5001");
        insta::assert_snapshot!(check_render("{{group}} {{port:8080}} {{port:9090}}"), @"prod 5001 5002");
        insta::assert_snapshot!(check_render("{{data_dir}}/logs in {{state_dir}}"), @"/var/lib/fleet/instances/alice/data/logs in /var/lib/fleet");
        insta::assert_snapshot!(check_render("no placeholders } }} {"), @"no placeholders } }} {");
        insta::assert_snapshot!(check_render(""), @"");
    }

    #[test]
    fn vars_and_defaults() {
        insta::assert_snapshot!(check_render("{{domain}}"), @"example.com");
        insta::assert_snapshot!(check_render("{{domain|other.org}}"), @"example.com");
        insta::assert_snapshot!(check_render("{{unset|other.org}}"), @"other.org");
        insta::assert_snapshot!(check_render("[{{unset|}}]"), @"[]");
        insta::assert_snapshot!(check_render("[{{empty|x}}]"), @"[]");
        insta::assert_snapshot!(check_render("{{unset|a|b c}}"), @"a|b c");
        insta::assert_snapshot!(check_render("{{port:7000|none}}"), @"none");
        insta::assert_snapshot!(check_render("{{braces}}"), @"{{name}}");
    }

    #[test]
    fn literal_braces() {
        insta::assert_snapshot!(check_render("{{{{name}}"), @"{{name}}");
        insta::assert_snapshot!(check_render("{{{{{{{{"), @"{{{{");
        insta::assert_snapshot!(check_render("{\"port\": {{port}}}"), @r#"{"port": 5001}"#);
        insta::assert_snapshot!(check_render("{ {name} }"), @"{ {name} }");
    }

    #[test]
    fn errors() {
        insta::assert_snapshot!(check_render("{{unset}}"), @"error: {{unset}} has no value and no default: set var unset for the instance (fleet create --var unset=VALUE), its group ([vars.group.GROUP] in config.toml) or the fleet ([vars]), or write {{unset|default}}");
        insta::assert_snapshot!(check_render("x{{name"), @"error: `{{` at byte 1 has no closing `}}` (a literal `{{` is written `{{{{`)");
        insta::assert_snapshot!(check_render("{{name}} {{"), @"error: `{{` at byte 9 has no closing `}}` (a literal `{{` is written `{{{{`)");
        insta::assert_snapshot!(check_render("{{ name }}"), @"error: `{{ name }}` is not a placeholder: write {{key}} or {{key|default}}, a key being letters, digits, `_`, `.` and `-` (or port:N), with no spaces");
        insta::assert_snapshot!(check_render("{{port:http}}"), @"error: `{{port:http}}` is not a placeholder: write {{key}} or {{key|default}}, a key being letters, digits, `_`, `.` and `-` (or port:N), with no spaces");
        insta::assert_snapshot!(check_render("{{port:0|x}}"), @"error: `{{port:0}}` is not a placeholder: write {{key}} or {{key|default}}, a key being letters, digits, `_`, `.` and `-` (or port:N), with no spaces");
        insta::assert_snapshot!(check_render("{{}}"), @"error: `{{}}` is not a placeholder: write {{key}} or {{key|default}}, a key being letters, digits, `_`, `.` and `-` (or port:N), with no spaces");
        insta::assert_snapshot!(check_render("{{{name}}}"), @"error: `{{{name}}` is not a placeholder: write {{key}} or {{key|default}}, a key being letters, digits, `_`, `.` and `-` (or port:N), with no spaces");
        let bare = TemplateContext::new("bob");
        insta::assert_snapshot!(render("{{group}}", &bare).unwrap_err(), @"{{group}} has no value (the instance has no group) and no default: give it a group, or write {{group|default}}");
        insta::assert_snapshot!(render("{{port}}", &bare).unwrap_err(), @"{{port}} has no value (the instance publishes no port) and no default: publish a port, or write {{port|default}}");
        insta::assert_snapshot!(render("{{port:8080}}", &bare).unwrap_err(), @"{{port:8080}} has no value (the instance does not publish that container port) and no default: publish it, or write {{port:8080|default}}");
        insta::assert_snapshot!(render("{{group|none}}-{{port|0}}", &bare).unwrap(), @"none-0");
    }

    #[test]
    fn syntax_checks_need_no_values() {
        assert_eq!(check("{{anything}} {{port:1}} {{x|y}} {{{{"), Ok(()));
        assert_eq!(check("{{x"), Err(TemplateError::Unclosed { at: 0 }));
        assert!(matches!(
            check("{{a b}}"),
            Err(TemplateError::InvalidKey { .. })
        ));
    }

    #[test]
    fn var_names() {
        assert_eq!(check_var_key("domain"), Ok(()));
        assert_eq!(check_var_key("db.host-2"), Ok(()));
        insta::assert_snapshot!(check_var_key("port").unwrap_err(), @r#"var "port" is reserved: {{port}} is filled in by fleet; choose another name"#);
        insta::assert_snapshot!(check_var_key("2x").unwrap_err(), @r#"var "2x" is not a valid key: letters, digits, `_`, `.` and `-`, starting with a letter or `_`"#);
    }

    #[test]
    fn fleet_vars_read_from_toml_and_layer() {
        let vars: FleetVars = toml::from_str(
            "domain = \"example.com\"\nregion = \"eu\"\n[group.staging]\ndomain = \"staging.example.com\"\n",
        )
        .unwrap();
        let own = BTreeMap::from([("region".to_owned(), "us".to_owned())]);
        insta::assert_debug_snapshot!(vars.for_instance(Some("staging"), &own), @r#"
        {
            "domain": "staging.example.com",
            "region": "us",
        }
        "#);
        insta::assert_debug_snapshot!(vars.for_instance(Some("prod"), &BTreeMap::new()), @r#"
        {
            "domain": "example.com",
            "region": "eu",
        }
        "#);
        let written = toml::to_string(&vars).unwrap();
        assert_eq!(toml::from_str::<FleetVars>(&written).unwrap(), vars);
        let bad: FleetVars = toml::from_str("[group.prod]\nname = \"x\"\n").unwrap();
        insta::assert_snapshot!(bad.check().unwrap_err(), @r#"[vars.group.prod]: var "name" is reserved: {{name}} is filled in by fleet; choose another name"#);
    }

    proptest! {
        #[test]
        fn text_without_braces_renders_to_itself(text in "[^{]*|[a-z{} |:]*") {
            prop_assume!(!text.contains("{{"));
            prop_assert_eq!(render(&text, &context()).unwrap(), text);
        }

        #[test]
        fn values_are_inserted_as_they_are(value in ".*", before in "[a-z /:]*", after in "[a-z /:]*") {
            let mut context = context();
            context.vars.insert("v".into(), value.clone());
            let rendered = render(&format!("{before}{{{{v}}}}{after}"), &context).unwrap();
            prop_assert_eq!(rendered, format!("{before}{value}{after}"));
        }

        #[test]
        fn defaults_apply_only_to_missing_keys(value in proptest::option::of("[^|]*"), default in "([^}]|}[^}])*") {
            prop_assume!(!default.ends_with('}'));
            let mut context = context();
            if let Some(value) = &value {
                context.vars.insert("v".into(), value.clone());
            }
            let rendered = render(&format!("{{{{v|{default}}}}}"), &context).unwrap();
            prop_assert_eq!(rendered, value.unwrap_or(default));
        }

        #[test]
        fn escaped_text_renders_to_itself(text in "[a-z{}|: ]*") {
            prop_assert_eq!(render(&escape(&text), &context()).unwrap(), text);
        }
    }
}
