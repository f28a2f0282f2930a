use std::path::Path;

use super::*;

const FILE: &str = r#"
[defaults]
image = "localhost:5000/app:v1"
ports = [8080]
health_path = "/api/health"
env = { TZ = "UTC", LEVEL = "info" }

[groups.prod]
memory = "1g"
env = { LEVEL = "warn" }

[instances.alice]
group = "prod"
env = { APP_URL = "https://alice.example.com" }

[instances.bob]
host_port = 5050
restart = "always"
"#;

fn desired(text: &str) -> Result<Vec<Desired>, Error> {
    FleetFile::parse(text, Path::new("/etc/fleet/fleet.toml"))?
        .desired(Path::new("/etc/fleet/fleet.toml"))
}

#[test]
fn instances_take_their_group_and_the_defaults() {
    let desired = desired(FILE).unwrap();
    let alice = &desired[0].spec;
    assert_eq!(alice.name.as_str(), "alice");
    assert_eq!(alice.group.as_deref(), Some("prod"));
    assert_eq!(alice.resources.memory_bytes, Some(1 << 30));
    assert_eq!(alice.env["TZ"], "UTC");
    assert_eq!(alice.env["LEVEL"], "warn", "the group's value wins");
    assert_eq!(alice.env["APP_URL"], "https://alice.example.com");
    assert_eq!(alice.health.as_ref().unwrap().path, "/api/health");
    let bob = &desired[1].spec;
    assert_eq!(bob.env["LEVEL"], "info");
    assert_eq!(bob.ports[0].host, Some(5050));
    assert_eq!(bob.resources.memory_bytes, None);
    assert_eq!(bob.restart, crate::RestartPolicy::Always);
}

#[test]
fn mistakes_name_the_file_line_and_column_or_the_instance() {
    let shown = |text: &str| desired(text).unwrap_err().to_string();
    insta::assert_snapshot!(shown("[instances.alice]\nimage = \"app:v1\"\nportz = [80]\n"), @r"
    /etc/fleet/fleet.toml: TOML parse error at line 3, column 1
      |
    3 | portz = [80]
      | ^^^^^
    unknown field `portz`, expected one of `image`, `ports`, `host_port`, `env`, `env_file`, `vars`, `group`, `health_path`, `health_port`, `no_health`, `health_start_period`, `health_interval`, `health_deadline`, `data_dir`, `volumes`, `memory`, `cpus`, `restart`, `user`, `labels`, `backup`, `strategy`
    ");
    insta::assert_snapshot!(shown("[instances.alice]\nports = \"8080\"\n"), @r#"
    /etc/fleet/fleet.toml: TOML parse error at line 2, column 9
      |
    2 | ports = "8080"
      |         ^^^^^^
    invalid type: string "8080", expected a sequence
    "#);
    assert!(shown("[instances.alice]\nports = [80]\n").contains("it has no image"));
    assert!(
        shown("[defaults]\nimage = \"app:v1\"\nports = [80]\n[instances.a]\nhost_port = 5001\n[instances.b]\nhost_port = 5001\n")
            .contains("instances a and b both publish host port 5001")
    );
    assert!(
        shown("[defaults]\nimage = \"app:v1\"\n[groups.prdo]\nmemory = \"1g\"\n[instances.a]\ngroup = \"prod\"\n")
            .contains("[groups.prdo] sets defaults for a group no instance is in")
    );
    assert!(shown("[instances.Alice]\nimage = \"app:v1\"\n").contains("[instances.Alice]"));
    assert!(shown("[instances.a]\nimage = \"app:v1\"\nmemory = \"lots\"\n").contains("lots"));
}

#[test]
fn the_plan_says_what_to_create_change_and_remove() {
    let wanted = desired(FILE).unwrap();
    let mut current: Vec<InstanceSpec> = wanted.iter().map(|d| d.spec.clone()).collect();
    // alice runs an older setting, carol is not in the file, bob is missing.
    current[0].env.insert("TZ".into(), "Europe/Paris".into());
    current.remove(1);
    current.push(InstanceSpec::new(
        "carol".parse().unwrap(),
        "localhost:5000/app:v1".parse().unwrap(),
    ));
    let plan = ApplyPlan::new(&current, wanted.clone());
    assert_eq!(plan.create, ["bob".parse::<InstanceName>().unwrap()]);
    assert_eq!(plan.remove, ["carol".parse::<InstanceName>().unwrap()]);
    assert_eq!(plan.change.len(), 1);
    assert_eq!(
        plan.change[0].keys,
        [KeyChange {
            key: "env.TZ".into(),
            old: "Europe/Paris".into(),
            new: "UTC".into(),
        }]
    );
    assert!(!plan.is_empty(false));
    let all: Vec<InstanceSpec> = wanted.iter().map(|d| d.spec.clone()).collect();
    let again = ApplyPlan::new(&all, wanted);
    assert!(again.is_empty(true));
    assert_eq!(again.unchanged.len(), 2);
}

#[test]
fn settings_read_back_from_a_spec_make_the_same_spec() {
    for wanted in desired(FILE).unwrap() {
        let settings = InstanceSettings::from_spec(&wanted.spec);
        let again = settings
            .to_spec(&wanted.spec.name, Path::new("/elsewhere"))
            .unwrap();
        assert_eq!(again, wanted.spec);
    }
    let mut odd = desired(FILE).unwrap().remove(1).spec;
    odd.health = None;
    odd.volumes.push("/srv/shared:/shared:ro".parse().unwrap());
    odd.restart = crate::RestartPolicy::OnFailure(3);
    let settings = InstanceSettings::from_spec(&odd);
    assert_eq!(settings.to_spec(&odd.name, Path::new("/")).unwrap(), odd);
}

#[test]
fn edit_sets_and_unsets_settings_by_name() {
    let settings = InstanceSettings::from_spec(&desired(FILE).unwrap()[1].spec);
    let edited = settings
        .edit(
            &[
                ("env.TZ".into(), "Europe/Paris".into()),
                ("memory".into(), "512m".into()),
                ("cpus".into(), "1.5".into()),
                ("ports".into(), "[8080, 9090]".into()),
            ],
            &["env.LEVEL".into()],
        )
        .unwrap();
    assert_eq!(edited.env["TZ"], "Europe/Paris");
    assert!(!edited.env.contains_key("LEVEL"));
    assert_eq!(edited.memory.as_deref(), Some("512m"));
    assert_eq!(edited.cpus, Some(1.5));
    assert_eq!(edited.ports, Some(vec![8080, 9090]));
    let wrong = |set: &[(String, String)], unset: &[String]| {
        settings.edit(set, unset).unwrap_err().to_string()
    };
    assert!(wrong(&[("memroy".into(), "1g".into())], &[]).contains("memroy"));
    let text = wrong(&[("cpus".into(), "many".into())], &[]);
    assert!(
        text.contains("cannot set cpus") && text.contains("invalid type"),
        "{text}"
    );
    assert!(wrong(&[], &["user".into()]).contains("user is not set"));
}
